"""DistillationConfig: names, aliases, ranges, unknown keys, and every distill YAML in configs/."""

from pathlib import Path

import pytest
import yaml

from data_loaders.errors import InputError
from distillation.config import DistillationConfig, load_distill_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
DISTILL_KEYS = {"teacher_model_name", "student_model_name", "kd_ratio", "alpha", "soft_targets"}


def test_design_note_names_and_alpha_alias():
    c = DistillationConfig(
        teacher_model_name="embedded", student_model_name="some/student", temperature=3.0, alpha=0.7
    )
    assert c.kd_ratio == 0.7 and c.temperature == 3.0
    assert DistillationConfig(kd_ratio=0.2).kd_ratio == 0.2
    assert load_distill_config(None, ["alpha=0.3"]).kd_ratio == 0.3
    assert load_distill_config(None, ["kd_ratio=0.4"]).kd_ratio == 0.4
    assert "kd_ratio" in c.model_dump()  # dumps use the canonical name


def test_temperature_is_the_kd_softmax_temperature():
    desc = DistillationConfig.model_fields["temperature"].description
    assert "KD softmax temperature" in desc and "not a sampling" in desc


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("bogus=1", "bogus"),
        ("teacher_adaptation.bogus=1", "teacher_adaptation.bogus"),
        ("alpha=1.5", "alpha"),
        ("temperature=0", "temperature"),
        ("top_k=0", "top_k"),
        ("divergence=kl", "divergence"),
        ("soft_targets=sometimes", "soft_targets"),
        ("student_layers=[]", "student_layers"),
        ("student_layers=[1,1]", "student_layers"),
        ("student_layers=0", "student_layers"),
        ("max_steps=0", "max_steps"),
        ("learning_rate=-1", "learning_rate"),
        ("teacher_adaptation.mode=half", "teacher_adaptation.mode"),
        ("quantization=4bit", "quantization"),
    ],
)
def test_bad_values_are_refused_naming_the_field(override, field):
    with pytest.raises(InputError) as e:
        load_distill_config(None, [override])
    assert field in str(e.value)


def test_teacher_adaptation_auto_is_on_for_the_embedded_teacher_only():
    assert DistillationConfig().adapt_teacher
    assert not DistillationConfig(teacher_model_name="/models/mine").adapt_teacher
    c = DistillationConfig(teacher_model_name="/models/mine", teacher_adaptation={"enabled": True})
    assert c.adapt_teacher
    assert not DistillationConfig(teacher_adaptation={"enabled": False}).adapt_teacher


def test_cache_dir_defaults_under_the_output_dir(tmp_path):
    assert DistillationConfig(output_dir=tmp_path).cache_dir == tmp_path / "teacher_cache"
    c = DistillationConfig(output_dir=tmp_path, cache={"dir": str(tmp_path / "c")})
    assert c.cache_dir == tmp_path / "c"


def test_every_distill_yaml_in_configs_loads():
    found = []
    for path in sorted(CONFIGS.glob("*.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        if not DISTILL_KEYS & set(data):
            continue  # another stage's config (e.g. prepare_cars.yaml)
        assert path.read_text().startswith("#"), f"{path.name} must start with a comment"
        load_distill_config(path)
        found.append(path.name)
    assert {"default.yaml", "tiny.yaml"} <= set(found)
