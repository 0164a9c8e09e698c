"""Casual rewrites: questions as people type them, never with a changed mention."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data_loaders.casual import column_variants, rewrite
from data_loaders.config import PrepareConfig
from data_loaders.config_loader import load_config
from data_loaders.dataset import build_dataset
from data_loaders.loaders import load_tables
from data_loaders.mentions import NameIndex
from data_loaders.program_text import mask_request, to_text
from data_loaders.templates import TEMPLATES

ROOT = Path(__file__).resolve().parents[2]
CARS_CONFIG = ROOT / "configs" / "prepare_cars.yaml"


def _pairs(share: float):
    cfg = load_config(PrepareConfig, CARS_CONFIG, overrides=[f"casual_share={share}",
                                                              "max_pairs=300"])
    table = load_tables([ROOT / "examples" / "data" / "cars.csv"], cfg.table)[0]
    return table, build_dataset([table], cfg).all_pairs()


def test_no_share_keeps_every_template_wording():
    _, pairs = _pairs(0.0)
    ends = [(p.question, TEMPLATES[p.template].text) for p in pairs]
    assert all(q[-1] == t[-1] for q, t in ends if not t.endswith("}"))
    assert all(q[0] == t[0] for q, t in ends if not t.startswith("{"))


def test_casual_questions_keep_their_mentions_and_programs():
    table, pairs = _pairs(1.0)
    index = NameIndex(table)
    casual = [p for p in pairs if p.question != p.question.capitalize() or p.question[-1]
              not in "?."]
    assert len(casual) > len(pairs) // 2
    for p in pairs:  # the stored target is the program of the question as written
        assert p.program_text is not None
        assert to_text(p.provenance.program, mask_request(p.question, index)) == p.program_text


def test_columns_are_named_by_alias_raw_name_or_unit():
    table, _ = _pairs(0.0)
    assert column_variants(table, "Miles_per_Gallon") == ["fuel economy", "miles per gallon",
                                                          "mpg"]
    assert column_variants(table, "Weight_in_lbs") == ["weight", "lbs"]  # "weight in lbs": dup
    assert column_variants(table, "Acceleration") == ["0-60 mph time", "acceleration"]


def test_a_typo_keeps_the_first_two_letters():
    rng = np.random.default_rng(0)
    for _ in range(50):
        q = rewrite("Which vehicle has the highest horsepower?", rng, typo_rate=1.0)
        words = q.lower().rstrip("?").split()
        changed = [w for w in words
                   if w not in "which vehicle has the highest horsepower".split()]
        assert len(changed) <= 1
        assert all(w[:2] in ("ve", "hi", "ho", "wh") for w in changed)
