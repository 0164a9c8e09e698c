"""Tests for distillation.models and the modules split from it: embedded, pruning, tiny."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from data_loaders.errors import InputError
from distillation import embedded, pruning
from distillation import models as M
from distillation.tiny import build_tiny_model_dir


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "m", n_layers=4)


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    return M.load_model_and_tokenizer(str(tiny_dir), dtype="float32", device="cpu")


def _ids(tok, text="Question: what is the price of row 2? Answer:"):
    return torch.tensor([tok.encode(text)])


# ---------------------------------------------------------------- devices, dtypes, specs


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("DISTILLGRAPH_CACHE", str(tmp_path / "c"))
    assert embedded.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("DISTILLGRAPH_CACHE")
    assert embedded.cache_dir() == Path.home() / ".cache" / "distillgraph"


def test_resolve_device_and_dtype():
    assert M.resolve_device("cpu").type == "cpu"
    assert M.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    cpu = torch.device("cpu")
    assert M.resolve_dtype("auto", cpu) is torch.float32
    assert M.resolve_dtype("bf16", cpu) is torch.bfloat16
    assert M.resolve_dtype("float16") is torch.float16
    with pytest.raises(InputError, match="dtype"):
        M.resolve_dtype("int3")
    with pytest.raises(InputError, match="device"):
        M.resolve_device("nonsense")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            M.resolve_device("cuda")


def test_resolve_model_spec(tiny_dir, tmp_path):
    assert M.resolve_model_spec(str(tiny_dir)) == (str(tiny_dir), None)
    gguf = tmp_path / "x.gguf"
    gguf.write_bytes(b"GGUF")
    assert M.resolve_model_spec(str(gguf)) == (str(tmp_path), "x.gguf")
    assert M.resolve_model_spec(str(tmp_path)) == (str(tmp_path), "x.gguf")  # one .gguf in dir
    (tmp_path / "y.gguf").write_bytes(b"GGUF")
    with pytest.raises(InputError, match="several"):
        M.resolve_model_spec(str(tmp_path))
    assert M.resolve_model_spec("HuggingFaceTB/SmolLM2-360M-Instruct") == (
        "HuggingFaceTB/SmolLM2-360M-Instruct",
        None,
    )
    for bad in ["./no/such/dir", "/no/such/model", "missing.gguf", "a/b/c", "bad name!"]:
        with pytest.raises(InputError, match="no such file"):
            M.resolve_model_spec(bad)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no config.json"):
        M.resolve_model_spec(str(empty))


def test_offline_hub_id_is_input_error():
    # tests run with HF_HUB_OFFLINE=1, so a Hub id that is not cached cannot load
    with pytest.raises(InputError, match="could not be loaded"):
        M.load_tokenizer("distillgraph-test/definitely-not-a-model")


# ---------------------------------------------------------------- tiny models and loading


def test_build_tiny_model_dir_is_fast_and_plain(tmp_path):
    start = time.perf_counter()
    d = build_tiny_model_dir(tmp_path / "t")
    assert time.perf_counter() - start < 5
    assert (d / "model.safetensors").exists() and (d / "config.json").exists()
    assert not list(tmp_path.glob(".t.*"))  # nothing left aside
    tok = AutoTokenizer.from_pretrained(d)
    model = AutoModelForCausalLM.from_pretrained(d)
    assert 259 < len(tok) <= 1000
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == (
        "<|im_start|>",
        "<|im_end|>",
        "<|im_end|>",
    )
    assert (tok.unk_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2)
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert prompt == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    ids = tok.encode(prompt)
    assert ids[0] == 1 and ids.count(2) == 1  # specials are single tokens
    text = "Zürich costs 12.5€ — ok?"
    assert tok.decode(tok.encode(text)) == text  # byte-level: anything round-trips
    assert model.config.vocab_size == len(tok)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert model.generation_config.eos_token_id == 2


def test_build_tiny_model_dir_deterministic_and_keeps_rng(tmp_path):
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = build_tiny_model_dir(tmp_path / "a", seed=1)
    assert torch.equal(torch.random.get_rng_state(), before)
    b = build_tiny_model_dir(tmp_path / "b", seed=1)
    c = build_tiny_model_dir(tmp_path / "c", seed=2)
    assert (a / "tokenizer.json").read_text() == (b / "tokenizer.json").read_text()
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert (a / "model.safetensors").read_bytes() != (c / "model.safetensors").read_bytes()


def test_load_model_and_tokenizer(tiny):
    model, tok = tiny
    assert not model.training
    assert model.dtype == torch.float32 and model.device.type == "cpu"
    assert tok.pad_token_id is not None
    assert M.shared_vocab_size(tok, model) == len(tok)


def test_load_tokenizer_sets_missing_pad(tiny_dir, tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    tok.pad_token = None
    tok.save_pretrained(tmp_path / "tok")
    (tmp_path / "tok" / "config.json").write_text((tiny_dir / "config.json").read_text())
    assert M.load_tokenizer(str(tmp_path / "tok")).pad_token == "<|im_end|>"


def test_load_model_refuses_bin_only(tmp_path, tiny_dir):
    d = tmp_path / "binonly"
    d.mkdir()
    (d / "config.json").write_text((tiny_dir / "config.json").read_text())
    (d / "pytorch_model.bin").write_bytes(b"not really")
    with pytest.raises(InputError, match="safetensors"):
        M.load_model(str(d))


def test_quantization_without_cuda_is_input_error(tiny_dir):
    with pytest.raises(InputError, match="quantization"):
        M.load_model(str(tiny_dir), quantization="4bit", device="cpu")
    with pytest.raises(InputError, match="quantization"):
        M.load_model(str(tiny_dir), quantization="3bit", device="cpu")


# ---------------------------------------------------------------- pruning


def test_evenly_spaced_layers():
    assert pruning.evenly_spaced_layers(30, 10) == [0, 3, 6, 10, 13, 16, 19, 23, 26, 29]
    assert pruning.evenly_spaced_layers(4, 4) == [0, 1, 2, 3]
    assert pruning.evenly_spaced_layers(4, 2) == [0, 3]
    assert pruning.evenly_spaced_layers(7, 1) == [0]
    for n in range(1, 40):
        for k in range(1, n + 1):
            idx = pruning.evenly_spaced_layers(n, k)
            assert len(idx) == k and idx == sorted(set(idx)) and idx[0] == 0
            assert k == 1 or idx[-1] == n - 1
    with pytest.raises(InputError):
        pruning.evenly_spaced_layers(4, 5)
    with pytest.raises(InputError):
        pruning.evenly_spaced_layers(4, 0)


def test_prune_all_layers_is_identity(tiny):
    model, tok = tiny
    student = pruning.prune_layers(model, [0, 1, 2, 3])
    ids = _ids(tok)
    with torch.no_grad():
        assert torch.equal(student(ids).logits, model(ids).logits)


def test_prune_copies_kept_layers_and_updates_config(tiny):
    model, tok = tiny
    before = {k: v.clone() for k, v in model.state_dict().items()}
    student = pruning.prune_layers(model, [0, 3])
    assert student.config.num_hidden_layers == 2 and len(student.model.layers) == 2
    assert model.config.num_hidden_layers == 4  # teacher untouched
    assert [layer.self_attn.layer_idx for layer in student.model.layers] == [0, 1]
    s = student.state_dict()
    for new, old in ((0, 0), (1, 3)):
        for name in ("self_attn.q_proj.weight", "mlp.down_proj.weight", "input_layernorm.weight"):
            assert torch.equal(
                s[f"model.layers.{new}.{name}"], before[f"model.layers.{old}.{name}"]
            )
    assert torch.equal(s["model.embed_tokens.weight"], before["model.embed_tokens.weight"])
    assert torch.equal(s["model.norm.weight"], before["model.norm.weight"])
    # no shared storage: training the student must not move the teacher
    assert (
        student.model.embed_tokens.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()
    )
    assert student.lm_head.weight.data_ptr() == student.model.embed_tokens.weight.data_ptr()
    with torch.no_grad():
        student.model.embed_tokens.weight.add_(1.0)
        student.model.layers[1].mlp.up_proj.weight.add_(1.0)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_pruned_generate_with_kv_cache_matches_no_cache(tiny):
    model, tok = tiny
    student = pruning.prune_layers(model, 3)
    assert [layer.self_attn.layer_idx for layer in student.model.layers] == [0, 1, 2]
    ids = _ids(tok)
    kw = {"max_new_tokens": 8, "do_sample": False, "pad_token_id": tok.pad_token_id}
    with_cache = student.generate(ids, use_cache=True, **kw)
    without = student.generate(ids, use_cache=False, **kw)
    assert with_cache.shape[1] > ids.shape[1]
    assert torch.equal(with_cache, without)


def test_pruned_model_saves_and_reloads(tiny, tmp_path):
    model, tok = tiny
    student = pruning.prune_layers(model, [1, 2])
    student.save_pretrained(tmp_path / "s")
    back = AutoModelForCausalLM.from_pretrained(tmp_path / "s")
    assert back.config.num_hidden_layers == 2
    ids = _ids(tok)
    with torch.no_grad():
        assert torch.equal(back(ids).logits, student(ids).logits)


def test_prune_bad_layer_lists(tiny):
    model, _ = tiny
    with pytest.raises(InputError, match="empty"):
        pruning.prune_layers(model, [])
    with pytest.raises(InputError, match="out of range"):
        pruning.prune_layers(model, [0, 4])
    with pytest.raises(InputError, match="out of range"):
        pruning.prune_layers(model, [-1, 2])
    with pytest.raises(InputError, match="duplicated"):
        pruning.prune_layers(model, [1, 1])
    with pytest.raises(InputError, match="cannot keep"):
        pruning.prune_layers(model, 5)


def test_prune_qwen2_updates_layer_types():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(
        vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, use_sliding_window=True, sliding_window=2,
        layer_types=["full_attention", "sliding_attention", "full_attention", "sliding_attention"],
    )  # fmt: skip
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg).eval()
    student = pruning.prune_layers(model, [1, 2])
    assert student.config.layer_types == ["sliding_attention", "full_attention"]
    assert [layer.self_attn.layer_idx for layer in student.model.layers] == [0, 1]
    ids = torch.tensor([[3, 5, 7, 9]])
    full = pruning.prune_layers(model, 4)
    with torch.no_grad():
        assert torch.equal(full(ids).logits, model(ids).logits)
    assert student.generate(ids, max_new_tokens=3, do_sample=False).shape == (1, 7)


def test_prune_unsupported_architecture():
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=64))
    with pytest.raises(InputError, match="pruning supports"):
        pruning.prune_layers(gpt2, 1)


# ---------------------------------------------------------------- tokenizers and vocab


def test_check_tokenizers_compatible(tiny, tmp_path):
    _, tok = tiny
    M.check_tokenizers_compatible(tok, AutoTokenizer.from_pretrained(tok.name_or_path))
    other_dir = build_tiny_model_dir(
        tmp_path / "other", texts=["zebra quartz jumps over lazy vexing fjords 987654"] * 3
    )
    other = AutoTokenizer.from_pretrained(other_dir)
    with pytest.raises(InputError, match="kd_ratio=0") as e:
        M.check_tokenizers_compatible(tok, other, teacher_name="T", student_name="S")
    assert "S tokenizer differs from T" in str(e.value)


def test_check_tokenizers_special_ids(tiny):
    _, tok = tiny
    import copy

    other = copy.deepcopy(tok)
    other.eos_token = "<|endoftext|>"
    with pytest.raises(InputError, match="eos_token_id"):
        M.check_tokenizers_compatible(tok, other)


def test_shared_vocab_size_padded_and_short(tiny_dir):
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    n = len(tok)
    model.resize_token_embeddings(n + 1, pad_to_multiple_of=64)
    assert model.get_output_embeddings().weight.shape[0] % 64 == 0
    assert model.get_output_embeddings().weight.shape[0] > n
    assert M.shared_vocab_size(tok, model) == n
    small = AutoModelForCausalLM.from_pretrained(tiny_dir)
    small.resize_token_embeddings(n - 10)
    with pytest.raises(InputError, match="output logits"):
        M.shared_vocab_size(tok, model, small)


# ---------------------------------------------------------------- LoRA


def test_apply_lora_trains_only_adapters(tiny_dir):
    model = M.load_model(str(tiny_dir), device="cpu")
    peft_model = M.apply_lora(model, r=4, alpha=8)
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert any("q_proj" in n for n in trainable) and any("down_proj" in n for n in trainable)
    assert not any("lm_head" in n for n in trainable)
    with pytest.raises(InputError, match="lora"):
        M.apply_lora(M.load_model(str(tiny_dir), device="cpu"), r=0)


# ---------------------------------------------------------------- the real embedded SmolLM2


@pytest.mark.slow
def test_embedded_teacher_converts_generates_and_reloads(monkeypatch, tmp_path):
    monkeypatch.setenv("DISTILLGRAPH_CACHE", str(tmp_path / "cache"))
    d = embedded.embedded_teacher_dir()
    assert d == tmp_path / "cache" / "smollm2-135m-instruct"
    start = time.perf_counter()
    assert embedded.embedded_teacher_dir() == d
    assert time.perf_counter() - start < 0.5  # cached
    assert not [p for p in d.parent.iterdir() if p.name.endswith(".tmp")]
    assert M.resolve_model_spec("embedded") == (str(d), None)

    model = AutoModelForCausalLM.from_pretrained(d)
    tok = AutoTokenizer.from_pretrained(d)
    assert getattr(model.config, "quantization_config", None) is None
    assert model.config.tie_word_embeddings and model.config.num_hidden_layers == 30
    assert "<|im_start|>" in tok.chat_template
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    enc = tok.apply_chat_template(
        msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    out = model.generate(**enc, max_new_tokens=20, do_sample=False)
    answer = tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer

    model.save_pretrained(tmp_path / "again")
    back = AutoModelForCausalLM.from_pretrained(tmp_path / "again")
    with torch.no_grad():
        assert torch.equal(back(**enc).logits, model(**enc).logits)


@pytest.mark.slow
def test_pruned_embedded_student_param_count_and_export(tmp_path):
    from distillation.export import export_model

    teacher, tok = M.load_model_and_tokenizer("embedded", device="cpu")
    cfg = teacher.config
    n_teacher = sum(p.numel() for p in teacher.parameters())
    # tied LM head: embeddings + final norm + 30 identical decoder layers
    per_layer = (n_teacher - cfg.vocab_size * cfg.hidden_size - cfg.hidden_size) // 30
    student = pruning.prune_layers(teacher, 10)
    n_student = sum(p.numel() for p in student.parameters())
    assert n_student == cfg.vocab_size * cfg.hidden_size + cfg.hidden_size + 10 * per_layer
    assert n_teacher == 134_515_008 and n_student == 63_713_088

    out = export_model(student, tok, tmp_path / "student")
    back = AutoModelForCausalLM.from_pretrained(out)
    assert back.config.num_hidden_layers == 10
    assert sum(p.numel() for p in back.parameters()) == n_student


def test_train_top_layers_freezes_the_rest_and_backward_stops_there(tiny_dir):
    model = M.load_model(str(tiny_dir), dtype="float32", device="cpu")
    n_layers = model.config.num_hidden_layers
    n = pruning.train_top_layers(model, 1)
    top = model.model.layers[n_layers - 1]
    expected = sum(p.numel() for p in top.parameters()) + model.model.norm.weight.numel()
    assert n == expected
    ids = torch.tensor([[5, 6, 7, 8]])
    model(input_ids=ids, labels=ids).loss.backward()
    assert all(p.grad is not None for p in top.parameters())
    assert all(p.grad is None for p in model.model.layers[0].parameters())
    assert model.model.embed_tokens.weight.grad is None
    with pytest.raises(InputError, match="train_top_layers"):
        pruning.train_top_layers(model, n_layers + 1)


def test_merge_lora_full_precision_matches_the_adapted_model(tiny_dir):
    model, _ = M.load_model_and_tokenizer(str(tiny_dir), device="cpu")
    peft = M.apply_lora(model, r=4, alpha=8, dropout=0.0)
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    ids = torch.tensor([[5, 9, 14, 3, 7]])
    expected = peft(input_ids=ids).logits
    merged = M.merge_lora_full_precision(peft, str(tiny_dir), dtype="float32", device="cpu")
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    torch.testing.assert_close(merged(input_ids=ids).logits, expected, atol=1e-4, rtol=1e-4)
