"""Program language against SQL as the student's target: tokens per program on a dataset split.

    python benchmarks/bench_program_format.py --data runs/cars/data --split test

Both forms leave values out (the one-line language names mention slots, SQL bound
parameters), so the count is what a model has to write. Writes
``benchmarks/results/program_format.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from transformers import AutoTokenizer

    from data_loaders.mentions import NameIndex
    from data_loaders.program_sql import to_sql
    from data_loaders.program_text import dataset_tables, mask_request, read_program
    from data_loaders.programs import ProgramError
    from distillation.embedded import embedded_teacher_dir

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT / "runs" / "cars" / "data")
    ap.add_argument("--split", default="test")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" /
                    "program_format.json")
    args = ap.parse_args()
    tok = AutoTokenizer.from_pretrained(embedded_teacher_dir())
    t = dataset_tables(args.data)[0]
    index = NameIndex(t)
    dsl, sql = [], []
    for line in (args.data / f"{args.split}.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if not rec.get("program_text"):
            continue
        prog = read_program(rec["program_text"], mask_request(rec["question"], index), index)
        try:
            text, _ = to_sql(prog, t)
        except ProgramError:
            continue  # summaries: several queries
        dsl.append(len(tok.encode(rec["program_text"], add_special_tokens=False)))
        sql.append(len(tok.encode(text, add_special_tokens=False)))
    out = {"n": len(dsl), "dsl_tokens_mean": statistics.mean(dsl),
           "sql_tokens_mean": statistics.mean(sql), "sql_over_dsl": sum(sql) / sum(dsl),
           "dsl_tokens_max": max(dsl), "sql_tokens_max": max(sql),
           "data": str(args.data), "split": args.split}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
