"""Wall time and peak memory of ``distillgraph prepare`` on a 1,000,000-row, 12-column table.

Generates a synthetic table (an ``item_id`` entity column; numeric, categorical, text and date
columns, some nulls) as Parquet and as CSV in a temp dir, then runs
``python -m app.cli prepare FILE --out DIR --max-pairs 20000`` on each in a fresh
subprocess. Peak RSS is that child's ``ru_maxrss`` (from ``os.wait4``, the per-child form of
``getrusage(RUSAGE_CHILDREN)``); wall time is measured around the subprocess and includes the
interpreter start, loading, typing, generation, the recompute check and writing.
Targets: under 60 s and under 2 GiB per run.

    python benchmarks/bench_prepare.py                    # 1M rows, 20k pairs
    python benchmarks/bench_prepare.py --rows 100000 --pairs 2000

Writes benchmarks/results/prepare_1m.json (or --out).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "prepare_1m.json"
TARGET_SECONDS = 60.0
TARGET_BYTES = 2 * 1024**3


def make_table(rows: int, seed: int = 0) -> pa.Table:
    """A 12-column table: id, 5 numeric, 3 categorical, 1 text, 2 date (vectorized, seeded)."""
    rng = np.random.default_rng(seed)
    ids = np.char.add("item-", np.char.zfill(np.arange(rows).astype(str), 7))
    adjectives = np.array("compact sturdy light heavy quiet fast smart basic deluxe classic "
                          "modern vintage rugged sleek portable wireless solar digital manual "
                          "premium".split())
    nouns = np.array("lamp chair drill kettle router camera speaker mixer heater fan desk "
                     "shelf bike tent stove jacket boot watch phone tablet monitor printer "
                     "scanner keyboard mouse cable charger blender toaster vacuum".split())
    uses = np.array("home office garden travel kitchen workshop school camping gaming studio "
                    "outdoor kids pets cars boats sports music photo reading cooking".split())
    description = np.char.add(
        np.char.add(np.char.add(adjectives[rng.integers(0, 20, rows)], " "),
                    np.char.add(nouns[rng.integers(0, 30, rows)], " for ")),
        uses[rng.integers(0, 20, rows)],
    )
    categories = np.array([f"category {i}" for i in range(20)])
    regions = np.array("north south east west central coastal mountain island".split())
    statuses = np.array("active discontinued backorder preorder clearance".split())
    rating = np.round(rng.uniform(1, 5, rows), 1)
    rating_mask = rng.random(rows) < 0.05  # 5% nulls
    base = np.datetime64("2015-01-01")
    created = base + rng.integers(0, 3000, rows).astype("timedelta64[D]")
    shipped = created + rng.integers(1, 30, rows).astype("timedelta64[D]")
    return pa.table({
        "item_id": pa.array(ids),
        "price": pa.array(np.round(rng.lognormal(3.5, 1.0, rows), 2)),
        "quantity": pa.array(rng.integers(0, 500, rows)),
        "rating": pa.array(rating, mask=rating_mask),
        "weight_kg": pa.array(np.round(rng.gamma(2.0, 3.0, rows), 3)),
        "discount_pct": pa.array(rng.integers(0, 60, rows).astype(np.float64)),
        "category": pa.array(categories[rng.integers(0, 20, rows)]),
        "region": pa.array(regions[rng.integers(0, 8, rows)]),
        "status": pa.array(statuses[rng.integers(0, 5, rows)]),
        "description": pa.array(description),
        "created_on": pa.array(created.astype("datetime64[D]"), type=pa.date32()),
        "shipped_on": pa.array(shipped.astype("datetime64[D]"), type=pa.date32()),
    })


def run_prepare(data: Path, out: Path, pairs: int) -> dict:
    """One ``prepare`` run in a fresh subprocess: wall time, peak RSS, pairs written."""
    cmd = [sys.executable, "-m", "app.cli", "prepare", str(data), "--out", str(out),
           "--max-pairs", str(pairs), "--quiet"]
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"prepare failed on {data} (exit {code}):\n{stderr}")
    rss = usage.ru_maxrss if sys.platform == "darwin" else usage.ru_maxrss * 1024
    manifest = json.loads((out / "manifest.json").read_text())
    return {
        "input": data.suffix.lstrip("."),
        "input_bytes": data.stat().st_size,
        "wall_seconds": round(seconds, 2),
        # CPU time of the child: less sensitive than wall time to other load on the machine.
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "load_average_1min_before": round(load_before, 2),
        "peak_rss_bytes": rss,
        "peak_rss_gib": round(rss / 1024**3, 3),
        "pairs_written": {s: c["total"] for s, c in manifest["counts"].items()},
        "recompute_check": manifest["verification"],
        "entity_column": manifest["sources"][0]["entity_column"],
        "column_types": manifest["sources"][0]["column_types"],
        "under_targets": seconds < TARGET_SECONDS and rss < TARGET_BYTES,
    }


def machine() -> dict:
    """What the figures were measured on."""
    mem = None
    try:
        with open("/proc/meminfo") as fh:
            mem = int(fh.readline().split()[1]) * 1024
    except OSError:
        pass
    import pandas

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "memory_bytes": mem,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pandas.__version__,
        "pyarrow": pa.__version__,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--pairs", type=int, default=20_000)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_prepare_") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        table = make_table(args.rows)
        pq.write_table(table, tmp / "items.parquet")
        pacsv.write_csv(table, tmp / "items.csv")
        print(f"generated {args.rows:,} rows x {table.num_columns} columns "
              f"in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        del table
        runs = []
        for name in ("items.parquet", "items.csv"):
            run = run_prepare(tmp / name, tmp / f"out_{name.split('.')[1]}", args.pairs)
            print(f"{name}: {run['wall_seconds']} s wall, {run['cpu_seconds']} s CPU, "
                  f"{run['peak_rss_gib']} GiB peak RSS, "
                  f"{sum(run['pairs_written'].values())} pairs", file=sys.stderr)
            runs.append(run)

    result = {
        "benchmark": "distillgraph prepare",
        "rows": args.rows,
        "columns": 12,
        "max_pairs": args.pairs,
        "targets": {"wall_seconds": TARGET_SECONDS, "peak_rss_bytes": TARGET_BYTES},
        "runs": runs,
        "machine": machine(),
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
