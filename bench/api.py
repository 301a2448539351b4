"""Service benchmark: start-up time, single-record /predict under load (against
`mlflow models serve` on the same model, same load generator, same run), a 10,000-record
batch, and the server's memory while a 100 MB CSV is uploaded.

    python bench/api.py                 # everything, writes bench/api.json and the table
    python bench/api.py --duration 20   # a quicker load test

The model is the demo table's linear family (`families=["linear_svm"]`), registered in a
fresh TAXONOMIST_HOME. The load generator (bench/loadgen.py: raw asyncio sockets, 32 keep-
alive connections) runs in its own process on the same two cores as the server.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ADMIN_PASSWORD = "bench-admin-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(cmd: list[str], env: dict[str, str], ready_url: str, timeout: float = 120):
    """Start a server; return (process, seconds until ready_url answered 200)."""
    t0 = time.perf_counter()
    # stderr to a file, not a pipe: a pipe nobody reads fills with the access log (a JSON line
    # per request) and then blocks the server.
    log = Path(tempfile.mkdtemp()) / "server.log"
    with log.open("wb") as err:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True
        )
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"{cmd[0]} exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(ready_url, timeout=1).status_code == 200:
                return proc, time.perf_counter() - t0
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    stop(proc)
    raise SystemExit(f"{cmd} not ready after {timeout}s")


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def env_for(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "TAXONOMIST_HOME": str(home),
        "TAXONOMIST_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "TAXONOMIST_MAX_UPLOAD_MB": "500",
    }


def serve_cmd(port: int, workers: int = 1) -> list[str]:
    return [str(BIN / "taxonomist"), "serve", "--port", str(port), "--workers", str(workers)]


def startup_seconds(repeats: int = 3) -> list[float]:
    out = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as home:
            port = free_port()
            proc, seconds = start(
                serve_cmd(port), env_for(Path(home)), f"http://127.0.0.1:{port}/ready"
            )
            stop(proc)
            out.append(seconds)
    return out


def train_linear(home: Path) -> dict:
    from taxonomist.config import Settings
    from taxonomist.demo import DEMO_TARGET, demo_data_path
    from taxonomist.models.train import train
    from taxonomist.registry import Registry

    settings = Settings(home=home)
    result = train(
        demo_data_path(),
        target=DEMO_TARGET,
        trials=3,
        families=["linear_svm"],
        name="demo-linear",
        settings=settings,
    )
    result.register(Registry(settings))
    return {"version": result.version, "f1_macro": result.metrics["f1_macro"]}


def load(url: str, body: dict, headers: dict[str, str], duration: float, concurrency: int):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(body, f)
    cmd = [
        sys.executable,
        str(ROOT / "bench" / "loadgen.py"),
        url,
        "--body",
        f.name,
        "--duration",
        str(duration),
        "--concurrency",
        str(concurrency),
    ]
    for k, v in headers.items():
        cmd += ["--header", f"{k}: {v}"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def server_pid(proc: subprocess.Popen) -> int:
    return proc.pid  # one worker: uvicorn serves in the process it was started in


def upload_memory(base: str, headers: dict[str, str], proc: subprocess.Popen, folder: Path):
    """Peak server RSS above its idle RSS while a ~100 MB CSV is uploaded and validated."""
    import pandas as pd

    from taxonomist.demo import demo_data_path

    demo = pd.read_csv(demo_data_path())
    path = folder / "big.csv"
    block = demo.to_csv(index=False)
    with path.open("w") as f:
        f.write(block)
        body = block.split("\n", 1)[1]
        while f.tell() < 100 * 1024 * 1024:
            f.write(body)
    size = path.stat().st_size
    # A small upload first: the language identifier and other one-time loads are not the
    # file's memory.
    with demo_data_path().open("rb") as f:
        httpx.post(
            f"{base}/api/v1/datasets", files={"file": ("demo.csv", f)}, headers=headers, timeout=60
        )
    pid = server_pid(proc)
    idle = rss_kb(pid)
    peak = [idle]
    running = [True]

    def sample() -> None:
        while running[0]:
            peak[0] = max(peak[0], rss_kb(pid))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    t0 = time.perf_counter()
    with path.open("rb") as f:
        r = httpx.post(
            f"{base}/api/v1/datasets",
            files={"file": ("big.csv", f)},
            data={"target": "prime_genre"},
            headers=headers,
            timeout=600,
        )
    seconds = time.perf_counter() - t0
    running[0] = False
    sampler.join()
    assert r.status_code == 201, r.text[:500]
    return {
        "file_mb": size / 2**20,
        "rows": r.json()["dataset"]["n_rows"],
        "seconds": seconds,
        "idle_rss_mb": idle / 1024,
        "peak_extra_mb": (peak[0] - idle) / 1024,
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--duration", type=float, default=60, help="seconds of the load test")
    p.add_argument(
        "--latency-duration", type=float, default=15, help="seconds of the one-client test"
    )
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--workers", type=int, default=2, help="server processes for the load test")
    p.add_argument("--skip-mlflow", action="store_true")
    a = p.parse_args()
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    results: dict = {"concurrency": a.concurrency, "duration": a.duration, "workers": a.workers}
    results["startup_s"] = startup_seconds()
    print(f"startup to ready: {results['startup_s']}", flush=True)

    home = Path(tempfile.mkdtemp(prefix="taxonomist-bench-api-"))
    results["model"] = train_linear(home)
    import pandas as pd

    from taxonomist.demo import demo_data_path

    demo = pd.read_csv(demo_data_path()).drop(columns=["prime_genre"])
    record = demo.iloc[0].to_dict()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc, _ = start(serve_cmd(port, 1), env_for(home), f"{base}/ready")
    try:
        token = httpx.post(
            f"{base}/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
        ).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        httpx.post(f"{base}/api/v1/models/demo-linear/load", headers=headers)
        batch = demo.sample(10_000, replace=True, random_state=0).to_dict("records")
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            r = httpx.post(
                f"{base}/api/v1/predict",
                json={"model": "demo-linear", "records": batch},
                headers=headers,
                timeout=60,
            )
            times.append(time.perf_counter() - t0)
            assert r.status_code == 200 and len(r.json()["predictions"]) == 10_000
        results["batch_10k_s"] = times
        print(f"10k batch: median {statistics.median(times):.3f}s", flush=True)
        results["upload_100mb"] = upload_memory(base, headers, proc, home)
        print(f"upload: {results['upload_100mb']}", flush=True)
    finally:
        stop(proc)

    proc, _ = start(serve_cmd(port, a.workers), env_for(home), f"{base}/ready")
    try:
        token = httpx.post(
            f"{base}/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
        ).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        body = {"model": "demo-linear", "records": record}
        for _ in range(200):  # warm every worker: model loaded, caches filled
            assert (
                httpx.post(f"{base}/api/v1/predict", json=body, headers=headers).status_code == 200
            )
        url = f"{base}/api/v1/predict"
        results["taxonomist_one"] = load(url, body, headers, a.latency_duration, 1)
        results["taxonomist"] = load(url, body, headers, a.duration, a.concurrency)
        print(f"taxonomist: {results['taxonomist_one']} {results['taxonomist']}", flush=True)
    finally:
        stop(proc)

    if not a.skip_mlflow:
        mport = free_port()
        env = {
            **env_for(home),
            "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
            "PATH": f"{BIN}:{os.environ.get('PATH', '')}",  # it runs `uvicorn` from PATH
        }
        mproc, _ = start(
            [
                str(BIN / "mlflow"),
                "models",
                "serve",
                "-m",
                "models:/demo-linear/1",
                "--env-manager",
                "local",
                "-p",
                str(mport),
                "-h",
                "127.0.0.1",
                "--workers",
                str(a.workers),
            ],
            env,
            f"http://127.0.0.1:{mport}/ping",
            timeout=180,
        )
        try:
            body = {"dataframe_records": [record]}
            for _ in range(50):
                httpx.post(f"http://127.0.0.1:{mport}/invocations", json=body)
            url = f"http://127.0.0.1:{mport}/invocations"
            results["mlflow_one"] = load(url, body, {}, a.latency_duration, 1)
            results["mlflow"] = load(url, body, {}, a.duration, a.concurrency)
            print(f"mlflow: {results['mlflow_one']} {results['mlflow']}", flush=True)
        finally:
            stop(mproc)
    (ROOT / "bench" / "api.json").write_text(json.dumps(results, indent=1))
    print(table(results))


def table(r: dict) -> str:
    lines = [
        "| measure | Taxonomist | mlflow models serve | ratio |",
        "|---|---|---|---|",
    ]

    def row(label: str, ours: float, theirs: float | None, higher_is_better: bool) -> None:
        ratio = ""
        if theirs:
            ratio = f"{(ours / theirs if higher_is_better else theirs / ours):.1f}x"
        other = "" if theirs is None else f"{theirs:,.1f}"
        lines.append(f"| {label} | {ours:,.1f} | {other} | {ratio} |")

    for key, clients in (("_one", 1), ("", r["concurrency"])):
        t, m = r["taxonomist" + key], r.get("mlflow" + key)
        for stat, label in (("p50_ms", "p50 ms"), ("p99_ms", "p99 ms")):
            row(f"single record, {clients} client(s): {label}", t[stat], m and m[stat], False)
        row(f"single record, {clients} client(s): requests/s", t["rps"], m and m["rps"], True)
        errors = f"{t['errors']} of {t['requests']:,}"
        other = "" if not m else f"{m['errors']} of {m['requests']:,}"
        lines.append(
            f"| errors, {clients} client(s), {t['seconds']:.0f} s | {errors} | {other} | |"
        )
    b, u = r["batch_10k_s"], r["upload_100mb"]
    starts = ", ".join(f"{x:.2f}" for x in r["startup_s"])
    lines += [
        f"| 10,000-record JSON batch, s (median of {len(b)}) | {statistics.median(b):.3f} | | |",
        f"| start-up to ready, empty home, s (runs) | {starts} | | |",
        f"| {u['file_mb']:.0f} MB CSV upload ({u['rows']:,} rows): s / server RSS above idle, "
        f"MB | {u['seconds']:.1f} / {u['peak_extra_mb']:.0f} | | |",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
