"""Merge dataset dirs from `distillgraph prepare` (one per table) into one for `distill`.

    python benchmarks/merge_datasets.py runs/cars/data runs/multi/starwars runs/multi/airports \
        --out runs/multi/data

`prepare` reads all its tables with one table config; tables that need different settings
(the cars YAML names columns the others lack) are prepared one by one and merged here, split by
split, so one student learns the program language over several schemas. The manifest lists
every source with the table config it was read with (``tables``); `evaluate` reads the first.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path


def merge(dirs: list[Path], out: Path) -> dict:
    """Concatenate train/val/test.jsonl of `dirs` into `out`; returns the merged manifest."""
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    manifests = [json.loads((d / "manifest.json").read_text()) for d in dirs]
    counts = {}
    for split in ("train", "val", "test"):
        lines = [ln for d in dirs for ln in (d / f"{split}.jsonl").read_text().splitlines() if ln]
        (tmp / f"{split}.jsonl").write_text("".join(ln + "\n" for ln in lines))
        counts[split] = len(lines)
    manifest = {**manifests[0], "counts": counts,
                "sources": [s for m in manifests for s in m["sources"]],
                "tables": [{"sources": m["sources"], "config": m.get("config", {}).get("table")}
                           for m in manifests],
                "merged_from": [str(d) for d in dirs]}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
    shutil.rmtree(out, ignore_errors=True)
    tmp.replace(out)
    return manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dirs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    m = merge(args.dirs, args.out)
    print(f"wrote {args.out}: {m['counts']}")


if __name__ == "__main__":
    main()
