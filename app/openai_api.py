"""The OpenAI chat-completions wire format `app.server` speaks: requests, replies, chunks, errors.

`ChatRequest` validates a ``POST /v1/chat/completions`` body (the fields the server uses; other
OpenAI fields such as ``top_p`` are accepted and ignored); `APIError` is every refusal, turned
into OpenAI's error body ``{"error": {"message", "type", "param", "code"}}`` with its HTTP
status; `completion`, `chunk` and `sse` build the replies. `ServerLimits` holds the caps a
request is checked against. Nothing here loads a model or knows the graph.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from data_loaders.config_loader import StrictModel

Role = Literal["system", "developer", "user", "assistant"]


class ServerLimits(StrictModel):
    """Caps on one request and on the model work the server does at once."""

    max_body_bytes: int = Field(
        1_000_000, ge=1024, description="Largest request body in bytes (413 above it)."
    )
    max_messages: int = Field(64, ge=1, le=4096, description="Most messages in one request.")
    max_message_chars: int = Field(
        8000, ge=10, description="Longest message content in characters (400 above it)."
    )
    max_tokens: int = Field(
        512, ge=1, le=4096, description="Largest max_tokens a request may ask of the student."
    )
    max_concurrency: int = Field(
        4, ge=1, le=256, description="Requests doing model work at once; the rest queue."
    )
    queue_timeout_s: float = Field(
        30.0, gt=0, description="Longest wait for a model slot before a 503 'overloaded'."
    )


class APIError(Exception):
    """A refused request: HTTP status plus OpenAI's error fields."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """OpenAI's error body."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class Message(BaseModel):
    """One chat message; ``content`` is text or a list of text parts."""

    model_config = ConfigDict(extra="ignore")

    role: Role = Field(description="system, developer (read as system), user or assistant.")
    content: str | list[dict[str, Any]] = Field(description="Text, or parts of type 'text'.")

    @property
    def text(self) -> str:
        """The content as one string (text parts joined)."""
        if isinstance(self.content, str):
            return self.content
        return "".join(str(p.get("text", "")) for p in self.content)

    @field_validator("content")
    @classmethod
    def _text_parts_only(cls, v: str | list[dict[str, Any]]) -> str | list[dict[str, Any]]:
        if isinstance(v, list):
            kinds = sorted({str(p.get("type")) for p in v} - {"text"})
            if kinds:
                raise ValueError(f"only text content parts are supported, not {', '.join(kinds)}")
        return v


class StreamOptions(BaseModel):
    """OpenAI's ``stream_options``."""

    model_config = ConfigDict(extra="ignore")

    include_usage: bool = Field(False, description="Send a last chunk with the token usage.")


class ChatRequest(BaseModel):
    """A ``POST /v1/chat/completions`` body (unknown OpenAI fields are ignored)."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, description="'distillgraph-agent' or the student's name.")
    messages: list[Message] = Field(description="The conversation, oldest first.")
    stream: bool = Field(False, description="Reply as server-sent events.")
    stream_options: StreamOptions | None = Field(None, description="include_usage.")
    max_tokens: int | None = Field(None, ge=1, description="Most tokens the student generates.")
    max_completion_tokens: int | None = Field(None, ge=1, description="Newer name of max_tokens.")
    temperature: float | None = Field(None, ge=0.0, le=2.0, description="Sampling temperature.")
    stop: str | list[str] | None = Field(None, description="Stop sequences (student only).")
    n: int = Field(1, ge=1, le=1, description="Replies per request; only 1 is supported.")
    thread_id: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="Conversation id of the agent's memory (also the X-Thread-Id header).",
    )

    @property
    def token_cap(self) -> int | None:
        """The requested generation cap under either name."""
        return self.max_completion_tokens or self.max_tokens

    @property
    def stops(self) -> list[str]:
        """``stop`` as a list."""
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_request(raw: bytes, limits: ServerLimits) -> ChatRequest:
    """Validate a request body against the schema and `limits`.

    Raises:
        APIError: 400 for malformed JSON, a schema violation, empty ``messages``, too many
            messages, an overlong message or a ``max_tokens`` above the cap.
    """
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        msg = f"the request body is not valid JSON ({e})"
        raise APIError(400, msg, code="invalid_json") from None
    if not isinstance(body, dict):
        raise APIError(400, "the request body must be a JSON object", code="invalid_json")
    try:
        req = ChatRequest.model_validate(body)
    except ValidationError as e:
        err = e.errors()[0]
        param = _loc(err["loc"])
        missing = err["type"] == "missing"
        raise APIError(
            400,
            f"{param}: {err['msg']}" if param else err["msg"],
            param=param or None,
            code="missing_required_parameter" if missing else "invalid_value",
        ) from None
    if not req.messages:
        raise APIError(
            400, "messages: must hold at least one message", param="messages", code="empty_array"
        )
    if len(req.messages) > limits.max_messages:
        raise APIError(
            400,
            f"messages: {len(req.messages)} messages; at most {limits.max_messages} are accepted",
            param="messages",
            code="too_many_messages",
        )
    for i, m in enumerate(req.messages):
        if len(m.text) > limits.max_message_chars:
            raise APIError(
                400,
                f"messages[{i}].content: {len(m.text)} characters; at most "
                f"{limits.max_message_chars} are accepted",
                param=f"messages[{i}].content",
                code="context_length_exceeded",
            )
    cap = req.token_cap
    if cap is not None and cap > limits.max_tokens:
        name = "max_completion_tokens" if req.max_completion_tokens else "max_tokens"
        raise APIError(
            400,
            f"{name}: {cap} is above this server's limit of {limits.max_tokens}",
            param=name,
            code="invalid_value",
        )
    return req


def new_id() -> str:
    """A completion id in OpenAI's shape."""
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def completion(
    cid: str,
    model: str,
    text: str,
    finish_reason: str,
    usage: dict[str, int] | None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A non-streamed ``chat.completion`` object (``extra`` goes under ``distillgraph``)."""
    out: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        ],
        "usage": usage,
    }
    if extra is not None:
        out["distillgraph"] = extra
    return out


def chunk(
    cid: str,
    model: str,
    delta: dict[str, Any] | None,
    finish_reason: str | None = None,
    *,
    extra: dict[str, Any] | None = None,
    usage: dict[str, int] | None = None,
) -> dict[str, Any]:
    """A ``chat.completion.chunk``; ``delta=None`` gives the usage-only chunk (no choices)."""
    out: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": []
        if delta is None
        else [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
    }
    if usage is not None:
        out["usage"] = usage
    if extra is not None:
        out["distillgraph"] = extra
    return out


def sse(obj: dict[str, Any] | str) -> str:
    """One server-sent event: ``data: <json>`` (or ``data: [DONE]``) and a blank line."""
    data = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)
    return f"data: {data}\n\n"


def usage_of(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    """OpenAI's ``usage`` object."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
