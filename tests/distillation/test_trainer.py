"""The distillation recipe end to end on tiny random models (CPU, a few steps each)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from data_loaders.errors import InputError
from distillation.config import DistillationConfig
from distillation.history import read_history
from distillation.loop import TrainingDiverged, lr_factor
from distillation.losses import DistillationLoss
from distillation.tiny import build_tiny_model_dir
from distillation.trainer import run_distillation

ROOT = Path(__file__).resolve().parents[2]
TIMING = {"elapsed", "tokens_per_s"}
MAKES = ["ford pinto", "chevrolet malibu", "toyota corolla", "honda civic", "buick skylark",
         "plymouth fury", "amc hornet", "dodge dart", "datsun 510", "volvo 144"]


def make_pairs(n, seed):
    out = []
    for i in range(n):
        rows = [(seed * 7 + i + j * 3) % len(MAKES) for j in range(3)]
        ctx = "\n".join(f"[row {r}] Name: {MAKES[r]} | horsepower: {60 + 7 * r} hp" for r in rows)
        q = rows[i % 3]
        out.append({
            "id": f"{seed}-{i}", "task": "qa", "qtype": "lookup", "template": "lookup/0",
            "question": f"What is the horsepower of {MAKES[q]}?", "answer": f"{60 + 7 * q} hp",
            "context": ctx, "entities": [MAKES[q]],
            "provenance": {"source": "cars.csv", "table": "cars", "table_hash": "0",
                           "row_ids": rows, "columns": ["Name", "horsepower"], "program": {}},
        })
    return out


def build_assets(root: Path) -> dict:
    """A tiny teacher (4 layers, its own BPE tokenizer) and a train/val dataset under ``root``."""
    data = root / "data"
    data.mkdir()
    train, val = make_pairs(32, 0), make_pairs(8, 1)
    for name, pairs in (("train", train), ("val", val)):
        (data / f"{name}.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    texts = [f"{p['context']}\n{p['question']}\n{p['answer']}" for p in train]
    teacher = build_tiny_model_dir(root / "teacher", n_layers=4, texts=texts, vocab_size=320)
    # Attention dropout makes training consume the torch RNG, so exact resume must restore it.
    cfg_file = teacher / "config.json"
    cfg_file.write_text(json.dumps({**json.loads(cfg_file.read_text()), "attention_dropout": 0.1}))
    return {"data": data, "teacher": teacher, "texts": texts}


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return build_assets(tmp_path_factory.mktemp("assets"))


def config(assets, out, **kw):
    base = dict(
        teacher_model_name=str(assets["teacher"]), student_layers=2, data_dir=assets["data"],
        output_dir=out, max_steps=4, batch_size=4, eval_every=2, eval_samples=4,
        eval_max_new_tokens=4, save_every=2, device="cpu", learning_rate=1e-3, warmup_steps=1,
        top_k=16, teacher_adaptation={"enabled": False},
    )
    return DistillationConfig(**{**base, **kw})


def _no_timing(rows):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def test_recipe_smoke_writes_student_history_and_cache(assets, tmp_path):
    cfg = config(assets, tmp_path / "run", grad_accum_steps=2)
    result = run_distillation(cfg, progress=False)
    student = tmp_path / "run" / "student"
    for name in ("config.json", "model.safetensors", "README.md", "training_metadata.json"):
        assert (student / name).is_file(), name
    meta = json.loads((student / "training_metadata.json").read_text())
    assert meta["steps"] == 4 and meta["config"]["kd_ratio"] == 0.5
    assert json.loads((student / "config.json").read_text())["num_hidden_layers"] == 2
    rows = read_history(result.history_path)
    train = [r for r in rows if r["event"] == "train"]
    evals = [r for r in rows if r["event"] == "eval"]
    assert [r["step"] for r in train] == [1, 2, 3, 4] and [r["step"] for r in evals] == [2, 4]
    for r in train:
        assert {"loss", "ce", "kd", "lr", "tokens", "tokens_per_s", "elapsed"} <= set(r)
        assert r["kd"] > 0 and r["loss"] == pytest.approx(0.5 * r["ce"] + 0.5 * r["kd"], rel=1e-5)
    assert {"val_loss", "val_exact_match"} <= set(evals[0])
    assert (tmp_path / "run" / "teacher_cache" / "soft_targets.safetensors").is_file()
    assert result.exported == "best" and result.best["step"] in (2, 4)

    # A fresh run in the same dir starts over but reuses the teacher cache.
    cache_file = tmp_path / "run" / "teacher_cache" / "soft_targets.safetensors"
    mtime = cache_file.stat().st_mtime_ns
    run_distillation(cfg.model_copy(update={"max_steps": 2}), progress=False)
    assert cache_file.stat().st_mtime_ns == mtime
    assert [r["step"] for r in read_history(result.history_path) if r["event"] == "train"] == [1, 2]


def test_cached_full_vocab_kd_matches_online_kd(assets, tmp_path):
    kw = dict(kd_ratio=1.0, max_steps=1, eval_every=0, top_k=10_000, learning_rate=1e-4,
              routing_share=0.0)
    cached = run_distillation(config(assets, tmp_path / "a", **kw), progress=False)
    online = run_distillation(
        config(assets, tmp_path / "b", soft_targets="online", **kw), progress=False
    )
    kd_c = read_history(cached.history_path)[0]["kd"]
    kd_o = read_history(online.history_path)[0]["kd"]
    assert kd_c == pytest.approx(kd_o, rel=2e-2, abs=1e-4)
    assert not (tmp_path / "b" / "teacher_cache").exists()


CHILD = """
import json, sys, time
import torch
torch.set_num_threads(1)
import distillation.trainer as tr
from distillation.config import DistillationConfig
cfg = DistillationConfig.model_validate_json(sys.argv[1])
original = tr.append_history
def slow(path, row):  # slow steps down so the parent can kill the run mid-way
    original(path, row)
    time.sleep(0.1)
tr.append_history = slow
tr.run_distillation(cfg, progress=False)
"""


@pytest.mark.parametrize(
    "lora", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["full", "lora"]
)
def test_resume_after_sigkill_is_exact(assets, tmp_path, lora):
    kw = dict(max_steps=8, eval_every=3, save_every=2)
    if lora:  # only the adapters are checkpointed; the frozen base is rebuilt
        kw["student_lora"] = {"r": 4, "alpha": 8, "dropout": 0.2}
    ref = run_distillation(config(assets, tmp_path / "ref", **kw), progress=False)

    cfg = config(assets, tmp_path / "run", **kw)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, cfg.model_dump_json()], env=env,
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    history = tmp_path / "run" / "training_history.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if any(r.get("step", 0) >= 5 for r in read_history(history)):
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    state = json.loads((tmp_path / "run" / "checkpoints" / "last" / "state.json").read_text())
    assert state["step"] in (4, 6)  # killed between checkpoints, not at the end
    assert not (tmp_path / "run" / "student").exists()

    resumed = run_distillation(cfg, resume=True, progress=False)
    a = load_file(str(ref.student_dir / "model.safetensors"))
    b = load_file(str(resumed.student_dir / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    last_a = torch.load(tmp_path / "ref/checkpoints/last/model.pt", weights_only=True)
    last_b = torch.load(tmp_path / "run/checkpoints/last/model.pt", weights_only=True)
    assert all(torch.equal(last_a[k], last_b[k]) for k in last_a)
    assert _no_timing(read_history(ref.history_path)) == _no_timing(read_history(history))
    assert resumed.best == ref.best


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(assets, tmp_path, monkeypatch):
    calls = {"n": 0}
    original = DistillationLoss.forward

    def poisoned(self, *args, **kw):
        out = original(self, *args, **kw)
        calls["n"] += 1
        if calls["n"] == 3:  # the third optimizer step
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(DistillationLoss, "forward", poisoned)
    cfg = config(assets, tmp_path / "run", eval_every=0, save_every=2)
    with pytest.raises(TrainingDiverged, match=r"loss is nan at step 3.*\(step 2\)"):
        run_distillation(cfg, progress=False)
    last = tmp_path / "run" / "checkpoints" / "last"
    assert json.loads((last / "state.json").read_text())["step"] == 2
    weights = torch.load(last / "model.pt", weights_only=True)
    assert all(torch.isfinite(w).all() for w in weights.values())
    assert not (tmp_path / "run" / "student").exists()

    monkeypatch.setattr(DistillationLoss, "forward", original)
    result = run_distillation(cfg, resume=True, progress=False)
    assert result.steps == 4 and (result.student_dir / "model.safetensors").is_file()


def test_huge_learning_rate_diverges_with_a_clear_message(assets, tmp_path):
    cfg = config(assets, tmp_path / "run", learning_rate=1e30, warmup_steps=0, max_steps=6,
                 eval_every=0, save_every=1, max_grad_norm=None)
    with pytest.raises(TrainingDiverged, match="Lower learning_rate"):
        run_distillation(cfg, progress=False)


def test_hard_labels_only_needs_no_cache_and_logs_zero_kd(assets, tmp_path):
    result = run_distillation(config(assets, tmp_path / "run", kd_ratio=0.0, max_steps=2,
                                     eval_every=0), progress=False)
    rows = [r for r in read_history(result.history_path) if r["event"] == "train"]
    assert all(r["kd"] == 0 and r["loss"] == r["ce"] for r in rows)
    assert not (tmp_path / "run" / "teacher_cache").exists()


def test_early_stopping_on_patience(assets, tmp_path):
    cfg = config(assets, tmp_path / "run", learning_rate=1e-12, max_steps=20, eval_every=1,
                 early_stopping_patience=1, save_every=100)
    result = run_distillation(cfg, progress=False)
    assert result.stopped_early and result.steps == 2
    state = json.loads((tmp_path / "run/checkpoints/last/state.json").read_text())
    assert state["step"] == 2


def test_student_with_another_tokenizer_is_refused(assets, tmp_path):
    other = build_tiny_model_dir(tmp_path / "other", texts=["completely different words"] * 4)
    cfg = config(assets, tmp_path / "run", student_model_name=str(other))
    with pytest.raises(InputError, match="tokenizer differs"):
        run_distillation(cfg, progress=False)


def test_teacher_adaptation_is_saved_and_reused(assets, tmp_path):
    ad = {"enabled": True, "mode": "full", "max_steps": 2, "eval_every": 0, "batch_size": 4,
          "learning_rate": 1e-3}
    cfg = config(assets, tmp_path / "run", teacher_adaptation=ad, max_steps=1, eval_every=0)
    first = run_distillation(cfg, progress=False)
    adapted = tmp_path / "run" / "teacher_adapted"
    assert (adapted / "model.safetensors").is_file()
    assert first.extra["teacher_adaptation"]["steps"] == 2
    assert "val_exact_match" in first.extra["teacher_adaptation"]
    again = run_distillation(cfg, progress=False)
    assert again.extra["teacher_adaptation"]["reused"] is True

    lora = {**ad, "mode": "lora", "max_steps": 1, "lora": {"r": 4, "alpha": 8}}
    cfg = config(assets, tmp_path / "run", teacher_adaptation=lora, max_steps=1, eval_every=0)
    run_distillation(cfg, progress=False)
    assert not (adapted / "adapter_config.json").exists()  # merged into a plain model


def test_adaptation_memory_options_keep_the_update(assets, tmp_path):
    ad = {"enabled": True, "mode": "full", "max_steps": 2, "eval_every": 0, "batch_size": 4,
          "learning_rate": 1e-3}
    weights = {}
    for name, extra in (("plain", {}), ("ckpt", {"gradient_checkpointing": True}),
                        ("micro", {"micro_batch_size": 2})):
        cfg = config(assets, tmp_path / name, teacher_adaptation={**ad, **extra}, max_steps=1,
                     eval_every=0)
        result = run_distillation(cfg, progress=False)
        assert result.extra["teacher_adaptation"]["steps"] == 2
        weights[name] = load_file(tmp_path / name / "teacher_adapted" / "model.safetensors")
    # recomputing activations changes no number
    for key, value in weights["plain"].items():
        torch.testing.assert_close(weights["ckpt"][key], value)
    # micro-batches take other batches of the same seeded order, so the weights move too
    assert any(not torch.equal(weights["micro"][k], v) for k, v in weights["plain"].items())
    with pytest.raises(ValueError, match="micro_batch_size"):
        config(assets, tmp_path / "x", teacher_adaptation={**ad, "micro_batch_size": 3})


def test_lr_schedule_warms_up_then_decays_to_the_floor():
    f = [lr_factor(s, 4, 20, "cosine", 0.1) for s in range(20)]
    assert f[0] < f[1] < f[3] < f[4] == 1.0
    assert all(a >= b for a, b in zip(f[4:], f[5:], strict=False))
    assert lr_factor(20, 4, 20, "cosine", 0.1) == pytest.approx(0.1)
    assert lr_factor(10, 0, 20, "constant", 0.1) == 1.0


def test_best_checkpoint_needs_a_clear_exact_match_gain_else_lower_loss_wins():
    from distillation.trainer import is_better

    early = {"val_exact_match": 7 / 64, "val_loss": 3.46, "eval_samples": 64}
    late = {"val_exact_match": 5 / 64, "val_loss": 2.06, "eval_samples": 64}
    assert is_better(late, early)  # 2 answers of 64 is noise: the much lower loss wins
    assert not is_better(early, late)
    strong = {"val_exact_match": 30 / 64, "val_loss": 2.5, "eval_samples": 64}
    assert is_better(strong, late)  # a clear exact-match gain wins despite a higher loss
    assert not is_better(late, strong)
    assert is_better(late, None)


def test_qlora_student_trains_adapters_and_exports_a_merged_full_precision_model(
    assets, tmp_path, monkeypatch
):
    # bitsandbytes needs CUDA; with its config step stubbed out the named student loads in
    # full precision, and the rest of the QLoRA path runs: only adapters train and checkpoint,
    # and the export reloads the unquantized student and merges the adapters into it.
    import distillation.models as M

    asked = []
    monkeypatch.setattr(M, "check_quantization", lambda q, dev, key: asked.append((q, key)))
    student_dir = assets["teacher"]  # a named student sharing the teacher's tokenizer
    cfg = config(assets, tmp_path / "run", student_model_name=str(student_dir),
                 student_quantization="4bit", student_lora={"r": 4, "alpha": 8, "dropout": 0.0},
                 learning_rate=1e-2)
    result = run_distillation(cfg, progress=False)
    assert ("4bit", "student_quantization") in asked
    ckpt = torch.load(tmp_path / "run/checkpoints/last/model.pt", weights_only=True)
    assert ckpt and all("lora_" in k for k in ckpt)
    merged = load_file(str(result.student_dir / "model.safetensors"))
    base = load_file(str(student_dir / "model.safetensors"))
    assert not any("lora_" in k for k in merged) and merged.keys() == base.keys()
    assert any(not torch.equal(merged[k], base[k]) for k in base)  # the adapters were merged
    meta = json.loads((result.student_dir / "training_metadata.json").read_text())
    assert meta["format"] == "full_model"


@pytest.mark.parametrize("kw, key", [
    ({"student_quantization": "4bit", "student_lora": {"r": 4}}, "student_model_name"),
    ({"student_quantization": "4bit", "student_model_name": "x"}, "student_lora"),
])
def test_qlora_config_needs_a_named_student_and_lora(kw, key):
    with pytest.raises(ValueError, match=key):
        DistillationConfig(**kw)


def test_qlora_student_on_cpu_is_a_clear_error(assets, tmp_path):
    cfg = config(assets, tmp_path / "run", student_model_name=str(assets["teacher"]),
                 student_quantization="8bit", student_lora={"r": 4})
    with pytest.raises(InputError, match="^student_quantization: 8bit needs a CUDA GPU.*"
                       "set student_quantization to null"):
        run_distillation(cfg, progress=False)


def test_block_layer_selection_keeps_the_lowest_loss_choice(assets, tmp_path):
    from distillation.models import load_model_and_tokenizer
    from distillation.pruning import block_candidates, choose_layers

    model, _ = load_model_and_tokenizer(str(assets["teacher"]), dtype="float32", device="cpu")
    layers = model.model.layers
    fake = {"0,3": 5.0, "0,2,3": 1.0}
    seen = []

    def loss(m):
        key = ",".join(str(i) for i, layer in enumerate(layers) if layer in list(m.model.layers))
        seen.append((key, m.config.num_hidden_layers))
        return fake.get(key, 3.0)

    idx, scores = choose_layers(model, 3, loss)
    assert block_candidates(4, 3) == [[0, 2, 3], [0, 1, 3]]
    assert idx == [0, 2, 3] and set(scores) == {"0,2,3", "0,1,3"}  # even (0,2,3) scored once
    assert all(n == 3 for _, n in seen)
    assert model.model.layers is layers and model.config.num_hidden_layers == 4  # restored

    cfg = config(assets, tmp_path / "run", layer_selection="block", student_layers=3,
                 max_steps=1, eval_every=0)
    run_distillation(cfg, progress=False)
    kept = json.loads((tmp_path / "run" / "student" / "config.json").read_text())
    assert kept["num_hidden_layers"] == 3 and kept["pruned_from_layers"] in ([0, 2, 3], [0, 1, 3])
