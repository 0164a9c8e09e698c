"""Files of an evaluation: report.json, report.md, predictions.jsonl, PNG plots, model cards.

Everything here renders the dict `distillation.evaluation.evaluate_models` returns; nothing is
measured here. Files are written atomically (a temporary file beside the target, then a rename),
so an interrupted run never leaves a half-written report. Plots use matplotlib's Agg backend:
training curves (when a ``training_history.jsonl`` was given or found), accuracy per question
type (grouped bars with 95% CIs) and accuracy vs batch-1 latency (labelled scatter).

A student's model card (``README.md``) gets the headline table inside a marked section
(`CARD_START` … `CARD_END`) that each evaluation replaces, so repeated runs never stack copies.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from data_loaders.io import atomic_write_bytes, atomic_write_json, atomic_write_text, read_jsonl

CARD_START = "<!-- distillgraph:evaluation:start -->"
CARD_END = "<!-- distillgraph:evaluation:end -->"
TASK_ORDER = ("qa", "validate", "summarize")
PLOT_FILES = {
    "accuracy_by_qtype": "accuracy_by_qtype.png",
    "accuracy_vs_latency": "accuracy_vs_latency.png",
    "training_curves": "training_curves.png",
}
_HEADLINE_NAME = {
    "lookup": "exact/numeric",
    "compare": "exact/numeric",
    "superlative": "exact/numeric",
    "aggregate": "exact/numeric",
    "claim": "yes/no",
    "summary_row": "ROUGE-L F",
    "summary_group": "ROUGE-L F",
}


# --------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------


def fmt_pct(x: float | None, digits: int = 1) -> str:
    """``0.8351 -> "83.5%"``; ``None -> "—"``."""
    return "—" if x is None else f"{100 * x:.{digits}f}%"


def fmt_ci(summary: Mapping | None) -> str:
    """``"83.5% [79.1–87.2] (n=200)"`` from a metric summary; "—" when absent."""
    if not summary:
        return "—"
    lo, hi = summary["ci95"]
    return f"{fmt_pct(summary['value'])} [{100 * lo:.1f}–{100 * hi:.1f}] (n={summary['n']})"


def fmt_count(n: int | None) -> str:
    """Parameter counts: ``134515008 -> "134.5M"``."""
    if n is None:
        return "—"
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.1f}{suffix}"
    return str(n)


def fmt_bytes(n: int | None) -> str:
    """Sizes in binary units: ``538_000_000 -> "513.1 MiB"``."""
    if n is None:
        return "—"
    x = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(x) < 1024 or unit == "GiB":
            return f"{x:.0f} {unit}" if unit == "B" else f"{x:.1f} {unit}"
        x /= 1024
    return f"{x:.1f} GiB"


def fmt_num(x: float | None, digits: int = 1, suffix: str = "") -> str:
    """A plain number with a unit suffix, "—" when missing."""
    return "—" if x is None else f"{x:.{digits}f}{suffix}"


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def esc(c: str) -> str:
        return str(c).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _tasks(report: Mapping) -> list[str]:
    seen = {t for m in report["models"] for t in m["accuracy"]["by_task"]}
    return [t for t in TASK_ORDER if t in seen] + sorted(seen - set(TASK_ORDER))


def _qtypes(report: Mapping) -> list[str]:
    out: list[str] = []
    for m in report["models"]:
        out += [q for q in m["accuracy"]["by_qtype"] if q not in out]
    return out


def _acc(summary_block: Mapping, key: str = "accuracy") -> float | None:
    s = summary_block.get(key)
    return None if s is None else s["value"]


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------


def headline_table(report: Mapping) -> str:
    """Model × (accuracy overall and per task, params, size, p50 latency, speedup, gap closed)."""
    tasks = _tasks(report)
    header = ["model", "role", "accuracy (95% CI)", *tasks, "exact match", "params", "size"]
    header += ["p50 latency", "speedup", "speedup, equal tokens", "gap closed"]
    rows = []
    for m in report["models"]:
        acc, cost, vs = m["accuracy"], m["cost"], m["vs_reference"]
        gap = (m.get("gap_closed") or {}).get("accuracy")
        rows.append(
            [
                m["label"],
                m["role"],
                fmt_ci(acc["overall"]["accuracy"]),
                *[fmt_pct(_acc(acc["by_task"].get(t, {}))) for t in tasks],
                fmt_pct(_acc(acc["overall"], "exact_match")),
                fmt_count(cost["params"]),
                fmt_bytes(cost["size_bytes"]),
                fmt_num(cost["latency_ms"]["p50"], 0, " ms"),
                fmt_num(vs["speedup_p50"], 2, "×"),
                fmt_num(vs.get("speedup_equal_tokens_p50"), 2, "×"),
                "—" if gap is None else fmt_pct(gap, 0),
            ]
        )
    return _md_table(header, rows)


def qtype_table(report: Mapping) -> str:
    """Question type × model: headline accuracy with its 95% CI and n."""
    labels = [m["label"] for m in report["models"]]
    rows = []
    for q in _qtypes(report):
        row = [q, _HEADLINE_NAME.get(q, "exact/numeric")]
        for m in report["models"]:
            row.append(fmt_ci(m["accuracy"]["by_qtype"].get(q, {}).get("accuracy")))
        rows.append(row)
    return _md_table(["question type", "scored by", *labels], rows)


def metrics_table(report: Mapping) -> str:
    """Model × task: every metric (exact, numeric, token F1, yes/no, ROUGE-L) with n."""
    rows = []
    for m in report["models"]:
        for t in _tasks(report):
            block = m["accuracy"]["by_task"].get(t)
            if not block:
                continue
            cells = []
            for key in ("exact_match", "numeric_match", "token_f1", "yes_no", "rouge_l"):
                s = block.get(key)
                cells.append("—" if s is None else f"{fmt_pct(s['value'])} (n={s['n']})")
            rows.append([m["label"], t, *cells])
    header = ["model", "task", "exact match", "numeric", "token F1", "yes/no", "ROUGE-L F"]
    return _md_table(header, rows)


def cost_table(report: Mapping) -> str:
    """Model × (params, disk, memory, TTFT, latency p50/p95, tokens/s, throughput, ratios)."""
    rows = []
    batch = None
    for m in report["models"]:
        c, vs = m["cost"], m["vs_reference"]
        batch = c["batch_size"]
        rows.append(
            [
                m["label"],
                fmt_count(c["params"]),
                fmt_bytes(c["size_bytes"]),
                fmt_bytes(c["peak_memory_bytes"]),
                fmt_num(c["ttft_ms"]["p50"], 0, " ms"),
                fmt_num(c["latency_ms"]["p50"], 0, " ms"),
                fmt_num(c["latency_ms"]["p95"], 0, " ms"),
                fmt_num(c["gen_tokens_per_s_b1"], 1),
                fmt_num(c["answers_per_s"], 2),
                fmt_num(c["answer_tokens_per_s_batched"], 1),
                fmt_num(vs["speedup_p50"], 2, "×"),
                fmt_num(vs["param_ratio"], 2),
                fmt_num(vs["size_ratio"], 2),
            ]
        )
    header = ["model", "params", "size", "peak mem", "TTFT p50", "latency p50", "latency p95"]
    header += ["tok/s (b=1)", f"answers/s (b={batch})", f"tok/s (b={batch})", "speedup"]
    header += ["params ratio", "size ratio"]
    return _md_table(header, rows)


def _limits(value: int | dict[str, int]) -> str:
    """``64`` or ``qa 30, summarize 97, validate 9`` (limits per task)."""
    if isinstance(value, dict):
        return ", ".join(f"{task} {n}" for task, n in value.items()) + " (per task)"
    return str(value)


def render_markdown(report: Mapping, plots: Mapping[str, str] | None = None) -> str:
    """The human report: headline first, then per question type, metrics, cost, definitions."""
    ds, cfg, env = report["dataset"], report["config"], report["environment"]
    out = [
        "# Evaluation report",
        "",
        f"Dataset `{ds['dir']}`, split **{ds['split']}**: {ds['n_examples']} of {ds['n_split']} "
        f"examples (manifest sha256 `{ds['manifest_sha256'][:16]}`). Device {env['device']}"
        f" ({env['dtype']}, {env['torch_threads']} threads), greedy decoding, "
        f"max new tokens {_limits(cfg['max_new_tokens'])}. "
        f"distillgraph {report['distillgraph_version']}, "
        f"{report['created_utc']}.",
        "",
        f"Reference: **{cfg['reference']}** (speedup and ratios are against it)"
        + (
            f"; baseline: **{cfg['baseline']}** (gap closed is measured from it)."
            if cfg["baseline"]
            else "; no --baseline, so no gap closed."
        ),
        "",
        "## Headline",
        "",
        headline_table(report),
        "",
        "## Accuracy per question type",
        "",
        qtype_table(report),
        "",
        "## All metrics per task",
        "",
        metrics_table(report),
        "",
        "## Cost and speed",
        "",
        cost_table(report),
        "",
    ]
    if plots:
        out += ["## Plots", ""]
        out += [f"![{name}]({fname})" for name, fname in plots.items()]
        out.append("")
    out += ["## Definitions", ""]
    out += [f"- **{k.replace('_', ' ')}**: {v}" for k, v in report["definitions"].items()]
    out.append("")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------


def _save_figure(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display; safe to call repeatedly
    import matplotlib.pyplot as plt

    return plt


def plot_accuracy_by_qtype(report: Mapping, path: Path) -> Path:
    """Grouped bars: headline accuracy per question type, one bar per model, 95% CI whiskers."""
    plt = _pyplot()
    qtypes = _qtypes(report)
    models = report["models"]
    width = 0.8 / max(1, len(models))
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(qtypes) + 2), 4))
    for i, m in enumerate(models):
        vals, lo, hi = [], [], []
        for q in qtypes:
            s = m["accuracy"]["by_qtype"].get(q, {}).get("accuracy")
            v = s["value"] if s else 0.0
            vals.append(v)
            lo.append(max(0.0, v - s["ci95"][0]) if s else 0.0)
            hi.append(max(0.0, s["ci95"][1] - v) if s else 0.0)
        xs = [j + (i - (len(models) - 1) / 2) * width for j in range(len(qtypes))]
        ax.bar(xs, vals, width, yerr=[lo, hi], capsize=2, label=m["label"])
    ax.set_xticks(range(len(qtypes)), qtypes, rotation=20)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy (ROUGE-L F for summaries)")
    ax.set_title("Accuracy per question type (95% CI)")
    ax.legend(fontsize="small")
    return _save_figure(fig, path)


def plot_accuracy_vs_latency(report: Mapping, path: Path) -> Path:
    """Scatter: overall accuracy against p50 latency at batch 1, each point labelled."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for m in report["models"]:
        x = m["cost"]["latency_ms"]["p50"]
        s = m["accuracy"]["overall"]["accuracy"]
        if x is None or s is None:
            continue
        ax.errorbar(
            x,
            s["value"],
            yerr=[[max(0.0, s["value"] - s["ci95"][0])], [max(0.0, s["ci95"][1] - s["value"])]],
            fmt="o",
            capsize=3,
        )
        ax.annotate(m["label"], (x, s["value"]), textcoords="offset points", xytext=(5, 5))
    ax.set_xlabel("p50 latency per answer at batch 1 (ms)")
    ax.set_ylabel("accuracy (all question types)")
    ax.set_ylim(0, 1.05)
    ax.set_xlim(left=0)
    ax.set_title("Accuracy vs latency")
    ax.grid(alpha=0.3)
    return _save_figure(fig, path)


def plot_training_curves(histories: Mapping[str, Sequence[Mapping]], path: Path) -> Path:
    """Four panels against step: loss (and val_loss), ce, kd, val exact match; one line per run."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(10, 6), sharex=False)
    panels = (("loss", "val_loss"), ("ce",), ("kd",), ("val_exact_match",))
    for ax, keys in zip(axes.flat, panels, strict=True):
        for run, rows in histories.items():
            for key in keys:
                pts = [
                    (r["step"], r[key])
                    for r in rows
                    if "step" in r and isinstance(r.get(key), int | float)
                ]
                if pts:
                    xs, ys = zip(*pts, strict=True)
                    name = key if len(histories) == 1 else f"{run}: {key}"
                    ax.plot(xs, ys, marker="." if len(pts) < 30 else None, label=name)
        ax.set_title(keys[0].replace("_", " "))
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize="small")
        else:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle("Training curves")
    fig.tight_layout()
    return _save_figure(fig, path)


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def write_report(
    report: dict[str, Any],
    out_dir: str | Path,
    *,
    predictions: Sequence[Mapping] | None = None,
    histories: Mapping[str, str | Path] | None = None,
) -> dict[str, str]:
    """Write plots, predictions.jsonl, report.md and report.json into ``out_dir``.

    ``report["files"]`` is set to the files written (names relative to ``out_dir``) before
    report.json is written, so the JSON lists them; report.json goes last, so its presence
    means the rest is complete.

    Returns:
        ``{kind: file name}`` of everything written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots = {
        "accuracy_by_qtype": plot_accuracy_by_qtype(report, out / PLOT_FILES["accuracy_by_qtype"]),
        "accuracy_vs_latency": plot_accuracy_vs_latency(
            report, out / PLOT_FILES["accuracy_vs_latency"]
        ),
    }
    if histories:
        loaded = {k: read_jsonl(p) for k, p in histories.items()}
        plots["training_curves"] = plot_training_curves(loaded, out / PLOT_FILES["training_curves"])
    plot_names = {k: p.name for k, p in plots.items()}
    files = {"report_json": "report.json", "report_md": "report.md"}
    if predictions is not None:
        text = "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in predictions)
        atomic_write_text(out / "predictions.jsonl", text)
        files["predictions"] = "predictions.jsonl"
    files.update({f"plot_{k}": v for k, v in plot_names.items()})
    report["files"] = files
    atomic_write_text(out / "report.md", render_markdown(report, plot_names))
    atomic_write_json(out / "report.json", report)
    return files


def card_section(report: Mapping) -> str:
    """The marked README section: headline table plus where it came from."""
    ds = report["dataset"]
    return "\n".join(
        [
            CARD_START,
            "## Evaluation",
            "",
            f"Held-out split `{ds['split']}` of `{ds['dir']}` ({ds['n_examples']} examples), "
            f"measured by `distillgraph evaluate` on {report['environment']['device']} "
            f"({report['created_utc']}). Accuracy: {report['definitions']['accuracy']} Gap "
            f"closed: {report['definitions']['gap_closed']}",
            "",
            headline_table(report),
            CARD_END,
        ]
    )


def update_model_card(model_dir: str | Path, report: Mapping) -> Path:
    """Put the headline table into ``<model_dir>/README.md``, replacing an earlier one.

    The table sits between `CARD_START` and `CARD_END`; text outside the markers is kept. A
    README without the section gets it appended; a missing README is created.

    Returns:
        The README path.
    """
    path = Path(model_dir) / "README.md"
    section = card_section(report)
    text = path.read_text(encoding="utf-8") if path.is_file() else "# Model card\n"
    start, end = text.find(CARD_START), text.find(CARD_END)
    if start != -1 and end > start:
        text = text[:start] + section + text[end + len(CARD_END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    atomic_write_text(path, text)
    return path
