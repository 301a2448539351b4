"""The front door (issue 12 item 1): a request without a valid token is refused before a byte
of its body is read, and a body past its route's limit (declared or chunked) is cut off at the
limit — over a real socket to a real uvicorn, the way an attacker would send it."""

from __future__ import annotations

import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.conftest import ADMIN_PASSWORD, assert_error

GB = 1_000_000_000
CHUNK = 256 * 1024


@pytest.fixture(scope="module")
def settings_overrides() -> dict[str, Any]:
    return {"max_upload_mb": 2, "max_request_mb": 1}


def _temp_bytes() -> int:
    """Bytes in the temporary folder's files (where an upload would spool)."""
    total = 0
    for p in Path(tempfile.gettempdir()).rglob("*"):
        try:
            if p.is_file():
                total += p.stat().st_size
        except OSError:  # another process's file came and went
            pass
    return total


def _stream(
    url: str, path: str, headers: dict[str, str], total: int, prefix: bytes = b""
) -> tuple[int, int]:
    """POST ``total`` bytes as a chunked body, watching for an early answer after each chunk.
    Returns (status, body bytes sent before the answer came or the server hung up)."""
    host, port = url.split("://")[1].split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    head = [f"POST {path} HTTP/1.1", f"Host: {host}", "Transfer-Encoding: chunked"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    if prefix:
        sock.sendall(f"{len(prefix):x}\r\n".encode() + prefix + b"\r\n")
    chunk = f"{CHUNK:x}\r\n".encode() + b"x" * CHUNK + b"\r\n"
    sent = len(prefix)
    sock.settimeout(0.0)
    try:
        while sent < total:
            answer = _answer(sock)
            if answer is not None:
                return answer, sent
            try:
                sock.sendall(chunk)
            except BlockingIOError:
                time.sleep(0.001)  # the server reads no more: its answer is coming
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += CHUNK
        sock.settimeout(30)
        answer = _answer(sock, wait=True)
        return (answer or 0), sent
    finally:
        sock.close()


def _answer(sock: socket.socket, wait: bool = False) -> int | None:
    try:
        data = sock.recv(65536)
    except (BlockingIOError, TimeoutError):
        return None
    except ConnectionResetError:
        return 0
    if not data:
        return 0 if wait else None
    return int(data.split(b" ", 2)[1])


@pytest.fixture(scope="module")
def api(live_server: str) -> Iterator[httpx.Client]:
    """A client of the live server, logged in as the admin."""
    with httpx.Client(base_url=live_server, timeout=30) as client:
        r = client.post(
            "/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
        )
        client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        yield client


@pytest.fixture
def watched(live_server: str) -> Iterator[dict[str, int]]:
    """The process's RSS and the temp folder's bytes before the test; checked after."""
    proc = psutil.Process()
    before = {"rss": proc.memory_info().rss, "temp": _temp_bytes()}
    yield before
    assert proc.memory_info().rss - before["rss"] < 100e6
    assert _temp_bytes() - before["temp"] < 20e6


def test_a_gigabyte_without_a_token_is_refused_before_its_body_is_read(
    live_server: str, watched: dict[str, int]
) -> None:
    for path in ("/api/v1/datasets", "/api/v1/predict", "/api/v1/no-such-route"):
        status, sent = _stream(live_server, path, {}, GB)
        assert status == 401
        # the answer is there before the first chunk; what the kernel buffered is all that went
        assert sent < 16e6, f"{path}: {sent / 1e6:.0f} MB went before the 401"
    status, sent = _stream(live_server, "/api/v1/datasets", {"Authorization": "Bearer tx_x"}, GB)
    assert status == 401 and sent < 16e6


def test_a_chunked_upload_past_the_limit_is_cut_off_at_the_limit(
    live_server: str, api: httpx.Client, watched: dict[str, int]
) -> None:
    headers = {"Authorization": api.headers["Authorization"]}
    listed = api.get("/api/v1/datasets").json()
    auth = {**headers, "Content-Type": "multipart/form-data; boundary=xyz"}
    part = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n\r\n'
    status, sent = _stream(live_server, "/api/v1/datasets", auth, GB, prefix=part)
    assert status == 413
    assert 2e6 <= sent < 32e6  # the 2 MB limit, plus what the socket buffers held
    status, sent = _stream(
        live_server, "/api/v1/predict", {**headers, "Content-Type": "application/json"}, GB
    )
    assert status == 413 and 1e6 <= sent < 32e6
    assert api.get("/api/v1/datasets").json() == listed


def test_declared_oversize_bodies_are_413_before_reading(
    live_server: str, api: httpx.Client
) -> None:
    headers = {"Authorization": api.headers["Authorization"], "Content-Length": str(10 * GB)}
    r = _declared(live_server, "/api/v1/predict", headers)
    body = assert_error(r, 413, "payload_too_large")
    assert "1 MB" in body["message"] and "TAXONOMIST_MAX_REQUEST_MB" in body["message"]
    body = assert_error(_declared(live_server, "/api/v1/datasets", headers), 413)
    assert "2 MB" in body["message"] and "TAXONOMIST_MAX_UPLOAD_MB" in body["message"]
    # without a token the size is not even looked at
    assert_error(_declared(live_server, "/api/v1/datasets", {"Content-Length": str(GB)}), 401)


def _declared(url: str, path: str, headers: dict[str, str]) -> httpx.Response:
    """The answer to a POST that declares a length and sends none of it."""
    host, port = url.split("://")[1].split(":")
    head = [f"POST {path} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in headers.items())]
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            more = sock.recv(65536)
            if not more:
                break
            data += more
    status_line, _, rest = data.partition(b"\r\n")
    body = rest.partition(b"\r\n\r\n")[2]
    return httpx.Response(int(status_line.split()[1]), content=body)


def test_a_json_body_over_the_limit_is_413_and_the_service_goes_on(api: httpx.Client) -> None:
    big = {"model": "m", "records": [{"text": "x" * 1000}] * 1200}  # ~1.2 MB
    body = assert_error(api.post("/api/v1/predict", json=big), 413)
    assert body["details"]["limit_bytes"] == 1_000_000
    assert_error(
        api.post("/api/v1/predict", json={"model": "nope", "records": [{"text": "x"}]}), 404
    )
