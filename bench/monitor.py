"""What the prediction log costs: single-record /predict latency and 32-client throughput of
`taxonomist serve` with the log on and off (TAXONOMIST_PREDICTION_LOG), in the same run.

    python bench/monitor.py                 # 3 rounds of 15 s per setting
    python bench/monitor.py --duration 5    # quicker

The model is the demo table's linear family, registered in a fresh TAXONOMIST_HOME; the two
settings take turns (on, off, on, off, ...) so that the machine's drift hits both alike, and
each figure is the median over the rounds. Single-record latency is measured one request at a
time from this process (1 connection, keep-alive); throughput by bench/loadgen.py (32
keep-alive connections, its own process, on the same two cores as the server).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api import ADMIN_PASSWORD, env_for, free_port, load, serve_cmd, start, stop, train_linear

from taxonomist.demo import EXAMPLE_RECORD as RECORD


def one_round(home: Path, log: bool, duration: float) -> dict[str, float]:
    port = free_port()
    env = {**env_for(home), "TAXONOMIST_PREDICTION_LOG": "on" if log else "off"}
    proc, _ = start(serve_cmd(port), env, f"http://127.0.0.1:{port}/ready")
    try:
        base = f"http://127.0.0.1:{port}"
        token = httpx.post(
            f"{base}/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        body = {"model": "demo-linear", "records": RECORD}
        with httpx.Client(base_url=base, headers=headers) as http:
            for _ in range(50):  # warm-up: model loaded, caches filled
                http.post("/api/v1/predict", json=body).raise_for_status()
            times = []
            deadline = time.perf_counter() + duration
            while time.perf_counter() < deadline:
                t = time.perf_counter()
                http.post("/api/v1/predict", json=body).raise_for_status()
                times.append((time.perf_counter() - t) * 1000)
        loaded = load(f"{base}/api/v1/predict", body, headers, duration, 32)
        assert loaded["errors"] == 0, loaded["first_errors"]
        logged = None
        if log:
            page = httpx.get(
                f"{base}/api/v1/monitor/demo-linear/predictions",
                params={"limit": 1},
                headers=headers,
            ).json()
            logged = page["data"][0]["id"]
        return {
            "p50_ms": statistics.median(times),
            "p99_ms": sorted(times)[int(0.99 * (len(times) - 1))],
            "rps": loaded["rps"],
            "rps_p50_ms": loaded["p50_ms"],
            "logged_rows": logged or 0,
        }
    finally:
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        train_linear(home)
        runs: dict[bool, list[dict[str, float]]] = {True: [], False: []}
        for i in range(args.rounds):
            for log in (True, False):
                r = one_round(home, log, args.duration)
                runs[log].append(r)
                print(f"round {i + 1} log {'on ' if log else 'off'}: {json.dumps(r)}", flush=True)
    med = {log: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for log, rs in runs.items()}
    on, off = med[True], med[False]
    print(
        "\n| log | single record p50 ms | p99 ms | 32 clients req/s | their p50 ms |\n"
        "|---|---|---|---|---|\n"
        f"| on | {on['p50_ms']:.2f} | {on['p99_ms']:.2f} | {on['rps']:,.0f} | "
        f"{on['rps_p50_ms']:.1f} |\n"
        f"| off | {off['p50_ms']:.2f} | {off['p99_ms']:.2f} | {off['rps']:,.0f} | "
        f"{off['rps_p50_ms']:.1f} |\n"
        f"\nadded p50: {on['p50_ms'] - off['p50_ms']:+.2f} ms (target <= 1 ms); throughput "
        f"{on['rps'] / off['rps'] - 1:+.1%} (target >= -5 %)"
    )


if __name__ == "__main__":
    main()
