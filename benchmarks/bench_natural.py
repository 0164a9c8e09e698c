"""The agent graph on requests as people type them, and on the demo's test split.

    python benchmarks/bench_natural.py                       # the demo's student
    python benchmarks/bench_natural.py --model DIR --split runs/cars/data/test.jsonl

Runs every request of ``benchmarks/data/natural/requests.jsonl`` (hand-written, never trained
on; follow-ups continue their conversation) through ``build_graph`` over its own table, and
optionally a dataset split, and writes ``benchmarks/results/natural.json``:

- accuracy: the reply states the expected answer, scored by `benchmarks.natural.score_reply`
  for the natural set (its rules are in that module) and by `score_reply` here for a dataset
  split (numbers to 2 decimals, names, every name of a list, yes/no for claims; a row
  summary in any wording: its name and every value, and no other number);
- precision: of the replies presented as checked by the table (``verdict.checked_by ==
  "table"`` with an answer computed), the share that is right, and the wrong ones listed;
- router: the share routed to the request's task, and the share routed by the student's program;
- latency: p50 and p95 seconds per request through the whole graph;
- summary prose: how many summaries the student wrote prose for, and how many of those passed
  `data_loaders.prose.check_prose` and were shown.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REQUESTS = ROOT / "benchmarks" / "data" / "natural" / "requests.jsonl"
OUT = ROOT / "benchmarks" / "results" / "natural.json"
TABLE_CONFIGS = {"examples/data/cars.csv": ROOT / "configs" / "prepare_cars.yaml"}
ROUTES = {"qa": "qa", "summarize": "summarizer", "validate": "validator"}
_NUM = re.compile(r"-?\d+(?:\.\d+)?")


def load_requests(path: Path = REQUESTS) -> list[dict]:
    """The natural-phrasing requests, in file order (`benchmarks.natural.load_requests`)."""
    from benchmarks.natural import load_requests as load

    return load(path)


def _numbers(text: str) -> list[float]:
    return [float(x) for x in _NUM.findall(text.replace(",", ""))]


def _has_number(text: str, value: float) -> bool:
    return any(abs(x - value) <= 0.006 + 1e-9 * abs(value) for x in _numbers(text))


def _has(text: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value is True
    if isinstance(value, (int, float)):
        return _has_number(text, float(value))
    return re.search(rf"(?<!\w){re.escape(str(value))}(?!\w)", text, re.I) is not None


def score_reply(req: dict, state: dict) -> bool:
    """Whether the graph's reply to a request states its expected answer (see module doc)."""
    reply = state.get("answer") or ""
    verdict = state.get("verdict") or {}
    exp = req["expected"]
    if exp is None:
        if req["kind"] == "empty_cell":
            return "no " in reply.lower() and "value" in reply.lower()
        return verdict.get("supported") is not True
    if isinstance(exp, bool):
        first = reply.strip().lower()
        said = True if first.startswith(("yes", "true")) else (
            False if first.startswith(("no", "false")) else None)
        return said is exp
    if isinstance(exp, list):
        if "only_numbers" in req:  # a row summary: no number but the row's own values
            said = _numbers(reply.replace(req.get("name", ""), " "))
            if any(not any(abs(x - y) <= 0.006 for y in req["only_numbers"]) for x in said):
                return False
        return all(_has(reply, v) for v in exp)
    if isinstance(exp, dict):
        return all(_has(reply, v) for v in exp.values())
    return _has(reply, exp)


def _score(req: dict, state: dict) -> bool:
    """The natural set's own scorer for its requests; `score_reply` for a dataset split."""
    if "pandas" in req:
        from benchmarks.natural import score_reply as score_natural

        return score_natural(req, state.get("answer"), state)
    return score_reply(req, state)


def presented_as_checked(state: dict) -> bool:
    """A reply the graph presents as computed by the table (not asked back, not a failure)."""
    v = state.get("verdict") or {}
    return v.get("checked_by") == "table" and state.get("answered_by") in (
        "program", "program + student prose", "table")


def _graph(model: str | None, table: str, program_mode: str = "auto",
           min_confidence: float | None = None):
    from data_loaders.config import TableConfig
    from data_loaders.config_loader import load_config
    from data_loaders.loaders import load_tables
    from graphs import build_graph

    cfg_file = TABLE_CONFIGS.get(table)
    tcfg = load_config(TableConfig, cfg_file, section="table") if cfg_file else TableConfig()
    t = load_tables([ROOT / table], tcfg)[0]
    overrides = [f"program.mode={program_mode}"]
    if min_confidence is not None:
        overrides.append(f"program.min_confidence={min_confidence}")
    return build_graph(model, [t], overrides=overrides)


def run(requests: list[dict], model: str | None, program_mode: str = "auto",
        min_confidence: float | None = None) -> dict[str, Any]:
    """Every request through the graph of its table; per-request rows and the summary."""
    graphs: dict[str, Any] = {}
    rows = []
    threads: dict[str, str] = {}
    for req in requests:
        g = graphs.get(req["table"])
        if g is None:
            g = graphs[req["table"]] = _graph(model, req["table"], program_mode, min_confidence)
        thread = threads.get(req["follows"]) if req.get("follows") else None
        thread = thread or f"{req['id']}"
        threads[req["id"]] = thread
        t0 = time.perf_counter()
        state = g.invoke({"messages": [("user", req["request"])]},
                         {"configurable": {"thread_id": thread}})
        seconds = time.perf_counter() - t0
        rows.append({
            "id": req["id"], "table": req["table"], "kind": req["kind"],
            "request": req["request"], "expected": req["expected"],
            "reply": state.get("answer"), "right": _score(req, state),
            "checked": presented_as_checked(state),
            "route": state.get("task"), "route_right": state.get("task") == ROUTES[req["route"]],
            "route_source": state.get("route_source"),
            "program": (state.get("program") or {}).get("text"),
            "confidence": (state.get("program") or {}).get("confidence"),
            "answered_by": state.get("answered_by"), "seconds": round(seconds, 3),
            "prose": _prose(state),
        })
    return {"rows": rows, "summary": summarize(rows)}


def _prose(state: dict) -> dict | None:
    """A summary's prose by the student: its text and why it was not shown (None: shown)."""
    p = state.get("prose")
    return None if not p else {"text": p.get("text"), "why": p.get("why")}


def summarize(rows: list[dict]) -> dict[str, Any]:
    """Accuracy, precision, router, latency and summary prose overall and per table and kind."""
    import numpy as np

    def block(rs: list[dict]) -> dict[str, Any]:
        checked = [r for r in rs if r["checked"]]
        secs = [r["seconds"] for r in rs]
        return {
            "n": len(rs),
            "accuracy": sum(r["right"] for r in rs) / len(rs),
            "checked": len(checked),
            "precision": (sum(r["right"] for r in checked) / len(checked)) if checked else None,
            "router": sum(r["route_right"] for r in rs) / len(rs),
            "asked_back": sum(r["answered_by"] == "program (asked back)" for r in rs),
            "routed_by_program": sum(r["route_source"] == "program" for r in rs) / len(rs),
            "p50_s": float(np.percentile(secs, 50)),
            "p95_s": float(np.percentile(secs, 95)),
            # summaries the student wrote prose for, and how many of those were shown
            "prose_written": sum(r.get("prose") is not None for r in rs),
            "prose_shown": sum(r["answered_by"] == "program + student prose" for r in rs),
        }

    by_table: dict[str, list] = defaultdict(list)
    by_kind: dict[str, list] = defaultdict(list)
    for r in rows:
        by_table[r["table"]].append(r)
        by_kind[r["kind"]].append(r)
    return {
        "overall": block(rows),
        "by_table": {k: block(v) for k, v in by_table.items()},
        "by_kind": {k: block(v) for k, v in sorted(by_kind.items())},
        "wrong_but_checked": [
            {k: r[k] for k in ("id", "request", "expected", "reply", "program")}
            for r in rows if r["checked"] and not r["right"]
        ],
    }


def sweep(rows: list[dict], thresholds: list[float]) -> list[dict[str, Any]]:
    """What each ``program.min_confidence`` would give, from one run at 0.

    A reply answered from the student's program whose lowest token probability is under a
    threshold would have asked back instead (not right, not checked); every other reply is the
    same at any threshold, so one run at 0 gives the whole curve exactly.
    """
    out = []
    for t in thresholds:
        def held(r: dict, t: float = t) -> bool:
            return r["answered_by"] in ("program", "program + student prose") and (
                r["confidence"] or 0.0) < t

        checked = [r for r in rows if r["checked"] and not held(r)]
        out.append({
            "min_confidence": t,
            "accuracy": sum(r["right"] and not held(r) for r in rows) / len(rows),
            "checked": len(checked),
            "precision": (sum(r["right"] for r in checked) / len(checked)) if checked else None,
        })
    return out


def split_requests(split_file: Path, table: str) -> list[dict]:
    """A dataset split as requests: the reference answer is expected in the reply."""
    out = []
    for line in split_file.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        exp: Any = rec["answer"]
        kind = rec["qtype"]
        if kind == "claim":
            exp = rec["answer"] == "yes"
        elif kind == "summary_row":  # any wording: the name and every value, no other number
            name = rec["entities"][0]
            exp = [name] + _numbers(rec["answer"].replace(name, " "))
        elif kind == "summary_group":  # the graph's summary names other columns: the count
            exp = _numbers(rec["answer"].split(".")[0])
        elif kind in ("list", "top"):
            exp = [p.split(" (")[0] for p in re.split(r", | and ", rec["answer"])
                   if not p.endswith(" more")]
        elif kind == "group":
            exp = [p.split(": ", 1)[1] for p in rec["answer"].split(", ")]
        route = {"qa": "qa", "validate": "validate", "summarize": "summarize"}[rec["task"]]
        req = {"id": rec["id"], "table": table, "request": rec["question"],
               "route": route, "kind": kind, "expected": exp, "follows": None}
        if kind == "summary_row":
            req["only_numbers"] = [x for x in exp[1:]]
            req["name"] = exp[0]
        out.append(req)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="student dir (default: the graph's default)")
    ap.add_argument("--split", type=Path, default=None,
                    help="also run a cars dataset split, e.g. runs/cars/data/test.jsonl")
    ap.add_argument("--tables", nargs="*", default=None, help="only requests of these tables")
    ap.add_argument("--program-mode", default="auto", choices=["auto", "always", "never"],
                    help="the graph's program.mode (always: a student trained on programs for "
                    "tables the probe cannot use, e.g. one without a name column)")
    ap.add_argument("--min-confidence", type=float, default=None,
                    help="the graph's program.min_confidence (default: the graph config's)")
    ap.add_argument("--skip-natural", action="store_true",
                    help="only the --split (e.g. to choose --min-confidence on val.jsonl)")
    ap.add_argument("--sweep", action="store_true",
                    help="run at min_confidence 0 and report accuracy and precision at each "
                    "threshold from 0 to 0.9 (choose it on a val split, never on the natural set)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    if args.sweep:
        args.min_confidence = 0.0
    reqs = load_requests()
    if args.tables:
        reqs = [r for r in reqs if r["table"] in args.tables]
    result: dict[str, Any] = {"model": args.model, "program_mode": args.program_mode,
                              "min_confidence": args.min_confidence}
    if not args.skip_natural:
        result["natural"] = run(reqs, args.model, args.program_mode, args.min_confidence)
    if args.split is not None:
        result["split"] = run(split_requests(args.split, "examples/data/cars.csv"), args.model,
                              args.program_mode, args.min_confidence)
        result["split"]["file"] = str(args.split)
    if args.sweep:
        grid = [round(0.1 * i, 1) for i in range(10)]
        for name in ("natural", "split"):
            if name in result:
                result[name]["sweep"] = sweep(result[name]["rows"], grid)
                for row in result[name]["sweep"]:
                    print(name, json.dumps(row))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
    tmp.replace(args.out)
    for name in ("natural", "split"):
        if name in result:
            s = result[name]["summary"]
            print(name, json.dumps(s["overall"]), "wrong but checked:",
                  len(s["wrong_but_checked"]))
            for t, b in s["by_table"].items():
                print("  ", t, f"acc {b['accuracy']:.3f} router {b['router']:.3f} n {b['n']}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
