"""bench_recipe end to end on a tiny teacher: two variants, one outside student, one report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from distillation.tiny import build_tiny_model_dir

ROOT = Path(__file__).resolve().parents[2]
SMALL = ("student_layers=2,max_steps=2,batch_size=4,eval_every=0,eval_samples=2,"
         "eval_max_new_tokens=2,max_seq_len=512,top_k=8,save_every=2,device=cpu")


def test_variants_are_distilled_measured_and_scored_together(tmp_path):
    data = tmp_path / "data"
    subprocess.run([sys.executable, "-m", "app.cli", "prepare", str(ROOT / "examples" / "data" /
                    "cars.csv"), "--out", str(data), "--config",
                    str(ROOT / "configs" / "prepare_cars.yaml"), "max_pairs=60"],
                   cwd=ROOT, check=True, capture_output=True)
    texts = [json.loads(x)["question"] for x in (data / "train.jsonl").read_text().splitlines()]
    assets = {"data": data, "teacher": build_tiny_model_dir(tmp_path / "teacher", n_layers=4,
                                                             texts=texts)}
    out = tmp_path / "recipe.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_recipe.py"),
           "--data", str(assets["data"]), "--teacher", str(assets["teacher"]),
           "--workdir", str(tmp_path / "w"), "--out", str(out), "--eval-args",
           "--max-examples 3 --max-new-tokens 2 --latency-examples 1",
           "--variant", f"kd={SMALL}", "--variant", f"hard={SMALL},kd_ratio=0",
           "--student", f"again={tmp_path / 'w' / 'kd' / 'student'}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads(out.read_text())
    rows = {r["name"]: r for r in result["rows"]}
    assert list(rows) == ["teacher", "kd", "hard", "again"]
    assert rows["teacher"]["param_ratio"] == 1.0
    for name in ("kd", "hard"):
        r = rows[name]
        assert r["steps"] == 2 and r["seconds"] > 0 and r["peak_rss_bytes"] > 10 * 2**20
        assert 0 < r["param_ratio"] < 1 and 0 <= r["accuracy"] <= 1
    kd = [json.loads(x) for x in (tmp_path / "w" / "kd" / "training_history.jsonl")
          .read_text().splitlines() if '"train"' in x]
    hard = [json.loads(x) for x in (tmp_path / "w" / "hard" / "training_history.jsonl")
            .read_text().splitlines() if '"train"' in x]
    assert all(r["kd"] > 0 for r in kd) and all(r["kd"] == 0 for r in hard)
    assert "| kd |" in proc.stdout and "| again |" in proc.stdout  # the printed Pareto table
