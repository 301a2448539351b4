"""Soak test: a mixed load on one `taxonomist serve` worker for a minute, with no error and
flat memory.

    python bench/soak.py                  # 45 s warm-up + 60 s, 32 clients; bench/soak.json
    python bench/soak.py --duration 20    # quicker

The demo table's linear model is registered in a fresh TAXONOMIST_HOME (as bench/api.py
does) and served by one worker whose temporary folder (TMPDIR) is its own. ``--clients - 1``
clients each loop over a weighted mix on one keep-alive connection: a single-record
``POST /predict`` (weight 70), a 50-record batch (15), and ``GET /models``, ``/datasets`` and
``/jobs`` (10 in all). One more client uploads the 2 MB demo CSV (``POST /datasets``, with its
target: validated and profiled), deletes it so the home does not grow, and every third time
round sends a 1,000-row ``POST /predict/file``. The mixed clients use bench/loadgen.py's raw
sockets (pre-encoded requests: an HTTP client library's CPU would be most of the load on two
cores); the uploader, a request every few seconds, uses httpx, which encodes multipart forms.

A 503 whose error code is ``busy`` (a heavy request that waited 10 s for one of
TAXONOMIST_HEAVY_REQUESTS slots) is counted apart; any other non-2xx answer, a dropped
connection or a request unanswered after 30 s is an error. Each second the server process's
RSS (and its child processes': the parse workers, the Dask workers) and open descriptors are
sampled; "start" is the sample after 45 s of the same load (warm-up: the memory climbs, then
levels), "end" the last one under load. Latencies are the client's, successful requests only,
over the whole run.

Exits 1 when a request failed or the server's RSS grew by more than 100 MB from start to end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import random
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api import (
    ADMIN_PASSWORD,
    env_for,
    free_port,
    rss_kb,
    serve_cmd,
    server_pid,
    start,
    stop,
    train_linear,
)
from loadgen import _read_response

from taxonomist.demo import DEMO_TARGET, EXAMPLE_RECORD, demo_data_path

ROOT = Path(__file__).resolve().parents[1]
MODEL = "demo-linear"
# Seconds of the same load before the "start" sample: the service's memory climbs for ~40 s
# (the request threads' arenas, the connection pool, the caches) and then oscillates around a
# level; a window that began earlier would report that climb as growth.
WARMUP = 45.0
TIMEOUT = 30.0  # a request unanswered this long is an error
RSS_GROWTH_LIMIT_MB = 100.0
MIX = {  # relative weights of the mixed clients' requests
    "predict_one": 70.0,
    "predict_batch50": 15.0,
    "list_models": 10 / 3,
    "list_datasets": 10 / 3,
    "list_jobs": 10 / 3,
}
HEAVY = ("upload", "delete_dataset", "predict_file")


@dataclass
class Tally:
    """Every request's outcome, by kind."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    busy: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    first_errors: list[str] = field(default_factory=list)

    def add(self, kind: str, seconds: float, status: int | None, detail: str = "") -> None:
        self.counts[kind] += 1
        if status is not None and 200 <= status < 300:
            self.latencies[kind].append(seconds)
        elif status == 503 and detail.startswith("busy"):
            self.busy[kind] += 1
        else:
            self.errors[kind] += 1
            if len(self.first_errors) < 20:
                self.first_errors.append(f"{kind}: {status or 'no answer'} {detail}"[:500])


def raw_request(method: str, path: str, host: str, headers: dict[str, str], body: Any) -> bytes:
    """One pre-encoded HTTP/1.1 request (keep-alive)."""
    data = b"" if body is None else json.dumps(body).encode()
    head = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    if body is not None:
        head += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + data


async def mixed_client(
    host: str, port: int, requests: dict[str, bytes], seed: int, stop_at: float, tally: Tally
) -> None:
    rng = random.Random(seed)
    kinds = list(requests)
    weights = [MIX[k] for k in kinds]
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < stop_at:
            kind = rng.choices(kinds, weights)[0]
            t = time.perf_counter()
            writer.write(requests[kind])
            try:
                status = await asyncio.wait_for(_read_response(reader), TIMEOUT)
            except (asyncio.IncompleteReadError, ConnectionError, TimeoutError) as exc:
                tally.add(kind, time.perf_counter() - t, None, f"{type(exc).__name__} {exc}")
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                continue
            # A light request takes no heavy slot: a 503 here is an error, never "busy".
            tally.add(kind, time.perf_counter() - t, status)
    finally:
        writer.close()


async def timed(tally: Tally, kind: str, request: Any) -> httpx.Response | None:
    t = time.perf_counter()
    try:
        r = await request
    except httpx.HTTPError as exc:
        tally.add(kind, time.perf_counter() - t, None, f"{type(exc).__name__} {exc}")
        return None
    detail = ""
    if not r.is_success:
        try:
            error = r.json()["error"]
            detail = f"{error['code']}: {error['message']}"
        except (ValueError, KeyError, TypeError):
            detail = r.text[:300]
    tally.add(kind, time.perf_counter() - t, r.status_code, detail)
    return r


async def upload_client(
    base: str, headers: dict[str, str], table: bytes, rows: bytes, stop_at: float, tally: Tally
) -> None:
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=TIMEOUT) as http:
        round_ = 0
        while time.perf_counter() < stop_at:
            r = await timed(
                tally,
                "upload",
                http.post(
                    "/api/v1/datasets",
                    files={"file": ("soak.csv", table, "text/csv")},
                    data={"target": DEMO_TARGET},
                ),
            )
            if r is not None and r.status_code == 201:
                ds = r.json()["dataset"]["id"]
                await timed(tally, "delete_dataset", http.delete(f"/api/v1/datasets/{ds}"))
            if round_ % 3 == 0:
                await timed(
                    tally,
                    "predict_file",
                    http.post(
                        "/api/v1/predict/file",
                        files={"file": ("rows.csv", rows, "text/csv")},
                        data={"model": MODEL},
                    ),
                )
            if r is not None and r.status_code == 503:
                await asyncio.sleep(1)  # busy: it said Retry-After
            round_ += 1


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            out += children
            todo += children
    return out


def folder_files(folder: Path) -> dict[str, int]:
    """The files under ``folder`` and their sizes (files that vanish meanwhile are skipped)."""
    out = {}
    for path in folder.rglob("*"):
        with contextlib.suppress(OSError):
            if path.is_file():
                out[str(path.relative_to(folder))] = path.stat().st_size
    return out


def open_fds(pid: int) -> dict[str, int]:
    """The process's open descriptors by what they are: socket, pipe, anon_inode or a file's
    name (a database, a log): what grows is what leaks."""
    kinds: dict[str, int] = defaultdict(int)
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        kind = target.split(":", 1)[0] if ":[" in target else Path(target).name
        kinds[kind] += 1
    return dict(sorted(kinds.items(), key=lambda kv: -kv[1]))


def snapshot(pid: int, t: float, folders: dict[str, Path] | None = None) -> dict[str, Any]:
    children = descendants(pid)
    child_kb = 0
    for c in children:
        with contextlib.suppress(OSError):  # it ended meanwhile
            child_kb += rss_kb(c)
    out: dict[str, Any] = {
        "t": round(t, 2),
        "rss_mb": rss_kb(pid) / 1024,
        "children_rss_mb": child_kb / 1024,
        "children": len(children),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "fd_kinds": open_fds(pid) if folders else None,
        "threads": rss_kb(pid, "Threads"),  # a /proc/PID/status field like VmRSS
    }
    for name, folder in (folders or {}).items():
        files = folder_files(folder)
        out[f"{name}_mb"], out[f"{name}_files"] = sum(files.values()) / 2**20, len(files)
        if name == "tmp":  # what a leak of temporary files would be
            out["tmp_names"] = sorted(files)[:20]
        else:
            largest = sorted(files.items(), key=lambda kv: -kv[1])[:5]
            out[f"{name}_largest_mb"] = {k: round(v / 2**20, 1) for k, v in largest}
    return out


async def sampler(
    pid: int, folders: dict[str, Path], t0: float, stop_at: float, out: dict[str, Any]
) -> None:
    series = out["series"]
    while True:
        now = time.perf_counter()
        if now >= stop_at:
            break
        full = "start" not in out and now - t0 >= WARMUP
        s = snapshot(pid, now - t0, folders if full else None)
        series.append(s)
        if full:
            out["start"] = s
        await asyncio.sleep(1 - (time.perf_counter() - t0) % 1)
    out["end"] = snapshot(pid, time.perf_counter() - t0, folders)


async def soak(
    base: str,
    headers: dict[str, str],
    pid: int,
    folders: dict[str, Path],
    clients: int,
    duration: float,
) -> tuple[Tally, dict[str, Any], float]:
    import pandas as pd

    host = base.split("://", 1)[1]
    demo = pd.read_csv(demo_data_path())
    features = demo.drop(columns=[DEMO_TARGET])
    batch = json.loads(features.sample(50, random_state=0).to_json(orient="records"))
    posts = {
        "predict_one": {"model": MODEL, "records": EXAMPLE_RECORD},
        "predict_batch50": {"model": MODEL, "records": batch},
    }
    requests = {
        k: raw_request("POST", "/api/v1/predict", host, headers, body) for k, body in posts.items()
    }
    for kind, path in (("models", "models"), ("datasets", "datasets"), ("jobs", "jobs")):
        requests[f"list_{kind}"] = raw_request("GET", f"/api/v1/{path}", host, headers, None)
    table = demo_data_path().read_bytes()
    buf = io.StringIO()
    features.head(1000).to_csv(buf, index=False)
    rows = buf.getvalue().encode()

    tally, memory = Tally(), {"series": []}
    hostname, port = host.split(":")
    t0 = time.perf_counter()
    stop_at = t0 + duration
    await asyncio.gather(
        sampler(pid, folders, t0, stop_at, memory),
        upload_client(base, headers, table, rows, stop_at, tally),
        *[
            mixed_client(hostname, int(port), requests, seed, stop_at, tally)
            for seed in range(clients - 1)
        ],
    )
    return tally, memory, time.perf_counter() - t0


def warm_up(base: str, headers: dict[str, str]) -> None:
    """Model loaded, caches filled, parse workers started and the first upload's one-time
    loads done, so that the run's memory is the load's."""
    with httpx.Client(base_url=base, headers=headers, timeout=120) as http:
        http.post(f"/api/v1/models/{MODEL}/load").raise_for_status()
        for _ in range(50):
            http.post("/api/v1/predict", json={"model": MODEL, "records": EXAMPLE_RECORD})
        with demo_data_path().open("rb") as f:
            r = http.post(
                "/api/v1/datasets", files={"file": ("warm.csv", f)}, data={"target": DEMO_TARGET}
            )
        r.raise_for_status()
        http.delete(f"/api/v1/datasets/{r.json()['dataset']['id']}").raise_for_status()


def server_log(log: Path) -> tuple[list[str], list[str]]:
    """The server log's lines about failed requests (error records, answers >= 500 but the
    start-up's 503s on /ready, text that is not a JSON record) and its warnings."""
    problems, warnings = [], []
    for line in log.read_text(errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            problems.append(line)
            continue
        status, level = rec.get("status"), str(rec.get("level", "")).upper()
        if level in ("ERROR", "CRITICAL") or (
            isinstance(status, int) and status >= 500 and rec.get("path") != "/ready"
        ):
            problems.append(line)
        elif level == "WARNING":
            warnings.append(line)
    return problems, warnings


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values) * 1000, q)) if values else None


def summary(tally: Tally, memory: dict[str, Any], seconds: float, clients: int) -> dict:
    kinds = {}
    for kind in [*MIX, *HEAVY]:
        lat = tally.latencies[kind]
        kinds[kind] = {
            "requests": tally.counts[kind],
            "p50_ms": percentile(lat, 50),
            "p99_ms": percentile(lat, 99),
            "errors": tally.errors[kind],
            "busy": tally.busy[kind],
        }
    start, end = memory.get("start") or memory["series"][0], memory["end"]
    series = [s for s in memory["series"] if s["t"] >= start["t"]]
    slope = None
    if series and series[-1]["t"] - series[0]["t"] >= 20:  # a shorter line is noise
        t = np.array([s["t"] for s in series])
        rss = np.array([s["rss_mb"] for s in series])
        slope = float(np.polyfit(t, rss, 1)[0] * 60)
    total = sum(tally.counts.values())
    return {
        "clients": clients,
        "seconds": seconds,
        "requests": total,
        "rps": total / seconds,
        "errors": sum(tally.errors.values()),
        "busy": sum(tally.busy.values()),
        "first_errors": tally.first_errors,
        "kinds": kinds,
        "start": start,
        "end": end,
        "rss_max_mb": max(s["rss_mb"] for s in [*memory["series"], end]),
        "rss_growth_mb": end["rss_mb"] - start["rss_mb"],
        "rss_slope_mb_per_min": slope,
        "series": memory["series"],
    }


def table(r: dict) -> str:
    def ms(v: float | None) -> str:
        return "" if v is None else f"{v:,.1f}"

    lines = [
        "| request | count | p50 ms | p99 ms | errors | busy (503) |",
        "|---|---|---|---|---|---|",
    ]
    for kind, k in r["kinds"].items():
        lines.append(
            f"| {kind} | {k['requests']:,} | {ms(k['p50_ms'])} | {ms(k['p99_ms'])} | "
            f"{k['errors']} | {k['busy']} |"
        )
    s, e = r["start"], r["end"]
    slope = r["rss_slope_mb_per_min"]
    lines += [
        f"| **all** | {r['requests']:,} | | | {r['errors']} | {r['busy']} |",
        "",
        "| measure | start | end |",
        "|---|---|---|",
        f"| server RSS MB (max {r['rss_max_mb']:.0f}; slope "
        f"{'n/a' if slope is None else f'{slope:+.1f} MB/min'}) | {s['rss_mb']:.0f} | "
        f"{e['rss_mb']:.0f} |",
        f"| child processes' RSS MB (count) | {s['children_rss_mb']:.0f} ({s['children']}) | "
        f"{e['children_rss_mb']:.0f} ({e['children']}) |",
        f"| open file descriptors | {s['fds']} | {e['fds']} |",
        f"| threads | {s['threads']} | {e['threads']} |",
        f"| temp folder MB (files) | {s['tmp_mb']:.1f} ({s['tmp_files']}) | "
        f"{e['tmp_mb']:.1f} ({e['tmp_files']}) |",
        f"| home MB (files) | {s['home_mb']:.1f} ({s['home_files']}) | "
        f"{e['home_mb']:.1f} ({e['home_files']}) |",
        "",
        f"{r['clients']} clients, {r['seconds']:.1f} s: {r['requests']:,} requests, "
        f"{r['rps']:,.1f} requests/s; {r['errors']} errors, {r['busy']} busy.",
    ]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--duration", type=float, default=60, help="seconds of load measured after the warm-up"
    )
    p.add_argument("--clients", type=int, default=32, help="concurrent clients, uploader included")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "soak.json")
    a = p.parse_args()
    if a.clients < 2:
        p.error(f"--clients must be at least 2 (one uploads); got {a.clients}.")
    if a.duration < 20:
        p.error(f"--duration must be at least 20 s; got {a.duration}.")
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    with tempfile.TemporaryDirectory(prefix="taxonomist-bench-soak-") as work:
        home, tmp = Path(work) / "home", Path(work) / "tmp"
        home.mkdir()
        tmp.mkdir()
        model = train_linear(home)
        print(f"model: {model}", flush=True)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc, ready_s = start(
            serve_cmd(port, 1), {**env_for(home), "TMPDIR": str(tmp)}, f"{base}/ready"
        )
        pid = server_pid(proc)
        log = Path(os.readlink(f"/proc/{pid}/fd/2"))  # start() sends stderr to a file
        try:
            token = httpx.post(
                f"{base}/api/v1/auth/login",
                json={"username": "admin", "password": ADMIN_PASSWORD},
            ).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            warm_up(base, headers)
            idle = snapshot(pid, 0.0, {"tmp": tmp, "home": home})
            print(f"ready in {ready_s:.1f} s; idle after warm-up: {idle}", flush=True)
            cpu = os.times()
            tally, memory, seconds = asyncio.run(
                soak(base, headers, pid, {"tmp": tmp, "home": home}, a.clients, WARMUP + a.duration)
            )
            cpu_s = sum(os.times()[:2]) - sum(cpu[:2])
            time.sleep(2)  # the last requests' temporary files go
            after = snapshot(pid, 0.0, {"tmp": tmp, "home": home})
            left = httpx.get(f"{base}/api/v1/datasets", headers=headers).json()
        finally:
            stop(proc)
        result = summary(tally, memory, seconds, a.clients)
        problems, warnings = server_log(log)
    result.update(
        model=model,
        idle_before=idle,
        idle_after=after,
        datasets_left=len(left),
        server_log=str(log),
        client_cpu_s=cpu_s,
        server_problems=problems[:50],
        server_warnings=warnings[:50],
    )
    failures = []
    if result["errors"]:
        failures.append(f"{result['errors']} request(s) failed")
    if result["rss_growth_mb"] > RSS_GROWTH_LIMIT_MB:
        failures.append(
            f"the server's RSS grew by {result['rss_growth_mb']:.0f} MB from start to end "
            f"(limit {RSS_GROWTH_LIMIT_MB:.0f} MB)"
        )
    result["failures"] = failures
    a.out.write_text(json.dumps(result, indent=1))
    print(table(result))
    print(
        f"2 s after: RSS {after['rss_mb']:.0f} MB, {after['fds']} fds, temp folder "
        f"{after['tmp_mb']:.1f} MB ({after['tmp_files']} files: {after['tmp_names']}); "
        f"datasets left: {len(left)}; the load generator's CPU: {cpu_s:.1f} s"
    )
    for line in result["first_errors"]:
        print(f"error: {line}")
    for line in problems[:20]:
        print(f"server log: {line}")
    for line in warnings[:5]:
        print(f"server warning: {line}")
    for label, snap in (("start", result["start"]), ("end", result["end"]), ("after", after)):
        print(f"open fds, {label}: {snap['fd_kinds']}")
    print(f"home, largest files at the end (MB): {after['home_largest_mb']}")
    print(f"figures: {a.out}; server log: {log}")
    if failures:
        print("FAIL: " + "; ".join(failures))
        return 1
    print("OK: no error, RSS growth within the limit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
