"""The distillation recipe's levers side by side: student size, vocabulary trimming, KD vs hard.

Every variant distills from the same (already adapted) teacher, with the same data, seed and
step budget, each as its own ``distillgraph distill`` run (wall time and peak resident memory of
that process are recorded); one ``distillgraph evaluate`` call then scores the teacher and every
student on the test split together (executed-program accuracy per task with 95% intervals,
parameters, per-answer latency and latency at equal new tokens), so the figures compare.

    # after a default run (its adapted teacher is reused):
    distillgraph prepare examples/data/cars.csv --out runs/base/data \
        --config configs/prepare_cars.yaml
    distillgraph distill --config configs/default.yaml data_dir=runs/base/data \
        output_dir=runs/base/distill
    python benchmarks/bench_recipe.py --data runs/base/data \
        --teacher runs/base/distill/teacher_adapted --workdir runs/recipe \
        --variant L10-trim= --variant L10-trim-hard=kd_ratio=0 \
        --variant L7-trim=student_layers=7 --variant L13-trim=student_layers=13 \
        --student L10-full=runs/base/distill/student

A variant is ``NAME=override,override`` (distill ``key=value`` overrides on top of
configs/default.yaml); ``--student NAME=DIR`` adds a student trained elsewhere. Writes
benchmarks/results/recipe.json (or --out) and prints the Pareto table the README quotes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "recipe.json"


def run_measured(cmd: list[str], log: Path) -> dict:
    """Run ``cmd`` (output to ``log``); its wall seconds, exit code and peak RSS (its own)."""
    t0 = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
    rc = os.waitstatus_to_exitcode(status)
    if rc != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({rc}); see {log}")
    return {"seconds": time.perf_counter() - t0, "peak_rss_bytes": usage.ru_maxrss * 1024}


def distill_variant(name: str, overrides: list[str], args) -> dict:
    out = args.workdir / name
    cmd = [sys.executable, "-m", "app.cli", "distill", "--config",
           str(ROOT / "configs" / "default.yaml"), f"data_dir={args.data}",
           f"output_dir={out}", f"teacher_model_name={args.teacher}",
           "teacher_adaptation.enabled=false", *overrides]
    if not any(o.startswith("cache.dir=") for o in overrides):
        # variants with the same vocabulary share one teacher cache (its fingerprint checks it)
        trimmed = not any(o.replace(" ", "") == "trim_vocab=false" for o in overrides)
        cmd.append(f"cache.dir={args.workdir / ('cache_trim' if trimmed else 'cache_full')}")
    if (out / "student" / "config.json").is_file() and args.reuse:
        meta = json.loads((out / "variant.json").read_text())
        return meta
    args.workdir.mkdir(parents=True, exist_ok=True)
    measured = run_measured(cmd, args.workdir / f"{name}.log")
    history = [json.loads(x) for x in (out / "training_history.jsonl").read_text().splitlines()]
    train_rows = [r for r in history if r["event"] == "train"]
    evals = [r for r in history if r["event"] == "eval"]
    meta = {"name": name, "overrides": overrides, "command": cmd, **measured,
            "train_seconds": train_rows[-1]["elapsed"] if train_rows else None,
            "steps": len(train_rows), "val_exact_match": evals[-1]["val_exact_match"]
            if evals else None, "student": str(out / "student")}
    (out / "variant.json").write_text(json.dumps(meta, indent=1))
    return meta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--teacher", type=Path, required=True, help="the adapted teacher directory")
    ap.add_argument("--workdir", type=Path, default=ROOT / "runs" / "recipe")
    ap.add_argument("--variant", action="append", default=[], help="NAME=override,override")
    ap.add_argument("--student", action="append", default=[], help="NAME=DIR trained elsewhere")
    ap.add_argument("--reuse", action="store_true", help="keep variants already distilled")
    ap.add_argument("--eval-args", default="", help="extra `distillgraph evaluate` options")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()

    variants = []
    for spec in args.variant:
        name, _, rest = spec.partition("=")
        variants.append(distill_variant(name, [o for o in rest.split(",") if o], args))
    for spec in args.student:
        name, _, path = spec.partition("=")
        variants.append({"name": name, "student": path, "overrides": ["trained elsewhere"]})

    eval_dir = args.workdir / "eval"
    cmd = [sys.executable, "-m", "app.cli", "evaluate", "--model", str(args.teacher),
           "--label", "teacher", "--data", str(args.data), "--out", str(eval_dir),
           "--no-model-card", "--no-progress"]
    for v in variants:
        cmd += ["--model", v["student"], "--label", v["name"]]
    cmd += shlex.split(args.eval_args)
    run_measured(cmd, args.workdir / "evaluate.log")
    report = json.loads((eval_dir / "report.json").read_text())
    by_label = {m["label"]: m for m in report["models"]}
    teacher = by_label["teacher"]
    t_acc = teacher["accuracy"]["overall"]["accuracy"]["value"]
    rows = []
    for v in [{"name": "teacher"}, *variants]:
        m = by_label[v["name"]]
        acc = m["accuracy"]
        by_task = {t: s["accuracy"]["value"] for t, s in acc["by_task"].items()}
        rows.append({
            **v,
            "accuracy": acc["overall"]["accuracy"]["value"],
            "accuracy_ci95": acc["overall"]["accuracy"]["ci95"],
            "accuracy_by_task": by_task,
            "retained": acc["overall"]["accuracy"]["value"] / t_acc if t_acc else None,
            "retained_by_task": {t: (a / teacher["accuracy"]["by_task"][t]["accuracy"]["value"]
                                     if teacher["accuracy"]["by_task"][t]["accuracy"]["value"]
                                     else None) for t, a in by_task.items()},
            "program_exact_match": (acc.get("program") or {}).get("exact_match"),
            "params": m["cost"]["params"],
            "param_ratio": m["vs_reference"]["param_ratio"],
            "latency_ms_p50": m["cost"]["latency_ms"]["p50"],
            "speedup_p50": m["vs_reference"]["speedup_p50"],
            "speedup_equal_tokens_p50": m["vs_reference"].get("speedup_equal_tokens_p50"),
        })
    result = {
        "benchmark": "recipe",
        "created_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "data": str(args.data), "teacher": str(args.teacher),
        "n_test": report["dataset"]["n_examples"],
        "environment": report["environment"],
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(args.out)
    print(pareto_table(rows))
    print(f"wrote {args.out}")


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.0%}"


def pareto_table(rows: list[dict]) -> str:
    """The README's table: one line per model."""
    head = ("| model | params (of teacher) | accuracy (95% CI) | retained | qa / validate / "
            "summarize | speedup, per answer / equal tokens | distill min | peak RSS |")
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        ci = r["accuracy_ci95"] or [None, None]
        t = r["accuracy_by_task"]
        mins = f"{r['seconds'] / 60:.1f}" if r.get("seconds") else "—"
        rss = f"{r['peak_rss_bytes'] / 2**30:.1f} GB" if r.get("peak_rss_bytes") else "—"
        speed = " / ".join("—" if x is None else f"{x:.2f}×"
                           for x in (r["speedup_p50"], r["speedup_equal_tokens_p50"]))
        lines.append(
            f"| {r['name']} | {r['params'] / 1e6:.1f}M ({_pct(r['param_ratio'])}) | "
            f"{r['accuracy']:.1%} ({_pct(ci[0])}–{_pct(ci[1])}) | {_pct(r['retained'])} | "
            + " / ".join(_pct(t.get(k)) for k in ("qa", "validate", "summarize"))
            + f" | {speed} | {mins} | {rss} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
