"""The CUDA paths, checked and measured on a GPU (refuses with a message on a machine without one).

    pip install -e '.[quant]'          # bitsandbytes, for the quantized checks
    python benchmarks/bench_gpu.py [--steps 30] [--only bf16 quant qlora multi_gpu]

Each check is recorded as ``ok`` or its error, with its figures, in
benchmarks/results/gpu.json:

- ``bf16``: `resolve_dtype("auto")` gives bfloat16 on this GPU; the embedded recipe (teacher
  adaptation, cached soft targets, 7-layer student) runs on CUDA under bf16 autocast: s/step,
  training tokens/s, peak GPU memory, val exact match.
- ``quant``: the teacher loaded through bitsandbytes in 4-bit (NF4) and 8-bit: memory footprint
  and greedy answers against the bf16 teacher's on val pairs (agreement and exact match).
- ``qlora``: a named student loaded in 4-bit with LoRA adapters (``student_quantization``)
  trains, and its export is a plain full-precision model that `AutoModelForCausalLM` loads
  without a quantization config.
- ``multi_gpu``: ``accelerate launch --multi_gpu`` over every GPU runs the recipe data parallel
  (skipped with one GPU; the CPU counterpart is ``tests/distillation/test_multiprocess.py``).

The dataset is the cars sample, prepared by ``bench_distill.py prepare`` (run here if missing).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_distill import DATA, ROOT, WORK, load_split, phase_prepare  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "gpu.json"
CHECKS = ("bf16", "quant", "qlora", "multi_gpu")


def _train_figures(history: Path) -> dict:
    from distillation.history import read_history

    rows = read_history(history)
    train = [r for r in rows if r["event"] == "train"][1:]  # step 1 warms up
    evals = [r for r in rows if r["event"] == "eval"]
    return {
        "steps": len(train) + 1,
        "median_s_per_step": statistics.median(
            b["elapsed"] - a["elapsed"] for a, b in zip(train, train[1:], strict=False)
        ) if len(train) > 1 else None,
        "median_tokens_per_s": statistics.median(r["tokens_per_s"] for r in train) if train
        else None,
        "last_val_exact_match": evals[-1]["val_exact_match"] if evals else None,
    }


def check_bf16(args) -> dict:
    import torch

    from distillation.config import DistillationConfig
    from distillation.models import resolve_dtype
    from distillation.trainer import run_distillation

    auto = resolve_dtype("auto", torch.device("cuda"))
    torch.cuda.reset_peak_memory_stats()
    cfg = DistillationConfig(
        data_dir=DATA, output_dir=WORK / "gpu_bf16", device="cuda", dtype="auto",
        max_steps=args.steps, batch_size=8, eval_every=args.steps, eval_samples=32,
        teacher_adaptation={"enabled": True, "max_steps": args.steps, "eval_every": 0},
    )
    t0 = time.perf_counter()
    result = run_distillation(cfg, progress=False)
    return {
        "auto_dtype": str(auto), "ok_bf16": auto == torch.bfloat16,
        "wall_seconds": time.perf_counter() - t0,
        "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20,
        **_train_figures(result.history_path),
    }


def check_quant(args) -> dict:
    import torch

    from distillation.embedded import embedded_teacher_dir
    from distillation.generation import generate_answers
    from distillation.metrics import exact_match
    from distillation.models import load_model_and_tokenizer

    base = str(embedded_teacher_dir())
    val = load_split("val", args.samples)
    out = {}
    ref = None
    for quant in (None, "4bit", "8bit"):
        model, tok = load_model_and_tokenizer(base, dtype="auto", device="cuda",
                                              quantization=quant)
        answers = generate_answers(model, tok, val, max_new_tokens=32, batch_size=8)
        ref = answers if quant is None else ref
        out[quant or "bf16"] = {
            "memory_footprint_mib": model.get_memory_footprint() / 2**20,
            "exact_match": sum(map(exact_match, answers, (p["answer"] for p in val))) / len(val),
            "agreement_with_bf16": sum(a == b for a, b in zip(answers, ref, strict=True))
            / len(val),
        }
        del model
        torch.cuda.empty_cache()
    return {"samples": len(val), **out}


def check_qlora(args) -> dict:
    from transformers import AutoModelForCausalLM

    from distillation.config import DistillationConfig
    from distillation.embedded import embedded_teacher_dir
    from distillation.trainer import run_distillation

    cfg = DistillationConfig(
        data_dir=DATA, output_dir=WORK / "gpu_qlora", device="cuda",
        student_model_name=str(embedded_teacher_dir()), student_quantization="4bit",
        student_lora={"r": 16}, max_steps=args.steps, batch_size=8, eval_every=args.steps,
        eval_samples=32, teacher_adaptation={"enabled": False},
    )
    result = run_distillation(cfg, progress=False)
    config = json.loads((result.student_dir / "config.json").read_text(encoding="utf-8"))
    model = AutoModelForCausalLM.from_pretrained(result.student_dir)
    return {
        "exported_has_quantization_config": "quantization_config" in config,
        "exported_dtype": str(next(model.parameters()).dtype),
        "exported_parameters": sum(p.numel() for p in model.parameters()),
        **_train_figures(result.history_path),
    }


def check_multi_gpu(args) -> dict:
    import torch

    from distillation.history import read_history

    n = torch.cuda.device_count()
    if n < 2:
        return {"skipped": f"{n} GPU: data parallel needs at least 2"}
    out_dir = WORK / "gpu_ddp"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
           str(n), "-m", "app.cli", "distill", "-q", f"data_dir={DATA}",
           f"output_dir={out_dir}", f"max_steps={args.steps}", "eval_every=0",
           "teacher_adaptation.enabled=false", "device=cuda"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-2000:])
    train = [r for r in read_history(out_dir / "training_history.jsonl") if r["event"] == "train"]
    return {"gpus": n, "wall_seconds": time.perf_counter() - t0, "steps": len(train),
            "median_tokens_per_s": statistics.median(r["tokens_per_s"] for r in train)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--steps", type=int, default=30, help="training steps per check")
    p.add_argument("--samples", type=int, default=64, help="val pairs for the quant check")
    p.add_argument("--only", nargs="+", choices=CHECKS, default=list(CHECKS))
    args = p.parse_args()
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("bench_gpu: no CUDA GPU here (torch.cuda.is_available() is False); "
                         "the CPU paths are covered by `make test`")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    WORK.mkdir(parents=True, exist_ok=True)
    phase_prepare(args)
    from data_loaders.io import atomic_write_json

    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results["device"] = {"gpu": torch.cuda.get_device_name(0), "count": torch.cuda.device_count(),
                         "torch": torch.__version__, "cuda": torch.version.cuda}
    for name in args.only:
        print(f"== {name}", flush=True)
        try:
            results[name] = {"ok": True, **globals()[f"check_{name}"](args)}
        except Exception as e:  # record the failure and go on to the next check
            traceback.print_exc()
            results[name] = {"ok": False, "error": f"{type(e).__name__}: {e}"[-2000:]}
        atomic_write_json(RESULTS, results)
        print(json.dumps(results[name], indent=2), flush=True)


if __name__ == "__main__":
    main()
