"""The run's training history: ``<output_dir>/training_history.jsonl``, one JSON object a line.

The recipe appends a ``train`` row per optimizer step (loss, ce, kd, lr, grad norm, tokens,
throughput) and an ``eval`` row per validation. Each row is flushed as it is written, so a crash
loses at most that row, and a torn last line is skipped on reading. A resumed run first drops the
rows written after its checkpoint, so the file reads as if the run had never stopped. This module
owns that file's name and its reading and writing; nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from data_loaders.io import atomic_write_text

HISTORY_FILE = "training_history.jsonl"


def append_history(path: Path, row: Mapping[str, Any]) -> None:
    """Append one JSON row to the history file (flushed, so a crash loses at most this row)."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")
        fh.flush()


def read_history(path: str | Path) -> list[dict]:
    """Rows of a history file; a torn last line (a crash mid-write) is skipped."""
    rows = []
    path = Path(path)
    if not path.is_file():
        return rows
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(ValueError):
            rows.append(json.loads(line))
    return rows


def truncate_history(path: Path, step: int) -> None:
    """Drop rows written after the checkpoint a run resumes from (they will be redone)."""
    rows = [r for r in read_history(path) if r.get("step", 0) <= step]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def last_eval(path: Path) -> dict | None:
    """The last validation row of a history file."""
    rows = [r for r in read_history(path) if r.get("event") == "eval"]
    return rows[-1] if rows else None
