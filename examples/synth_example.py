"""Teacher-written requests for the cars dataset, each checked by the table.

    python examples/synth_example.py --fake                      # a fake teacher on a local port
    python examples/synth_example.py --base-url http://localhost:8000/v1 --model NAME

Builds a small cars dataset (``distillgraph prepare``), then runs ``distillgraph synth`` on it
against the teacher: with ``--fake``, the stand-in of ``examples/fake_teacher.py`` (it computes
its answers with the project's own programs, and writes one bad paraphrase, one program with
an unknown column and two bad summaries per pair so the rejections show); otherwise the
OpenAI-compatible endpoint named (vLLM, llama.cpp server, Ollama, a hosted API with
``--api-key-env``). Prints a few kept requests and the reasons others were rejected. A second
run reads every reply from the cache.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fake", action="store_true", help="use the fake teacher on a local port")
    ap.add_argument("--fake-port", type=int, default=18765,
                    help="loopback port of the fake teacher (the cache key holds the URL)")
    ap.add_argument("--base-url", help="OpenAI-compatible endpoint (without --fake)")
    ap.add_argument("--model", help="model name at the endpoint (without --fake)")
    ap.add_argument("--api-key-env", help="environment variable holding the API key")
    ap.add_argument("--work", type=Path, default=Path("runs/synth_example"),
                    help="directory for the datasets and the reply cache")
    ap.add_argument("--max-pairs", type=int, default=20, help="train pairs to ask about")
    ap.add_argument("--summaries", type=int, default=2,
                    help="summaries per train summary pair, checked number by number (0: none)")
    args = ap.parse_args(argv)
    if not args.fake and not (args.base_url and args.model):
        ap.error("give --fake, or --base-url and --model")

    from app.cli import main as cli

    data, out = args.work / "data", args.work / "data_synth"
    rc = cli(["prepare", str(ROOT / "examples" / "data" / "cars.csv"), "--out", str(data),
              "--config", str(ROOT / "configs" / "prepare_cars.yaml"), "--max-pairs", "120",
              "--quiet"])
    if rc:
        return rc
    synth = ["synth", "--data", str(data), "--out", str(out), "--max-pairs", str(args.max_pairs),
             "--paraphrases", "3", "--new-requests", "3", "--summaries", str(args.summaries),
             "--cache-dir", str(args.work / "synth_cache")]
    if args.fake:
        from fake_teacher import FakeOpenAI, TableTeacher

        from data_loaders.program_text import dataset_tables

        with FakeOpenAI(TableTeacher(dataset_tables(data)), args.fake_port) as server:
            rc = cli([*synth, "--base-url", server.base_url, "--model", "fake-teacher"])
    else:
        key = ["--api-key-env", args.api_key_env] if args.api_key_env else []
        rc = cli([*synth, "--base-url", args.base_url, "--model", args.model, *key])
    if rc:
        return rc
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    kinds = {s["id"]: s["source"] for s in manifest["synth"]["sources"]}
    print("\nsome kept requests (question -> program = answer):")
    shown = {"synth-paraphrase": 0, "synth-new": 0, "synth-summary": 0}
    for line in (out / "train.jsonl").read_text(encoding="utf-8").splitlines():
        pair = json.loads(line)
        kind = kinds[pair["id"]]
        if kind in shown and shown[kind] < 3:
            shown[kind] += 1
            print(f"  [{kind}] {pair['question']!r} -> {pair['program_text']} = {pair['answer']}")
    print("some rejections:")
    for kind in ("paraphrase", "new", "summary"):
        for example in manifest["synth"][kind]["examples"][:2]:
            print(f"  [{kind}] {example[:160]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
