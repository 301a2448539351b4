"""A small HTTP/1.1 load generator: ``concurrency`` keep-alive connections, each sending one
pre-encoded POST after another for ``duration`` seconds. Raw asyncio sockets keep its own CPU
cost far below an HTTP client library's, which matters when it shares two cores with the
server. Prints one JSON line: requests, errors, requests/s and latency percentiles (ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import numpy as np


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def _worker(host: str, port: int, request: bytes, stop: float, out: list, errors: list):
    reader, writer = await asyncio.open_connection(host, port)
    while time.perf_counter() < stop:
        start = time.perf_counter()
        writer.write(request)
        try:
            status = await _read_response(reader)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            errors.append(str(exc))
            writer.close()
            reader, writer = await asyncio.open_connection(host, port)
            continue
        out.append(time.perf_counter() - start)
        if status != 200:
            errors.append(status)
    writer.close()


async def run(url: str, body: bytes, headers: dict[str, str], concurrency: int, duration: float):
    host_port = url.split("://", 1)[1].split("/", 1)
    host, port = host_port[0].split(":")
    path = "/" + (host_port[1] if len(host_port) > 1 else "")
    head = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        f"Content-Length: {len(body)}",
        "Content-Type: application/json",
    ] + [f"{k}: {v}" for k, v in headers.items()]
    request = ("\r\n".join(head) + "\r\n\r\n").encode() + body
    latencies: list[float] = []
    errors: list = []
    stop = time.perf_counter() + duration
    started = time.perf_counter()
    await asyncio.gather(
        *[_worker(host, int(port), request, stop, latencies, errors) for _ in range(concurrency)]
    )
    elapsed = time.perf_counter() - started
    lat = np.asarray(latencies) * 1000
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "first_errors": [str(e) for e in errors[:3]],
        "seconds": elapsed,
        "rps": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(lat, 50)) if lat.size else None,
        "p90_ms": float(np.percentile(lat, 90)) if lat.size else None,
        "p99_ms": float(np.percentile(lat, 99)) if lat.size else None,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("url")
    p.add_argument("--body", required=True, help="JSON body (a file path)")
    p.add_argument("--header", action="append", default=[], help="'Name: value'")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--duration", type=float, default=60)
    a = p.parse_args()
    headers = dict(h.split(": ", 1) for h in a.header)
    with open(a.body, "rb") as f:
        body = f.read()
    print(json.dumps(asyncio.run(run(a.url, body, headers, a.concurrency, a.duration))))


if __name__ == "__main__":
    main()
