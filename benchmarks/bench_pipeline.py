"""The embedded default end to end (prepare → distill → evaluate → graph), as the demo runs it.

Runs ``examples/complete_pipeline.py --fresh --workdir W`` (the README's demo: the sample table,
``configs/prepare_cars.yaml`` and ``configs/default.yaml``) as a subprocess, then reads what it
wrote (``W/pipeline.json``: stage and total wall times, router accuracy; ``W/eval/report.json``:
every evaluation figure) and checks the targets of the evaluation and graph issues: the
distilled student keeps >= 97% of the teacher's held-out exact match over all question types,
with <= 40% of its parameters, is >= 3x faster per answer (p50 latency at batch 1), and routes
>= 98% of the test split's questions to their task with its own label scores; and the demo
finishes in under 20 minutes. CPU-heavy: about 20 minutes on 2 cores.

    python benchmarks/bench_pipeline.py                 # W=runs/bench_pipeline, from scratch
    python benchmarks/bench_pipeline.py --reuse         # reuse finished stages in W
    python benchmarks/bench_pipeline.py --quick         # the demo's --quick (not representative)
    python benchmarks/bench_pipeline.py --collect --workdir runs/demo   # a demo run already done

Writes benchmarks/results/pipeline.json (or --out).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_OUT = ROOT / "benchmarks" / "results" / "pipeline.json"
TARGETS = {
    "exact_match_retained_min": 0.97,
    "param_ratio_max": 0.40,
    "speedup_p50_min": 3.0,
    "router_accuracy_min": 0.98,
    "demo_minutes_max": 20.0,
}


def headline(report: dict) -> dict:
    """Per-model figures that the targets and the README quote."""
    rows = {}
    for m in report["models"]:
        ov, c, vs = m["accuracy"]["overall"], m["cost"], m["vs_reference"]
        rows[m["label"]] = {
            "role": m["role"],
            "accuracy": ov["accuracy"]["value"],
            "accuracy_ci95": ov["accuracy"]["ci95"],
            "exact_match": ov["exact_match"]["value"],
            "exact_match_ci95": ov["exact_match"]["ci95"],
            "accuracy_by_task": {
                t: s["accuracy"]["value"] for t, s in m["accuracy"]["by_task"].items()
            },
            "exact_match_by_qtype": {
                q: s["exact_match"]["value"] for q, s in m["accuracy"]["by_qtype"].items()
            },
            "params": c["params"],
            "size_bytes": c["size_bytes"],
            "peak_memory_bytes": c["peak_memory_bytes"],
            "latency_ms_p50": c["latency_ms"]["p50"],
            "latency_ms_p95": c["latency_ms"]["p95"],
            "ttft_ms_p50": c["ttft_ms"]["p50"],
            "answers_per_s_batched": c["answers_per_s"],
            "speedup_p50": vs["speedup_p50"],
            "param_ratio": vs["param_ratio"],
            "exact_match_retained": vs["exact_match_retained"],
            "accuracy_retained": vs["accuracy_retained"],
            "gap_closed": (m["gap_closed"] or {}).get("accuracy"),
        }
    return rows


def check(value: float | None, op: str, target: float) -> dict:
    met = value is not None and (value >= target if op == ">=" else value <= target)
    return {"value": value, "target": f"{op} {target}", "met": met}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, default=ROOT / "runs" / "bench_pipeline")
    ap.add_argument("--reuse", action="store_true", help="reuse finished stages (no --fresh)")
    ap.add_argument("--quick", action="store_true", help="the demo's --quick")
    ap.add_argument(
        "--collect", action="store_true",
        help="do not run: read the figures of a demo already run in --workdir",
    )
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()

    w = args.workdir.resolve()
    cmd = [sys.executable, str(ROOT / "examples" / "complete_pipeline.py"), "--workdir", str(w)]
    cmd += [] if args.reuse else ["--fresh"]
    cmd += ["--quick"] if args.quick else []
    if not args.collect:
        print(" ".join(cmd), flush=True)
        proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        if proc.returncode != 0:
            sys.exit(f"the demo failed with exit code {proc.returncode}")

    pipeline = json.loads((w / "pipeline.json").read_text(encoding="utf-8"))
    seconds = pipeline["seconds"]
    # Demo time counts only a run that did every stage (nothing reused).
    complete = all(seconds.get(k) is not None for k in ("prepare", "distill", "total"))
    wall = seconds.get("total") if complete else None
    report = json.loads(Path(pipeline["report"]).read_text(encoding="utf-8"))
    figures = headline(report)
    d = figures["distilled"]
    routing = pipeline.get("routing") or {}
    checks = {
        "exact_match_retained": check(
            d["exact_match_retained"], ">=", TARGETS["exact_match_retained_min"]
        ),
        "param_ratio": check(d["param_ratio"], "<=", TARGETS["param_ratio_max"]),
        "speedup_p50": check(d["speedup_p50"], ">=", TARGETS["speedup_p50_min"]),
        "router_accuracy_student": check(
            routing.get("student_scores"), ">=", TARGETS["router_accuracy_min"]
        ),
        "demo_minutes": check(
            None if wall is None else wall / 60, "<=", TARGETS["demo_minutes_max"]
        ),
    }
    result = {
        "benchmark": "pipeline",
        "created_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(cmd),
        "quick": pipeline["quick"],
        "seconds": seconds,
        "dataset": report["dataset"],
        "environment": {**report["environment"], "machine": platform.machine()},
        "models": figures,
        "routing": routing,
        "targets": checks,
        "all_targets_met": all(c["met"] for c in checks.values()),
        "report": pipeline["report"],
    }
    from data_loaders.io import atomic_write_json

    atomic_write_json(args.out, result)
    print(json.dumps({"targets": checks, "seconds": result["seconds"]}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
