"""A careful client for an OpenAI-compatible chat endpoint: cache, concurrency, retries, cost.

`TeacherClient.run` sends many chat calls through langchain-openai's ``ChatOpenAI`` with at most
``max_concurrency`` in flight, retries a call on HTTP 429, 5xx, timeouts and refused
connections with exponential backoff (or the endpoint's ``Retry-After``), and counts tokens and
cost (`Usage`). Every reply that its ``parse`` function accepts is written to `ReplyCache` at
once (one JSON file per call, keyed by endpoint, model and the hash of the prompt and sampling
settings), so a rerun, or a run resumed after an interruption, pays only for what is missing. A
reply ``parse`` refuses (`BadReply`: not JSON, a refusal) is reported to the caller and not
cached, so the next run asks again. An endpoint that is down, refuses the key, or keeps failing
after the retries stops the whole run with `TeacherError`, one line naming the cause and the
fix; what succeeded stays cached.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from data_loaders.config import SynthConfig
from data_loaders.errors import InputError
from data_loaders.io import atomic_write_json

PLACEHOLDER_KEY = "not-needed"  # local servers accept any key; the client insists on one
_REFUSAL_START = ("i can't", "i cannot", "i can not", "i'm sorry", "i am sorry", "sorry,",
                  "i'm unable", "i am unable", "i won't", "as an ai")


class TeacherError(InputError):
    """The endpoint cannot serve the run (down, key refused, rate limit or errors persist)."""


class BadReply(Exception):  # noqa: N818 -- a verdict on a reply, not a program error
    """A reply the caller cannot use: ``reason`` is a short category, ``detail`` says more."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass
class Usage:
    """Calls and tokens of one run: asked of the endpoint, and read back from the cache."""

    calls: int = 0
    cached_calls: int = 0
    bad_replies: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cached_output_tokens: int = 0
    unreported: int = 0  # replies whose usage the endpoint did not report
    retries: int = 0

    def cost(self, prices: Any) -> float:
        """What the calls made this run cost at `prices` (`config.PricesConfig`)."""
        return (self.input_tokens * prices.input_per_million
                + self.output_tokens * prices.output_per_million) / 1e6

    def as_dict(self, prices: Any) -> dict:
        """The counts, the cost, and what the cached replies would have cost."""
        saved = (self.cached_input_tokens * prices.input_per_million
                 + self.cached_output_tokens * prices.output_per_million) / 1e6
        return {**self.__dict__, "cost": round(self.cost(prices), 6),
                "cost_saved_by_cache": round(saved, 6), "currency": prices.currency}


def loose_json(text: str) -> Any:
    """The JSON value of a reply, tolerating code fences and words around one object.

    Raises:
        BadReply: ``refused`` when the reply reads as a refusal, else ``not JSON``.
    """
    s = (text or "").strip()
    if s.startswith("```"):
        s = s.split("\n", 1)[1] if "\n" in s else ""
        s = s.rsplit("```", 1)[0]
    try:
        return json.loads(s)
    except json.JSONDecodeError:
        pass
    start, end = s.find("{"), s.rfind("}")
    if 0 <= start < end:
        try:
            return json.loads(s[start : end + 1])
        except json.JSONDecodeError:
            pass
    snippet = " ".join(s.split())[:80]
    if s.lower().startswith(_REFUSAL_START):
        raise BadReply("teacher refused", snippet)
    raise BadReply("reply is not JSON", snippet or "(empty reply)")


class ReplyCache:
    """Replies on disk, one JSON file per call under ``<dir>/<key[:2]>/<key>.json``."""

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)

    @staticmethod
    def key(base_url: str, model: str, messages: Sequence[dict], params: dict) -> str:
        """sha256 of the endpoint, the model and the prompt hash (messages + sampling params)."""
        prompt = json.dumps([list(messages), params], sort_keys=True, ensure_ascii=False)
        prompt_hash = hashlib.sha256(prompt.encode("utf-8")).hexdigest()
        text = json.dumps([base_url.rstrip("/"), model, prompt_hash])
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def path(self, key: str) -> Path:
        """Where the reply of `key` is stored."""
        return self.dir / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        """The stored entry of `key`, or None (an unreadable file counts as missing)."""
        try:
            return json.loads(self.path(key).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None

    def put(self, key: str, entry: dict) -> None:
        """Store `entry` atomically (a crash never leaves half a file)."""
        atomic_write_json(self.path(key), entry)


@dataclass
class Call:
    """One chat call: its messages and the function that turns the reply text into a value."""

    messages: list[dict]
    parse: Callable[[str], Any]
    key: str = ""


@dataclass
class Result:
    """What one call gave: the parsed value, or the `BadReply` that refused it."""

    value: Any = None
    bad: BadReply | None = None
    cached: bool = False


@dataclass
class TeacherClient:
    """Sends `Call`s to the endpoint of a `SynthConfig` (see the module docstring)."""

    config: SynthConfig
    cache: ReplyCache
    usage: Usage = field(default_factory=Usage)
    sleep: Callable[[float], Any] = asyncio.sleep  # tests pass a recorder

    def __post_init__(self) -> None:
        if not self.config.base_url or not self.config.model:
            raise InputError("synth: give the teacher endpoint with --base-url and --model")
        self.params = {"temperature": self.config.sampling_temperature,
                       "max_tokens": self.config.max_tokens, "json_mode": self.config.json_mode}

    def key_of(self, messages: Sequence[dict]) -> str:
        """The cache key of a call's messages at this endpoint, model and settings."""
        return ReplyCache.key(self.config.base_url or "", self.config.model or "", messages,
                              self.params)

    def api_key(self) -> str:
        """The key from ``api_key_env``; `InputError` naming the variable when it is unset."""
        var = self.config.api_key_env
        if not var:
            return PLACEHOLDER_KEY
        key = os.environ.get(var, "").strip()
        if not key:
            raise InputError(
                f"--api-key-env {var}: the environment variable is not set; export {var}=<key> "
                "(or leave --api-key-env out for a local server that needs no key)"
            )
        return key

    def _model(self) -> Any:
        try:
            from langchain_openai import ChatOpenAI
        except ImportError:
            raise InputError(
                "synth needs langchain-openai; install it with pip install 'distillgraph[openai]'"
            ) from None
        c = self.config
        kwargs = {"response_format": {"type": "json_object"}} if c.json_mode else {}
        return ChatOpenAI(model=c.model, base_url=c.base_url, api_key=self.api_key(),
                          temperature=c.sampling_temperature, max_tokens=c.max_tokens,
                          timeout=c.timeout_s, max_retries=0, model_kwargs=kwargs)

    def run(self, calls: Sequence[Call], *, progress: bool = False) -> list[Result]:
        """Answer every call (cache first, then the endpoint), in the order given.

        Raises:
            TeacherError: the endpoint is down, refuses the key, or fails after the retries.
            InputError: the key's environment variable is unset.
        """
        for call in calls:
            call.key = call.key or self.key_of(call.messages)
        results: list[Result | None] = [None] * len(calls)
        todo = []
        for i, call in enumerate(calls):
            entry = self.cache.get(call.key)
            if entry is not None:
                try:
                    results[i] = Result(call.parse(entry["reply"]), cached=True)
                except (BadReply, KeyError):
                    entry = None  # a parser that changed since: ask again
            if entry is not None:
                self.usage.cached_calls += 1
                self.usage.cached_input_tokens += entry.get("input_tokens") or 0
                self.usage.cached_output_tokens += entry.get("output_tokens") or 0
            else:
                todo.append(i)
        if todo:
            model = self._model()
            bar = tqdm(total=len(todo), disable=not progress, desc="teacher calls", unit="call")
            try:
                done = asyncio.run(self._run_all(model, [calls[i] for i in todo], bar))
            finally:
                bar.close()
            for i, r in zip(todo, done, strict=True):
                results[i] = r
        return [r for r in results if r is not None]

    async def _run_all(self, model: Any, calls: list[Call], bar: Any) -> list[Result]:
        sem = asyncio.Semaphore(self.config.max_concurrency)

        async def one(call: Call) -> Result:
            async with sem:
                r = await self._call(model, call)
            bar.update(1)
            return r

        tasks = [asyncio.ensure_future(one(c)) for c in calls]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _call(self, model: Any, call: Call) -> Result:
        attempt = 0
        while True:
            try:
                msg = await model.ainvoke(call.messages)
                break
            except Exception as e:  # noqa: BLE001 -- sorted into retry / stop by _classify
                retry, wait, (cause, fix) = self._classify(e)
                if not retry or attempt >= self.config.max_retries:
                    tried = f" (after {attempt} retries)" if retry else ""
                    raise TeacherError(f"{cause}{tried}; {fix}; replies so far are cached, "
                                       "a rerun asks only for the rest") from None
                attempt += 1
                self.usage.retries += 1
                base = min(self.config.backoff_max_s, self.config.backoff_s * 2 ** (attempt - 1))
                await self.sleep(wait if wait is not None else base * random.uniform(0.5, 1.0))
        self.usage.calls += 1
        text = msg.content if isinstance(msg.content, str) else str(msg.content)
        usage = getattr(msg, "usage_metadata", None) or {}
        tokens_in, tokens_out = usage.get("input_tokens"), usage.get("output_tokens")
        if tokens_in is None:
            self.usage.unreported += 1
        self.usage.input_tokens += tokens_in or 0
        self.usage.output_tokens += tokens_out or 0
        refusal = (getattr(msg, "additional_kwargs", None) or {}).get("refusal")
        try:
            if refusal:
                raise BadReply("teacher refused", " ".join(str(refusal).split())[:80])
            value = call.parse(text)
        except BadReply as bad:
            self.usage.bad_replies += 1
            return Result(bad=bad)
        self.cache.put(call.key, {
            "base_url": self.config.base_url, "model": self.config.model,
            "messages": call.messages, "params": self.params, "reply": text,
            "input_tokens": tokens_in, "output_tokens": tokens_out,
        })
        return Result(value)

    def _classify(self, e: Exception) -> tuple[bool, float | None, tuple[str, str]]:
        """(retry?, the endpoint's Retry-After seconds, the cause, the fix) of a failed request."""
        import openai

        url = self.config.base_url
        status = getattr(e, "status_code", None)
        detail = " ".join(str(getattr(e, "message", "") or e).split())[:160]
        if isinstance(e, openai.APITimeoutError):
            return True, None, (f"the teacher at {url} timed out ({self.config.timeout_s:g} s)",
                                "raise timeout_s or lower --max-concurrency")
        if isinstance(e, openai.APIConnectionError):
            return True, None, (f"cannot reach the teacher at {url} ({detail})",
                                "start the server or check --base-url")
        if status == 429:
            return True, _retry_after(e), (f"the teacher at {url} kept rate-limiting (HTTP 429)",
                                           "lower --max-concurrency or raise max_retries")
        if status is not None and status >= 500:
            return True, _retry_after(e), (f"the teacher at {url} failed (HTTP {status}: "
                                           f"{detail})", "check the server's log, then rerun")
        if status in (401, 403):
            var = self.config.api_key_env
            fix = f"check the key in ${var}" if var else "pass --api-key-env VAR naming its key"
            return False, None, (f"the teacher at {url} refused the API key (HTTP {status})", fix)
        if status == 404:
            return False, None, (f"HTTP 404 from {url} ({detail})", "check --base-url (it "
                                 f"usually ends in /v1) and --model {self.config.model!r}")
        if status is not None:
            return False, None, (f"the teacher at {url} answered HTTP {status}: {detail}",
                                 "check --model and the config's synth section")
        return False, None, (f"the teacher call failed: {type(e).__name__}: {detail}",
                             "check --base-url and --model")


def _retry_after(e: Exception) -> float | None:
    response = getattr(e, "response", None)
    value = getattr(response, "headers", {}).get("retry-after") if response is not None else None
    try:
        return min(float(value), 60.0) if value is not None else None
    except ValueError:
        return None
