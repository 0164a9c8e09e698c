"""The graph's nodes and routing: process input → route → qa | summarizer | validator → finalize.

`Nodes` holds what every node shares (the student, an optional fallback, the retriever and the
settings) and exposes one method per node plus the two edge functions, which return typed
``Literal``s so the drawn graph is exact. The router scores the three task labels with the
student (`Router`), never generating text and never seeing table content, and falls back to
keyword rules when the model cannot score or is not confident.

Every answer is checked against the table (`graphs.validation`). A question that reads as one of
the dataset's programs is computed by the table: the student's answer is marked supported only
when it states that result, and otherwise the table's own result is the reply (an empty cell or
a tie is said as such). A free question's answer is accepted only as *read from the rows*
(``supported`` None); one that states what the rows do not say gets one retry with a wider
context, then the fallback model if one is configured, and otherwise a reply that says plainly
that no supported answer was found.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig

from data_loaders.programs import SUMMARY_OPS, plain_program
from data_loaders.serialize import build_messages, build_route_messages
from data_loaders.table import Table
from data_loaders.templates import entity_noun
from graphs import prompts
from graphs.chat_model import from_chat_dicts
from graphs.config import GraphConfig
from graphs.programs import Programmer, ask_back, plain_failure, run_reading
from graphs.retrieval import Retrieval, Retriever, target_columns, where_conditions
from graphs.state import ROUTES, Route, State, Verdict, turn_defaults
from graphs.validation import (
    Computed,
    cannot_compute_reply,
    check_answer,
    check_claim,
    compute,
    read_yes_no,
)

log = logging.getLogger(__name__)

_VALIDATE = [re.compile(p, re.I) for p in prompts.VALIDATE_PATTERNS]
_SUMMARIZE = [re.compile(p, re.I) for p in prompts.SUMMARIZE_PATTERNS]
_YES_NO_START = re.compile(r"^\s*(?:is|are|does|do|did|has|have|was|were)\b", re.I)
_ALTERNATIVE = re.compile(r"\bor\b", re.I)
_FOLLOW_UP = [re.compile(p, re.I) for p in prompts.FOLLOW_UP_PATTERNS]
_YES = re.compile(r"^\s*(?:yes|yep|yeah|y|sure|right|correct|exactly|please do|yes please)\b"
                  r"[\s.!]*$", re.I)
_FOLLOW_UP_COLUMN = re.compile(
    r"^\s*(?:and|also|what about|how about)?\s*(?:its|their|the)\s+(?P<col>[^?.!]+?)\s*[?.!]*\s*$",
    re.I,
)


# --------------------------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------------------------


def rule_route(query: str) -> Route:
    """Route by keywords: a claim, then a summary request, else a question."""
    if any(p.search(query) for p in _VALIDATE):
        return "validator"
    if _YES_NO_START.search(query) and not _ALTERNATIVE.search(query):
        return "validator"  # "Is the <column> of X 130?", "Does X have 8 <column>?"
    if any(p.search(query) for p in _SUMMARIZE):
        return "summarizer"
    return "qa"


def pronoun_pattern(tables: Iterable[Table]) -> re.Pattern[str]:
    """`prompts.PRONOUN_PATTERN` with the row nouns of `tables` ("this airport", "that entry")."""
    nouns = sorted({entity_noun(t) for t in tables}, key=lambda n: (-len(n), n))
    return re.compile(prompts.PRONOUN_PATTERN.format(nouns="|".join(map(re.escape, nouns))), re.I)


def route_messages(query: str) -> list[SystemMessage | HumanMessage]:
    """The routing prompt the student was trained on: the user's query only, no table content."""
    return from_chat_dicts(build_route_messages(query))


def _computed_by_table(
    out: dict, answer: str, r: Retrieval, reason: str, evidence: list[str] | None = None
) -> None:
    """Replace an unsupported model answer in a node's output with the table's own answer."""
    if evidence is None:
        evidence = r.row_lines()[:5] + r.facts[:3]
    out.update(
        answer=answer,
        answered_by="table",
        verdict=Verdict(supported=True, reason=reason, evidence=evidence, checked_by="table"),
    )


def _rows_note(verdict: Verdict) -> str:
    """The note an answer read from the rows carries (what was and was not checked)."""
    if verdict.get("supported") is not None or verdict.get("checked_by") != "rows":
        return ""
    return f" ({verdict.get('reason', 'read from the rows, not computed by the table')})"


def _summary_columns(p: Any) -> list[str]:
    """The columns a group summary describes.

    Those the request names, else every numeric column outside the filter, as the program
    path's ``summary_group`` (training contexts show two; the reply is the table's own, so it
    can state them all).
    """
    filter_cols = {f.column for f in p.filters}
    named = [c for c in target_columns(p) if c not in filter_cols]
    return named or [c for c in p.table.columns_of("numeric") if c not in filter_cols]


def _use_prose(out: dict, prose: dict) -> None:
    """Put the student's checked summary prose in place of the table's sentences."""
    v = out["verdict"]
    if prose["why"] is not None:
        out["verdict"] = Verdict(**{**v, "reason": f"{v['reason']}; the student's prose was not "
                                                   f"shown ({prose['why']})"})
        return
    out["answer"] = prose["text"]
    out["answered_by"] = "program + student prose"
    out["verdict"] = Verdict(
        supported=True,
        reason=f"{v['reason']}; every number, name and value in the student's prose is one of "
               "the facts the table computed",
        evidence=[*v.get("evidence", []), *(f"fact: {ln}" for ln in prose["facts"])],
        checked_by="table",
    )


def _group_program(r: Retrieval) -> dict | None:
    """The ``summary_group`` program of a summary request about a filtered group, else None."""
    p, t = r.parse, r.table
    if p is None or t is None or p.entities or not p.filters:
        return None
    return plain_program({
        "op": "summary_group",
        "where": where_conditions(p.filters),
        "columns": _summary_columns(p),
        "noun": entity_noun(t),
        "evidence": "facts" if r.facts else "rows",
    })


class Router:
    """Picks qa / summarizer / validator: model label scores when trustworthy, else rules."""

    def __init__(self, model: Any, mode: str = "score", min_margin: float = 2.0):
        self.model = model
        self.mode = mode
        self.min_margin = min_margin
        self._trusted: bool | None = None
        self._lock = threading.Lock()

    def scores(self, query: str) -> dict[str, float] | None:
        """Log-prob of each dataset label, or None when the model cannot score."""
        score = getattr(self.model, "score_labels", None)
        if score is None:
            return None
        return score(route_messages(query), list(prompts.ROUTER_LABELS))

    def model_label(self, query: str) -> str | None:
        """The dataset label the model's scores rank first (None when it cannot score)."""
        s = self.scores(query)
        return max(s, key=s.__getitem__) if s else None

    def trusted(self) -> bool:
        """Whether the model labels every probe right (checked once, then cached)."""
        if self._trusted is None:
            with self._lock:
                if self._trusted is None:
                    self._trusted = self._probe()
        return self._trusted

    def _probe(self) -> bool:
        if self.mode != "score" or not hasattr(self.model, "score_labels"):
            return False
        for query, label in prompts.ROUTER_PROBES:
            if self.model_label(query) != label:
                log.info("router: the model mislabels %r; routing by rules", query)
                return False
        return True

    def route(self, query: str) -> tuple[Route, str, dict[str, float]]:
        """Return (route, "scores" or "rules", the label scores if computed)."""
        if self.trusted():
            s = self.scores(query) or {}
            ranked = sorted(s.items(), key=lambda kv: kv[1], reverse=True)
            if len(ranked) >= 2 and ranked[0][1] - ranked[1][1] >= self.min_margin:
                return prompts.ROUTER_LABELS[ranked[0][0]], "scores", s  # type: ignore[return-value]
            return rule_route(query), "rules", s
        return rule_route(query), "rules", {}


def router_accuracy(graph_or_router: Any, pairs: Iterable[Any]) -> float:
    """Share of questions routed to their dataset task.

    Args:
        graph_or_router: A `Router`, a compiled graph from `graphs.build_graph` (its router is
            used, no answer is generated), or a function ``query -> route``.
        pairs: `QAPair`s or dicts with ``question`` and ``task`` (qa / summarize / validate).
    """
    router = getattr(graph_or_router, "distillgraph_router", graph_or_router)
    fn: Callable[[str], str] = router.route if isinstance(router, Router) else router
    hits = n = 0
    for pair in pairs:
        q = pair["question"] if isinstance(pair, dict) else pair.question
        task = pair["task"] if isinstance(pair, dict) else pair.task
        got = fn(q)
        got = got[0] if isinstance(got, tuple) else got
        hits += got == prompts.ROUTER_LABELS.get(task, task)
        n += 1
    if n == 0:
        raise ValueError("router_accuracy needs at least one pair")
    return hits / n


# --------------------------------------------------------------------------------------------
# Nodes
# --------------------------------------------------------------------------------------------


NodeFn = Callable[[State, RunnableConfig], dict]


def _timed(name: str, fn: NodeFn) -> NodeFn:
    def node(state: State, config: RunnableConfig) -> dict:
        t0 = time.perf_counter()
        out = fn(state, config)
        out.setdefault("timings", {})[name] = round(time.perf_counter() - t0, 4)
        return out

    node.__name__ = name
    node.__doc__ = fn.__doc__
    return node


def _last_user_text(state: State) -> str:
    for m in reversed(state.get("messages") or []):
        if isinstance(m, HumanMessage):
            return m.text if not isinstance(m.content, str) else m.content
    return ""


@dataclass
class Nodes:
    """Node functions over shared resources (one instance per compiled graph)."""

    student: BaseChatModel
    retriever: Retriever
    config: GraphConfig
    fallback: BaseChatModel | None = None
    fallback_factory: Callable[[], BaseChatModel] | None = None
    fallback_name: str = "fallback"
    router: Router = field(init=False)
    programmer: Programmer = field(init=False)
    _fallback_lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _pronoun: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        self.router = Router(self.student, self.config.router.mode, self.config.router.min_margin)
        self._pronoun = pronoun_pattern(self.retriever.tables)
        self.programmer = Programmer(
            self.student,
            [self.retriever.index_of(t) for t in self.retriever.tables],
            self.config.program,
            fallback=self._fallback_model,
            fallback_name=self.fallback_name,
        )

    # ---- model calls ---------------------------------------------------------------------

    def _fallback_model(self) -> BaseChatModel | None:
        if self.fallback is None and self.fallback_factory is not None:
            with self._fallback_lock:  # load once, on first need
                if self.fallback is None:
                    self.fallback = self.fallback_factory()
        return self.fallback

    @staticmethod
    def _ask(model: BaseChatModel, context: str, question: str, tag: str) -> str:
        reply = model.with_config(tags=[f"distillgraph:{tag}"]).invoke(
            from_chat_dicts(build_messages(context, question))
        )
        return (reply.text if not isinstance(reply.content, str) else reply.content).strip()

    # ---- input -------------------------------------------------------------------------

    def process_input(self, state: State, config: RunnableConfig) -> dict:
        """Read the user's message: refuse empty/overlong input; resolve follow-ups."""
        limit = self.config.for_call(config).max_input_chars
        raw = _last_user_text(state).strip()
        out: dict[str, Any] = {**turn_defaults(), "raw_query": raw, "query": raw}
        if not raw:
            out["rejected"] = prompts.EMPTY_INPUT_REPLY
        elif len(raw) > limit:
            out["rejected"] = prompts.TOO_LONG_REPLY.format(n=len(raw), limit=limit)
        elif (pending := state.get("pending_program")) and _YES.match(raw):
            out["query"] = pending.get("query", raw)
            out["program"] = {**pending, "confirmed": True}
        else:
            out["query"] = self.resolve_follow_up(raw, state.get("entity"))
        return out

    def resolve_follow_up(self, query: str, entity: str | None) -> str:
        """Rewrite "and its <column>?" as a question about the previous turn's entity."""
        if not entity or any(p.entities for p in self.retriever.parse(query)):
            return query
        if not any(p.search(query) for p in _FOLLOW_UP):
            return query
        m = _FOLLOW_UP_COLUMN.match(query)
        if m:
            return f"What is the {m.group('col')} of {entity}?"
        if self._pronoun.search(query):
            return self._pronoun.sub(
                lambda x: f"{entity}'s" if x.group(0).lower() == "its" else entity, query
            )
        return f"{query.rstrip(' ?.!')} of {entity}?"

    @staticmethod
    def check_input(state: State) -> Literal["route", "finalize"]:
        """Edge: refused input goes straight to finalize."""
        return "finalize" if state.get("rejected") else "route"

    # ---- routing -----------------------------------------------------------------------

    def route(self, state: State, config: RunnableConfig) -> dict:
        """Pick the task: the op of the student's program, else label scores, else rules.

        A student that writes programs (`graphs.programs`) routes by what it wrote; the label
        scores and keyword rules are the fallback for a program that does not parse and for a
        model that does not write programs.
        """
        reading = state.get("program")
        if reading is None and self.programmer.active():
            reading = {**self.programmer.read(state["query"]), "query": state["query"]}
        if reading is not None and reading.get("task"):
            return {"task": reading["task"], "route_source": "program", "route_scores": {},
                    "program": reading}
        task, source, scores = self.router.route(state["query"])
        return {"task": task, "route_source": source, "route_scores": scores, "program": reading}

    def _from_program(self, state: State) -> dict | None:
        """The reply computed from the student's program, or None to answer the old way.

        None only when programs are off, or no program was read and a fallback model can
        answer from the rows instead.
        """
        reading = state.get("program")
        if reading is None:
            return None
        index = self.programmer.index_of(reading["table"])
        table = index.table
        base: dict[str, Any] = {"table": table.name, "attempts": reading.get("attempts", 0),
                                "pending_program": None}
        if reading.get("spec") is None:
            if self._fallback_model() is not None:
                return None
            return {**base, **plain_failure(reading, index, state["query"])}
        spec = reading["spec"]
        if spec.get("row_id") is not None:
            base["entity"] = spec["entity"]
            base["row_ids"] = [int(spec["row_id"])]
        elif spec.get("row_ids"):
            base["row_ids"] = [int(r) for r in spec["row_ids"]]
        conf = reading.get("confidence")
        unsure = reading.get("unused") or reading.get("contradicts") or reading.get("unnamed") or (
            conf is not None and conf < self.config.program.min_confidence
        )
        if not reading.get("confirmed") and unsure:
            return {**base, **ask_back(reading, table), "pending_program": reading}
        out = run_reading(reading, table)
        if out["answered_by"] == "program":
            base["table_program"] = plain_program(spec)
            if spec["op"] in SUMMARY_OPS and self.config.program.prose:
                base["prose"] = prose = self.programmer.write_prose(spec, index)
                _use_prose(out, prose)
        return {**base, **out}

    @staticmethod
    def pick_task(state: State) -> Literal["qa", "summarizer", "validator"]:
        """Edge: the routed task's node; anything else is a bug."""
        task = state.get("task")
        if task not in ROUTES:
            raise ValueError(f"router produced {task!r}; expected one of {ROUTES}")
        return task

    # ---- tasks -------------------------------------------------------------------------

    def _retrieval_fields(self, r: Retrieval) -> dict:
        out: dict[str, Any] = {
            "table": r.table.name if r.table else None,
            "context": r.context,
            "row_ids": list(r.row_ids),
        }
        if r.parse is not None and len(r.parse.entities) == 1:
            out["entity"] = r.table.entity_of(int(r.parse.entities[0].value))
        return out

    def _not_found(self) -> dict:
        tables = self.retriever.tables
        return {
            "answer": prompts.NOT_FOUND_REPLY.format(
                s="s" if len(tables) > 1 else "",
                tables=", ".join(t.name for t in tables),
                examples=", ".join(self.retriever.examples()),
            ),
            "verdict": Verdict(
                supported=False,
                reason="nothing in the tables matches",
                evidence=[],
                checked_by="table",
            ),
            "answered_by": "none",
        }

    def _answer_checked(
        self,
        query: str,
        first: Retrieval,
        mode: str,
        cfg: GraphConfig,
        computed: Computed | None = None,
    ) -> dict:
        """Student answer → check → one wider retry → fallback → plain 'unsupported' reply.

        With a `computed` result the student gets one try: a wider context or another model
        cannot beat the table's own result, which the caller then gives instead.
        """
        summary = mode == "summary"
        index = self.retriever.index_of(first.table)
        attempts = 0
        tried: list[tuple[str, Retrieval, Verdict]] = []
        r = first
        for retry in (False,) if computed is not None else (False, True):
            if retry:  # one retry, with a wider context, unless it would show the same rows
                r = self.retriever.retrieve(query, wide=True, summary=summary, config=cfg.retrieval)
                if r.context == first.context:
                    break
            attempts += 1
            ans = self._ask(self.student, r.context, query, "student")
            v = check_answer(ans, r, index, cfg.validation, mode=mode, computed=computed)
            tried.append((ans, r, v))
            if v["supported"] is not False:  # True: states the computed result; None: free
                return {
                    "answer": ans + _rows_note(v),
                    "verdict": v,
                    "answered_by": "student",
                    "attempts": attempts,
                    **self._retrieval_fields(r),
                }
        fb = self._fallback_model() if computed is None else None
        if fb is not None:
            attempts += 1
            ans = self._ask(fb, r.context, query, "fallback")
            v = check_answer(ans, r, index, cfg.validation, mode=mode)
            tried.append((ans, r, v))
            if v["supported"] is not False:
                return {
                    "answer": ans + _rows_note(v),
                    "verdict": v,
                    "answered_by": f"fallback:{self.fallback_name}",
                    "attempts": attempts,
                    **self._retrieval_fields(r),
                }
        ans, r, v = tried[-1]
        rows = "\n".join(r.context.splitlines()[:4]) or "(none)"
        who = f"fallback:{self.fallback_name}" if fb is not None else "student"
        return {
            "answer": prompts.UNSUPPORTED_REPLY.format(
                answer=ans[:200], reason=v.get("reason", "it is not in the table"), rows=rows
            ),
            "verdict": v,
            "answered_by": f"{who} (unsupported)",
            "attempts": attempts,
            **self._retrieval_fields(r),
        }

    def qa(self, state: State, config: RunnableConfig) -> dict:
        """Answer a question: computed by the table when it reads as a program, else read.

        A question that reads as a dataset program (lookup, comparison, superlative,
        count/mean/sum over a filter) is computed by the table; the student's answer stands
        only when it states that result, otherwise the table's result is the reply. A program
        that cannot run (an empty cell, a tie) gets a plain reply saying so. Other questions
        are answered from the retrieved rows and labelled as not computed by the table.
        """
        if (done := self._from_program(state)) is not None:
            return done
        cfg = self.config.for_call(config)
        r = self.retriever.retrieve(state["query"], config=cfg.retrieval)
        if not r.found:
            return self._not_found()
        computed = compute(r.parse) if r.parse is not None else None
        if computed is not None and computed.answer is None:
            reply, is_fact = cannot_compute_reply(computed)
            return {
                "answer": reply,
                "answered_by": "table",
                "verdict": Verdict(
                    supported=True if is_fact else False,
                    reason=f"computed from the table ({computed.describe()}): {computed.error}",
                    evidence=computed.evidence(),
                    checked_by="table",
                ),
                "attempts": 0,
                **self._retrieval_fields(r),
            }
        out = self._answer_checked(state["query"], r, "qa", cfg, computed)
        if computed is not None:
            out["table_program"] = plain_program(computed.program)
            if out["verdict"].get("supported") is False:
                _computed_by_table(out, computed.answer, r,
                                   f"computed from the table ({computed.describe()})",
                                   computed.evidence())
        return out

    def summarizer(self, state: State, config: RunnableConfig) -> dict:
        """Summarize the rows or group the user names; the summary's values are checked."""
        if (done := self._from_program(state)) is not None:
            return done
        cfg = self.config.for_call(config)
        r = self.retriever.retrieve(state["query"], summary=True, config=cfg.retrieval)
        if not r.found:
            return self._not_found()
        out = self._answer_checked(state["query"], r, "summary", cfg)
        if (group := _group_program(r)) is not None:
            out["table_program"] = group
        if out["verdict"].get("supported") is not False:  # prose whose values were found
            return out
        table_summary = self._table_summary(r)
        if table_summary:  # the table's own summary beats an unsupported one
            _computed_by_table(out, table_summary, r, "computed from the table")
        return out

    def _table_summary(self, r: Retrieval) -> str | None:
        from data_loaders.programs import ProgramError, group_summary, row_summary

        t, p = r.table, r.parse
        cols = [c for c in t.columns if c != t.entity_column]
        try:
            if p is not None and len(p.entities) == 1:
                return row_summary(t, int(p.entities[0].value), cols)
            if p is not None and p.filters:
                where = where_conditions(p.filters)
                fits = not r.facts  # the whole group is in the context: name its rows
                return group_summary(t, where, _summary_columns(p), entity_noun(t), fits)
        except ProgramError:
            return None
        return None

    def validator(self, state: State, config: RunnableConfig) -> dict:
        """Check the user's claim: a table lookup when parseable, else the model (labelled)."""
        if (done := self._from_program(state)) is not None:
            return done
        cfg = self.config.for_call(config)
        query = state["query"]
        r = self.retriever.retrieve(query, config=cfg.retrieval)
        if not r.found:
            return self._not_found()
        claim = check_claim(r.parse, cfg.validation) if r.parse else None
        if claim is not None:
            return {
                "answer": claim.answer,
                "verdict": claim.verdict,
                "answered_by": "table",
                **self._retrieval_fields(r),
            }
        ans = self._ask(self.student, r.context, query, "student")
        yes = read_yes_no(ans)
        verdict = Verdict(
            supported=yes,
            reason="the claim could not be read as entity + column + value; the model judged it",
            evidence=r.row_lines()[:5] + r.facts[:3],
            checked_by="model",
        )
        return {
            "answer": ans + prompts.MODEL_CLAIM_NOTE,
            "verdict": verdict,
            "answered_by": "student",
            "attempts": 1,
            **self._retrieval_fields(r),
        }

    # ---- output ------------------------------------------------------------------------

    def finalize(self, state: State, config: RunnableConfig) -> dict:
        """Write the reply as the assistant message of this turn."""
        answer = state.get("rejected") or state.get("answer") or prompts.EMPTY_INPUT_REPLY
        meta = {
            "task": state.get("task"),
            "answered_by": state.get("answered_by"),
            "supported": (state.get("verdict") or {}).get("supported"),
        }
        return {"answer": answer, "messages": [AIMessage(content=answer, response_metadata=meta)]}

    def node_functions(self) -> dict[str, NodeFn]:
        """Name → timed node function ``(state, config)``, in graph order.

        Every node receives the run config; those that read settings take this call's
        (`GraphConfig.for_call`), so ``configurable`` can change them per call.
        """
        names: Sequence[str] = (
            "process_input",
            "route",
            "qa",
            "summarizer",
            "validator",
            "finalize",
        )
        return {n: _timed(n, getattr(self, n)) for n in names}
