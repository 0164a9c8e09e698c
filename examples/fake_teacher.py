"""A fake OpenAI-compatible teacher on a loopback port, for the synth example and its tests.

`FakeOpenAI` serves ``POST /v1/chat/completions`` from a thread with Python's ``http.server``;
what it answers comes from a ``respond(body)`` function: a string (the reply's content) or a
`Raw` response (any status, body and headers: 429, 500, broken JSON). `TableTeacher` is a
``respond`` that plays the teacher of ``distillgraph synth`` over the dataset's own tables: it
rewrites each request in a few casual ways (one of them drops the request's names, so the check
rejects it), writes new requests with programs whose answers it computes with the project's
own `run_program` (one names a column the table does not have, so the check rejects it too),
and rewords summaries (one adds a number, one a row the facts do not hold: both rejected).
It is a stand-in to exercise the pipeline, not a language model: nothing it writes measures
what a real teacher would add.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Raw:
    """A response given as is: status, body (dict → JSON) and headers."""

    status: int
    body: Any = ""
    headers: dict = field(default_factory=dict)


def completion(content: str, model: str = "fake", prompt_chars: int = 0) -> dict:
    """A chat.completion object around `content`, with token counts (characters / 4)."""
    prompt_tokens, completion_tokens = prompt_chars // 4 + 1, len(content) // 4 + 1
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


class FakeOpenAI:
    """``with FakeOpenAI(respond) as server:`` then point a client at ``server.base_url``.

    ``port`` 0 takes a free port; give a fixed one to reuse the reply cache across runs (its
    key holds the endpoint's URL).
    """

    def __init__(self, respond: Callable[[dict], str | Raw], port: int = 0):
        self.respond = respond
        self.bodies: list[dict] = []  # every request body received, in order
        self.headers: list[dict] = []  # and its HTTP headers (names lowercased)
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 -- http.server's name
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.loads(raw or b"{}")
                with outer.lock:
                    outer.bodies.append(body)
                    outer.headers.append({k.lower(): v for k, v in self.headers.items()})
                if not self.path.endswith("/chat/completions"):
                    return self._send(Raw(404, {"error": {"message": f"no route {self.path}"}}))
                try:
                    out = outer.respond(body)
                except Exception as e:  # noqa: BLE001 -- a broken fake answers 500, visibly
                    out = Raw(500, {"error": {"message": f"fake teacher failed: {e}"}})
                if isinstance(out, str):
                    chars = sum(len(str(m.get("content", ""))) for m in body.get("messages", []))
                    out = Raw(200, completion(out, body.get("model", "fake"), chars))
                self._send(out)

            def _send(self, out: Raw) -> None:
                data = out.body if isinstance(out.body, (str, bytes)) else json.dumps(out.body)
                data = data.encode("utf-8") if isinstance(data, str) else data
                self.send_response(out.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in out.headers.items():
                    self.send_header(k, str(v))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        """The endpoint's base URL (ends in /v1, as OpenAI clients expect)."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


def _line(text: str, name: str) -> str:
    m = re.search(rf"^{name}: (.*)$", text, re.M)
    return m.group(1).strip() if m else ""


class TableTeacher:
    """A deterministic ``respond`` for `FakeOpenAI` that plays the synth teacher (see above)."""

    def __init__(self, tables: list):
        from data_loaders.mentions import NameIndex

        self.indexes = {t.name: NameIndex(t) for t in tables}

    def __call__(self, body: dict) -> str:
        from data_loaders.synth_checks import NEW_SYSTEM, PARAPHRASE_SYSTEM, SUMMARY_SYSTEM

        system, user = (m["content"] for m in body["messages"][:2])
        count = int(_line(user, "how many") or 1)
        if system == PARAPHRASE_SYSTEM:
            return json.dumps({"paraphrases": self.paraphrases(_line(user, "request"), count)})
        if system == NEW_SYSTEM:
            return json.dumps({"requests": self.new_requests(user, count)})
        if system == SUMMARY_SYSTEM:
            return json.dumps({"summaries": self.summaries(user, count)})
        return "I'm sorry, I can't help with that."

    @staticmethod
    def paraphrases(request: str, n: int) -> list[str]:
        """Casual rewrites; the third drops every name, so its mentions no longer match."""
        q = request.rstrip("?.! ").lower()
        casual = q.replace("what is", "whats").replace("what are", "whats")
        out = [casual, f"hey quick q, {q}", "and what about that one?", f"{casual} pls",
               f"{q}??", f"tell me: {q}"]
        return (out * (n // len(out) + 1))[:n]

    def summaries(self, user: str, n: int) -> list[str]:
        """Rewordings of the reference; the second adds a number and the third a row the facts
        do not hold, so the check rejects them."""
        ref = _line(user, "reference summary")
        facts = user.lower()
        other = next(name for index in self.indexes.values() for name in
                     index.table.df[index.table.entity_column].astype(str)
                     if name.lower() not in facts)
        out = [f"quick rundown: {ref}", f"{ref} It costs 9999 dollars.",
               f"{ref} It is lighter than the {other}.", f"in short, {ref}"]
        return (out * (n // len(out) + 1))[:n]

    def new_requests(self, user: str, n: int) -> list[dict]:
        """Requests about the pair's row (or the whole table) with programs and answers."""
        from data_loaders.program_text import column_id, mask_request, read_program
        from data_loaders.programs import run_program
        from data_loaders.templates import col_words

        table_name = re.search(r"^table (\S+?),", user, re.M).group(1)
        index = self.indexes[table_name]
        t = index.table
        masked = mask_request(_line(user, "request"), index)
        numeric = t.columns_of("numeric")
        entities = masked.of_kind("entity")
        out = []
        for i in range(n):
            col = numeric[i % len(numeric)]
            if entities and i % 3 != 2:
                name = t.entity_of(int(entities[0].value))
                request = f"hows the {col_words(t, col)} on the {name}"
                program = f"lookup E1 {column_id(col)}"
            elif i % 3 != 2:
                request = f"avg {col_words(t, col)} over all of them"
                program = f"aggregate mean {column_id(col)}"
            else:  # a column the table does not have: the check must reject it
                out.append({"request": "what colour is it", "program": "distinct Colour",
                            "answer": "red"})
                continue
            prog = read_program(program, mask_request(request, index), index)
            out.append({"request": request, "program": program, "answer": run_program(t, prog)})
        return out
