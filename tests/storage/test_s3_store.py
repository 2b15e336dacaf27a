"""The S3 store's boundary and reads: errors name bucket and key and never a secret, reads
ahead stay bounded and in order, string prefixes list what S3 would. Loopback stubs give the
answers SeaweedFS will not (403, 400, silence); listings run on a real SeaweedFS."""

from __future__ import annotations

import socket
import threading
import time
import uuid

import pytest
from support.http_stub import Answer, Request, StubS3, s3_error
from support.s3_cases import (
    KEY,
    SECRET,
    actions,
    assert_names_bucket_and_key_only,
    ok,
    stub_config,
)
from support.servers._proc import free_port
from support.servers.seaweedfs import SeaweedFSServer

from factflow_replay_dagster.errors import ArtefactNotFoundError, InvalidIdError, StorageError
from factflow_replay_dagster.storage import S3ArtefactStore

# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (s3_error(403, "AccessDenied", "Access Denied"), "AccessDenied"),
        (s3_error(404, "NoSuchBucket", "The specified bucket does not exist"), "does not exist"),
        (s3_error(400, "InvalidRequest", "Bad thing"), "InvalidRequest"),
    ],
)
def test_refusals_name_bucket_and_key(answer: Answer, expected: str) -> None:
    with StubS3(lambda _: answer) as stub:
        store = S3ArtefactStore(stub_config(stub.url), "some-bucket", prefix="p")
        for name, action in actions(store).items():
            with pytest.raises(StorageError) as caught:
                action(KEY)
            message = assert_names_bucket_and_key_only(caught.value, "some-bucket", KEY)
            if name == "stat":  # a HEAD answer has no body: only the status is known, and a
                # 404 reads as a missing object (a missing bucket too, as it did with boto3)
                assert isinstance(caught.value, ArtefactNotFoundError) == (answer[0] == 404)
                continue
            assert not isinstance(caught.value, ArtefactNotFoundError), name
            assert expected in message, (name, message)


def test_unreachable_and_silent_servers_name_bucket_and_key() -> None:
    dead = f"http://user:pw-{SECRET[-8:]}@127.0.0.1:{free_port()}"
    store = S3ArtefactStore(stub_config(dead), "dead-bucket")
    for name, action in actions(store).items():
        with pytest.raises(StorageError) as caught:
            action(KEY)
        message = assert_names_bucket_and_key_only(caught.value, "dead-bucket", KEY)
        assert "could not connect" in message, name
        assert "user:***@127.0.0.1" in message

    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        store = S3ArtefactStore(stub_config(url), "silent-bucket")
        started = time.monotonic()
        with pytest.raises(StorageError, match="timed out") as caught:
            store.read(KEY)
        assert time.monotonic() - started < 10
    assert_names_bucket_and_key_only(caught.value, "silent-bucket", KEY)


def test_a_key_obstore_cannot_name_is_refused_before_any_io() -> None:
    with StubS3(ok()) as stub:
        store = S3ArtefactStore(stub_config(stub.url), "b")
        for action in (store.read, store.stat, lambda key: store.write(key, b"x")):
            with pytest.raises(InvalidIdError):
                action("executions/e1/r/s/a\x01b")
        assert stub.requests == []


# -- reading ahead -------------------------------------------------------------------------------


def test_read_many_gives_the_etag_the_get_answered() -> None:
    """S3's ETag of a multipart object is not an MD5; read_many passes on what S3 says."""
    with StubS3(ok(b"body", etag='"0123abcd-2"')) as stub:
        store = S3ArtefactStore(stub_config(stub.url), "b")
        (stored,) = store.read_many([KEY])
    assert (stored.key, stored.etag, stored.data) == (KEY, "0123abcd-2", b"body")


def test_read_many_keeps_at_most_concurrency_reads_in_flight() -> None:
    gate = threading.Event()
    lock = threading.Lock()
    running = peak = 0

    def held(request: Request) -> Answer:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        gate.wait(10)
        with lock:
            running -= 1
        return ok(request.path.encode())(request)

    keys = [f"executions/e1/r/s/obj-{i:03d}" for i in range(40)]
    with StubS3(held) as stub:
        store = S3ArtefactStore(stub_config(stub.url, request_timeout=20, read_timeout=20), "b")
        reader = store.read_many(keys, concurrency=4)
        first: list[bytes] = []
        consumer = threading.Thread(target=lambda: first.append(next(reader).data))
        consumer.start()
        deadline = time.monotonic() + 5
        while len(stub.requests) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # time for a fifth request, if one were to come
        assert len(stub.requests) == 4  # nothing more was asked for while those wait
        gate.set()
        consumer.join(10)
        rest = [stored.data for stored in reader]
    assert peak <= 4
    assert [*first, *rest] == [f"/b/{key}".encode() for key in keys]


# -- listing -------------------------------------------------------------------------------------


@pytest.mark.s3
def test_string_prefixes_list_what_s3_would(seaweedfs_server: SeaweedFSServer) -> None:
    """obstore lists by path segment; the store gives S3's string prefixes back (its folder
    listed from just before the prefix, stopped past it), whatever the server's order.

    After ``start_after`` SeaweedFS resumes in its own walk order, so there only "nothing
    before the cursor, nothing outside the prefix" is asserted (the contract's xfails cover
    the order itself).
    """
    keys = ["t/s/obj", "t/s-x/obj", "t/s.y", "t/s0", "t/a.b", "t/a/b", "t/ab", "t/~", "t/é/x"]
    keys += ["t/s-/z", "t/r/deep/key", "t/sz"]
    bucket = seaweedfs_server.create_bucket(f"prefixes-{uuid.uuid4().hex[:12]}")
    with S3ArtefactStore(seaweedfs_server.config(), bucket, prefix="p") as store:
        for key in keys:
            store.write(key, b"1")
        prefixes = ["t/s", "t/s-", "t/s.", "t/s0", "t/s/", "t/a", "t/a.", "t/", "t", ""]
        for prefix in [*prefixes, "t/é", "t/~", "t/r/d", "t/zz", "t/s-x/o"]:
            expected = sorted(key for key in keys if key.startswith(prefix))
            assert sorted(store.list_keys(prefix)) == expected, prefix
            for after in expected[:3]:
                got = list(store.list_keys(prefix, start_after=after))
                assert set(got) <= {key for key in expected if key > after}, (prefix, after)
