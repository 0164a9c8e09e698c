"""The end-to-end demo: table → QA dataset → adapted teacher → distilled student → report → agent.

    python examples/complete_pipeline.py            # the embedded default, 2 CPU cores
    python examples/complete_pipeline.py --quick    # short run; accuracy not representative
    python examples/complete_pipeline.py --fresh    # start over, reusing nothing
    python examples/complete_pipeline.py --table planes.csv --prepare-config mine.yaml \
        --workdir runs/planes                       # any table, with its own prepare YAML

Nothing here is tuned to the sample table: the agent graph's example questions are drawn from
the table's own first row (as the chat's starter questions are), and the graph reads the table
with the ``table:`` section of ``--prepare-config``. Without ``--prepare-config`` the cars
sample uses ``configs/prepare_cars.yaml`` and any other table the prepare defaults (entity
column detected).

Every stage writes its output under ``--workdir`` (default ``runs/demo``) and is reused on the next
run (a dataset built from another table is refused: ``--fresh`` or another ``--workdir``), so any
stage can also be rerun alone with the CLI command printed in its header (``pipeline.json`` keeps
them too):

    data/                 distillgraph prepare   (train/val/test.jsonl, manifest.json)
    distill/              distillgraph distill   (teacher_adapted/, teacher_cache/, student/,
                                                  training_history.jsonl, checkpoints/)
    student_undistilled/  the student as initialised, before training (for "gap closed")
    eval/                 distillgraph evaluate  (report.json, report.md, *.png)
    memory.sqlite         distillgraph ask       (the graph's conversation memory)
    pipeline.json         what this script did: stage times, the headline figures, the commands

Python API used: `data_loaders.dataset.prepare`, `distillation.trainer.run_distillation`,
`distillation.evaluation.evaluate_models`, `graphs.build_graph`, `app.render.starter_questions`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table as RichTable  # noqa: E402

if TYPE_CHECKING:
    from data_loaders.table import Table

console = Console()

SAMPLE_TABLE = ROOT / "examples" / "data" / "cars.csv"
SAMPLE_PREPARE_CONFIG = ROOT / "configs" / "prepare_cars.yaml"
GRAPH_CONFIG = ROOT / "configs" / "graph.yaml"

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


def peak_rss_bytes() -> int | None:
    """Peak resident memory of this process so far (every stage runs in it); None off Unix."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS: bytes, Linux: KiB


def show_command(text: str, argv: list[str]) -> None:
    """Print `text` and a root-CLI command line, unwrapped and without markup, to copy-paste."""
    line = f"{text}{shlex.join(['distillgraph', *argv])}"
    console.print(line, style="dim", markup=False, highlight=False, soft_wrap=True)


def header(n: int, title: str, argv: list[str]) -> None:
    """Print a stage header and the command (``distillgraph`` + `argv`) that reruns it alone."""
    console.rule(f"[bold]{n}. {title}")
    show_command("rerun alone: ", argv)


def option(flag: str, value: object | None) -> list[str]:
    """``[flag, value]``, or nothing when `value` is ``None``."""
    return [] if value is None else [flag, str(value)]


def prepare_overrides(args) -> list[str]:
    """The prepare config overrides this demo applies on top of ``--prepare-config``."""
    return QUICK_PREPARE if args.quick else []


def check_same_table(data: Path, table: Path) -> None:
    """Refuse to reuse a dataset that was built from another table than `table`."""
    from data_loaders.dataset import MANIFEST
    from data_loaders.errors import InputError

    manifest = json.loads((data / MANIFEST).read_text(encoding="utf-8"))
    built_from = [s["source"] for s in manifest.get("sources", [])]
    if built_from != [str(table)]:
        raise InputError(
            f"{data} was built from {', '.join(built_from) or 'no table'}, not {table}; "
            "pass --fresh to start over or another --workdir"
        )


def stage_prepare(args, data: Path, commands: dict) -> float | None:
    """Build the QA dataset from the table, unless it is already there."""
    from data_loaders.config import PrepareConfig
    from data_loaders.config_loader import load_config
    from data_loaders.dataset import MANIFEST, prepare

    overrides = prepare_overrides(args)
    commands["prepare"] = [
        "prepare",
        str(args.table),
        "--out",
        str(data),
        *option("--config", args.prepare_config),
        *overrides,
    ]
    header(1, "Load the table and build the QA dataset", commands["prepare"])
    if (data / MANIFEST).is_file():
        check_same_table(data, args.table)
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


def stage_distill(args, data: Path, run: Path, commands: dict) -> float | None:
    """Adapt the teacher, cache its soft targets, distill and export the student."""
    from distillation.config import load_distill_config
    from distillation.trainer import STUDENT_DIR, run_distillation

    overrides = distill_overrides(args, data, run)
    commands["distill"] = ["distill", "--config", str(args.distill_config), *overrides]
    header(
        2,
        "Adapt the teacher, then distill the student (teacher soft-target cache)",
        commands["distill"],
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


def stage_evaluate(
    args, data: Path, run: Path, undistilled: Path, eval_dir: Path, commands: dict
) -> tuple[dict, str]:
    """Evaluate teacher, undistilled student and distilled student side by side.

    Returns:
        The report (as ``report.json``) and the teacher it compared against.
    """
    from distillation.config import load_distill_config
    from distillation.evaluation import evaluate_models
    from distillation.trainer import STUDENT_DIR, export_initial_student, trained_teacher_spec

    cfg = load_distill_config(args.distill_config, distill_overrides(args, data, run))
    teacher_spec = trained_teacher_spec(cfg)
    max_examples = QUICK_EVAL_EXAMPLES if args.quick else args.max_examples
    latency = QUICK_LATENCY_EXAMPLES if args.quick else None  # else evaluate_models' default
    labels = ["teacher", "undistilled", "distilled"]
    models = [teacher_spec, str(undistilled), str(run / STUDENT_DIR)]
    commands["evaluate"] = [
        "evaluate",
        *(a for m in models for a in ("--model", m)),
        *(a for label in labels for a in ("--label", label)),
        *("--baseline", "undistilled", "--data", str(data), "--out", str(eval_dir)),
        *option("--max-examples", max_examples),
        *option("--latency-examples", latency),
        *("--device", "cpu"),
    ]
    header(3, "Evaluate teacher, undistilled student and distilled student", commands["evaluate"])
    if not (undistilled / "config.json").is_file():
        export_initial_student(cfg, teacher_spec, undistilled)
    latency_kw = {} if latency is None else {"latency_examples": latency}
    report = evaluate_models(
        models,
        data,
        "test",
        labels=labels,
        baseline="undistilled",
        out_dir=eval_dir,
        max_examples=max_examples,
        device="cpu",
        **latency_kw,
    )
    return report, teacher_spec


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
        "speedup, equal tokens",
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
            f"{vs['speedup_equal_tokens_p50']:.2f}x" if vs.get("speedup_equal_tokens_p50")
            else "-",
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
    programmer = graph.distillgraph_programmer
    if programmer.active():  # the student routes by the op of the program it writes
        got = [programmer.read(p["question"]).get("task") for p in pairs]
        acc = sum(g == ROUTER_LABELS.get(p["task"]) for g, p in zip(got, pairs, strict=True))
        return {
            "n": len(pairs),
            "student_scores": acc / len(pairs),
            "graph_router": acc / len(pairs),
            "graph_router_uses": "the student's programs",
        }

    def by_student(query: str) -> str:
        label = router.model_label(query)
        return ROUTER_LABELS[label] if label else "none"

    return {
        "n": len(pairs),
        "student_scores": router_accuracy(by_student, pairs),
        "graph_router": router_accuracy(graph, pairs),
        "graph_router_uses": "student scores" if router.trusted() else "keyword rules",
    }


def graph_overrides(args) -> list[str]:
    """Graph settings that follow the dataset: its table config, its context size."""
    from data_loaders.config import PrepareConfig
    from data_loaders.config_loader import load_config

    prepared = load_config(PrepareConfig, args.prepare_config, prepare_overrides(args))
    return [
        f"table_config={args.prepare_config or 'null'}",
        f"retrieval.max_rows={prepared.max_context_rows}",  # the context the student knows
    ]


def ask_argv(args, question: str, student: Path, memory: Path) -> list[str]:
    """``distillgraph ask`` with the graph this demo builds (model, table, settings, memory)."""
    sets = [a for o in graph_overrides(args) for a in ("--set", o)]
    return [
        "ask",
        question,
        *("--model", str(student), "--data", str(args.table), "--config", str(GRAPH_CONFIG)),
        *sets,
        *("--memory", str(memory)),
    ]


def example_questions(table: Table) -> list[str]:
    """One question per task about the table's first row: the chat's starter questions."""
    from app.render import starter_questions
    from data_loaders.errors import InputError

    questions = [message for _label, message in starter_questions(table)]
    if not questions:
        raise InputError(f"{table.source}: no rows to ask about")
    return questions


def stage_graph(
    args, student: Path, memory: Path, data: Path, table: Table, ask: list[str]
) -> dict:
    """Answer the table's example questions with the agent graph on the distilled student."""
    from graphs import build_graph
    from graphs.validation import verdict_label

    header(4, "Agent graph on the distilled student", ask)
    graph = build_graph(
        model=student,
        tables=[table],
        config=GRAPH_CONFIG,
        checkpointer=memory,
        overrides=graph_overrides(args),
    )
    rows = []
    t = RichTable(title="Queries")
    for col in ("query", "route", "program", "answer", "verdict", "answered by", "ms"):
        t.add_column(col, overflow="fold")
    for i, q in enumerate(example_questions(table)):
        t0 = time.perf_counter()
        state = graph.invoke(
            {"messages": [("user", q)]}, config={"configurable": {"thread_id": f"demo-{i}"}}
        )
        ms = (time.perf_counter() - t0) * 1000
        verdict = state.get("verdict") or {}
        row = {
            "query": q,
            "route": state.get("task"),
            "program": (state.get("program") or {}).get("text"),
            "answer": state.get("answer"),
            "verdict": verdict_label(verdict) if verdict else None,
            "answered_by": state.get("answered_by"),
            "ms": round(ms),
        }
        rows.append(row)
        t.add_row(
            q,
            str(row["route"]),
            str(row["program"] or "-"),
            str(row["answer"]),
            str(row["verdict"]),
            str(row["answered_by"]),
            f"{ms:.0f}",
        )
    console.print(t)
    routing = router_accuracy_on(graph, data / "test.jsonl")
    console.print(
        f"router accuracy on the {routing['n']} test questions: the student's own reading "
        f"{routing['student_scores']:.1%}; the graph's router ({routing['graph_router_uses']}) "
        f"{routing['graph_router']:.1%}"
    )
    return {"queries": rows, "routing": routing}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short run; accuracy not representative")
    ap.add_argument("--fresh", action="store_true", help="delete --workdir and start over")
    ap.add_argument("--workdir", type=Path, default=ROOT / "runs" / "demo")
    ap.add_argument("--table", type=Path, default=SAMPLE_TABLE, help="the table to distill on")
    ap.add_argument(
        "--prepare-config",
        type=Path,
        default=None,
        help="prepare YAML; its table: section is also how the graph reads the table "
        "(default: configs/prepare_cars.yaml for the sample, else the prepare defaults)",
    )
    ap.add_argument("--distill-config", type=Path, default=ROOT / "configs" / "default.yaml")
    ap.add_argument("--max-examples", type=int, default=None, help="evaluate a test subset")
    ap.add_argument("--skip-graph", action="store_true", help="stop after the evaluation")
    args = ap.parse_args(argv)
    args.table = args.table.resolve()  # the manifest records it; reuse compares it
    if args.prepare_config is None and args.table == SAMPLE_TABLE.resolve():
        args.prepare_config = SAMPLE_PREPARE_CONFIG
    if args.prepare_config is not None:
        args.prepare_config = args.prepare_config.resolve()

    from data_loaders.errors import InputError
    from data_loaders.io import atomic_write_json
    from distillation.history import HISTORY_FILE
    from distillation.trainer import STUDENT_DIR
    from graphs.graph import load_graph_tables

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
    commands: dict[str, list[str]] = {}  # stage → the root-CLI argv that reruns it alone
    student, memory = run / STUDENT_DIR, w / "memory.sqlite"
    t_start = time.perf_counter()
    try:
        seconds["prepare"] = stage_prepare(args, data, commands)
        seconds["distill"] = stage_distill(args, data, run, commands)
        t0 = time.perf_counter()
        report, teacher = stage_evaluate(args, data, run, undistilled, eval_dir, commands)
        seconds["evaluate"] = time.perf_counter() - t0
        print_headline(report)
        (table,) = load_graph_tables([args.table], args.prepare_config)
        commands["ask"] = ask_argv(args, example_questions(table)[0], student, memory)
        graph_out: dict = {"queries": [], "routing": None}
        if not args.skip_graph:
            t0 = time.perf_counter()
            graph_out = stage_graph(args, student, memory, data, table, commands["ask"])
            seconds["graph"] = time.perf_counter() - t0
    except InputError as e:
        console.print(f"[red]error:[/red] {e}")
        return 2
    seconds["total"] = time.perf_counter() - t_start  # the whole run, model loading included
    commands["chat"] = [
        "chat",
        *("--model", str(student), "--data", str(args.table)),
        *option("--table-config", args.prepare_config),
    ]
    atomic_write_json(
        w / "pipeline.json",
        {
            "quick": args.quick,
            "table": str(args.table),
            "seconds": seconds,
            "peak_rss_bytes": peak_rss_bytes(),
            "report": str(eval_dir / "report.json"),
            "commands": {k: shlex.join(["distillgraph", *v]) for k, v in commands.items()},
            **graph_out,
        },
    )
    console.rule("[bold]5. Where everything is")
    for name, path in [
        ("dataset", data),
        ("student", student),
        ("teacher", teacher),
        ("history", run / HISTORY_FILE),
        ("report", eval_dir / "report.md"),
        ("summary", w / "pipeline.json"),
    ]:
        console.print(f"{name:<12} {path}", markup=False, highlight=False, soft_wrap=True)
    console.print()
    show_command("Chat with the student:  ", commands["chat"])
    show_command("Ask from the shell:     ", commands["ask"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
