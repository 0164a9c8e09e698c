"""The OpenAI-compatible HTTP API (``distillgraph serve``): the agent graph and the raw student.

`create_app(graph, ...)` returns a FastAPI app (testable with ``TestClient``, served by uvicorn):

* ``POST /v1/chat/completions`` — ``model`` `AGENT_MODEL` runs the agent graph on the last user
  message, in the conversation named by ``thread_id`` (body field) or the ``X-Thread-Id``
  header (a new one when absent; the reply says which under ``distillgraph.thread_id`` and in
  the ``X-Thread-Id`` header). Its reply carries the route, the program, the table check and
  who answered under ``distillgraph``. ``model`` `STUDENT_MODEL` (or the student's directory
  name) sends all the messages to the student itself, stateless as OpenAI's API is. Both stream
  as server-sent events with ``"stream": true``; the agent streams one progress chunk per graph
  node and then the checked reply (the student's unchecked tokens are never sent).
* ``GET /v1/models``, ``GET /health`` (the only route without a key).

Threads are namespaced by the caller's API key, so one key cannot read another's conversation.
Model work runs off the event loop (the graph's async API; the student's ``ainvoke``/``astream``)
and a semaphore bounds how many requests do it at once (`ServerLimits.max_concurrency`); a
request that waits longer than ``queue_timeout_s`` for a slot gets 503. Every refusal is an
OpenAI-style error body (`app.openai_api.APIError`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import logging
import math
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from app.openai_api import (
    APIError,
    ChatRequest,
    ServerLimits,
    chunk,
    completion,
    new_id,
    parse_request,
    sse,
    usage_of,
)
from data_loaders.errors import InputError
from graphs.chat_model import LocalChatModel
from graphs.graph import DEFAULT_REMOTE_STUDENT

log = logging.getLogger("distillgraph.server")

AGENT_MODEL = "distillgraph-agent"
STUDENT_MODEL = DEFAULT_REMOTE_STUDENT
ENV_API_KEYS = "DISTILLGRAPH_API_KEYS"
THREAD_HEADER = "X-Thread-Id"
_THREAD_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_FINISH = {"stop": "stop", "length": "length", "time_limit": "length"}


def api_keys_from_env(environ: Mapping[str, str] | None = None) -> list[str]:
    """The keys in ``DISTILLGRAPH_API_KEYS`` (comma-separated; blanks dropped)."""
    env = os.environ if environ is None else environ
    return [k.strip() for k in (env.get(ENV_API_KEYS) or "").split(",") if k.strip()]


def jsonable(value: Any) -> Any:
    """`value` with JSON-safe leaves: numpy scalars unwrapped, NaN as null, the rest as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/inf, and the response encoder refuses them
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if hasattr(value, "item"):  # numpy / torch scalars
        with contextlib.suppress(Exception):
            return jsonable(value.item())
    return str(value)


def agent_extra(state: Mapping[str, Any], thread_id: str) -> dict[str, Any]:
    """The ``distillgraph`` field of an agent reply: what the graph did this turn."""
    return jsonable(
        {
            "thread_id": thread_id,
            "route": state.get("task"),
            "route_source": state.get("route_source"),
            "answered_by": state.get("answered_by"),
            "verdict": dict(state.get("verdict") or {}),
            "program": state.get("program"),
            "query": state.get("query"),
            "entity": state.get("entity"),
            "table": state.get("table"),
            "row_ids": list(state.get("row_ids") or []),
            "rejected": state.get("rejected"),
            "attempts": state.get("attempts"),
            "timings": dict(state.get("timings") or {}),
        }
    )


def student_name_of(model: BaseChatModel) -> str:
    """The student's own name: its directory's name, else its endpoint model name."""
    if d := getattr(model, "model_dir", None):
        return Path(d).name
    for attr in ("model_name", "model"):
        v = getattr(model, attr, None)
        if isinstance(v, str) and v:
            return v
    return model._llm_type


def to_langchain(req: ChatRequest) -> list[BaseMessage]:
    """The request's messages as LangChain messages (``developer`` is read as ``system``)."""
    kinds = {"system": SystemMessage, "developer": SystemMessage, "user": HumanMessage}
    return [kinds.get(m.role, AIMessage)(content=m.text) for m in req.messages]


def _student_kwargs(model: BaseChatModel, req: ChatRequest) -> dict[str, Any]:
    """Generation settings in the names the student's class reads."""
    cap, temp = req.token_cap, req.temperature
    if isinstance(model, LocalChatModel):
        out: dict[str, Any] = {"max_new_tokens": cap} if cap else {}
        return out | ({"sampling_temperature": temp} if temp is not None else {})
    if hasattr(model, "openai_api_base"):  # langchain_openai.ChatOpenAI
        out = {"max_completion_tokens": cap} if cap else {}
        return out | ({"temperature": temp} if temp is not None else {})
    return {}


def _usage(model: BaseChatModel, messages: list[BaseMessage], reply: Any) -> dict | None:
    """Token usage: re-tokenized for a local student, as reported by an endpoint, else None."""
    text = reply if isinstance(reply, str) else str(reply.content)
    tok = getattr(model, "tokenizer", None)
    if tok is not None and hasattr(model, "prompt_ids"):
        completion_tokens = len(tok(text, add_special_tokens=False)["input_ids"]) if text else 0
        return usage_of(len(model.prompt_ids(messages)), completion_tokens)
    meta = getattr(reply, "usage_metadata", None)
    if meta:
        return usage_of(meta.get("input_tokens", 0), meta.get("output_tokens", 0))
    return None


def _error_response(err: APIError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers)


def _internal(e: BaseException) -> APIError:
    """An unexpected failure: logged in full, answered with its type only."""
    if isinstance(e, InputError):
        return APIError(400, str(e), code="invalid_value")
    log.exception("request failed")
    return APIError(
        500,
        f"internal error ({type(e).__name__}); see the server log",
        type="server_error",
        code="internal_error",
    )


class _Once:
    """Calls `fn` the first time it is called, never again."""

    def __init__(self, fn: Callable[[], None]):
        self._fn: Callable[[], None] | None = fn

    def __call__(self) -> None:
        fn, self._fn = self._fn, None
        if fn is not None:
            fn()


class _GuardedStream(StreamingResponse):
    """A stream whose model slot is released however it ends (done, error, disconnect).

    The body generator's ``finally`` releases it too, but a client gone before the first chunk
    means the generator never starts; this catches that case.
    """

    def __init__(self, content: AsyncIterator[str], release: _Once, headers: dict[str, str]):
        super().__init__(content, media_type="text/event-stream", headers=headers)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


class _Service:
    """The request handlers' shared resources: graph, student, keys, limits, model slots."""

    def __init__(
        self,
        graph: Any,
        student: BaseChatModel,
        api_keys: Sequence[str],
        limits: ServerLimits,
        student_names: Sequence[str],
    ):
        self.graph = graph
        self.student = student
        self.keys = [k.encode() for k in api_keys]
        self.limits = limits
        self.student_names = list(dict.fromkeys(student_names))
        self.slots = asyncio.Semaphore(limits.max_concurrency)
        self.in_flight = 0
        self.served = 0

    # ---- checks ----------------------------------------------------------------------------

    def principal(self, request: Request) -> str:
        """Who is calling: ``local`` on a keyless server, else a digest of their key."""
        if not self.keys:
            return "local"
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise APIError(
                401,
                "missing API key: send 'Authorization: Bearer <key>' with a key from "
                f"the server's {ENV_API_KEYS}",
                code="invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        given = token.strip().encode()
        # compare against every key so the time taken does not say which one nearly matched
        ok = [hmac.compare_digest(given, k) for k in self.keys]
        if not any(ok):
            raise APIError(
                401,
                "incorrect API key",
                code="invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return "key-" + hashlib.sha256(given).hexdigest()[:16]

    async def read_body(self, request: Request) -> bytes:
        """The body, refused with 413 past `ServerLimits.max_body_bytes` (before reading it all)."""
        limit = self.limits.max_body_bytes
        too_large = APIError(
            413,
            f"the request body is larger than this server's limit of {limit} bytes",
            code="request_too_large",
        )
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_large
        buf = bytearray()
        async for part in request.stream():
            buf += part
            if len(buf) > limit:
                raise too_large
        return bytes(buf)

    def kind_of(self, model: str) -> str:
        """``agent`` or ``student``; 404 for any other name."""
        if model == AGENT_MODEL:
            return "agent"
        if model in self.student_names:
            return "student"
        known = ", ".join([AGENT_MODEL, *self.student_names])
        raise APIError(
            404,
            f"model {model!r} does not exist here; this server serves: {known}",
            param="model",
            code="model_not_found",
        )

    @staticmethod
    def thread_of(req: ChatRequest, request: Request) -> str | None:
        tid = req.thread_id or request.headers.get(THREAD_HEADER)
        if tid is not None and not _THREAD_RE.match(tid):
            raise APIError(
                400,
                f"{THREAD_HEADER}: a thread id is 1-128 letters, digits or . _ : -",
                param="thread_id",
                code="invalid_value",
            )
        return tid

    # ---- model slots -----------------------------------------------------------------------

    async def acquire(self) -> _Once:
        """Wait for a model slot (503 after ``queue_timeout_s``); returns its release."""
        try:
            async with asyncio.timeout(self.limits.queue_timeout_s):
                await self.slots.acquire()
        except TimeoutError:
            raise APIError(
                503,
                f"the server is busy ({self.limits.max_concurrency} requests running, waited "
                f"{self.limits.queue_timeout_s:g} s for a slot); retry shortly",
                type="server_error",
                code="overloaded",
                headers={"Retry-After": "1"},
            ) from None
        self.in_flight += 1

        def release() -> None:
            self.in_flight -= 1
            self.served += 1
            self.slots.release()

        return _Once(release)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        release = await self.acquire()
        try:
            yield
        finally:
            release()

    # ---- the agent -------------------------------------------------------------------------

    def agent_input(self, req: ChatRequest, principal: str, thread: str | None) -> tuple:
        last = req.messages[-1]
        if last.role != "user":
            raise APIError(
                400,
                f"messages[{len(req.messages) - 1}]: the agent answers the last message, which "
                f"must come from the user (it is {last.role!r})",
                param=f"messages[{len(req.messages) - 1}].role",
                code="invalid_value",
            )
        tid = thread or uuid.uuid4().hex
        config = {"configurable": {"thread_id": f"{principal}:{tid}"}}
        # The graph keeps the conversation itself: only the new message goes in.
        return {"messages": [HumanMessage(content=last.text)]}, config, tid

    async def agent(self, req: ChatRequest, principal: str, thread: str | None) -> Any:
        inp, config, tid = self.agent_input(req, principal, thread)
        headers = {THREAD_HEADER: tid}
        cid = new_id()
        if not req.stream:
            async with self.slot():
                try:
                    state = await self.graph.ainvoke(inp, config=config)
                except Exception as e:
                    raise _internal(e) from e
            body = completion(
                cid, req.model, state.get("answer", ""), "stop", None, agent_extra(state, tid)
            )
            return JSONResponse(body, headers=headers)
        release = await self.acquire()
        return _GuardedStream(self._agent_events(cid, req, inp, config, tid, release), release,
                              headers)

    async def _agent_events(
        self, cid: str, req: ChatRequest, inp: dict, config: dict, tid: str, release: _Once
    ) -> AsyncIterator[str]:
        try:
            yield sse(chunk(cid, req.model, {"role": "assistant", "content": ""}))
            async for update in self.graph.astream(inp, config=config, stream_mode="updates"):
                for node, values in update.items():
                    step: dict[str, Any] = {"step": node}
                    if node == "route" and isinstance(values, dict):
                        step["route"] = values.get("task")
                    yield sse(chunk(cid, req.model, {}, extra=step))
            state = (await self.graph.aget_state(config)).values
            yield sse(chunk(cid, req.model, {"content": state.get("answer", "")}))
            yield sse(chunk(cid, req.model, {}, "stop", extra=agent_extra(state, tid)))
            yield sse("[DONE]")
        except Exception as e:  # headers are sent: report in the stream, as OpenAI does
            yield sse(_internal(e).body())
            yield sse("[DONE]")
        finally:
            release()

    # ---- the raw student -------------------------------------------------------------------

    async def student_reply(self, req: ChatRequest) -> Any:
        messages = to_langchain(req)
        kwargs = _student_kwargs(self.student, req)
        stop = req.stops or None
        cid = new_id()
        if not req.stream:
            async with self.slot():
                try:
                    reply = await self.student.ainvoke(messages, stop=stop, **kwargs)
                    usage = _usage(self.student, messages, reply)
                except Exception as e:
                    raise _internal(e) from e
            reason = _FINISH.get(reply.response_metadata.get("finish_reason") or "stop", "stop")
            return JSONResponse(completion(cid, req.model, str(reply.content), reason, usage))
        release = await self.acquire()
        events = self._student_events(cid, req, messages, stop, kwargs, release)
        return _GuardedStream(events, release, {})

    async def _student_events(
        self,
        cid: str,
        req: ChatRequest,
        messages: list[BaseMessage],
        stop: list[str] | None,
        kwargs: dict[str, Any],
        release: _Once,
    ) -> AsyncIterator[str]:
        try:
            yield sse(chunk(cid, req.model, {"role": "assistant", "content": ""}))
            text, reason = "", "stop"
            async for piece in self.student.astream(messages, stop=stop, **kwargs):
                reason = piece.response_metadata.get("finish_reason") or reason
                if content := str(piece.content):
                    text += content
                    yield sse(chunk(cid, req.model, {"content": content}))
            yield sse(chunk(cid, req.model, {}, _FINISH.get(reason, "stop")))
            if req.stream_options and req.stream_options.include_usage:
                usage = _usage(self.student, messages, text)
                yield sse(chunk(cid, req.model, None, usage=usage))
            yield sse("[DONE]")
        except Exception as e:
            yield sse(_internal(e).body())
            yield sse("[DONE]")
        finally:
            release()


def create_app(
    graph: Any,
    student: BaseChatModel | None = None,
    *,
    api_keys: Sequence[str] = (),
    limits: ServerLimits | None = None,
    student_name: str | None = None,
) -> FastAPI:
    """The HTTP API over a compiled agent graph and its student.

    Args:
        graph: A graph from `graphs.build_graph`, with a checkpointer (the threads' memory).
        student: The chat model served raw; ``None`` takes the graph's own student.
        api_keys: Accepted bearer keys; empty = no key needed (the CLI allows that on loopback
            only).
        limits: Request and concurrency caps (`ServerLimits` defaults when ``None``).
        student_name: Another name the raw student answers to, besides `STUDENT_MODEL`
            (default: its directory's name).

    Returns:
        A FastAPI app; serve it with ``uvicorn.run(app, host=..., port=...)``.
    """
    if getattr(graph, "checkpointer", None) is None:
        raise ValueError("create_app needs a graph with a checkpointer (the threads' memory)")
    if student is None:
        student = graph.distillgraph_nodes.student
    names = [STUDENT_MODEL, student_name or student_name_of(student)]
    service = _Service(graph, student, api_keys, limits or ServerLimits(), names)
    app = FastAPI(title="distillgraph", version="0.1.0", docs_url=None, redoc_url=None)
    app.state.service = service
    started = int(time.time())

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return _error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        message = f"{request.method} {request.url.path}: {exc.detail}"
        return _error_response(APIError(exc.status_code, message, code=code))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error_response(APIError(400, str(exc), code="invalid_value"))

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness plus what is running (no key needed)."""
        return {
            "status": "ok",
            "models": [AGENT_MODEL, *service.student_names],
            "in_flight": service.in_flight,
            "served": service.served,
            "max_concurrency": service.limits.max_concurrency,
        }

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        """The agent and the student, as OpenAI's model list."""
        service.principal(request)
        ids = [AGENT_MODEL, STUDENT_MODEL]
        data = [{"id": i, "object": "model", "created": started, "owned_by": "distillgraph"}
                for i in ids]
        return {"object": "list", "data": data}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        """OpenAI's chat completions, for the agent graph or the raw student."""
        principal = service.principal(request)
        req = parse_request(await service.read_body(request), service.limits)
        kind = service.kind_of(req.model)
        thread = service.thread_of(req, request)
        if kind == "agent":
            return await service.agent(req, principal, thread)
        return await service.student_reply(req)

    return app
