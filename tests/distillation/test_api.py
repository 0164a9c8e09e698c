"""ModelDistiller: the Python API over the recipe."""

import pytest

from data_loaders.errors import InputError
from distillation import api
from distillation.api import DistillationConfig, ModelDistiller
from distillation.losses import DistillationLoss
from distillation.tiny import build_tiny_model_dir


def _pairs(n):
    return [
        {"question": f"What is the horsepower of car {i}?", "answer": f"{60 + i} hp",
         "context": f"[row {i}] Name: car {i} | horsepower: {60 + i} hp"}
        for i in range(n)
    ]


def test_design_note_constructor_and_reexported_loss():
    d = ModelDistiller(DistillationConfig(teacher_model_name="embedded",
                                          student_model_name="x/y", temperature=3.0, alpha=0.25))
    assert d.config.kd_ratio == 0.25 and d.config.temperature == 3.0
    assert ModelDistiller({"alpha": 0.1}, max_steps=7).config.max_steps == 7
    assert ModelDistiller(d.config, alpha=0.9).config.kd_ratio == 0.9
    assert api.DistillationLoss is DistillationLoss
    with pytest.raises(InputError, match="distill"):
        d.save_distilled_model()


def test_distill_a_list_of_pairs_and_save(tmp_path):
    teacher = build_tiny_model_dir(tmp_path / "teacher", n_layers=4)
    d = ModelDistiller(
        teacher_model_name=str(teacher), student_layers=2, output_dir=tmp_path / "run",
        max_steps=2, batch_size=4, eval_every=0, eval_samples=2, eval_max_new_tokens=2,
        device="cpu", teacher_adaptation={"enabled": False},
    )
    student = d.load_student_model()
    assert student.config.num_hidden_layers == 2
    assert d.load_teacher_model().config.num_hidden_layers == 4
    result = d.distill(_pairs(20), progress=False)
    assert result.steps == 2 and result.best["eval_samples"] == 2  # 10% held out
    assert d.save_distilled_model() == result.student_dir
    copy = d.save_distilled_model(tmp_path / "exported")
    assert (copy / "model.safetensors").is_file() and (copy / "README.md").is_file()
    assert d.load_student_model().config.num_hidden_layers == 2
