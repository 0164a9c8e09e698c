"""Report files from a report dict: report.md/json content, PNG plots, model-card section."""

import json

import pytest
import torch

from data_loaders.schema import QAPair
from distillation import evaluation as E
from distillation import report as R

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PROV = {
    "source": "cars.csv",
    "table": "cars",
    "table_hash": "0" * 16,
    "row_ids": [0],
    "columns": ["mpg"],
    "program": {},
}
CASES = [
    ("qa", "lookup", "18 mpg"),
    ("qa", "aggregate", "119.05"),
    ("validate", "claim", "yes"),
    ("summarize", "summary_row", "ford pinto has 18 mpg and 4 cylinders"),
]


def _examples():
    return [
        QAPair(
            id=f"e{i}",
            task=task,
            qtype=qtype,
            template=f"{qtype}/1",
            question=f"q{i}?",
            answer=answer,
            context="[row 0] name: ford pinto",
            entities=["ford pinto"],
            provenance=PROV,
        )
        for i, (task, qtype, answer) in enumerate(CASES * 2)
    ]


def _model(label, role, predictions, latency_s, params):
    m = E.LoadedModel(label=label, spec=f"/m/{label}", path=None, role=role)
    m.model = torch.nn.Linear(params, 1, bias=False)  # `params` parameters
    m.predictions = predictions
    m.latency_s = latency_s
    m.ttft_s = [x / 4 for x in latency_s]
    m.new_tokens_b1 = 10 * len(latency_s)
    m.batched_s, m.batched_answers, m.batched_tokens = 2.0, 8, 40
    m.peak_memory_bytes, m.memory_method = 2**20, "rss_sampled"
    return m


def make_report():
    """A report built by the same functions `evaluate_models` uses, from fixed predictions."""
    ex = _examples()
    right = {e.id: e.answer for e in ex}
    half = {e.id: (e.answer if e.task == "qa" else "no") for e in ex}
    wrong = {e.id: "no" for e in ex}
    models = [
        _model("teacher", "reference", right, [0.4, 0.5, 0.6], 400),
        _model("student", "candidate", half, [0.1, 0.12, 0.2], 100),
        _model("base", "baseline", wrong, [0.1, 0.11, 0.12], 100),
    ]
    entries = [E._model_entry(m, E._accuracy_block(ex, m.predictions, 0)[0], 4) for m in models]
    E._compare(entries, {})
    return {
        "report_version": E.REPORT_VERSION,
        "distillgraph_version": "0.1.0",
        "created_utc": "2025-01-01T00:00:00+00:00",
        "config": {
            "reference": "teacher",
            "baseline": "base",
            "max_new_tokens": 16,
            "batch_size": 4,
        },
        "dataset": {
            "dir": "/data/cars",
            "split": "test",
            "manifest_sha256": "ab" * 32,
            "n_split": 8,
            "n_examples": 8,
        },
        "environment": {"device": "cpu", "dtype": "float32", "torch_threads": 2},
        "definitions": {"accuracy": "headline doc", "gap_closed": "gap doc"},
        "models": entries,
    }


def test_report_figures_are_computed_from_predictions():
    rep = make_report()
    t, s, b = rep["models"]
    assert t["accuracy"]["overall"]["accuracy"]["value"] == pytest.approx(1.0)
    assert s["accuracy"]["by_task"]["qa"]["accuracy"]["value"] == 1.0
    assert s["accuracy"]["by_task"]["validate"]["accuracy"]["value"] == 0.0
    # student: 4 of 8 right (qa), base: claim "no" vs "yes" wrong, summaries ~0
    assert s["gap_closed"]["accuracy"] == pytest.approx(
        (
            s["accuracy"]["overall"]["accuracy"]["value"]
            - b["accuracy"]["overall"]["accuracy"]["value"]
        )
        / (1.0 - b["accuracy"]["overall"]["accuracy"]["value"])
    )
    assert t["gap_closed"] is None and b["gap_closed"] is None
    assert s["vs_reference"]["speedup_p50"] == pytest.approx(0.5 / 0.12)
    assert s["vs_reference"]["param_ratio"] == pytest.approx(0.25)
    assert s["cost"]["latency_ms"]["p50"] == pytest.approx(120.0)
    assert s["accuracy"]["by_qtype"]["summary_row"]["accuracy"]["method"] == "bootstrap"
    assert s["accuracy"]["by_qtype"]["lookup"]["accuracy"]["method"] == "wilson"


def test_zero_gap_gives_no_gap_closed():
    rep = make_report()
    ref, cand, base = rep["models"]
    base["accuracy"] = ref["accuracy"]
    E._compare(rep["models"], {})
    assert cand["gap_closed"]["accuracy"] is None
    assert "—" in R.headline_table(rep).splitlines()[3]


def test_write_report_files(tmp_path):
    rep = make_report()
    hist = tmp_path / "training_history.jsonl"
    rows = [{"step": i, "loss": 3 - i / 10, "ce": 2.0, "kd": 1.0, "lr": 1e-4} for i in range(5)]
    rows.append({"step": 5, "val_loss": 2.4, "val_exact_match": 0.3})
    hist.write_text("".join(json.dumps(r) + "\n" for r in rows))
    files = R.write_report(rep, tmp_path / "out", predictions=[{"id": "e0"}], histories={"s": hist})

    out = tmp_path / "out"
    for name in files.values():
        assert (out / name).is_file(), name
    for name in ("accuracy_by_qtype.png", "accuracy_vs_latency.png", "training_curves.png"):
        data = (out / name).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 1000
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["files"]["plot_training_curves"] == "training_curves.png"
    assert on_disk["models"][1]["label"] == "student"
    md = (out / "report.md").read_text()
    headline = md.split("## Headline", 1)[1].split("##", 1)[0]
    assert "| model | role | accuracy (95% CI) | qa | validate | summarize |" in headline
    for label in ("teacher", "student", "base"):
        assert f"| {label} |" in headline
    gap = rep["models"][1]["gap_closed"]["accuracy"]
    assert f"{100 * gap:.0f}%" in headline
    assert "4.17×" in headline  # speedup 500 ms / 120 ms
    assert "## Accuracy per question type" in md and "| summary_row | ROUGE-L F |" in md
    assert "![accuracy_vs_latency](accuracy_vs_latency.png)" in md
    assert not list(out.glob(".*.tmp"))  # no temp files left behind


def test_no_history_no_training_plot(tmp_path):
    files = R.write_report(make_report(), tmp_path)
    assert "plot_training_curves" not in files
    assert not (tmp_path / "training_curves.png").exists()


def test_model_card_section_is_idempotent(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# My student\n\nIntro text.\n")
    rep = make_report()
    R.update_model_card(tmp_path, rep)
    first = readme.read_text()
    R.update_model_card(tmp_path, rep)
    assert readme.read_text() == first
    assert first.count(R.CARD_START) == 1 and first.count(R.CARD_END) == 1
    assert first.startswith("# My student\n\nIntro text.\n")
    assert "| student | candidate |" in first

    rep["models"][1]["label"] = "student-v2"
    readme.write_text(readme.read_text() + "\nTrailing notes.\n")
    R.update_model_card(tmp_path, rep)
    text = readme.read_text()
    assert "student-v2" in text and "| student | candidate |" not in text
    assert text.count(R.CARD_START) == 1 and text.rstrip().endswith("Trailing notes.")


def test_model_card_created_when_missing(tmp_path):
    path = R.update_model_card(tmp_path, make_report())
    assert path.read_text().count(R.CARD_START) == 1


@pytest.mark.parametrize(
    ("fn", "value", "text"),
    [
        (R.fmt_pct, 0.8351, "83.5%"),
        (R.fmt_pct, None, "—"),
        (R.fmt_count, 134_515_008, "134.5M"),
        (R.fmt_bytes, 3 * 2**20, "3.0 MiB"),
        (R.fmt_bytes, 512, "512 B"),
    ],
)
def test_formatting(fn, value, text):
    assert fn(value) == text
