"""Tests for distillation.gguf_export and gguf_check: the GGUF file a tiny student exports to.

Each file is loaded back with transformers (``gguf_file=``), whose loader undoes llama.cpp's
layout, so a wrong name, permutation or tokenizer field shows up as different logits or ids.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from gguf import GGUFReader
from transformers import AutoModelForCausalLM, AutoTokenizer

from app.cli import main
from data_loaders.errors import InputError
from distillation import gguf_export as G
from distillation.gguf_check import DEFAULT_CHECK_MESSAGES, check_roundtrip, dataset_messages
from distillation.tiny import build_tiny_model_dir

TEXTS = [
    "How many rows have a price greater than 5?",
    "<|im_start|>user\nWhich city has the highest total?<|im_end|>\n<|im_start|>assistant\n",
    "Numbers 1 22 333 and 2024-01-31, café naïve ünïcode",
    "  leading spaces\tand\ttabs\n\nnewlines",
]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    """A tiny student whose attention is sharp enough that q/k rows in the wrong order show.

    At init (std 0.02) attention is nearly uniform and a mis-permuted q/k barely moves the
    logits; scaled up, the scores and so the rotary positions decide what each token reads.
    """
    path = build_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "student", n_layers=2)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.q_proj.weight.mul_(8.0)
            layer.self_attn.k_proj.weight.mul_(8.0)
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def f16(tiny_dir) -> G.GgufExport:
    return G.export_gguf(tiny_dir, quant="f16", progress=False)


@pytest.fixture(scope="module")
def q8(tiny_dir) -> G.GgufExport:
    return G.export_gguf(tiny_dir, quant="q8_0", progress=False)


def _load(export: G.GgufExport):
    kw = {"gguf_file": export.path.name}
    model = AutoModelForCausalLM.from_pretrained(export.path.parent, dtype=torch.float32, **kw)
    return model.eval(), AutoTokenizer.from_pretrained(export.path.parent, **kw)


def _logits(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0]


def test_permutation_is_undone_by_transformers_loader():
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    w = np.arange(8 * 16 * 3, dtype=np.float32).reshape(8 * 16, 3)  # 8 heads of dim 16
    permuted = G.permute_qk(w, 8)
    assert not np.array_equal(permuted, w)
    undo = LlamaTensorProcessor(config={"num_attention_heads": 8, "num_key_value_heads": 8})
    assert np.array_equal(undo._reverse_permute_weights(permuted, 8, 8), w)


def test_f16_file_layout(f16, tiny_dir):
    assert f16.path == tiny_dir.parent / "student-f16" / "student-f16.gguf"
    reader = GGUFReader(f16.path)
    fields = {k: f.contents() for k, f in reader.fields.items()}
    assert fields["general.architecture"] == "llama"
    assert fields["llama.block_count"] == 2
    assert fields["llama.attention.head_count"] == 4
    assert fields["llama.attention.head_count_kv"] == 2
    assert fields["tokenizer.ggml.model"] == "gpt2"
    assert fields["tokenizer.ggml.pre"] == "gpt2"
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    assert len(fields["tokenizer.ggml.tokens"]) == len(tok)
    assert fields["tokenizer.ggml.tokens"][:3] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    assert fields["tokenizer.ggml.token_type"][:4] == [3, 3, 3, 1]  # CONTROL x3, then NORMAL
    assert fields["tokenizer.ggml.merges"]
    assert (fields["tokenizer.ggml.bos_token_id"], fields["tokenizer.ggml.eos_token_id"]) == (1, 2)
    assert fields["tokenizer.chat_template"] == tok.chat_template
    names = {t.name: t.tensor_type.name for t in reader.tensors}
    expected = {"token_embd.weight", "output_norm.weight"} | {
        f"blk.{i}.{leaf}" for i in range(2) for leaf in G._LAYER_TENSORS.values()
    }
    assert set(names) == expected  # tied embeddings: no output.weight
    assert names["blk.0.attn_q.weight"] == "F16" and names["blk.0.attn_norm.weight"] == "F32"


def test_f16_logits_tokenizer_and_template_match(f16, tiny_dir):
    src = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32).eval()
    src_tok = AutoTokenizer.from_pretrained(tiny_dir)
    back, back_tok = _load(f16)
    for text in TEXTS:
        assert back_tok(text)["input_ids"] == src_tok(text)["input_ids"], text
        assert back_tok.decode(back_tok(text)["input_ids"]) == text
    chat = [{"role": "user", "content": "What is the price of row 2?"}]
    kw = {"tokenize": False, "add_generation_prompt": True}
    assert back_tok.apply_chat_template(chat, **kw) == src_tok.apply_chat_template(chat, **kw)
    ids = src_tok(TEXTS[1])["input_ids"]
    diff = (_logits(src, ids) - _logits(back, ids)).abs().max().item()
    assert diff < 5e-3  # f16 rounding of the weights only (measured 4e-4; wrong q/k order: 0.4)


def test_unpermuted_qk_would_be_caught(tiny_dir, tmp_path, monkeypatch):
    """Without the permutation the file loads but computes something else: the check can fail."""
    monkeypatch.setattr(G, "permute_qk", lambda w, n: w)
    broken = G.export_gguf(tiny_dir, tmp_path / "x" / "broken.gguf", quant="f16", progress=False)
    src = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32).eval()
    back, tok = _load(broken)
    ids = tok(TEXTS[0])["input_ids"]
    assert (_logits(src, ids) - _logits(back, ids)).abs().max().item() > 0.1


def test_q8_0_is_smaller_loads_and_stays_close(q8, f16, tiny_dir):
    reader = GGUFReader(q8.path)
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert types["blk.1.ffn_down.weight"] == "Q8_0" and types["output_norm.weight"] == "F32"
    assert q8.tensor_types == {"Q8_0": 15, "F32": 5}
    assert q8.size_bytes < 0.7 * f16.size_bytes
    result = check_roundtrip(tiny_dir, q8.path)
    assert result["n"] == len(DEFAULT_CHECK_MESSAGES)
    assert result["token_ids_equal"] and result["chat_template_equal"]
    assert result["max_abs_logit_diff"] < 0.1


def test_modelfile_is_written_beside_the_file(q8):
    text = q8.modelfile.read_text()
    assert q8.modelfile == q8.path.parent / "Modelfile"
    assert f"FROM ./{q8.path.name}" in text
    assert "<|im_start|>{{ .Role }}" in text and 'PARAMETER stop "<|im_end|>"' in text
    assert "PARAMETER temperature 0" in text


def test_no_temp_file_left_and_overwrite(tiny_dir, tmp_path):
    out = tmp_path / "o" / "m.gguf"
    G.export_gguf(tiny_dir, out, quant="f16", progress=False)
    G.export_gguf(tiny_dir, out, quant="q8_0", progress=False)  # replaces the f16 file
    assert sorted(p.name for p in out.parent.iterdir()) == ["Modelfile", "m.gguf"]
    assert GGUFReader(out).fields["general.file_type"].contents() == 7  # MOSTLY_Q8_0


def _dataset(path: Path) -> Path:
    path.mkdir()
    rows = [
        {"question": f"What is the price of row {i}?", "answer": str(i), "context": "",
         "program_input": f"table t\nmentions: E1 row\nrequest: price of E1 ({i})",
         "program_text": "lookup E1 price"}
        for i in range(3)
    ]
    (path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_dataset_messages_are_program_prompts(tmp_path):
    chats, source = dataset_messages(_dataset(tmp_path / "d"), "test", 2)
    assert len(chats) == 2 and source.startswith("program prompts of ")
    assert chats[0][0]["role"] == "system" and "request: price of E1 (0)" in chats[0][1]["content"]


def test_cli_export_with_roundtrip_and_card(tiny_dir, tmp_path, capsys):
    data = _dataset(tmp_path / "data")
    out = tmp_path / "g" / "tiny.gguf"
    argv = ["export", "--model", str(tiny_dir), "--quant", "f16", "--out", str(out),
            "--data", str(data), "--check-examples", "3", "--max-new-tokens", "4", "-q"]
    assert main(argv) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert "3/3" in err and "tokenizer ids equal" in err
    readme = (out.parent / "README.md").read_text()
    assert readme.startswith("---\nlibrary_name: gguf\n")
    assert "| greedy answers equal | 3/3 program prompts of" in readme
    assert "| tokenizer ids equal | True |" in readme
    assert json.loads((out.parent / "model_card.json").read_text())["library_name"] == "gguf"


def test_readme_export_command_as_printed(tiny_dir, tmp_path, capsys):
    """`export --model DIR --format gguf --quant q8_0 --data DIR`: the default folder beside."""
    student = tmp_path / "distill" / "student"
    shutil.copytree(tiny_dir, student)
    before = sorted(p.name for p in student.iterdir())
    data = _dataset(tmp_path / "data")
    argv = ["export", "--model", str(student), "--format", "gguf", "--quant", "q8_0",
            "--data", str(data), "--max-new-tokens", "4"]
    assert main(argv) == 0, capsys.readouterr().err
    folder = tmp_path / "distill" / "student-q8_0"
    assert sorted(p.name for p in folder.iterdir()) == [
        "Modelfile", "README.md", "model_card.json", "student-q8_0.gguf"]
    assert "FROM ./student-q8_0.gguf" in (folder / "Modelfile").read_text()
    assert "program prompts of" in (folder / "README.md").read_text()
    assert sorted(p.name for p in student.iterdir()) == before  # the student is left alone


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--quant", "q4_0"], "--quant q4_0: unknown"),
        (["--out", "x.bin"], "must be a file path ending in .gguf"),
        (["--format", "onnx"], "--format onnx: unknown"),
        (["--format", "hf"], "add --push-to-hub"),
    ],
)
def test_bad_options_exit_2(tiny_dir, extra, needle, capsys):
    assert main(["export", "--model", str(tiny_dir), "--no-check", *extra]) == 2
    assert needle in _one_error_line(capsys)


def test_bad_model_dirs_exit_2(tiny_dir, tmp_path, capsys):
    assert main(["export", "--model", str(tmp_path / "nope")]) == 2
    assert "no such directory" in _one_error_line(capsys)
    data = _dataset(tmp_path / "data")
    (data / "manifest.json").write_text("{}")
    assert main(["export", "--model", str(data)]) == 2
    assert "dataset directory" in _one_error_line(capsys)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    assert main(["export", "--model", str(adapter)]) == 2
    assert "LoRA adapter only" in _one_error_line(capsys)
    other = tmp_path / "other"
    shutil.copytree(tiny_dir, other)
    cfg = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**cfg, "model_type": "mistral"}))
    assert main(["export", "--model", str(other)]) == 2
    assert "model_type 'mistral' is not supported" in _one_error_line(capsys)
    assert main(["export", "--model", str(tiny_dir), "--out", str(tiny_dir / "m.gguf")]) == 2
    assert "inside the model directory" in _one_error_line(capsys)
    assert main(["export", "--model", str(tiny_dir), "--data", str(tmp_path / "nodata")]) == 2
    assert "--data" in _one_error_line(capsys)


def test_non_bpe_tokenizer_is_refused(tiny_dir):
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    state = json.loads(tok.backend_tokenizer.to_str())
    state["pre_tokenizer"] = {"type": "Whitespace"}
    from tokenizers import Tokenizer

    tok._tokenizer = Tokenizer.from_str(json.dumps(state))
    with pytest.raises(InputError, match="pre-tokenizer 'Whitespace'"):
        G.tokenizer_fields(tok, len(tok), "--model x")
    with pytest.raises(InputError, match="embedding rows"):
        G.tokenizer_fields(AutoTokenizer.from_pretrained(tiny_dir), 10, "--model x")


def test_extra_embedding_rows_become_unused_pad_tokens(tiny_dir):
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    fields = G.tokenizer_fields(tok, len(tok) + 2, "--model x")
    assert fields["tokens"][-2:] == [f"[PAD{len(tok)}]", f"[PAD{len(tok) + 1}]"]
    assert fields["types"][-1] == 5  # UNUSED
    assert fields["add_bos"] is False


def test_untied_head_is_written_as_output(tiny_dir, tmp_path):
    untied = tmp_path / "untied"
    model = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32)
    model.config.tie_word_embeddings = False
    torch.manual_seed(1)
    model.lm_head.weight = torch.nn.Parameter(torch.randn_like(model.lm_head.weight) * 0.05)
    model.save_pretrained(untied)
    AutoTokenizer.from_pretrained(tiny_dir).save_pretrained(untied)
    src = AutoModelForCausalLM.from_pretrained(untied, dtype=torch.float32).eval()
    assert not torch.equal(src.lm_head.weight, src.model.embed_tokens.weight)
    exp = G.export_gguf(untied, quant="f16", progress=False)
    assert "output.weight" in {t.name for t in GGUFReader(exp.path).tensors}
    back, tok = _load(exp)
    ids = tok(TEXTS[0])["input_ids"]
    assert (_logits(src, ids) - _logits(back, ids)).abs().max().item() < 5e-3
