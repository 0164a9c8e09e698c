"""GGUF export of a real model: file sizes, export time and round-trip agreement (f16, q8_0).

Exports ``--model`` (default: ``runs/cars/distill/student`` when it exists, else the embedded
SmolLM2-135M-Instruct teacher, which has the same architecture and tokenizer as every student
distilled from it) with `distillation.gguf_export.export_gguf`, then loads each file back with
transformers (``gguf_file=``) and compares greedy answers on the first ``--n`` prompts of the
dataset's test split (program prompts for a `prepare` dataset: what the agent graph asks the
student). Where ``llama_cpp`` (llama-cpp-python) is importable, the file is also run by
llama.cpp itself: its token ids and greedy answers are compared with the source model's.

    python benchmarks/bench_gguf.py                         # runs/cars/data, 30 prompts
    python benchmarks/bench_gguf.py --model runs/cars/distill/student --n 70

Writes benchmarks/results/gguf.json (or --out).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_OUT = ROOT / "benchmarks" / "results" / "gguf.json"
STUDENT = ROOT / "runs" / "cars" / "distill" / "student"


def llama_cpp_check(gguf: Path, src_dir: Path, chats: list, max_new_tokens: int) -> dict | None:
    """Token ids and greedy answers of llama.cpp on ``gguf`` vs transformers on ``src_dir``."""
    try:
        from llama_cpp import Llama
    except ImportError:
        return None
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from distillation.generation import generate_answers

    tok = AutoTokenizer.from_pretrained(src_dir)
    model = AutoModelForCausalLM.from_pretrained(src_dir, dtype=torch.float32).eval()
    texts = [tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in chats]
    ids = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    want = generate_answers(model, tok, ids, max_new_tokens=max_new_tokens)
    llm = Llama(model_path=str(gguf), n_ctx=2048, n_threads=2, verbose=False, seed=0)
    ids_equal, agree, examples = 0, 0, []
    for text, hf_ids, answer in zip(texts, ids, want, strict=True):
        cpp_ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        ids_equal += cpp_ids == hf_ids
        out = llm.create_completion(hf_ids, max_tokens=max_new_tokens, temperature=0.0, top_k=1)
        got = out["choices"][0]["text"].strip()
        agree += got == answer
        if got != answer and len(examples) < 3:
            examples.append({"transformers": answer, "llama.cpp": got})
    return {"n": len(texts), "token_ids_equal": ids_equal, "answers_agree": agree,
            "disagreements": examples}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--data", type=Path, default=ROOT / "runs" / "cars" / "data")
    ap.add_argument("--split", default="test")
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--workdir", type=Path, default=ROOT / "runs" / "bench_gguf")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()

    import torch

    from data_loaders.io import atomic_write_json
    from distillation.embedded import embedded_teacher_dir
    from distillation.gguf_check import check_roundtrip, dataset_messages
    from distillation.gguf_export import export_gguf

    torch.set_num_threads(args.threads)
    model = args.model or (STUDENT if (STUDENT / "config.json").is_file() else None)
    label = str(model) if model else "embedded teacher (SmolLM2-135M-Instruct)"
    model_dir = model or embedded_teacher_dir()
    chats, source = dataset_messages(args.data, args.split, args.n)
    weights = sum(p.stat().st_size for p in Path(model_dir).glob("*.safetensors"))
    result = {
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()}, {args.threads} torch threads",
        "model": label,
        "source_safetensors_bytes": weights,
        "prompts": f"{len(chats)} {source}",
        "max_new_tokens": args.max_new_tokens,
        "exports": {},
    }
    for quant in ("f16", "q8_0"):
        t0 = time.perf_counter()
        exp = export_gguf(model_dir, args.workdir / f"model-{quant}.gguf", quant=quant,
                          progress=False)
        export_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        rt = check_roundtrip(model_dir, exp.path, chats, max_new_tokens=args.max_new_tokens)
        row = {
            "file_bytes": exp.size_bytes,
            "size_vs_safetensors": exp.size_bytes / weights if weights else None,
            "tensor_types": exp.tensor_types,
            "export_s": round(export_s, 2),
            "roundtrip_s": round(time.perf_counter() - t0, 1),
            "transformers": {k: rt[k] for k in ("n", "answers_agree", "agreement",
                                                "token_ids_equal", "chat_template_equal",
                                                "max_abs_logit_diff", "same_prefix_chars",
                                                "disagreements")},
            "llama_cpp": llama_cpp_check(exp.path, Path(model_dir), chats, args.max_new_tokens),
        }
        result["exports"][quant] = row
        print(quant, json.dumps({k: v for k, v in row.items() if k != "transformers"}),
              json.dumps({k: rt[k] for k in ("answers_agree", "n", "token_ids_equal",
                                             "max_abs_logit_diff")}), flush=True)
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
