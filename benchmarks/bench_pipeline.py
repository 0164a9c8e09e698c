"""The whole embedded default, end to end: prepare → distill → evaluate, with the headline figures.

Runs, on the sample table and the shipped configs:

    distillgraph prepare examples/data/cars.csv --out W/data --config configs/prepare_cars.yaml
    distillgraph distill --config configs/default.yaml data_dir=W/data output_dir=W/distill
    (undistilled student: the same layer copy of the adapted teacher the distill run starts from)
    evaluate_models([teacher_adapted, student_undistilled, distill/student], W/data, "test")

prepare and distill run as subprocesses of ``python -m distillation.cli`` (timed wall clock);
evaluation calls `distillation.evaluation.evaluate_models` (report in ``W/eval``). Checks the
issue's targets: the distilled student keeps >= 97% of the teacher's held-out exact match over
all question types, with <= 40% of its parameters, and is >= 3x faster per answer (p50 latency
at batch 1). CPU-heavy: about 20 minutes on 2 cores.

    python benchmarks/bench_pipeline.py                        # all stages, W=runs/bench_pipeline
    python benchmarks/bench_pipeline.py --reuse                # skip stages whose output exists
    python benchmarks/bench_pipeline.py --distill max_steps=50 # extra distill overrides

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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_OUT = ROOT / "benchmarks" / "results" / "pipeline.json"
TARGETS = {"exact_match_retained_min": 0.97, "param_ratio_max": 0.40, "speedup_p50_min": 3.0}


def run_stage(name: str, argv: list[str]) -> float:
    """Run ``python -m distillation.cli ARGV`` in the repo root; return its wall time."""
    cmd = [sys.executable, "-m", "distillation.cli", *argv]
    print(f"[{name}] {' '.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"[{name}] failed with exit code {proc.returncode}")
    return seconds


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, default=ROOT / "runs" / "bench_pipeline")
    ap.add_argument("--table", type=Path, default=ROOT / "examples" / "data" / "cars.csv")
    ap.add_argument("--prepare-config", type=Path, default=ROOT / "configs" / "prepare_cars.yaml")
    ap.add_argument("--distill-config", type=Path, default=ROOT / "configs" / "default.yaml")
    ap.add_argument("--distill", nargs="*", default=[], help="extra distill key=value overrides")
    ap.add_argument("--reuse", action="store_true", help="skip stages whose output exists")
    ap.add_argument("--max-examples", type=int, default=None, help="evaluate a subset")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument(
        "--max-new-tokens", type=int, default=None, help="default: longest test answer + 8"
    )
    ap.add_argument("--latency-examples", type=int, default=32)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()

    from distillation.evaluation import evaluate_models

    w = args.workdir.resolve()
    data, run, undistilled = w / "data", w / "distill", w / "student_undistilled"
    overrides = [f"data_dir={data}", f"output_dir={run}", *args.distill]
    seconds: dict[str, float | None] = {"prepare": None, "distill": None}
    t_all = time.perf_counter()

    if not (args.reuse and (data / "manifest.json").is_file()):
        seconds["prepare"] = run_stage(
            "prepare",
            ["prepare", str(args.table), "--out", str(data), "--config", str(args.prepare_config)],
        )
    if not (args.reuse and (run / "student" / "config.json").is_file()):
        seconds["distill"] = run_stage(
            "distill", ["distill", "--config", str(args.distill_config), *overrides]
        )
    from distillation.config import load_distill_config
    from distillation.trainer import export_initial_student, trained_teacher_spec

    cfg = load_distill_config(args.distill_config, overrides)
    teacher = trained_teacher_spec(cfg)
    if not (args.reuse and (undistilled / "config.json").is_file()):
        export_initial_student(cfg, teacher, undistilled)

    t0 = time.perf_counter()
    report = evaluate_models(
        [str(teacher), undistilled, run / "student"],
        data,
        "test",
        labels=["teacher", "undistilled", "distilled"],
        baseline="undistilled",
        out_dir=w / "eval",
        max_examples=args.max_examples,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        latency_examples=args.latency_examples,
        device="cpu",
    )
    seconds["evaluate"] = time.perf_counter() - t0

    figures = headline(report)
    d = figures["distilled"]
    checks = {
        "exact_match_retained": {
            "value": d["exact_match_retained"],
            "target": f">= {TARGETS['exact_match_retained_min']}",
            "met": d["exact_match_retained"] is not None
            and d["exact_match_retained"] >= TARGETS["exact_match_retained_min"],
        },
        "param_ratio": {
            "value": d["param_ratio"],
            "target": f"<= {TARGETS['param_ratio_max']}",
            "met": d["param_ratio"] is not None and d["param_ratio"] <= TARGETS["param_ratio_max"],
        },
        "speedup_p50": {
            "value": d["speedup_p50"],
            "target": f">= {TARGETS['speedup_p50_min']}",
            "met": d["speedup_p50"] is not None and d["speedup_p50"] >= TARGETS["speedup_p50_min"],
        },
    }
    result = {
        "benchmark": "pipeline",
        "created_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commands": {
            "prepare": f"distillgraph prepare {args.table} --out {data} "
            f"--config {args.prepare_config}",
            "distill": f"distillgraph distill --config {args.distill_config} "
            + " ".join(overrides),
            "evaluate": f"evaluate_models([{teacher}, {undistilled}, {run / 'student'}], {data})",
        },
        "seconds": {**seconds, "total": time.perf_counter() - t_all},
        "dataset": report["dataset"],
        "environment": {**report["environment"], "machine": platform.machine()},
        "models": figures,
        "targets": checks,
        "all_targets_met": all(c["met"] for c in checks.values()),
        "report": str(w / "eval" / "report.json"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from data_loaders.io import atomic_write_json

    atomic_write_json(args.out, result)
    print(json.dumps({"targets": checks, "seconds": result["seconds"]}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
