"""One contract, two stores: the local folder and S3 (a real SeaweedFS) must behave alike."""

from __future__ import annotations

import hashlib
import threading
import tracemalloc
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from support.http_stub import CountingProxy, StubS3, s3_error
from support.servers._proc import free_port

from factflow_replay_dagster.errors import ArtefactNotFoundError, InvalidIdError, StorageError
from factflow_replay_dagster.storage import (
    ArtefactStore,
    LocalArtefactStore,
    S3ArtefactStore,
    S3Config,
)

if TYPE_CHECKING:
    from support.servers.seaweedfs import SeaweedFSServer

PAGE_SIZE = 700
BACKENDS = ["local", pytest.param("s3", marks=pytest.mark.s3)]
SEAWEEDFS_ORDER = (
    "SeaweedFS 4.48 lists in directory-walk order (s/obj before s-x/obj) and a StartAfter "
    "naming a directory skips its subtree; AWS S3 uses UTF-8 byte order"
)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def content(key: str) -> bytes:
    return key.encode() * (1 + len(key) % 3)


def names(store: ArtefactStore, prefix: str = "", **kwargs: Any) -> list[str]:
    return [info.key for info in store.list(prefix, **kwargs)]


def new_bucket(server: SeaweedFSServer) -> str:
    return server.create_bucket(f"contract-{uuid.uuid4().hex[:16]}")


def xfail_on_seaweedfs(request: pytest.FixtureRequest, kind: str) -> None:
    if kind == "s3":
        request.applymarker(pytest.mark.xfail(reason=SEAWEEDFS_ORDER, strict=True))


@dataclass
class Backend:
    kind: str
    store: ArtefactStore
    #: Objects per listing request: S3's 1,000 (obstore cannot ask S3 for fewer).
    page_size: int
    config: S3Config | None = None


def make_backend(
    kind: str, request: pytest.FixtureRequest, root: Path, *, page_size: int = PAGE_SIZE
) -> Backend:
    if kind == "local":
        return Backend(kind, LocalArtefactStore(root, page_size=page_size), page_size)
    server: SeaweedFSServer = request.getfixturevalue("seaweedfs_server")
    config = server.config()
    store = S3ArtefactStore(config, new_bucket(server), prefix="root/")
    return Backend(kind, store, store.page_size, config)


@pytest.fixture(scope="session")
def counting_proxy() -> Iterator[CountingProxy]:
    """Sees an S3 store's requests on the wire (obstore has no request hooks)."""
    with CountingProxy() as proxy:
        yield proxy


def counted(backend: Backend, proxy: CountingProxy) -> ArtefactStore:
    """``backend.store`` itself (local), or an S3 store on the same bucket and prefix whose
    every request goes through ``proxy``; its record is cleared."""
    proxy.requests.clear()
    if backend.config is None:
        return backend.store
    store = backend.store
    assert isinstance(store, S3ArtefactStore)
    config = replace(backend.config, proxy_url=proxy.url)
    return S3ArtefactStore(config, store.bucket, prefix=store.prefix)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    made = make_backend(request.param, request, tmp_path / "store")
    with made.store:
        yield made


@pytest.fixture
def store(backend: Backend) -> ArtefactStore:
    return backend.store


# -- 5,000 objects, written once per module and backend ----------------------------------------

BIG_KEYS = [
    f"executions/{execution}/{route}/{stage}/obj-{index:05d}.json"
    for execution in ("e1", "e10", "e2")
    for route, stage in (("news", "fetch"), ("news", "parse"))
    for index in range(834)
][:5000]


@pytest.fixture(scope="module", params=BACKENDS)
def big(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    made = make_backend(request.param, request, tmp_path_factory.mktemp("big"))
    with made.store:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda key: made.store.write(key, content(key)), BIG_KEYS))
        yield made


def test_lists_5000_keys_in_order_across_pages(big: Backend, counting_proxy: CountingProxy) -> None:
    calls = counting_proxy.requests
    listing = counted(big, counting_proxy).list("")
    assert iter(listing) is listing  # lazy, not a list
    assert [info.key for info in listing] == sorted(BIG_KEYS)
    if big.config is not None:
        assert all(call.method == "GET" and "list-type=2" in call.path for call in calls)
        assert len(calls) == -(-len(BIG_KEYS) // big.page_size)  # 5 pages of at most 1,000
        assert next(counted(big, counting_proxy).list("")).key == min(BIG_KEYS)
        assert len(calls) == 1  # page by page: the first key needs only the first page
    # Locally each stage folder holds 834 objects: two scandir windows of at most 700.


def test_sizes_and_etags_are_md5_of_content(big: Backend) -> None:
    """A listing gives each object's size, and its etag when the store keeps one (S3); a
    folder lists None rather than read every file. Reading always gives the MD5 etag."""
    infos = list(big.store.list("executions/e10/"))
    assert len(infos) == 1668
    for info in infos:
        data = content(info.key)
        assert info.size == len(data)
        assert info.etag == (None if big.kind == "local" else md5(data))
        assert info.last_modified.tzinfo is not None
    read = list(big.store.read_many(info.key for info in infos))
    assert [(o.key, o.etag, o.data) for o in read] == [
        (info.key, md5(content(info.key)), content(info.key)) for info in infos
    ]


def test_list_keys_lists_what_list_lists(big: Backend) -> None:
    for prefix, after in [("executions/e1", None), ("executions/e2/news/parse/", BIG_KEYS[4000])]:
        keys = big.store.list_keys(prefix, start_after=after)
        assert iter(keys) is keys  # lazy, not a list
        assert list(keys) == names(big.store, prefix, start_after=after)


def test_read_many_keeps_order_and_fails_at_the_missing_object(store: ArtefactStore) -> None:
    keys = [f"executions/e1/r/s/obj-{i:03d}" for i in range(40)]
    for key in keys:
        store.write(key, key.encode())
    wanted = [*keys[:25], "executions/e1/r/s/missing", *keys[25:]]
    got: list[str] = []

    def read_all() -> None:
        for stored in store.read_many(wanted, concurrency=4):
            assert stored.data == stored.key.encode()
            assert stored.etag == md5(stored.data)
            got.append(stored.key)

    with pytest.raises(ArtefactNotFoundError, match="missing"):
        read_all()
    assert got == keys[:25]  # everything before the missing one, in order, then the error
    with pytest.raises(InvalidIdError):
        list(store.read_many(["executions/../etc/passwd"]))


def test_start_after_resumes_exactly(big: Backend) -> None:
    ordered = sorted(BIG_KEYS)
    assert names(big.store, start_after=ordered[2345]) == ordered[2346:]
    assert names(big.store, start_after=ordered[2345] + "~") == ordered[2346:]  # no such key
    assert names(big.store, start_after=ordered[-1]) == []
    e2 = [key for key in ordered if key.startswith("executions/e2/")]
    assert names(big.store, "executions/e2/", start_after="executions/e10/zzz") == e2
    assert names(big.store, "executions/e2/", start_after="a") == e2
    assert names(big.store, "executions/e10/", start_after="executions/e2/") == []


def test_prefix_isolation(big: Backend) -> None:
    def under(prefix: str) -> list[str]:
        return sorted(key for key in BIG_KEYS if key.startswith(prefix))

    e1 = names(big.store, "executions/e1/")
    assert e1 == under("executions/e1/")
    assert all(key.startswith("executions/e1/") for key in e1)
    assert names(big.store, "executions/e1") == under("executions/e1")  # e1 and e10, like S3
    assert names(big.store, "executions/e10/news/parse/") == under("executions/e10/news/parse/")
    assert names(big.store, "executions/e2/news/parse/obj-0083") == under(
        "executions/e2/news/parse/obj-0083"
    )
    assert names(big.store, "executions/e3/") == []
    assert names(big.store, "nothing") == []


# -- one object at a time ----------------------------------------------------------------------


def test_write_read_stat_exists(store: ArtefactStore) -> None:
    key = "executions/e1/news/fetch/a.json"
    written = store.write(key, b'{"a": 1}')
    assert (written.key, written.size, written.etag) == (key, 8, md5(b'{"a": 1}'))
    assert store.read(key) == b'{"a": 1}'
    stat = store.stat(key)
    assert (stat.key, stat.size, stat.etag) == (key, 8, written.etag)
    assert store.exists(key)
    store.write(key, b"")  # overwrite, and an empty object is still an object
    assert store.read(key) == b""
    assert store.stat(key).etag == md5(b"") == "d41d8cd98f00b204e9800998ecf8427e"
    assert names(store) == [key]


def test_missing_key_names_location_and_key(store: ArtefactStore) -> None:
    key = "executions/e1/news/fetch/missing.json"
    for action in (store.read, store.stat):
        with pytest.raises(ArtefactNotFoundError) as caught:
            action(key)
        assert (caught.value.location, caught.value.key) == (store.location, key)
        assert key in str(caught.value)
        assert store.location in str(caught.value)
    if isinstance(store, S3ArtefactStore):
        assert f"s3://{store.bucket}/root/" == store.location
    else:
        assert isinstance(store, LocalArtefactStore)
        assert store.location == f"folder {store.root}"
    assert not store.exists(key)
    assert names(store, "executions/") == []


def test_tricky_ordering(backend: Backend, request: pytest.FixtureRequest) -> None:
    xfail_on_seaweedfs(request, backend.kind)
    store = backend.store
    keys = ["t/s/obj", "t/s-x/obj", "t/s.y", "t/s0", "t/a.b", "t/a/b", "t/ab", "t/~", "t/é/x"]
    for key in keys:
        store.write(key, key.encode())
    assert names(store, "t/") == sorted(keys)
    assert sorted(keys, key=str.encode) == sorted(keys)  # code point order is byte order
    assert names(store, "t/s") == ["t/s-x/obj", "t/s.y", "t/s/obj", "t/s0"]


def test_start_after_a_directory_like_key(backend: Backend, request: pytest.FixtureRequest) -> None:
    xfail_on_seaweedfs(request, backend.kind)
    store = backend.store
    keys = ["x/e1/a", "x/e10/a", "x/e2/a"]
    for key in keys:
        store.write(key, b"1")
    assert names(store, "x/", start_after="x/e1") == keys  # "x/e1/a" > "x/e1"


@pytest.mark.parametrize("bad", ["../x", "/abs", "a/../b", "a\x00b", "a/./b", "a\\b"])
def test_path_traversal_rejected_before_any_io(
    bad: str, backend: Backend, tmp_path: Path, counting_proxy: CountingProxy
) -> None:
    sent = counting_proxy.requests
    store = counted(backend, counting_proxy)
    before = sorted(tmp_path.rglob("*"))
    for action in (store.read, store.stat, store.exists, lambda key: store.write(key, b"x")):
        with pytest.raises(InvalidIdError):
            action(bad)
    with pytest.raises(InvalidIdError):
        store.list(bad)  # raised on the call, before iterating
    for bad_key in ("", "a//b", "a/"):
        with pytest.raises(InvalidIdError):
            store.write(bad_key, b"x")
    assert sent == []
    assert sorted(tmp_path.rglob("*")) == before


def test_write_is_atomic(store: ArtefactStore) -> None:
    key = "executions/e1/news/fetch/doc.json"
    versions = {b"A" * 200_000, b"B" * 300_000}
    store.write(key, b"A" * 200_000)
    stop = threading.Event()
    seen: set[str] = set()
    torn: list[int] = []
    errors: list[Exception] = []
    looks = 0

    def watch() -> None:
        nonlocal looks
        while not stop.is_set():
            try:
                seen.update(names(store, "executions/"))
                if (data := store.read(key)) not in versions:
                    torn.append(len(data))
            except Exception as exc:  # reported below: a thread's exception is lost otherwise
                errors.append(exc)
            looks += 1

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for round_ in range(30):
            store.write(key, b"B" * 300_000 if round_ % 2 else b"A" * 200_000)
            store.write(f"executions/e1/news/fetch/other-{round_:02d}.json", b"o")
    finally:
        stop.set()
        watcher.join()
    assert (torn, errors) == ([], [])
    assert looks > 0
    assert seen <= {key} | {f"executions/e1/news/fetch/other-{n:02d}.json" for n in range(30)}
    assert len(names(store, "executions/")) == 31


# -- local only ------------------------------------------------------------------------------


def test_local_listing_memory_does_not_grow_with_object_count(tmp_path: Path) -> None:
    def all_keys() -> list[str]:
        return [f"executions/e1/r/s{s:02d}/obj-{i:05d}" for s in range(20) for i in range(1000)]

    for stage in range(20):
        (tmp_path / f"executions/e1/r/s{stage:02d}").mkdir(parents=True)
    for key in all_keys():
        (tmp_path / key).write_bytes(b"x")
    store = LocalArtefactStore(tmp_path, page_size=500)

    tracemalloc.start()
    try:
        count = sum(1 for _ in store.list("executions/"))
        streaming_peak = tracemalloc.get_traced_memory()[1]
        before = tracemalloc.get_traced_memory()[0]
        held = all_keys()  # merely holding every name (not even an ObjectInfo) costs this
        holding = tracemalloc.get_traced_memory()[0] - before
        del held
    finally:
        tracemalloc.stop()
    assert count == 20_000
    # About 0.06 on this machine: a page of names, one directory window, one hash buffer.
    assert streaming_peak < holding / 4, (streaming_peak, holding)


def test_local_temp_files_and_dot_names_are_never_listed(tmp_path: Path) -> None:
    store = LocalArtefactStore(tmp_path)
    store.write("executions/e1/r/s/a", b"a")
    (tmp_path / "executions/e1/r/s/.a.k3j4.tmp").write_bytes(b"half")  # a crashed writer's
    (tmp_path / "executions/e1/r/.hidden").mkdir()
    (tmp_path / "executions/e1/r/.hidden/b").write_bytes(b"b")
    assert names(store) == ["executions/e1/r/s/a"]
    with pytest.raises(InvalidIdError):
        store.write("executions/e1/r/s/.a", b"x")


def test_local_failed_write_keeps_old_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalArtefactStore(tmp_path)
    key = "executions/e1/r/s/a"
    store.write(key, b"old")

    def broken_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr("os.fsync", broken_fsync)
    with pytest.raises(StorageError, match="executions/e1/r/s/a"):
        store.write(key, b"new")
    monkeypatch.undo()
    assert store.read(key) == b"old"
    assert [p.name for p in (tmp_path / "executions/e1/r/s").iterdir()] == ["a"]


def test_local_symlink_escape_is_rejected(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"s")
    root = tmp_path / "root"
    (root / "executions").mkdir(parents=True)
    (root / "executions/e1").symlink_to(outside)
    store = LocalArtefactStore(root)
    with pytest.raises(InvalidIdError, match="outside"):
        store.read("executions/e1/secret")
    with pytest.raises(InvalidIdError, match="outside"):
        list(store.read_many(["executions/e1/secret"]))
    with pytest.raises(InvalidIdError):
        store.write("executions/e1/new", b"x")
    assert names(store) == []
    assert not (outside / "new").exists()
    # A file that is a link is not an object either, wherever it points.
    (root / "executions/e2/r/s").mkdir(parents=True)
    (root / "executions/e2/r/s/link").symlink_to(outside / "secret")
    assert list(store.list_keys("executions/e2/")) == []
    with pytest.raises(ArtefactNotFoundError):
        list(store.read_many(["executions/e2/r/s/link"]))


# -- S3 only ---------------------------------------------------------------------------------


@pytest.mark.s3
def test_s3_keys_live_under_the_prefix(seaweedfs_server: SeaweedFSServer) -> None:
    client = seaweedfs_server.client()  # boto3, to look at the bucket from outside
    bucket = new_bucket(seaweedfs_server)
    client.put_object(Bucket=bucket, Key="executions/e1/r/s/outside", Body=b"o")
    with S3ArtefactStore(seaweedfs_server.config(), bucket, prefix="/root") as store:
        assert store.location == f"s3://{bucket}/root/"
        store.write("executions/e1/r/s/inside", b"i")
        raw = [item["Key"] for item in client.list_objects_v2(Bucket=bucket)["Contents"]]
        assert raw == ["executions/e1/r/s/outside", "root/executions/e1/r/s/inside"]
        assert names(store) == ["executions/e1/r/s/inside"]
        assert not store.exists("executions/e1/r/s/outside")
    client.close()


@pytest.mark.s3
def test_s3_errors_name_bucket_and_key(seaweedfs_server: SeaweedFSServer) -> None:
    key = "executions/e1/r/s/a.json"
    with S3ArtefactStore(seaweedfs_server.config(), "no-such-bucket-here") as gone:
        for action in (gone.read, lambda k: names(gone, k)):
            with pytest.raises(StorageError, match="no-such-bucket-here") as caught:
                action(key)
            assert not isinstance(caught.value, ArtefactNotFoundError)

    # A server that refuses: a loopback stub answering 403 AccessDenied to everything.
    with StubS3(lambda _: s3_error(403, "AccessDenied", "Access Denied")) as stub:
        store = S3ArtefactStore(
            replace(seaweedfs_server.config(), endpoint_url=stub.url), "some-bucket", prefix="p"
        )
        with pytest.raises(StorageError) as caught:
            store.read(key)
    message = str(caught.value)
    assert "AccessDenied" in message
    assert "some-bucket" in message
    assert key in message

    secret = "very-secret-" + uuid.uuid4().hex
    config = S3Config(
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key=secret,
        aws_session_token="token-" + secret,
        max_attempts=1,
    )
    assert secret not in repr(config)
    assert secret not in str(config)
    dead = S3ArtefactStore(config, "dead-bucket")
    assert secret not in repr(dead)
    with pytest.raises(StorageError) as caught:
        dead.stat(key)
    assert "dead-bucket" in str(caught.value)
    assert key in str(caught.value)
    assert secret not in str(caught.value)
    dead.close()
