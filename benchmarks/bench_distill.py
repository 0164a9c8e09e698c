"""Distillation benchmark on the cars sample dataset with the embedded SmolLM2-135M teacher.

Phases (each merges its results into benchmarks/results/distill.json):

    python benchmarks/bench_distill.py prepare     # cars.csv -> dataset (prepare_cars.yaml)
    python benchmarks/bench_distill.py adapt       # teacher adaptation: full vs LoRA to target
    python benchmarks/bench_distill.py steptime    # teacher adaptation: s/step full vs LoRA
    python benchmarks/bench_distill.py distill     # student: KD vs hard labels, same steps/seed
    python benchmarks/bench_distill.py kd_vs_hard  # the same, reusing the demo's KD run
    python benchmarks/bench_distill.py throughput  # training tokens/s: hard, online/cached KD
    python benchmarks/bench_distill.py speed       # per-answer latency: teacher vs student arch
    python benchmarks/bench_distill.py all

Work files go to benchmarks/results/tmp_distill/ (git-ignored). `adapt` and `distill` train
SmolLM2-135M for hundreds of steps: hours on a 2-core CPU, minutes on a GPU. `steptime`,
`throughput` and `speed` are the reduced forms that fit a small CPU (a few minutes each).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "distill.json"
WORK = ROOT / "benchmarks" / "results" / "tmp_distill"
DATA = WORK / "cars"


def merge_results(section: str, value: dict) -> None:
    from data_loaders.io import atomic_write_json

    data = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    data[section] = value
    data["machine"] = {"cpus": os.cpu_count(), "load_avg_at_write": os.getloadavg()}
    atomic_write_json(RESULTS, data)
    print(json.dumps({section: value}, indent=2))


def load_split(name: str, n: int | None = None) -> list[dict]:
    from distillation.data import read_split

    rows = read_split(DATA / f"{name}.jsonl")
    return rows[:n] if n else rows


def phase_prepare(args) -> None:
    if (DATA / "train.jsonl").is_file():
        print(f"dataset exists: {DATA}")
        return
    cmd = [sys.executable, "-m", "app.cli", "prepare",
           str(ROOT / "examples/data/cars.csv"), "--out", str(DATA),
           "--config", str(ROOT / "configs/prepare_cars.yaml"), "-q"]
    subprocess.run(cmd, check=True, cwd=ROOT)


def base_config(**kw):
    from distillation.config import DistillationConfig

    defaults = dict(data_dir=DATA, device="cpu", max_seq_len=768, eval_max_new_tokens=112,
                    seed=0)
    return DistillationConfig(**{**defaults, **kw})


def phase_adapt(args) -> None:
    """Full fine-tune vs LoRA: training wall time until val exact match >= target."""
    from accelerate import Accelerator

    from distillation.adaptation import adapt_teacher
    from distillation.trainer import load_teacher, read_records

    data_dir = (args.data or DATA).resolve()
    out = {}
    for mode in args.modes:
        lr = args.lr_full if mode == "full" else args.lr_lora
        cfg = base_config(
            data_dir=data_dir, output_dir=WORK / f"adapt_{mode}", eval_samples=args.eval_samples,
            teacher_adaptation={"enabled": True, "mode": mode, "max_steps": args.steps,
                                "batch_size": 8, "learning_rate": lr,
                                "eval_every": args.eval_every, "target_exact_match": args.target},
        )
        train, val = read_records(cfg, None, None)  # train pairs + routing examples
        teacher, tok = load_teacher(cfg, "embedded")
        _, metrics = adapt_teacher(teacher, tok, train, val, cfg, Accelerator(cpu=True))
        evals = metrics["evals"]
        hit = next((e for e in evals if e["val_exact_match"] >= args.target), None)
        out[mode] = {
            "learning_rate": lr,
            "steps_run": metrics["steps"],
            "evals": [{k: e[k] for k in ("step", "val_exact_match", "val_loss", "train_seconds")}
                      for e in evals],
            "train_s_per_step": evals[-1]["train_seconds"] / evals[-1]["step"],
            "train_seconds_to_target": hit["train_seconds"] if hit else None,
            "steps_to_target": hit["step"] if hit else None,
            "reused": bool(metrics.get("reused")),
        }
        del teacher
    merge_results("teacher_adaptation", {
        "data_dir": str(data_dir), "train_examples": len(train), "max_steps": args.steps,
        "target_val_exact_match": args.target, "batch_size": 8,
        "eval_samples": args.eval_samples, "modes": out,
    })


def _adapted_teacher() -> Path:
    path = WORK / f"adapt_{'full'}" / "teacher_adapted"
    if not (path / "config.json").is_file():
        raise SystemExit("run the 'adapt' phase first (it writes the adapted teacher)")
    return path


def _test_exact_match(model_dir: str, pairs: list[dict], batch_size: int = 8) -> dict:
    from distillation.generation import generate_answers
    from distillation.metrics import exact_match
    from distillation.models import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(model_dir, dtype="float32", device="cpu")
    t0 = time.perf_counter()
    answers = generate_answers(model, tok, pairs, max_new_tokens=112, batch_size=batch_size)
    hits = sum(exact_match(a, p["answer"]) for a, p in zip(answers, pairs, strict=True))
    return {"exact_match": hits / len(pairs), "n": len(pairs),
            "seconds": time.perf_counter() - t0}


def phase_distill(args) -> None:
    """Same steps and seed: KD (cached soft targets) vs hard labels only; held-out exact match."""
    from distillation.history import read_history
    from distillation.trainer import run_distillation

    teacher = str(_adapted_teacher())
    test = load_split("test", args.test_samples)
    out = {"steps": args.steps, "student_layers": args.layers, "batch_size": 8,
           "test_samples": len(test)}
    out["teacher"] = _test_exact_match(teacher, test)
    for name, kd in (("kd", args.kd_ratio), ("hard_labels", 0.0)):
        cfg = base_config(
            teacher_model_name=teacher, student_layers=args.layers, kd_ratio=kd,
            temperature=args.temperature, soft_targets="cached", max_steps=args.steps,
            batch_size=8, learning_rate=args.lr, eval_every=0, eval_samples=args.eval_samples,
            save_every=args.steps, output_dir=WORK / f"student_{name}",
            teacher_adaptation={"enabled": False},
        )
        t0 = time.perf_counter()
        result = run_distillation(cfg)
        rows = [r for r in read_history(result.history_path) if r["event"] == "train"]
        out[name] = {
            "kd_ratio": kd,
            "wall_seconds": time.perf_counter() - t0,
            "final_train_loss": rows[-1]["loss"],
            "val": result.final_eval,
            "test": _test_exact_match(str(result.student_dir), test),
            "student_dir": str(result.student_dir.relative_to(ROOT)),
        }
    t_em = out["teacher"]["exact_match"]
    out["kd_over_teacher"] = out["kd"]["test"]["exact_match"] / t_em if t_em else None
    merge_results("student", out)


def phase_kd_vs_hard(args) -> None:
    """KD vs hard labels at the same steps and seed, reusing a finished demo/distill run.

    The run's student was trained with KD; this trains the same student (same config from its
    ``training_metadata.json``: teacher, data incl. routing examples, seed, steps, schedule)
    with ``kd_ratio: 0`` and compares held-out test exact match. Costs one student training.
    """
    from distillation.adaptation import ADAPTED_TEACHER
    from distillation.config import DistillationConfig
    from distillation.trainer import STUDENT_DIR, run_distillation

    run = args.run.resolve()
    meta = json.loads((run / STUDENT_DIR / "training_metadata.json").read_text(encoding="utf-8"))
    cfg = dict(meta["config"])
    teacher = run / ADAPTED_TEACHER
    if cfg.get("teacher_model_name") == "embedded" and (teacher / "config.json").is_file():
        cfg["teacher_model_name"] = str(teacher)  # the student is pruned from the adapted one
    cfg.update(kd_ratio=0.0, output_dir=str(WORK / "student_hard_labels"),
               teacher_adaptation={**cfg["teacher_adaptation"], "enabled": False})
    cfg.pop("alpha", None)
    hard_cfg = DistillationConfig(**cfg)
    data_dir = Path(hard_cfg.data_dir)
    test = [json.loads(line) for line in (data_dir / "test.jsonl").open(encoding="utf-8")]
    hard_dir = Path(hard_cfg.output_dir) / STUDENT_DIR
    hard_meta_file = hard_dir / "training_metadata.json"
    hard_meta = (json.loads(hard_meta_file.read_text(encoding="utf-8"))
                 if args.reuse and hard_meta_file.is_file() else None)
    # a finished hard-label run with exactly this config (defaults filled in)
    reused = hard_meta is not None and DistillationConfig(**hard_meta["config"]) == hard_cfg
    hard_info: dict = {"reused": reused}
    if reused:
        steps = hard_meta.get("steps")
        print(f"reusing the hard-label student in {hard_dir}")
    else:
        t0 = time.perf_counter()
        hard = run_distillation(hard_cfg)
        steps, hard_info["train_wall_seconds"] = hard.steps, time.perf_counter() - t0
    out = {
        "run": str(run), "steps": steps, "kd_ratio_of_run": meta["config"]["kd_ratio"],
        "test_samples": len(test),
        "teacher": _test_exact_match(str(teacher), test),
        "kd": _test_exact_match(str(run / STUDENT_DIR), test),
        "hard_labels": {**_test_exact_match(str(hard_dir), test), **hard_info},
    }
    merge_results("kd_vs_hard", out)
    print(json.dumps(out, indent=2))


def phase_throughput(args) -> None:
    """Training tokens/s for hard labels, online KD and cached KD (median over steps)."""
    from distillation.history import read_history
    from distillation.trainer import run_distillation

    adapted = WORK / "adapt_full" / "teacher_adapted"
    teacher = str(adapted) if (adapted / "config.json").is_file() else "embedded"
    train, val = load_split("train", args.train_samples), load_split("val", 4)
    variants = {"hard_labels": (0.0, "cached"), "online_kd": (0.5, "online"),
                "cached_kd": (0.5, "cached")}
    speeds: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.repeats):  # interleaved, so machine load hits every variant alike
        for name, (kd, soft) in variants.items():
            cfg = base_config(
                teacher_model_name=teacher, student_layers=args.layers, kd_ratio=kd,
                soft_targets=soft, max_steps=args.steps, batch_size=8, eval_every=0,
                eval_samples=1, eval_max_new_tokens=1, save_every=10_000,
                output_dir=WORK / f"tput_{name}", teacher_adaptation={"enabled": False},
                cache={"dir": str(WORK / "tput_cache")},
            )
            result = run_distillation(cfg, progress=False, train_records=train, val_records=val)
            rows = [r for r in read_history(result.history_path) if r["event"] == "train"]
            speeds[name] += [r["tokens_per_s"] for r in rows[1:]]  # skip the warm-up step
    med = {k: statistics.median(v) for k, v in speeds.items()}
    merge_results("throughput", {
        "tokens_per_s_median": med,
        "cached_over_hard": med["cached_kd"] / med["hard_labels"],
        "online_over_hard": med["online_kd"] / med["hard_labels"],
        "tokens_per_s_all": speeds, "teacher": teacher, "train_pairs": len(train),
        "steps_per_run": args.steps, "repeats": args.repeats, "student_layers": args.layers,
        "note": "cache build time excluded (built once, reused by every run); first step of "
        "each run skipped",
    })


def phase_speed(args) -> None:
    """Seconds per answer (batch 1, prompt + a fixed 16 new tokens): teacher vs pruned student.

    Latency depends on the architecture, not on training, so the student is the teacher with
    ``--layers`` layers kept; every answer is forced to 16 tokens so both do the same work.
    """
    import torch

    from distillation.data import encode_prompt
    from distillation.models import load_model_and_tokenizer
    from distillation.pruning import prune_layers

    test = load_split("test", args.test_samples)
    teacher, tok = load_model_and_tokenizer("embedded", dtype="float32", device="cpu")
    models = {"teacher": teacher, "student": prune_layers(teacher, args.layers).eval()}
    times: dict[str, list[float]] = {k: [] for k in models}
    with torch.no_grad():
        for pair in test:  # interleaved per pair, so machine load hits both alike
            ids = torch.tensor([encode_prompt(tok, pair["context"], pair["question"])])
            for k, model in models.items():
                t0 = time.perf_counter()
                model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                               do_sample=False, max_new_tokens=16, min_new_tokens=16,
                               pad_token_id=tok.pad_token_id)
                times[k].append(time.perf_counter() - t0)
    out = {}
    for k, model in models.items():
        out[k] = {"layers": model.config.num_hidden_layers,
                  "parameters": sum(p.numel() for p in model.parameters()),
                  "median_s_per_answer": statistics.median(times[k]),
                  "mean_s_per_answer": statistics.mean(times[k])}
    out["speedup_median"] = (out["teacher"]["median_s_per_answer"]
                             / out["student"]["median_s_per_answer"])
    out["speedup_mean"] = out["teacher"]["mean_s_per_answer"] / out["student"]["mean_s_per_answer"]
    out["param_ratio"] = out["student"]["parameters"] / out["teacher"]["parameters"]
    out["answers"] = len(test)
    out["new_tokens_per_answer"] = 16
    merge_results("speed", out)


def phase_steptime(args) -> None:
    """Teacher adaptation cost per step, full fine-tune vs LoRA, interleaved on the same batches."""
    import copy

    from distillation.config import LoraSettings
    from distillation.data import answer_logits, collate, encode_records
    from distillation.loop import Cursor, make_optimizer, take_batch
    from distillation.losses import ce_loss
    from distillation.models import apply_lora, load_model_and_tokenizer

    train = load_split("train")
    base, tok = load_model_and_tokenizer("embedded", dtype="float32", device="cpu")
    examples = encode_records(tok, train, 768)
    lengths = [len(e["input_ids"]) for e in examples]
    lora = LoraSettings()
    models = {"full": base.train(),
              "lora": apply_lora(copy.deepcopy(base), r=lora.r, alpha=lora.alpha,
                                 dropout=lora.dropout, target_modules=lora.target_modules).train()}
    opts = {k: make_optimizer(m, 1e-5, 0.0) for k, m in models.items()}
    times: dict[str, list[float]] = {k: [] for k in models}
    tokens = []
    cursor = Cursor()
    for step in range(args.steps + 1):
        idx = take_batch(cursor, lengths, 8, 0, 1)[0]
        batch = collate([examples[i] for i in idx], tok.pad_token_id)
        tokens.append(batch["n_tokens"])
        for k, model in models.items():
            t0 = time.perf_counter()
            loss = ce_loss(answer_logits(model, batch, len(tok)), batch["targets"])
            loss.backward()
            opts[k].step()
            opts[k].zero_grad(set_to_none=True)
            if step:  # step 0 warms up
                times[k].append(time.perf_counter() - t0)
        print(f"step {step}: " + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in times.items() if v))
    trainable = {k: sum(p.numel() for p in m.parameters() if p.requires_grad)
                 for k, m in models.items()}
    out = {k: {"median_s_per_step": statistics.median(v), "mean_s_per_step": statistics.mean(v),
               "trainable_parameters": trainable[k]} for k, v in times.items()}
    out["lora_over_full_time"] = out["lora"]["median_s_per_step"] / out["full"]["median_s_per_step"]
    out.update(steps=args.steps, batch_size=8, mean_tokens_per_batch=statistics.mean(tokens[1:]),
               lora_settings=lora.model_dump())
    merge_results("teacher_adaptation_step_time", out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("phase", choices=["prepare", "adapt", "steptime", "distill", "kd_vs_hard",
                                     "throughput", "speed", "all"])
    p.add_argument("--run", type=Path, default=ROOT / "runs" / "demo" / "distill",
                   help="kd_vs_hard: a finished distill run dir")
    p.add_argument("--reuse", action="store_true",
                   help="kd_vs_hard: reuse a finished hard-label student with the same config")
    p.add_argument("--data", type=Path, default=None,
                   help="adapt: a dataset dir (default: the cars dataset the prepare phase makes)")
    p.add_argument("--modes", nargs="+", default=["full", "lora"])
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--eval-samples", type=int, default=64)
    p.add_argument("--test-samples", type=int, default=100)
    p.add_argument("--target", type=float, default=0.95)
    p.add_argument("--lr-full", type=float, default=1e-4)
    p.add_argument("--lr-lora", type=float, default=1e-3)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--layers", type=int, default=7)
    p.add_argument("--kd-ratio", type=float, default=0.5)
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--train-samples", type=int, default=64)
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    WORK.mkdir(parents=True, exist_ok=True)
    defaults = {"adapt": 150, "distill": 200, "throughput": 5, "steptime": 4}
    phases = ["prepare", "adapt", "distill", "throughput", "speed"] if args.phase == "all" \
        else [args.phase]
    for phase in phases:
        args_p = argparse.Namespace(**vars(args))
        if args_p.steps is None:
            args_p.steps = defaults.get(phase, 0)
        globals()[f"phase_{phase}"](args_p)


if __name__ == "__main__":
    main()
