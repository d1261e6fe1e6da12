"""The registry client over real HTTP on loopback: token authentication with the Docker
client's credentials, digests checked, and credentials never sent to another host."""

from __future__ import annotations

import base64
import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness import registry as registry_module

MANIFEST = json.dumps({"schemaVersion": 2, "layers": []}).encode()
BLOB = b"blob bytes"
CREDENTIALS = base64.b64encode(b"user:secret").decode()


@dataclass
class Served:
    address: str = ""
    # (path, Authorization header) of each request, per server.
    registry: list[tuple[str, str | None]] = field(default_factory=list)
    elsewhere: list[tuple[str, str | None]] = field(default_factory=list)


def _serve(handler: type[http.server.BaseHTTPRequestHandler], host: str) -> http.server.HTTPServer:
    server = http.server.ThreadingHTTPServer((host, 0), handler)
    threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
    return server


@pytest.fixture
def served() -> Iterator[Served]:
    state = Served()

    class Elsewhere(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.elsewhere.append((self.path, self.headers.get("Authorization")))
            self._send(200, BLOB)

        def _send(self, status: int, body: bytes, **headers: str) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    # Another address on loopback: another host as far as HTTP is concerned.
    other = _serve(Elsewhere, "127.0.0.2")

    class Registry(Elsewhere):
        def do_GET(self) -> None:
            authorization = self.headers.get("Authorization")
            state.registry.append((self.path, authorization))
            if self.path.startswith("/token"):
                ok = authorization == f"Basic {CREDENTIALS}" and "scope=repository" in self.path
                self._send(200 if ok else 401, json.dumps({"token": "t0ken"}).encode())
            elif authorization != "Bearer t0ken":
                realm = f"http://{state.address}/token"
                challenge = f'Bearer realm="{realm}",service="reg",scope="repository:ml/m:pull"'
                self._send(401, b"{}", WWW_Authenticate=challenge)
            elif (
                self.path == "/v2/ml/m/manifests/latest"
                or self.path == "/v2/ml/m/manifests/" + registry_module.digest_of(b"other")
            ):
                self._send(200, MANIFEST, Content_Type=registry_module.OCI_MANIFEST)
            elif self.path == "/v2/ml/m/blobs/" + registry_module.digest_of(BLOB):
                port = other.server_address[1]
                self._send(307, b"", Location=f"http://127.0.0.2:{port}/storage/blob")
            else:
                self._send(404, b"{}")

    server = _serve(Registry, "127.0.0.1")
    state.address = f"127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        for each in (server, other):
            each.shutdown()
            each.server_close()


@pytest.fixture
def docker_login(tmp_path: Path, served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.json").write_text(
        json.dumps({"auths": {served.address: {"auth": CREDENTIALS}}})
    )
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))


@pytest.mark.usefixtures("docker_login")
def test_a_token_is_fetched_with_the_docker_client_s_credentials(served: Served) -> None:
    client = registry_module.Registry(served.address)
    manifest = client.manifest("ml/m", "latest")
    assert manifest is not None
    assert manifest.digest == registry_module.digest_of(MANIFEST)
    assert manifest.media_type == registry_module.OCI_MANIFEST
    assert [path.split("?")[0] for path, _ in served.registry] == [
        "/v2/ml/m/manifests/latest",
        "/token",
        "/v2/ml/m/manifests/latest",
    ]
    assert client.manifest("ml/m", "missing") is None


@pytest.mark.usefixtures("docker_login")
def test_a_manifest_whose_bytes_are_not_its_digest_is_refused(served: Served) -> None:
    client = registry_module.Registry(served.address)
    with pytest.raises(registry_module.RegistryError, match="whose digest is"):
        client.manifest("ml/m", registry_module.digest_of(b"other"))


@pytest.mark.usefixtures("docker_login")
def test_a_redirect_to_another_host_carries_no_credentials(served: Served) -> None:
    client = registry_module.Registry(served.address)
    blob = client.blob("ml/m", registry_module.digest_of(BLOB), limit=1024)
    assert blob == BLOB
    assert served.elsewhere == [("/storage/blob", None)]


def test_without_credentials_the_refusal_is_one_line(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    client = registry_module.Registry(served.address)
    with pytest.raises(registry_module.RegistryError, match="answered 401") as caught:
        client.manifest("ml/m", "latest")
    assert "docker login" in caught.value.one_line()
