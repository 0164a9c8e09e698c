"""The end-to-end demo: table → QA dataset → adapted teacher → distilled student → report → agent.

    python examples/complete_pipeline.py            # the embedded default, 2 CPU cores
    python examples/complete_pipeline.py --quick    # short run; accuracy not representative
    python examples/complete_pipeline.py --fresh    # start over, reusing nothing

Every stage writes its output under ``--workdir`` (default ``runs/demo``) and is reused on the next
run, so any stage can also be rerun alone with the CLI command printed in its header:

    data/                 distillgraph prepare   (train/val/test.jsonl, manifest.json)
    distill/              distillgraph distill   (teacher_adapted/, teacher_cache/, student/,
                                                  training_history.jsonl, checkpoints/)
    student_undistilled/  the student as initialised, before training (for "gap closed")
    eval/                 distillgraph evaluate  (report.json, report.md, *.png)
    pipeline.json         what this script did: stage times, the headline figures

Python API used: `data_loaders.dataset.prepare`, `distillation.trainer.run_distillation`,
`distillation.evaluation.evaluate_models`, `graphs.build_graph`.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table as RichTable  # noqa: E402

console = Console()

# --quick: fewer pairs and steps so the whole demo runs in under 5 minutes on 2 CPU cores.
QUICK_PREPARE = ["max_pairs=120"]
QUICK_DISTILL = [
    "teacher_adaptation.max_steps=3",
    "teacher_adaptation.eval_every=3",
    "teacher_adaptation.eval_samples=8",
    "max_steps=12",
    "eval_every=12",
    "eval_samples=8",
    "save_every=12",
]
QUICK_EVAL_EXAMPLES = 12
QUICK_LATENCY_EXAMPLES = 4

DEMO_QUERIES = [
    "What is the horsepower of ford pinto?",
    "Which car has the higher fuel economy, honda civic or ford maverick?",
    "How many cars have origin Japan?",
    "Summarize chevrolet chevelle malibu.",
    "Is it true that toyota corona has 4 cylinders?",
    "Is it true that amc hornet has a weight of 1000 lbs?",
]


def header(n: int, title: str, command: str) -> None:
    """Print a visible stage header with the CLI command that reruns the stage alone."""
    console.rule(f"[bold]{n}. {title}")
    console.print(f"[dim]rerun alone: {command}[/dim]")


def stage_prepare(args, data: Path) -> float | None:
    """Build the QA dataset from the sample table, unless it is already there."""
    from data_loaders.config import PrepareConfig
    from data_loaders.config_loader import load_config
    from data_loaders.dataset import prepare

    overrides = QUICK_PREPARE if args.quick else []
    header(
        1,
        "Load the sample table and build the QA dataset",
        f"distillgraph prepare {args.table} --out {data} --config {args.prepare_config} "
        + " ".join(overrides),
    )
    if (data / "manifest.json").is_file():
        console.print(f"reusing {data} (use --fresh to rebuild)")
        return None
    t0 = time.perf_counter()
    cfg = load_config(PrepareConfig, args.prepare_config, overrides)
    ds, out = prepare([args.table], cfg, data, progress=True)
    console.print(
        f"{sum(len(p) for p in ds.splits.values())} pairs "
        + ", ".join(f"{k}={len(v)}" for k, v in ds.splits.items())
        + f" → {out}"
    )
    return time.perf_counter() - t0


def distill_overrides(args, data: Path, run: Path) -> list[str]:
    """The distill config overrides this demo applies on top of ``configs/default.yaml``."""
    return [f"data_dir={data}", f"output_dir={run}", *(QUICK_DISTILL if args.quick else [])]


def stage_distill(args, data: Path, run: Path) -> float | None:
    """Adapt the teacher, cache its soft targets, distill and export the student."""
    from distillation.config import load_distill_config
    from distillation.trainer import STUDENT_DIR, run_distillation

    overrides = distill_overrides(args, data, run)
    header(
        2,
        "Adapt the teacher, then distill the student (teacher soft-target cache)",
        f"distillgraph distill --config {args.distill_config} " + " ".join(overrides),
    )
    if (run / STUDENT_DIR / "config.json").is_file():
        console.print(f"reusing {run / STUDENT_DIR} (use --fresh to retrain)")
        return None
    t0 = time.perf_counter()
    cfg = load_distill_config(args.distill_config, overrides)
    resume = (run / "checkpoints" / "last").is_dir()
    result = run_distillation(cfg, resume=resume, progress=True)
    console.print(f"student after {result.steps} steps ({result.exported}) → {result.student_dir}")
    return time.perf_counter() - t0


def stage_evaluate(args, data: Path, run: Path, undistilled: Path, eval_dir: Path) -> dict:
    """Evaluate teacher, undistilled student and distilled student side by side."""
    from distillation.config import load_distill_config
    from distillation.evaluation import evaluate_models
    from distillation.trainer import (
        ADAPTED_TEACHER,
        STUDENT_DIR,
        export_initial_student,
        trained_teacher_spec,
    )

    header(
        3,
        "Evaluate teacher, undistilled student and distilled student",
        f"distillgraph evaluate --model {run / ADAPTED_TEACHER} --model {undistilled} "
        f"--model {run / STUDENT_DIR} --label teacher --label undistilled --label distilled "
        f"--baseline undistilled --data {data} --out {eval_dir}",
    )
    cfg = load_distill_config(args.distill_config, distill_overrides(args, data, run))
    teacher_spec = trained_teacher_spec(cfg)
    if not (undistilled / "config.json").is_file():
        export_initial_student(cfg, teacher_spec, undistilled)
    quick = {"latency_examples": QUICK_LATENCY_EXAMPLES} if args.quick else {}
    return evaluate_models(
        [teacher_spec, undistilled, run / STUDENT_DIR],
        data,
        "test",
        labels=["teacher", "undistilled", "distilled"],
        baseline="undistilled",
        out_dir=eval_dir,
        max_examples=QUICK_EVAL_EXAMPLES if args.quick else args.max_examples,
        device="cpu",
        **quick,  # otherwise evaluate_models' own default
    )


def print_headline(report: dict) -> None:
    """The headline table: the same figures as report.json."""
    t = RichTable(title="Teacher vs student (held-out test split)")
    for col in (
        "model",
        "accuracy",
        "qa",
        "summarize",
        "validate",
        "params",
        "MB",
        "p50 ms",
        "speedup",
        "gap closed",
    ):
        t.add_column(col, justify="right" if col != "model" else "left")
    for m in report["models"]:
        acc, cost, vs = m["accuracy"], m["cost"], m["vs_reference"]
        by_task = {k: v["accuracy"]["value"] for k, v in acc["by_task"].items()}
        gap = (m.get("gap_closed") or {}).get("accuracy")
        t.add_row(
            m["label"],
            f"{acc['overall']['accuracy']['value']:.1%}",
            *(
                f"{by_task[k]:.1%}" if k in by_task else "-"
                for k in ("qa", "summarize", "validate")
            ),
            f"{cost['params'] / 1e6:.1f}M",
            f"{cost['size_bytes'] / 2**20:.0f}",
            f"{cost['latency_ms']['p50']:.0f}",
            f"{vs['speedup_p50']:.2f}x" if vs.get("speedup_p50") else "-",
            f"{gap:.0%}" if gap is not None else "-",
        )
    console.print(t)


def router_accuracy_on(graph, test_file: Path) -> dict:
    """Router accuracy on the test split's questions: the student's own label scores, and the
    graph's router as configured (scores when the student passes its probes, else the rules)."""
    from distillation.data import read_split
    from graphs.nodes import router_accuracy
    from graphs.prompts import ROUTER_LABELS

    pairs = read_split(test_file)
    router = graph.distillgraph_router

    def by_student(query: str) -> str:
        label = router.model_label(query)
        return ROUTER_LABELS[label] if label else "none"

    return {
        "n": len(pairs),
        "student_scores": router_accuracy(by_student, pairs),
        "graph_router": router_accuracy(graph, pairs),
        "graph_router_uses": "student scores" if router.trusted() else "keyword rules",
    }


def stage_graph(args, run: Path, memory: Path, data: Path) -> dict:
    """Answer a handful of queries of each kind with the agent graph on the distilled student."""
    from distillation.trainer import STUDENT_DIR
    from graphs import build_graph

    header(
        4,
        "Agent graph on the distilled student",
        f'distillgraph ask "How many cars have origin Japan?" --model {run / STUDENT_DIR}',
    )
    graph = build_graph(
        model=run / STUDENT_DIR,
        tables=[args.table],
        config=ROOT / "configs" / "graph.yaml",
        checkpointer=memory,
    )
    rows = []
    t = RichTable(title="Queries")
    for col in ("query", "route", "answer", "verdict", "answered by", "ms"):
        t.add_column(col, overflow="fold")
    for i, q in enumerate(DEMO_QUERIES):
        t0 = time.perf_counter()
        state = graph.invoke(
            {"messages": [("user", q)]}, config={"configurable": {"thread_id": f"demo-{i}"}}
        )
        ms = (time.perf_counter() - t0) * 1000
        verdict = state.get("verdict") or {}
        row = {
            "query": q,
            "route": state.get("task"),
            "answer": state.get("answer"),
            "verdict": ("supported" if verdict.get("supported") else "not supported")
            if verdict
            else None,
            "answered_by": state.get("answered_by"),
            "ms": round(ms),
        }
        rows.append(row)
        t.add_row(
            q,
            str(row["route"]),
            str(row["answer"]),
            str(row["verdict"]),
            str(row["answered_by"]),
            f"{ms:.0f}",
        )
    console.print(t)
    routing = router_accuracy_on(graph, data / "test.jsonl")
    console.print(
        f"router accuracy on the {routing['n']} test questions: student's label scores "
        f"{routing['student_scores']:.1%}; the graph's router ({routing['graph_router_uses']}) "
        f"{routing['graph_router']:.1%}"
    )
    return {"queries": rows, "routing": routing}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short run; accuracy not representative")
    ap.add_argument("--fresh", action="store_true", help="delete --workdir and start over")
    ap.add_argument("--workdir", type=Path, default=ROOT / "runs" / "demo")
    ap.add_argument("--table", type=Path, default=ROOT / "examples" / "data" / "cars.csv")
    ap.add_argument("--prepare-config", type=Path, default=ROOT / "configs" / "prepare_cars.yaml")
    ap.add_argument("--distill-config", type=Path, default=ROOT / "configs" / "default.yaml")
    ap.add_argument("--max-examples", type=int, default=None, help="evaluate a test subset")
    ap.add_argument("--skip-graph", action="store_true", help="stop after the evaluation")
    args = ap.parse_args(argv)

    from data_loaders.errors import InputError
    from data_loaders.io import atomic_write_json

    w = args.workdir.resolve()
    if args.fresh and w.exists():
        shutil.rmtree(w)
    data, run, undistilled, eval_dir = (
        w / "data",
        w / "distill",
        w / "student_undistilled",
        w / "eval",
    )
    if args.quick:
        console.print("[yellow]--quick: few pairs and steps; accuracy is not representative.")
    seconds: dict[str, float | None] = {}
    t_start = time.perf_counter()
    try:
        seconds["prepare"] = stage_prepare(args, data)
        seconds["distill"] = stage_distill(args, data, run)
        t0 = time.perf_counter()
        report = stage_evaluate(args, data, run, undistilled, eval_dir)
        seconds["evaluate"] = time.perf_counter() - t0
        print_headline(report)
        graph_out: dict = {"queries": [], "routing": None}
        if not args.skip_graph:
            t0 = time.perf_counter()
            graph_out = stage_graph(args, run, w / "memory.sqlite", data)
            seconds["graph"] = time.perf_counter() - t0
    except InputError as e:
        console.print(f"[red]error:[/red] {e}")
        return 2
    seconds["total"] = time.perf_counter() - t_start  # the whole run, model loading included
    atomic_write_json(
        w / "pipeline.json",
        {
            "quick": args.quick,
            "seconds": seconds,
            "report": str(eval_dir / "report.json"),
            **graph_out,
        },
    )
    console.rule("[bold]5. Where everything is")
    student = run / "student"
    for name, path in [
        ("dataset", data),
        ("student", student),
        ("teacher", run / "teacher_adapted"),
        ("history", run / "training_history.jsonl"),
        ("report", eval_dir / "report.md"),
        ("summary", w / "pipeline.json"),
    ]:
        console.print(f"{name:<12} {path}")
    console.print(f"\nChat with the student:  distillgraph chat --model {student}")
    console.print(
        f'Ask from the shell:     distillgraph ask "Summarize ford pinto." --model {student}'
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
