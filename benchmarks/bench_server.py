"""`distillgraph serve` under load: 16 concurrent clients, throughput and p50/p95 latency.

Starts ``distillgraph serve`` in a child process on a free loopback port (the demo's student
when ``make demo`` trained it, else a tiny random model built here; ``--model`` picks another,
e.g. ``embedded`` for the SmolLM2-135M teacher), waits for ``/health``, then sends ``--requests``
requests from ``--clients`` concurrent clients in three phases:

- ``agent``: the agent graph (``distillgraph-agent``), each client its own conversation thread,
  questions over the cars table (lookups, claims, summaries of different cars);
- ``student``: the raw student (``distillgraph-student``), ``max_tokens`` = ``--max-tokens``;
- ``student_stream``: the same, streamed; adds the time to the first content chunk.

Each phase is preceded by one unmeasured warm-up request. Figures per phase: requests per
second over the phase's wall time, p50/p95/mean latency, errors.

    python benchmarks/bench_server.py                      # demo student, else tiny
    python benchmarks/bench_server.py --model embedded --requests 32

Writes benchmarks/results/server.json (or --out), keyed by model label; other labels are kept.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data_loaders.io import atomic_write_text  # noqa: E402
from graphs.config import DEFAULT_STUDENT_DIR  # noqa: E402

DEFAULT_OUT = ROOT / "benchmarks" / "results" / "server.json"
CARS = ROOT / "examples" / "data" / "cars.csv"
CARS_CONFIG = ROOT / "configs" / "prepare_cars.yaml"
CAR_NAMES = [
    "ford pinto", "chevrolet chevelle malibu", "buick skylark 320", "plymouth satellite",
    "amc rebel sst", "ford torino", "toyota corolla 1200", "datsun 510", "honda civic",
    "volkswagen rabbit", "mazda rx-4", "audi 100ls", "peugeot 504", "saab 99e", "bmw 2002",
    "dodge challenger se",
]
TEMPLATES = [
    "What is the weight of {car}?",
    "How many cylinders does the {car} have?",
    "Is it true that {car} has 8 cylinders?",
    "Tell me about the {car}.",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pick_model(arg: str | None, tmp: Path) -> tuple[str, str]:
    """(model path or name, label) — the demo student, else a tiny random model."""
    if arg:
        return arg, Path(arg).name if arg != "embedded" else "embedded SmolLM2-135M-Instruct"
    if (ROOT / DEFAULT_STUDENT_DIR / "config.json").is_file():
        return str(ROOT / DEFAULT_STUDENT_DIR), "demo student"
    from distillation.tiny import build_tiny_model_dir

    return str(build_tiny_model_dir(tmp / "tiny", seed=0)), "tiny random model (no demo student)"


def start_server(model: str, port: int, args: argparse.Namespace) -> subprocess.Popen:
    cmd = [
        sys.executable, "-m", "app.cli", "serve", "--model", model, "--data", str(CARS),
        "--table-config", str(CARS_CONFIG), "--memory", "memory", "--port", str(port),
        "--max-concurrency", str(args.max_concurrency),
        "--set", f"student.max_new_tokens={args.max_tokens}",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DISTILLGRAPH_API_KEYS", None)
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def wait_healthy(proc: subprocess.Popen, base: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited early:\n{proc.stderr.read()}")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the server did not answer /health within {timeout:.0f} s")


def body_for(phase: str, i: int, args: argparse.Namespace) -> dict[str, Any]:
    car = CAR_NAMES[i % len(CAR_NAMES)]
    text = TEMPLATES[(i // len(CAR_NAMES)) % len(TEMPLATES)].format(car=car)
    if phase == "agent":
        return {"model": "distillgraph-agent", "messages": [{"role": "user", "content": text}],
                "thread_id": f"bench-{i % args.clients}"}
    return {"model": "distillgraph-student", "messages": [{"role": "user", "content": text}],
            "max_tokens": args.max_tokens, "temperature": 0,
            "stream": phase == "student_stream"}


async def one(http: httpx.AsyncClient, body: dict[str, Any]) -> tuple[float, float | None, bool]:
    """(latency s, time to first content s or None, ok) of one request."""
    t0 = time.perf_counter()
    if not body.get("stream"):
        r = await http.post("/v1/chat/completions", json=body)
        return time.perf_counter() - t0, None, r.status_code == 200
    first, ok = None, False
    async with http.stream("POST", "/v1/chat/completions", json=body) as r:
        async for line in r.aiter_lines():
            if line == "data: [DONE]":
                ok = r.status_code == 200
            elif first is None and line.startswith("data: ") and '"content": "' in line:
                if '"content": ""' not in line:
                    first = time.perf_counter() - t0
    return time.perf_counter() - t0, first, ok


async def run_phase(base: str, phase: str, args: argparse.Namespace) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    async with httpx.AsyncClient(base_url=base, timeout=600, limits=limits) as http:
        await one(http, body_for(phase, 0, args))  # warm-up: probes, caches
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(args.requests):
            queue.put_nowait(i)
        results: list[tuple[float, float | None, bool]] = []
        bar = tqdm(total=args.requests, desc=phase, unit="req", leave=False)

        async def client() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                results.append(await one(http, body_for(phase, i, args)))
                bar.update()

        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(args.clients)))
        wall = time.perf_counter() - t0
        bar.close()
    lat = np.array([r[0] for r in results if r[2]])
    out: dict[str, Any] = {
        "requests": len(results),
        "errors": sum(not r[2] for r in results),
        "wall_s": round(wall, 3),
        "throughput_rps": round(len(lat) / wall, 3),
        "latency_p50_s": round(float(np.percentile(lat, 50)), 3) if len(lat) else None,
        "latency_p95_s": round(float(np.percentile(lat, 95)), 3) if len(lat) else None,
        "latency_mean_s": round(float(lat.mean()), 3) if len(lat) else None,
    }
    firsts = np.array([r[1] for r in results if r[2] and r[1] is not None])
    if phase == "student_stream":
        out["first_content_p50_s"] = round(float(np.percentile(firsts, 50)), 3) if len(
            firsts) else None
        out["first_content_p95_s"] = round(float(np.percentile(firsts, 95)), 3) if len(
            firsts) else None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="model dir or 'embedded' (default: demo student, else tiny)")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=64, help="requests per phase")
    ap.add_argument("--max-tokens", type=int, default=16, help="tokens per student reply")
    ap.add_argument("--max-concurrency", type=int, default=4, help="server's model slots")
    ap.add_argument("--phases", default="agent,student,student_stream")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        model, label = pick_model(args.model, Path(tmp))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        t0 = time.perf_counter()
        proc = start_server(model, port, args)
        try:
            wait_healthy(proc, base)
            startup = time.perf_counter() - t0
            phases = {}
            for phase in args.phases.split(","):
                phases[phase] = asyncio.run(run_phase(base, phase, args))
                print(f"{phase}: {json.dumps(phases[phase])}", file=sys.stderr)
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()

    record = {
        "model": label,
        "model_path": model if args.model else None,
        "clients": args.clients,
        "requests_per_phase": args.requests,
        "max_tokens": args.max_tokens,
        "server_max_concurrency": args.max_concurrency,
        "startup_s": round(startup, 2),
        "phases": phases,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version()},
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python benchmarks/bench_server.py " + " ".join(sys.argv[1:]),
    }
    old = json.loads(args.out.read_text()) if args.out.is_file() else {}
    old[label] = record
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(old, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
