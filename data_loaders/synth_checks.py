"""What the table must confirm before a teacher's request enters a dataset, and the prompts.

`paraphrase_messages` / `new_messages` are the two calls ``distillgraph synth`` makes per train
pair (`data_loaders.synth`); `parse_paraphrases` / `parse_new` read the replies. `check_paraphrase`
keeps a paraphrase only when masking it gives the same mention slots as its pair and the pair's
program, read over it, gives the stored answer. `check_new` keeps a new request only when its
program parses, binds, uses every mention, names no val/test entity, runs, and gives the answer
the teacher stated (`answers_agree`); its program text is rewritten canonically and its context
holds the rows and facts the answer rests on. `summary_messages` / `check_summary` (only with
``--summaries N``) ask for summaries of a summary pair's facts and keep one only when every
number it writes is one of the facts (or a fact rounded to fewer decimals), every row it names is
one the facts show, and every category value it names appears in them. Each refusal is a
`Rejected` whose ``reason`` is the manifest's category.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any

from data_loaders.mentions import NUMBER, NameIndex, normalize
from data_loaders.misreading import contradictions, ungrounded_columns, unused_mentions
from data_loaders.program_text import (
    Masked,
    ProgramSyntaxError,
    mask_request,
    program_messages,
    read_program,
    schema_text,
    to_text,
)
from data_loaders.programs import (
    SUMMARY_OPS,
    ProgramError,
    index_for,
    pandas_expr,
    required_facts,
    required_rows,
    run_program,
)
from data_loaders.qa import question_key
from data_loaders.schema import TASK_OF_TYPE, Provenance, QAPair
from data_loaders.table import Table
from data_loaders.teacher_client import BadReply, loose_json

PARAPHRASE = "synth-paraphrase"
NEW = "synth-new"
SUMMARY = "synth-summary"
TEMPLATE = "template"
PARAPHRASE_SYSTEM = (
    "You rewrite requests that people send to a chat assistant about a data table. Write each "
    "one the way a real user types into a chat box: casual, short, often lowercase, punctuation "
    "or question words left out, sometimes a command instead of a question, common "
    "abbreviations, a different word order. Keep the meaning exactly: the same thing asked "
    "about the same rows and values. Copy every row name, category value and number exactly as "
    "the request writes it (letter case may change); add no other names, values or numbers. "
    'Reply with JSON only: {"paraphrases": ["...", "..."]}'
)
NEW_SYSTEM = (
    "You write new requests that people might send to a chat assistant about a data table, "
    "each with the program that answers it and its answer. Type them the way real users do "
    "(casual, short, often lowercase). Ask about the rows shown or about groups of rows, using "
    "only names and values that appear in the rows shown, the example or the schema.\n"
    "A program is one line:\n"
    "  lookup E COL | claim E COL CMP S | compare E E COL DIR | superlative COL DIR [WHERE]\n"
    "  aggregate AGG [COL] [WHERE] | list [WHERE] | top K COL DIR [WHERE] | distinct COL [WHERE]"
    "\n  group AGG [COL] by COL [WHERE]\n"
    "  WHERE := where COND (and COND)* ; COND := C | COL CMP V\n"
    "  CMP := == > < >= <= ; DIR := max | min ; AGG := count mean sum min max\n"
    "Slots: the rows a request names are E1, E2 (in the order it names them), its category "
    "values C1, C2 and its numbers V1, V2 (each kind numbered in order of first mention); a "
    "number inside a column's own words is not a slot. COL is a column identifier from the "
    "schema. The answer is what the program computes over the whole table: a number with its "
    "unit, a name, yes or no, or a list of names. Write no summaries. "
    'Reply with JSON only: {"requests": [{"request": "...", "program": "...", "answer": "..."}]}'
)
SUMMARY_SYSTEM = (
    "You write the replies a chat assistant gives when asked to summarize rows of a data table. "
    "Use only the facts given. Copy every number from the facts (you may round it to fewer "
    "decimals); compute no new number (no differences, ratios or percentages) and write no "
    "number the facts do not show. Name only the rows the facts show. Write plain, fluent, "
    "varied prose of one to three sentences, each summary worded differently from the "
    "reference. "
    'Reply with JSON only: {"summaries": ["...", "..."]}'
)
_NUM = re.compile(r"-?\d+(?:\.\d+)?")
# A number in prose: "3,504", "12.5", "-3"; the "60" of "0-60" is 60, not -60.
_PROSE_NUM = re.compile(r"(?<![\w.,-])-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|(?<![\w.,])-?\d+(?:\.\d+)?")
# Number words a summary may write instead of digits ("four cylinders"); "one" is left out, it is
# more often a pronoun than a count.
_NUMBER_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve".split()) if i != 1}


class Rejected(Exception):  # noqa: N818 -- a verdict on a teacher's request
    """A teacher request the table does not confirm: ``reason`` is the manifest's category."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


# --------------------------------------------------------------------------------------------
# Prompts and replies
# --------------------------------------------------------------------------------------------


def paraphrase_messages(table: Table, pair: QAPair, n: int) -> list[dict]:
    """The call asking for `n` paraphrases of `pair`'s request."""
    user = f"{schema_text(table)}\nrequest: {pair.question}\nhow many: {n}"
    return [{"role": "system", "content": PARAPHRASE_SYSTEM}, {"role": "user", "content": user}]


def new_messages(table: Table, pair: QAPair, masked: Masked, n: int) -> list[dict]:
    """The call asking for `n` new requests (with programs) about `pair`'s rows or group."""
    user = (
        f"{schema_text(table)}\nrows shown:\n{pair.context}\n"
        f"example request: {pair.question}\nrequest: {pair.question}\n"
        f"its masked form: {masked.text}\nits program: {pair.program_text}\n"
        f"its answer: {pair.answer}\nhow many: {n}"
    )
    return [{"role": "system", "content": NEW_SYSTEM}, {"role": "user", "content": user}]


def summary_messages(pair: QAPair, n: int) -> list[dict]:
    """The call asking for `n` summaries of `pair`'s facts (its context); its answer is shown."""
    user = (f"request: {pair.question}\nfacts:\n{pair.context}\n"
            f"reference summary: {pair.answer}\nhow many: {n}")
    return [{"role": "system", "content": SUMMARY_SYSTEM}, {"role": "user", "content": user}]


def _reply_list(text: str, key: str) -> list[Any]:
    """The list under `key` of a JSON reply (`BadReply` when the reply has none)."""
    value = loose_json(text)
    items = value.get(key) if isinstance(value, dict) else None
    if not isinstance(items, list):
        raise BadReply("reply is not JSON", f'no "{key}" list in the reply')
    return items


def parse_summaries(text: str) -> list[Any]:
    """The list under ``summaries`` (`BadReply` when the reply has none)."""
    return _reply_list(text, "summaries")


def parse_paraphrases(text: str) -> list[Any]:
    """The list under ``paraphrases`` (`BadReply` when the reply has none)."""
    return _reply_list(text, "paraphrases")


def parse_new(text: str) -> list[Any]:
    """The list under ``requests`` (`BadReply` when the reply has none)."""
    return _reply_list(text, "requests")


# --------------------------------------------------------------------------------------------
# The checks
# --------------------------------------------------------------------------------------------


def slots_of(masked: Masked) -> dict[str, tuple]:
    """A request's mention slots as comparable values: name -> (kind, column, value)."""
    out = {}
    for name, s in masked.slots.items():
        value = float(s.value) if s.kind == "number" else s.value
        out[name] = (s.kind, s.column, value)
    return out


def answers_agree(stated: str, computed: str, units: Iterable[str] = ()) -> bool:
    """Whether the teacher's stated answer says what the program computed.

    Equal after `normalize`; or for yes/no its first word; otherwise every number of the
    computed answer appears in the stated one (within 0.006 or 0.1 %) and so does every other
    word of it except unit words.
    """
    s, c = normalize(stated), normalize(computed)
    if s == c:
        return True
    if c in ("yes", "no"):
        first = s.split()[:1]
        return first == [c] or first == [{"yes": "true", "no": "false"}[c]]
    c_nums = [float(x) for x in _NUM.findall(computed.replace(",", ""))]
    s_nums = [float(x) for x in _NUM.findall(stated.replace(",", ""))]
    for x in c_nums:
        if not any(abs(x - y) <= max(0.006, 1e-3 * abs(x)) for y in s_nums):
            return False
    unit_words = {w for u in units for w in normalize(u or "").split()}
    words = set(s.split())
    return all(w in words for w in c.split() if not NUMBER.match(w) and w not in unit_words)


def _synth_id(parent: str, kind: str, question: str) -> str:
    text = f"{parent}|{kind}|{question_key(question)}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def check_paraphrase(pair: QAPair, text: Any, index: NameIndex) -> QAPair:
    """The paraphrase as a pair of its own, or `Rejected` saying why the table refuses it."""
    if not isinstance(text, str) or not text.strip():
        raise Rejected("not a request", repr(text)[:80])
    text = " ".join(text.split())
    table = index.table
    if question_key(text) == question_key(pair.question):
        raise Rejected("same as the original", repr(text))
    original = mask_request(pair.question, index)
    masked = mask_request(text, index)
    if slots_of(masked) != slots_of(original):
        raise Rejected("mentions differ",
                       f"{text!r}: {masked.text!r} vs the original's {original.text!r}")
    try:
        answer = run_program(table, read_program(pair.program_text or "", masked, index))
    except ProgramError as e:
        raise Rejected("program fails", f"{text!r}: {e}") from None
    if answer != pair.answer:
        raise Rejected("answer differs", f"{text!r}: {answer!r} != {pair.answer!r}")
    return pair.model_copy(update={
        "id": _synth_id(pair.id, PARAPHRASE, text),
        "template": PARAPHRASE,
        "question": text,
        "program_input": program_messages(table, masked)[1]["content"],
    })


def reproduces(pair: QAPair, index: NameIndex) -> bool:
    """Whether `pair`'s own ``program_text``, read over its request, gives its stored answer.

    Not always so: a group summary's stored program lists a sample of columns that the one-line
    ``summary_group where ...`` cannot name. Such pairs are not sent to the teacher.
    """
    try:
        masked = mask_request(pair.question, index)
        prog = read_program(pair.program_text or "", masked, index)
        return run_program(index.table, prog) == pair.answer
    except ProgramError:
        return False


def _context(table: Table, program: dict) -> tuple[list[int], str]:
    """The rows and fact lines an answer rests on (the context rule of `data_loaders.qa`)."""
    idx = index_for(table)
    rows = sorted(set(required_rows(table, program)))
    lines = [idx.row_text(r) for r in rows] + required_facts(table, program)
    return rows, "\n".join(lines)


def check_new(item: Any, index: NameIndex, held_out: set[str], parent: str) -> QAPair:
    """A teacher's new request as a pair, or `Rejected` saying why the table refuses it.

    `held_out` holds the val/test entity names (`normalize`d); `parent` is the source pair's id.
    """
    if not isinstance(item, dict) or not all(
        isinstance(item.get(k), str) and item[k].strip() for k in ("request", "program", "answer")
    ):
        raise Rejected("not a request with program and answer", repr(item)[:80])
    table = index.table
    request = " ".join(item["request"].split())
    line = item["program"].strip()
    masked = mask_request(request, index)
    try:
        prog = read_program(line, masked, index)
    except ProgramSyntaxError as e:
        raise Rejected("program does not parse", f"{line!r}: {e}") from None
    except ProgramError as e:
        unknown = str(e).startswith("unknown column")
        reason = "unknown column" if unknown else "program does not bind"
        raise Rejected(reason, f"{line!r}: {e}") from None
    if prog["op"] in SUMMARY_OPS:
        raise Rejected("summary", f"{line!r}: summaries are not taken from the teacher")
    unused = unused_mentions(line, masked, table)
    if unused:
        raise Rejected("leaves out a mention",
                       f"{line!r} does not use {', '.join(unused)} of {masked.text!r}")
    # The graph would not answer from a program that misreads its request (see
    # data_loaders.misreading), so the student should not learn from one.
    clash = contradictions(line, masked, table)
    if clash:
        raise Rejected("contradicts its request", f"{line!r} for {masked.text!r}: {clash[0]}")
    unnamed = ungrounded_columns(line, masked, table)
    if unnamed:
        raise Rejected("a column the request never names",
                       f"{line!r} uses {', '.join(unnamed)}; {masked.text!r} never names it")
    names = [table.entity_of(int(s.value)) for s in masked.of_kind("entity")]
    leaked = [n for n in names if normalize(n) in held_out]
    if leaked:
        raise Rejected("names a val/test entity", f"{request!r}: {', '.join(leaked)}")
    try:
        answer = run_program(table, prog)
    except ProgramError as e:
        raise Rejected("program fails", f"{line!r}: {e}") from None
    if not answers_agree(item["answer"], answer, table.units.values()):
        raise Rejected("answer differs from the teacher's",
                       f"{line!r} gives {answer!r}, the teacher said {item['answer']!r}")
    canonical = to_text(prog, masked)
    if canonical is None:
        raise Rejected("program does not bind", f"{line!r} cannot be written over the mentions")
    rows, context = _context(table, prog)
    cols = [c for c in (prog.get("column"), prog.get("by")) if c]
    cols += [c["column"] for c in prog.get("where", [])]
    if table.entity_column:
        cols.insert(0, table.entity_column)
    entities = list(dict.fromkeys([index_for(table).entity_name(r) for r in rows] + names))
    return QAPair(
        id=_synth_id(parent, NEW, request),
        task=TASK_OF_TYPE[prog["op"]],
        qtype=prog["op"],
        template=NEW,
        question=request,
        answer=answer,
        context=context,
        entities=entities,
        provenance=Provenance(
            source=table.source, table=table.name, table_hash=table.content_hash,
            row_ids=rows, columns=list(dict.fromkeys(cols)),
            program={**prog, "pandas": pandas_expr(table, prog)},
        ),
        program_input=program_messages(table, masked)[1]["content"],
        program_text=canonical,
    )


def prose_numbers(text: str) -> list[tuple[str, float]]:
    """The numbers a text writes, as (written form, value): digits and the words two..twelve."""
    out = [(m.group(0), float(m.group(0).replace(",", ""))) for m in _PROSE_NUM.finditer(text)]
    words = re.findall(r"[a-z]+", text.lower())
    return out + [(w, float(_NUMBER_WORDS[w])) for w in words if w in _NUMBER_WORDS]


def _in_facts(written: str, value: float, facts: list[float]) -> bool:
    """Whether `value` is a fact, or a fact rounded to the decimals `written` shows."""
    decimals = len(written.split(".", 1)[1]) if "." in written else 0
    return any(abs(value - f) < 1e-9 or abs(value - round(f, decimals)) < 1e-9 for f in facts)


def check_summary(pair: QAPair, text: Any, index: NameIndex, held_out: set[str]) -> QAPair:
    """A teacher's summary of `pair`'s facts as a pair of its own, or `Rejected` saying why.

    Kept only when every number it writes is in the facts (``pair.context`` and the reference
    answer), possibly rounded to fewer decimals; every row it names is a row of the facts (and
    no val/test row); every category value it names appears in the facts; a row summary names
    its row. Words between the numbers ("heavier", "the most") are not checked: the prompt
    forbids computed claims, and a number a claim would need is refused.
    """
    if not isinstance(text, str) or not text.strip():
        raise Rejected("not a summary", repr(text)[:80])
    text = " ".join(text.split())
    if normalize(text) == normalize(pair.answer):
        raise Rejected("same as the reference", repr(text))
    if len(text) > max(3 * len(pair.answer), 400):
        raise Rejected("too long", f"{len(text)} characters for a {len(pair.answer)}-character "
                       "reference")
    source = f"{pair.context}\n{pair.answer}"
    facts = [v for _, v in prose_numbers(source)]
    invented = [w for w, v in prose_numbers(text) if not _in_facts(w, v, facts)]
    if invented:
        raise Rejected("number not in the facts", f"{', '.join(invented)} in {text!r}")
    table = index.table
    masked = mask_request(text, index)
    shown = {normalize(table.entity_of(r)) for r in pair.provenance.row_ids}
    names = {normalize(table.entity_of(int(s.value))) for s in masked.of_kind("entity")}
    leaked = sorted(names & held_out)
    if leaked:
        raise Rejected("names a val/test entity", f"{text!r}: {', '.join(leaked)}")
    unshown = sorted(names - shown)
    if unshown:
        raise Rejected("names a row not in the facts", f"{text!r}: {', '.join(unshown)}")
    words = f" {normalize(source)} "
    values = [str(s.value) for s in masked.of_kind("value")]
    missing = [v for v in values if f" {normalize(v)} " not in words]
    if missing:
        raise Rejected("names a value not in the facts", f"{text!r}: {', '.join(missing)}")
    if pair.qtype == "summary_row" and not shown & names:
        raise Rejected("does not name its row", repr(text))
    return pair.model_copy(update={
        "id": _synth_id(pair.id, SUMMARY, text),
        "template": SUMMARY,
        "answer": text,
    })
