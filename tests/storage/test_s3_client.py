"""How settings reach obstore: the S3 client takes the settings' endpoint, keys, attempts and
CA bundle, whatever else the environment says. Real servers throughout: a SeaweedFS that
checks signatures, and loopback stubs where a test needs an answer SeaweedFS will not give."""

from __future__ import annotations

import ssl
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from support.http_stub import StubS3, s3_error
from support.s3_cases import (
    KEY,
    SECRET,
    TOKEN,
    actions,
    assert_names_bucket_and_key_only,
    ok,
    stub_config,
)
from support.servers.fixtures import serving
from support.servers.seaweedfs import SeaweedFSServer

from factflow_replay_dagster.connect import open_artefact_store
from factflow_replay_dagster.errors import ArtefactNotFoundError, SettingsError, StorageError
from factflow_replay_dagster.settings import Settings
from factflow_replay_dagster.storage import S3ArtefactStore, S3Config

# -- importing ---------------------------------------------------------------------------------


def test_the_s3_store_imports_no_boto3_and_the_interface_no_obstore() -> None:
    code = (
        "import sys\n"
        "import factflow_replay_dagster.connect, factflow_replay_dagster.storage\n"
        "assert 'obstore' not in sys.modules, 'the interface loaded obstore'\n"
        "import factflow_replay_dagster.storage.s3\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')]\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# -- configuration -------------------------------------------------------------------------------


def test_config_repr_shows_no_secret_and_no_url_password() -> None:
    config = stub_config(
        f"http://user:pw-{SECRET[-8:]}@127.0.0.1:9", proxy_url=f"http://p:pw-{SECRET[-8:]}@px:3"
    )
    shown = repr(config) + str(config)
    assert "AKIDEXPLICIT" in shown
    for secret in (SECRET, TOKEN, "pw-" + SECRET[-8:]):
        assert secret not in shown
    store = S3ArtefactStore(config, "b", prefix="p")
    assert repr(store) == "S3ArtefactStore('s3://b/p/')"


@pytest.mark.parametrize(
    ("keys", "named"),
    [
        ({"aws_access_key_id": "AKID"}, "AWS_SECRET_ACCESS_KEY"),
        ({"aws_secret_access_key": "s"}, "AWS_ACCESS_KEY_ID"),
        ({"max_attempts": 0}, "AWS_MAX_ATTEMPTS"),
    ],
)
def test_an_incomplete_config_is_refused(keys: dict[str, Any], named: str) -> None:
    with pytest.raises(SettingsError, match=named) as caught:
        S3Config(**keys)
    assert caught.value.exit_code == 2


@pytest.mark.parametrize("attempts", [1, 3])
def test_max_attempts_counts_every_attempt(attempts: int) -> None:
    """AWS_MAX_ATTEMPTS counts the first try: a server answering 500 sees exactly that many."""
    with StubS3(lambda _: s3_error(500, "InternalError", "try again")) as stub:
        settings = Settings.from_values(
            storage_url="s3://flaky/p",
            aws_endpoint_url=stub.url,
            aws_access_key_id="AKID",
            aws_secret_access_key=SECRET,
            aws_max_attempts=attempts,
        )
        with open_artefact_store(settings) as store, pytest.raises(StorageError) as caught:
            store.read(KEY)
        assert len(stub.requests) == attempts
    message = assert_names_bucket_and_key_only(caught.value, "flaky", KEY)
    assert "InternalError" in message
    assert ("after 3 attempts" in message) == (attempts == 3)


def test_explicit_keys_and_endpoint_ignore_a_conflicting_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with StubS3(ok()) as stub, StubS3(ok()) as decoy:
        for name, value in {
            "AWS_ENDPOINT_URL_S3": decoy.url,  # obstore would prefer it to an explicit endpoint
            "AWS_ENDPOINT_URL": decoy.url,
            "AWS_ACCESS_KEY_ID": "AKIDFROMENV",
            "AWS_SECRET_ACCESS_KEY": "secret-from-env",
            "AWS_SESSION_TOKEN": "token-from-env",  # obstore would add it to explicit keys
            "AWS_REGION": "ap-south-1",
            "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "true",
            "AWS_SKIP_SIGNATURE": "true",
        }.items():
            monkeypatch.setenv(name, value)
        config = stub_config(stub.url, region_name="eu-central-1", aws_session_token=None)
        assert S3ArtefactStore(config, "b", prefix="p").read("k") == b"xyz"
        with_token = S3ArtefactStore(replace(config, aws_session_token=TOKEN), "b")
        assert with_token.read("k") == b"xyz"
        assert decoy.requests == []
        plain, tokened = stub.requests
    assert (plain.method, plain.path) == ("GET", "/b/p/k")  # path style, under the prefix
    assert "x-amz-security-token" not in plain.headers
    assert "Credential=AKIDEXPLICIT/" in plain.headers["authorization"]
    assert "/eu-central-1/s3/aws4_request" in plain.headers["authorization"]
    assert tokened.headers["x-amz-security-token"] == TOKEN


# -- a server that checks signatures -------------------------------------------------------------


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFSServer]:
    """SeaweedFS that accepts one key pair only, and checks every signature."""
    folder = tmp_path_factory.mktemp("seaweedfs-keys")
    yield from serving(SeaweedFSServer(folder, require_keys=True))


@pytest.mark.s3
def test_explicit_keys_are_the_ones_a_checking_server_sees(
    keyed_server: SeaweedFSServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = keyed_server.create_bucket(f"keys-{uuid.uuid4().hex[:12]}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-from-env")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "token-from-env")
    with S3ArtefactStore(keyed_server.config(), bucket, prefix="p") as store:
        written = store.write(KEY, b"payload")
        assert store.read(KEY) == b"payload"
        assert store.stat(KEY).etag == written.etag
        assert [o.key for o in store.read_many([KEY])] == [KEY]
        assert [info.key for info in store.list("executions/")] == [KEY]

    wrong = replace(keyed_server.config(), aws_secret_access_key=SECRET, max_attempts=1)
    store = S3ArtefactStore(wrong, bucket, prefix="p")
    for name, action in actions(store).items():
        with pytest.raises(StorageError) as caught:
            action(KEY)
        assert not isinstance(caught.value, ArtefactNotFoundError), name
        assert_names_bucket_and_key_only(caught.value, bucket, KEY)


@pytest.mark.s3
def test_without_keys_the_chain_reads_the_environment(
    keyed_server: SeaweedFSServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = keyed_server.create_bucket(f"chain-{uuid.uuid4().hex[:12]}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", keyed_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", keyed_server.secret_key)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    config = replace(keyed_server.config(), aws_access_key_id=None, aws_secret_access_key=None)
    with S3ArtefactStore(config, bucket) as store:
        store.write(KEY, b"from the chain")
        assert store.read(KEY) == b"from the chain"


# -- CA bundle -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A private CA and a certificate it signed for 127.0.0.1 (made with openssl)."""
    folder = tmp_path_factory.mktemp("tls")

    def openssl(command: str) -> None:
        subprocess.run(["openssl", *command.split()], cwd=folder, check=True, capture_output=True)

    ca = "-x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=factflow-CA"
    openssl(f"req {ca}")
    openssl("req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1")
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl(
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem "
        "-days 2 -extfile san.cnf"
    )
    return {name: folder / f"{name}.pem" for name in ("ca", "server")} | {
        "key": folder / "server.key"
    }


def test_a_ca_bundle_is_trusted_for_tls(tls_files: dict[str, Path]) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_files["server"], tls_files["key"])
    with StubS3(ok(b"over tls"), tls=context) as stub:
        assert stub.url.startswith("https://")
        trusting = S3ArtefactStore(stub_config(stub.url, ca_bundle=str(tls_files["ca"])), "b")
        assert trusting.read(KEY) == b"over tls"
        with pytest.raises(StorageError) as caught:
            S3ArtefactStore(stub_config(stub.url), "b").read(KEY)  # the system's roots only
    assert_names_bucket_and_key_only(caught.value, "b", KEY)
    assert "could not connect" in str(caught.value)


def test_a_missing_or_non_pem_ca_bundle_is_refused_at_start(tmp_path: Path) -> None:
    not_pem = tmp_path / "bundle.der"
    not_pem.write_bytes(b"0\x82\x01\x0a garbage, not PEM")
    text = tmp_path / "notes.txt"
    text.write_text("certificates: see the wiki\n")
    for path in (tmp_path / "missing.pem", not_pem, text):
        settings = Settings.from_values(storage_url="s3://b", aws_ca_bundle=str(path))
        with pytest.raises(SettingsError, match="AWS_CA_BUNDLE") as caught:
            open_artefact_store(settings)
        assert str(path) in str(caught.value)
        assert caught.value.exit_code == 2
