"""What a user gets from the agent graph: end-to-end accuracy, router, supported precision, latency.

Runs the compiled graph (`graphs.build_graph`, one graph per table, in-memory threads) over
(a) the hand-written natural-phrasing set ``benchmarks/data/natural_requests.jsonl`` (see
``benchmarks/data/make_natural.py``; a test set, never trained or tuned on) and optionally
(b) a dataset's test split (``--data DIR`` from ``distillgraph prepare``), and scores each reply:

- a qa reply is right when it states the expected value (numbers within 1% or 0.01, names and
  categories case-insensitively) and no competing value: every other number it states is in the
  request, part of a name, or another true figure of the rows asked about (``also_correct``);
  every other name of the expected's column is one the request names (a comparison must name
  the expected row first); an empty cell must be said to be empty;
- a claim is right when the reply starts with the right Yes/No (True/False);
- a summary is right when it states every expected number/name and every number it states is
  true (the wrong ones are listed);
- a refusal ("could not find", "could not give an answer that the table supports") is wrong.

Figures: accuracy per route, router accuracy (``state["task"]``), the precision of replies
marked supported (``verdict.supported`` True; every wrong one listed) and of claims the table
decided, coverage (supported / read from the rows / judged by the model / refused), and p50/p95
latency of one request through the graph.

    python benchmarks/bench_graph.py --model none          # table answers only (fake model)
    python benchmarks/bench_graph.py --model embedded      # the embedded SmolLM2 teacher
    python benchmarks/bench_graph.py --model embedded --every 2   # half the set, whole threads
    python benchmarks/bench_graph.py --model runs/demo/distill/student --data runs/demo/data

Writes benchmarks/results/graph.json (or --out), keyed by model label; other labels are kept.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_REQUESTS = ROOT / "benchmarks" / "data" / "natural_requests.jsonl"
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "graph.json"
GRAPH_ROUTE = {"qa": "qa", "summarize": "summarizer", "validate": "validator"}
NO_VALUE = "(no value)"
REL_TOL, ABS_TOL = 0.01, 0.01

# -- reading replies -----------------------------------------------------------------------------

_DASHES = re.compile(r"[\u2010-\u2015\u2212]")
_NUMBER = re.compile(r"(?<![\w.])-?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?!\d)|(?<![\w.])-?\d+(?:\.\d+)?")
_ROW_MARK = re.compile(r"\[row \d+\]")
_NO_VALUE = re.compile(
    r"\bno (?:\S+ ){0,4}value\b|\bnot (?:given|listed|recorded|available|known|in the table)\b"
    r"|\bunknown\b|\bmissing\b|\bempty\b|\bn/a\b", re.I)
_YES = {"yes", "true", "correct"}
_NO = {"no", "false", "incorrect"}


def norm(text: Any) -> str:
    """Lower case, plain dashes and quotes, single spaces."""
    s = _DASHES.sub("-", str(text)).replace("\u2019", "'").lower()
    return " ".join(s.split())


def as_number(text: str) -> float | None:
    """The number a whole string states ("3,504" → 3504.0), else None."""
    m = _NUMBER.fullmatch(text.strip())
    return float(m.group(0).replace(",", "")) if m else None


def close(a: float, b: float) -> bool:
    """Within 1% or 0.01 (signs ignored: '95.9 W' and '-95.9' are the same longitude)."""
    return math.isclose(abs(a), abs(b), rel_tol=REL_TOL, abs_tol=ABS_TOL)


def phrase_regex(phrases: Iterable[str]) -> re.Pattern[str] | None:
    """One regex matching any phrase as whole words, longest first (so names win over parts)."""
    ps = sorted({p for p in phrases if p}, key=lambda p: (-len(p), p))
    if not ps:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, ps)) + r")(?!\w)")


@dataclass
class Vocab:
    """What the scorer knows about a table: its text cells by column, and digit-bearing names."""

    columns: dict[str, set[str]]  # column -> normalized text values
    strip: re.Pattern[str] | None  # names/labels/units holding digits, removed before numbers

    @classmethod
    def of(cls, df: Any, labels: Iterable[str] = ()) -> Vocab:
        """Build from a DataFrame's text columns plus column labels/units (e.g. '0-60 mph')."""
        columns: dict[str, set[str]] = {}
        for col in df.columns:
            if df[col].dtype.kind in "biufcmM":
                continue
            columns[str(col)] = {norm(v) for v in df[col].dropna().astype(str)}
        digits = [v for vals in columns.values() for v in vals if re.search(r"\d", v)]
        digits += [norm(x) for x in labels if re.search(r"\d", str(x))]
        return cls(columns, phrase_regex(digits))

    def numbers(self, text: str) -> list[float]:
        """Numbers a text states, leaving out those inside names and labels ('skylark 320')."""
        s = _ROW_MARK.sub(" ", norm(text))
        if self.strip is not None:
            s = self.strip.sub(" ", s)
        return [float(m.group(0).replace(",", "")) for m in _NUMBER.finditer(s)]

    def names_in(self, text: str, column_values: set[str]) -> list[str]:
        """Values of the given column sets that a text names, in order of appearance."""
        rx = phrase_regex(column_values)
        return [m.group(0) for m in rx.finditer(norm(text))] if rx else []

    def columns_holding(self, value: str) -> set[str]:
        """All text values of the columns that hold `value` (its 'kind': names, states...)."""
        v = norm(value)
        out: set[str] = set()
        for vals in self.columns.values():
            if v in vals:
                out |= vals
        return out or {v}


# -- scoring -------------------------------------------------------------------------------------


def _matches(x: float, pool: Iterable[float]) -> bool:
    return any(close(x, p) for p in pool)


def _contains(text: str, phrase: str) -> bool:
    return re.search(r"(?<!\w)" + re.escape(norm(phrase)) + r"(?!\w)", norm(text)) is not None


def score(rec: dict, reply: str, vocab: Vocab, refused: bool = False) -> dict:
    """Score one reply against a record's expected answer.

    Returns:
        ``{"right": bool, "why": str, "wrong_values": [...]}`` (``wrong_values``: numbers or
        names the reply states that are not true of what was asked).
    """
    exp, kind = rec["expected"], rec.get("kind")
    if refused:
        return {"right": False, "why": "refused / not found", "wrong_values": []}
    if rec["route"] == "validate":
        words = re.findall(r"[a-z]+", norm(reply))
        said = "yes" if words and words[0] in _YES else "no" if words and words[0] in _NO else None
        return {"right": said == exp, "why": f"starts with {said or 'neither'}", "wrong_values": []}
    also = [str(a) for a in rec.get("also_correct", [])]
    req_numbers = vocab.numbers(rec["request"])
    if isinstance(exp, list):
        return _score_summary(exp, also, reply, vocab, req_numbers, rec.get("any_true", False))
    if exp == NO_VALUE:
        stated = [x for x in vocab.numbers(reply) if not _matches(x, req_numbers)]
        ok = bool(_NO_VALUE.search(reply)) and not stated
        return {"right": ok, "why": "says the cell is empty" if ok else "no 'no value' reply",
                "wrong_values": stated}
    target = as_number(exp)
    if target is not None:
        stated = vocab.numbers(reply)
        pool = req_numbers + [n for a in also if (n := as_number(a)) is not None]
        wrong = [x for x in stated if not close(x, target) and not _matches(x, pool)]
        hit = _matches(target, stated)
        return {"right": hit and not wrong,
                "why": "states it" if hit else "does not state the expected number",
                "wrong_values": wrong}
    found = vocab.names_in(reply, vocab.columns_holding(exp))
    named = {norm(a) for a in also} | {f for f in found if _contains(rec["request"], f)}
    hit = norm(exp) in found
    wrong = sorted({f for f in found if f != norm(exp) and f not in named})
    if hit and kind == "compare":  # both candidates are in the request: the winner comes first
        firsts = [f for f in found if _contains(rec["request"], f) or f == norm(exp)]
        if firsts and firsts[0] != norm(exp):
            return {"right": False, "why": f"names {firsts[0]} first", "wrong_values": wrong}
    return {"right": hit and not wrong,
            "why": "states it" if hit else "does not state the expected name",
            "wrong_values": wrong}


def _score_summary(exp: list[str], also: list[str], reply: str, vocab: Vocab,
                   req_numbers: list[float], any_true: bool = False) -> dict:
    """All expected numbers stated and all stated true; with `any_true`, only the latter (and
    at least one stated)."""
    stated = vocab.numbers(reply)
    if any_true:
        exp = [] if stated else exp
    missing = []
    for item in exp:
        n = as_number(item)
        if not (_matches(n, stated) if n is not None else _contains(reply, item)):
            missing.append(item)
    pool = req_numbers + [n for a in exp + also if (n := as_number(a)) is not None]
    wrong = [x for x in stated if not _matches(x, pool)]
    why = []
    if missing:
        why.append(f"missing {missing}")
    if wrong:
        why.append(f"wrong numbers {wrong}")
    return {"right": not missing and not wrong, "why": "; ".join(why) or "all stated, all true",
            "wrong_values": wrong}


# -- the test split of a prepared dataset --------------------------------------------------------


def split_records(data_dir: Path) -> tuple[list[dict], Any]:
    """A dataset's test.jsonl as benchmark records, plus its TableConfig.

    A qa answer that is one number (with a unit) is compared as a number, else as a name; a
    summary's reference text gives the numbers it must state; the pair's context lines may be
    stated too (``also_correct``).
    """
    import pandas as pd

    from data_loaders.config import TableConfig
    from data_loaders.io import read_jsonl

    manifest = json.loads((data_dir / "manifest.json").read_text(encoding="utf-8"))
    tcfg = TableConfig.model_validate(manifest["config"].get("table") or {})
    labels = [x for src in manifest["sources"] for x in (*src["display"].values(),
                                                          *src["units"].values())]
    vocab = Vocab.of(pd.DataFrame(), labels)  # no '0' and '60' out of "0-60 mph time: 12 s"
    out = []
    tables: dict[str, Any] = {}
    for p in read_jsonl(data_dir / "test.jsonl"):
        ans = str(p["answer"])
        true_of_it: list[str] = []
        if p["task"] == "validate":
            expected: str | list[str] = norm(ans).split()[0].strip(".:,")
        elif p["task"] == "summarize":
            expected = [str(x) for x in vocab.numbers(ans)]
            # The graph may summarize other columns than the reference: any true statistic of
            # the group (or value of the row) is right, the reference's numbers are not owed.
            true_of_it = _true_numbers(p["provenance"], tcfg, tables)
        else:
            m = re.fullmatch(r"\s*(-?[\d,]+(?:\.\d+)?)\s*[^\d]*", ans)
            expected = m.group(1).replace(",", "") if m else ans
        out.append({
            "id": p["id"], "table": p["provenance"]["source"], "table_config": None,
            "request": p["question"], "thread": None, "route": p["task"],
            "kind": p["qtype"], "expected": expected,
            "also_correct": [str(x) for x in vocab.numbers(p.get("context", ""))] + true_of_it,
            "any_true": bool(true_of_it),
        })
    return out, tcfg


def _true_numbers(prov: dict, tcfg: Any, tables: dict[str, Any]) -> list[str]:
    """Every number true of what a summary pair is about: the row's values, or the group's size
    and each numeric column's min/max/mean/sum over it."""
    from data_loaders.loaders import load_tables
    from data_loaders.programs import where_stats

    src = prov["source"]
    if src not in tables:
        [tables[src]] = load_tables([str(ROOT / src)], tcfg)
    t, prog = tables[src], prov["program"]
    out: list[str] = []
    if prog.get("op") == "summary_row":
        row = t.df.iloc[prog["row_id"]]
        out += [str(v) for v in row.tolist() if as_number(str(v)) is not None]
    elif prog.get("op") == "summary_group":
        for col in t.columns_of("numeric"):
            st = where_stats(t, prog["where"], col)
            if st:
                out += [str(round(st[k], 2)) for k in ("count", "min", "max", "mean", "sum")]
    return out


# -- running the graph ---------------------------------------------------------------------------


def fake_model() -> Any:
    """A chat model that always answers "I don't know": only the table's own answers count."""
    from langchain_core.language_models import FakeListChatModel

    return FakeListChatModel(responses=["I don't know"])


def build_model(spec: str, device: str) -> tuple[Any, str]:
    """(chat model, label) for ``none``, ``embedded`` or a model directory."""
    if spec == "none":
        return fake_model(), "none"
    from graphs.chat_model import build_chat_model
    from graphs.config import load_graph_config

    base = load_graph_config(None).student
    if spec == "embedded":
        from distillation.embedded import embedded_teacher_dir

        path, label = str(embedded_teacher_dir()), "embedded"
    else:
        path, label = spec, Path(spec).name
    cfg = base.model_copy(update={"path": path, "base_url": None, "device": device})
    return build_chat_model(cfg), label


class Graphs:
    """One compiled graph per (table, table config), built on first use, sharing one model."""

    def __init__(self, model: Any, default_config: Any = None):
        self.model, self.default_config = model, default_config
        self._graphs: dict[tuple[str, str | None], tuple[Any, Vocab]] = {}

    def get(self, table: str, table_config: str | None) -> tuple[Any, Vocab]:
        """The graph for a table and the scorer's vocabulary of it."""
        key = (table, table_config)
        if key not in self._graphs:
            from data_loaders.config import TableConfig
            from data_loaders.config_loader import load_config
            from data_loaders.loaders import load_tables
            from graphs import build_graph

            if table_config:
                tcfg = load_config(TableConfig, str(ROOT / table_config), section="table")
            else:
                tcfg = self.default_config or TableConfig()
            path = table if "://" in table else str(ROOT / table)
            t = load_tables([path], tcfg)[0]
            graph = build_graph(model=self.model, tables=[t], checkpointer=None)
            graph.distillgraph_router.trusted()  # the router's probes: once, not in a latency
            import pandas as pd

            raw = pd.read_csv(path) if path.endswith(".csv") else t.df
            labels = list(t.display.values()) + list(t.units.values())
            self._graphs[key] = graph, Vocab.of(raw, labels)
        return self._graphs[key]


def clip(text: str, n: int = 400) -> str:
    """A reply as stored in the results (a refusal quotes whole rows)."""
    return text if len(text) <= n else text[:n] + "..."


def every_kth(records: Sequence[dict], k: int) -> list[dict]:
    """Every k-th record, plus the other turns of any thread it belongs to (order kept)."""
    if k <= 1:
        return list(records)
    threads = {r["thread"] for i, r in enumerate(records) if i % k == 0 and r.get("thread")}
    return [r for i, r in enumerate(records) if i % k == 0 or r.get("thread") in threads]


def run_set(records: Sequence[dict], graphs: Graphs, label: str) -> list[dict]:
    """Invoke the graph on every record (turns of a thread in order) and score each reply."""
    rows = []
    for i, rec in enumerate(records):
        graph, vocab = graphs.get(rec["table"], rec.get("table_config"))
        thread = f"{label}:{rec.get('thread') or rec['id']}"
        t0 = time.perf_counter()
        try:
            out = graph.invoke({"messages": [("user", rec["request"])]},
                               config={"configurable": {"thread_id": thread}})
            error = None
        except Exception as exc:  # a crash is a finding: recorded, scored wrong
            out, error = {}, f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - t0
        v = out.get("verdict") or {}
        reply = out.get("answer", "")
        by = out.get("answered_by", "error" if error else "none")
        refused = error is not None or by == "none" or "(unsupported)" in by
        s = score(rec, reply, vocab, refused=refused)
        rows.append({
            "id": rec["id"], "table": Path(rec["table"]).stem, "route": rec["route"],
            "kind": rec.get("kind"), "thread": rec.get("thread"), "request": rec["request"],
            "expected": rec["expected"], "reply": clip(reply), "task": out.get("task"),
            "route_source": out.get("route_source"), "answered_by": by,
            "supported": v.get("supported"), "checked_by": v.get("checked_by"),
            "verdict_reason": v.get("reason"), "right": s["right"], "why": s["why"],
            "wrong_values": s["wrong_values"], "refused": refused, "error": error,
            "seconds": round(seconds, 4),
        })
        mark = "ok " if s["right"] else "BAD"
        print(f"[{i + 1}/{len(records)}] {mark} {rec['id']}: {reply[:90]!r}", file=sys.stderr,
              flush=True)
    return rows


# -- figures -------------------------------------------------------------------------------------


def share(n: int, d: int) -> float | None:
    """n/d rounded, None for an empty denominator."""
    return round(n / d, 4) if d else None


def coverage_bucket(row: dict) -> str:
    """Which kind of reply the user got."""
    ok, by = row["supported"], row["checked_by"]
    if row["refused"] or (ok is False and row["task"] != "validator"):
        return "refused_or_not_found"
    if by == "model":
        return "judged_by_model"
    if ok is not None:
        return "supported" if ok else "table_says_false"
    return {"model": "judged_by_model", "table": "table_has_no_value"}.get(by, "read_from_rows")


def _wrong(row: dict) -> dict:
    keys = ("id", "request", "reply", "expected", "task", "answered_by", "verdict_reason", "why",
            "wrong_values")
    return {**{k: row[k] for k in keys}, "misrouted": row["task"] != GRAPH_ROUTE[row["route"]]}


def percentile(xs: Sequence[float], q: float) -> float | None:
    """The q-th percentile (linear interpolation) rounded to 0.1, None when empty."""
    return round(float(np.percentile(xs, q)), 1) if len(xs) else None


def figures(rows: Sequence[dict]) -> dict:
    """Accuracy per route/kind/table, router, supported precision, coverage, latency."""
    def acc(group: Iterable[dict]) -> dict:
        g = list(group)
        return {"n": len(g), "right": sum(r["right"] for r in g),
                "accuracy": share(sum(r["right"] for r in g), len(g))}

    by = defaultdict(lambda: defaultdict(list))
    for r in rows:
        for k in ("route", "kind", "table"):
            by[k][r[k]].append(r)
    router_hits = sum(r["task"] == GRAPH_ROUTE[r["route"]] for r in rows)
    confusion = Counter(f"{r['route']}->{r['task']}" for r in rows)
    supported = [r for r in rows if r["supported"] is True and not r["refused"]]
    routed_ok = [r for r in supported if r["task"] == GRAPH_ROUTE[r["route"]]]
    claims = [r for r in rows if r["route"] == "validate" and r["task"] == "validator"
              and r["answered_by"] == "table" and r["supported"] is not None]
    buckets = Counter(coverage_bucket(r) for r in rows)
    secs = [r["seconds"] * 1000 for r in rows if r["error"] is None]
    return {
        "n": len(rows),
        "accuracy": acc(rows),
        "accuracy_by_route": {k: acc(v) for k, v in sorted(by["route"].items())},
        "accuracy_by_kind": {k: acc(v) for k, v in sorted(by["kind"].items())},
        "accuracy_by_table": {k: acc(v) for k, v in sorted(by["table"].items())},
        "follow_ups": acc(r for r in rows if r["thread"]),
        "router": {"accuracy": share(router_hits, len(rows)),
                   "by_source": dict(Counter(r["route_source"] for r in rows)),
                   "confusion": dict(sorted(confusion.items()))},
        # A supported reply on the wrong route (a claim answered as a question) is wrong for
        # the user but not a failure of the check: `precision_routed` leaves those out.
        "supported": {"n": len(supported), "right": sum(r["right"] for r in supported),
                      "precision": share(sum(r["right"] for r in supported), len(supported)),
                      "n_routed": len(routed_ok),
                      "precision_routed": share(sum(r["right"] for r in routed_ok),
                                                len(routed_ok)),
                      "wrong": [_wrong(r) for r in supported if not r["right"]]},
        "claims_decided_by_table": {
            "n": len(claims), "right": sum(r["right"] for r in claims),
            "precision": share(sum(r["right"] for r in claims), len(claims)),
            "wrong": [_wrong(r) for r in claims if not r["right"]]},
        "coverage": {k: share(buckets.get(k, 0), len(rows)) for k in (
            "supported", "table_says_false", "table_has_no_value", "read_from_rows",
            "judged_by_model", "refused_or_not_found")},
        "answered_by": dict(Counter(r["answered_by"] for r in rows)),
        "errors": [{"id": r["id"], "error": r["error"]} for r in rows if r["error"]],
        "latency_ms": {"p50": percentile(secs, 50), "p95": percentile(secs, 95)},
    }


def print_table(label: str, name: str, f: dict) -> None:
    """A short human-readable table of one set's figures."""
    print(f"\n== model {label} on {name}: {f['n']} requests")
    print(f"{'route':<12}{'n':>5}{'right':>7}{'acc':>8}")
    for k, a in f["accuracy_by_route"].items():
        print(f"{k:<12}{a['n']:>5}{a['right']:>7}{a['accuracy']:>8.3f}")
    a = f["accuracy"]
    print(f"{'all':<12}{a['n']:>5}{a['right']:>7}{a['accuracy']:>8.3f}")
    s, c = f["supported"], f["claims_decided_by_table"]
    print(f"router accuracy {f['router']['accuracy']:.3f}   "
          f"supported precision {s['right']}/{s['n']}"
          + (f" = {s['precision']:.3f}" if s["n"] else "")
          + (f" ({s['precision_routed']:.3f} when routed right)" if s["n_routed"] else "")
          + f"   table-decided claims {c['right']}/{c['n']}")
    print("coverage " + ", ".join(f"{k} {v:.2f}" for k, v in f["coverage"].items() if v))
    lat = f["latency_ms"]
    print(f"latency p50 {lat['p50']} ms, p95 {lat['p95']} ms")
    for w in s["wrong"] + c["wrong"]:
        tag = "misrouted" if w["misrouted"] else "WRONG"
        print(f"  {tag} {w['id']}: {w['request']!r} -> {w['reply'][:120]!r} "
              f"(expected {w['expected']}; {w['why']})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="none", help="none | embedded | a model directory")
    ap.add_argument("--requests", type=Path, default=DEFAULT_REQUESTS)
    ap.add_argument("--no-natural", action="store_true", help="skip the natural set")
    ap.add_argument("--data", type=Path, help="a prepared dataset dir: also score its test split")
    ap.add_argument("--only", nargs="*", default=[], help="record ids (prefixes) to run")
    ap.add_argument("--every", type=int, default=1,
                    help="a subset: every k-th record (with all turns of its thread)")
    ap.add_argument("--device", default="cpu", help="torch device of a local model")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()

    from data_loaders.io import atomic_write_json, read_jsonl

    t0 = time.perf_counter()
    model, label = build_model(args.model, args.device)
    load_s = time.perf_counter() - t0
    sets: dict[str, tuple[list[dict], Any]] = {}
    if not args.no_natural:
        sets["natural"] = (read_jsonl(args.requests), None)
    if args.data:
        sets["test_split"] = split_records(args.data)
    result_sets = {}
    for name, (records, tcfg) in sets.items():
        if args.only:
            records = [r for r in records if any(r["id"].startswith(p) for p in args.only)]
        records = every_kth(records, args.every)
        rows = run_set(records, Graphs(model, tcfg), label)
        f = figures(rows)
        print_table(label, name, f)
        result_sets[name] = {"figures": f, "subset": bool(args.only or args.every > 1),
                             "requests": rows}
    import torch

    entry = {
        "created_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "model": args.model,
        "device": args.device,
        "model_load_s": round(load_s, 2),
        "environment": {"platform": platform.platform(), "python": platform.python_version(),
                        "torch": torch.__version__, "cpu_count": os.cpu_count()},
        "sets": result_sets,
    }
    old = json.loads(args.out.read_text(encoding="utf-8")) if args.out.is_file() else {}
    models = {**old.get("models", {}), label: entry}
    atomic_write_json(args.out, {"benchmark": "graph", "models": models})
    print(f"\nwrote {args.out} (model {label})")


if __name__ == "__main__":
    main()
