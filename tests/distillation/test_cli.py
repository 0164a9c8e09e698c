"""`distillgraph distill`: exit codes and a real (tiny) run through the root CLI."""

import json

import pytest
import torch

from app.cli import main
from distillation.losses import DistillationLoss


@pytest.fixture()
def data_dir(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    for split, n in (("train", 16), ("val", 4)):
        rows = [{"question": f"What is the horsepower of car {i}?", "answer": f"{60 + i} hp",
                 "context": f"[row {i}] Name: car {i} | horsepower: {60 + i} hp"} for i in range(n)]
        (d / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


def test_bad_input_exits_2_with_one_line(tmp_path, capsys):
    assert main(["distill", "bogus_key=1"]) == 2
    assert "unknown key 'bogus_key'" in capsys.readouterr().err
    assert main(["distill", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert main(["distill", f"output_dir={tmp_path}", "teacher_model_name=tiny"]) == 2
    err = capsys.readouterr().err
    assert "data_dir" in err and len(err.strip().splitlines()) == 2


def test_tiny_yaml_runs_resumes_and_diverges(tmp_path, data_dir, capsys, monkeypatch):
    args = ["distill", "--config", "configs/tiny.yaml", "--quiet", f"data_dir={data_dir}",
            f"output_dir={tmp_path / 'run'}", "max_steps=2", "eval_samples=2"]
    assert main(args) == 0
    assert (tmp_path / "run" / "student" / "model.safetensors").is_file()
    assert main([*args, "--resume"]) == 0  # already finished: nothing to redo, still exports

    def nan(self, *a, **k):
        return {"loss": torch.tensor(float("nan"), requires_grad=True),
                "ce": torch.tensor(0.0), "kd": torch.tensor(0.0)}

    monkeypatch.setattr(DistillationLoss, "forward", nan)
    assert main(args) == 1
    assert "loss is nan at step 1" in capsys.readouterr().err
