"""Tests for distillation.export: plain round trip, LoRA merge, adapters, atomicity, the card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from distillation import export as E
from distillation import models as M
from distillation.tiny import build_tiny_model_dir


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "m")


@pytest.fixture
def tiny(tiny_dir):
    return M.load_model_and_tokenizer(str(tiny_dir), device="cpu")


def _logits(model, tok):
    ids = torch.tensor([tok.encode("Question: which city? Answer: Paris")])
    with torch.no_grad():
        return model(ids).logits


def _lora_with_nonzero_update(model):
    peft_model = M.apply_lora(model, r=4, alpha=8, dropout=0.0)
    torch.manual_seed(0)
    with torch.no_grad():  # LoRA B starts at zero; give it weights so merging changes something
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.05)
    return peft_model.eval()


def test_export_plain_round_trip(tiny, tmp_path):
    model, tok = tiny
    card = {"teacher": "embedded", "base_model": "embedded", "metrics": {"val_loss": 1.2345}}
    out = E.export_model(model, tok, tmp_path / "out", card=card, metadata={"steps": 4})
    names = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md"} <= names
    assert {"generation_config.json", "training_metadata.json", "model_card.json"} <= names
    assert not any(n.endswith(".bin") for n in names)
    back = AutoModelForCausalLM.from_pretrained(out)
    back_tok = AutoTokenizer.from_pretrained(out)
    assert torch.equal(_logits(back, back_tok), _logits(model, tok))
    assert back_tok.chat_template == tok.chat_template
    assert back.generation_config.eos_token_id == tok.eos_token_id
    meta = json.loads((out / "training_metadata.json").read_text())
    assert meta["steps"] == 4 and meta["format"] == "full_model" and not meta["lora_merged"]
    readme = (out / "README.md").read_text()
    assert readme.startswith("---\nlibrary_name: transformers\n")
    assert "base_model: HuggingFaceTB/SmolLM2-135M-Instruct" in readme
    assert "- distillgraph" in readme and "| val_loss | 1.234 |" in readme


def test_export_merges_lora(tiny, tmp_path):
    model, tok = tiny
    base_logits = _logits(model, tok)
    peft_model = _lora_with_nonzero_update(model)
    before = _logits(peft_model, tok)
    assert not torch.allclose(before, base_logits)  # the adapter matters
    out = E.export_model(peft_model, tok, tmp_path / "merged")
    assert not (out / "adapter_config.json").exists()
    # the caller's model is untouched (still a PeftModel with unmerged adapters)
    assert torch.equal(_logits(peft_model, tok), before)
    back = AutoModelForCausalLM.from_pretrained(out)
    assert not any("lora" in n for n, _ in back.named_parameters())
    torch.testing.assert_close(_logits(back, tok), before, rtol=1e-5, atol=1e-5)
    assert json.loads((out / "training_metadata.json").read_text())["lora_merged"] is True


def test_export_adapter_only(tiny, tiny_dir, tmp_path):
    model, tok = tiny
    peft_model = _lora_with_nonzero_update(model)
    out = E.export_model(peft_model, tok, tmp_path / "adapter", merge_lora=False)
    assert (out / "adapter_config.json").exists() and (out / "adapter_model.safetensors").exists()
    assert str(tiny_dir) in (out / "README.md").read_text()
    meta = json.loads((out / "training_metadata.json").read_text())
    assert meta["format"] == "lora_adapter" and meta["base_model"] == str(tiny_dir)
    back = AutoModelForCausalLM.from_pretrained(out)  # base found via adapter_config.json
    torch.testing.assert_close(_logits(back, tok), _logits(peft_model, tok), rtol=1e-5, atol=1e-5)


def test_export_is_atomic(tiny, tmp_path, monkeypatch):
    model, tok = tiny
    dest = tmp_path / "out"

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(E, "write_model_card", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        E.export_model(model, tok, dest)
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []  # no temp dir left behind

    monkeypatch.undo()
    E.export_model(model, tok, dest, metadata={"run": 1})
    monkeypatch.setattr(E, "write_model_card", boom)
    with pytest.raises(RuntimeError):
        E.export_model(model, tok, dest, metadata={"run": 2})
    # the earlier export survives a failed overwrite
    assert json.loads((dest / "training_metadata.json").read_text())["run"] == 1


def test_model_card_update_round_trip(tmp_path):
    card = {
        "title": "Tiny student",
        "teacher": "embedded",
        "base_model": str(tmp_path),  # a local path is no Hub id: not in the front matter
        "data": {"dataset": "data/titanic", "train": 120},
        "config": {"kd_ratio": 0.5, "temperature": 2.0},
    }
    E.write_model_card(tmp_path, card)
    readme = (tmp_path / "README.md").read_text()
    assert "base_model:" not in readme.split("---")[1]
    assert "kd_ratio: 0.5" in readme and "- **dataset:** data/titanic" in readme

    card = E.read_model_card(tmp_path)
    card["headline"] = [
        {"model": "teacher", "exact_match": 0.61},
        {"model": "student", "exact_match": 0.58},
    ]
    E.write_model_card(tmp_path, card)
    readme = (tmp_path / "README.md").read_text()
    assert "## Headline results" in readme
    assert "| model | exact_match |" in readme and "| student | 0.58 |" in readme
    assert E.read_model_card(tmp_path / "nothing") == {}
