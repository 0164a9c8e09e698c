"""The chat model the graph talks to: a local transformers model directory as a LangChain model.

`LocalChatModel` applies the tokenizer's chat template (the same one training used), generates
with a hard time limit and stop sequences, streams tokens (``stream``/``astream`` and LangGraph's
``messages`` stream mode) from a background generation thread, and scores fixed labels for the
router (`score_labels`). One loaded copy serves every conversation: a lock serializes
``generate`` and scoring, so concurrent threads queue rather than interleave on the weights.

`build_chat_model(config)` is the one factory: a model directory gives a `LocalChatModel`, a
``base_url`` gives `langchain_openai.ChatOpenAI`. Tests pass LangChain's fake chat models to
`graphs.build_graph` instead.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import weakref
from collections.abc import AsyncIterator, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr

from data_loaders.errors import InputError
from graphs.config import DEFAULT_STUDENT_DIR, ModelConfig
from graphs.prompts import CUT_NOTE


def from_chat_dicts(messages: Sequence[dict[str, str]]) -> list[BaseMessage]:
    """``[{"role", "content"}]`` (system / user / assistant) → LangChain messages."""
    kinds = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}
    return [kinds[m["role"]](m["content"]) for m in messages]


def to_chat_dicts(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """LangChain messages → ``[{"role", "content"}]`` for a chat template."""
    out = []
    for m in messages:
        if isinstance(m, SystemMessage):
            role = "system"
        elif isinstance(m, HumanMessage):
            role = "user"
        elif isinstance(m, AIMessage):
            role = "assistant"
        elif isinstance(m, ChatMessage):
            role = m.role
        else:
            raise ValueError(f"unsupported message type for a chat template: {type(m).__name__}")
        out.append(
            {"role": role, "content": m.text if not isinstance(m.content, str) else m.content}
        )
    return out


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """Cut `text` before the first stop sequence; return (text, whether one was found)."""
    idx = [i for s in stops if s and (i := text.find(s)) >= 0]
    if not idx:
        return text, False
    return text[: min(idx)], True


class _DeadlineOrStop:
    """A transformers StoppingCriteria: stop at a wall-clock deadline or at a stop sequence."""

    def __init__(self, deadline: float, stops: Sequence[str], tokenizer: Any, prompt_len: int):
        self.deadline = deadline
        self.stops = [s for s in stops if s]
        self.tokenizer = tokenizer
        self.prompt_len = prompt_len
        self.timed_out = False

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        batch = input_ids.shape[0]  # input_ids: (B, T)
        if time.monotonic() >= self.deadline:
            self.timed_out = True
            return torch.ones(batch, dtype=torch.bool, device=input_ids.device)
        if self.stops:
            done = []
            for row in input_ids[:, self.prompt_len :]:
                text = self.tokenizer.decode(row, skip_special_tokens=True)
                done.append(any(s in text for s in self.stops))
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)
        return torch.zeros(batch, dtype=torch.bool, device=input_ids.device)


class WordsOnly:
    """A logits processor that keeps a one-line reply to a closed set of space-separated words.

    A token is allowed when, appended to the reply so far, every finished word is in `words`
    (or a plain number matching `number`) and the unfinished one is the start of such a word;
    the end of the turn only after a finished word. So a program's columns are the table's own
    and its slots the request's own (as PICARD constrains SQL, Scholak et al. 2021); the
    grammar's order is left to the parser and its repair.
    """

    def __init__(self, tokenizer: Any, prompt_len: int, words: Collection[str],
                 end_ids: Collection[int], number: re.Pattern[str] | None = None):
        self.tokenizer, self.prompt_len = tokenizer, prompt_len
        self.words = set(words)
        self.prefixes = {w[:i] for w in self.words for i in range(len(w) + 1)}
        self.end_ids = list(end_ids)
        self.number = number
        self.pieces = _token_pieces(tokenizer)
        self._memo: dict[tuple[str, bool], list[int]] = {}

    def _word_ok(self, w: str) -> bool:
        return w in self.words or bool(self.number and self.number.match(w))

    def _prefix_ok(self, w: str) -> bool:
        return w in self.prefixes or self._word_ok(w)  # a number's start is a number

    def allowed(self, text: str) -> list[int]:
        """Token ids that may follow the reply `text`."""
        cur = text.rsplit(" ", 1)[-1]
        key = (cur, not text)
        if key not in self._memo:
            self._memo[key] = self._allowed(text, cur)
        return self._memo[key]

    def _allowed(self, text: str, cur: str) -> list[int]:
        out = []
        for i, piece in enumerate(self.pieces):
            if not piece or "\n" in piece:
                continue
            parts = (cur + piece).split(" ")
            if any(not p for p in parts[1:-1]) or not self._prefix_ok(parts[-1]):
                continue
            if len(parts) > 1 and not (self._word_ok(parts[0]) or (parts[0] == "" and not text)):
                continue
            out.append(i)
        if cur and self._word_ok(cur):
            out += self.end_ids
        return out

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        """`scores` with every token that cannot follow the reply so far set to -inf."""
        import torch

        text = self.tokenizer.decode(input_ids[0, self.prompt_len:], skip_special_tokens=True)
        keep = self.allowed(text.lstrip())
        mask = torch.full_like(scores, float("-inf"))
        if keep:
            idx = torch.tensor([k for k in keep if k < scores.shape[-1]], device=scores.device)
            mask[0, idx] = 0.0
        else:  # nothing fits: let the reply end, the parser says what is wrong
            mask[0, self.end_ids] = 0.0
        return scores + mask


_PIECES: weakref.WeakKeyDictionary[Any, list[str]] = weakref.WeakKeyDictionary()


def _token_pieces(tokenizer: Any) -> list[str]:
    """Each token id's text (cached per tokenizer object, dropped with it)."""
    pieces = _PIECES.get(tokenizer)
    if pieces is None:
        pieces = [tokenizer.decode([i], skip_special_tokens=True) for i in range(len(tokenizer))]
        _PIECES[tokenizer] = pieces
    return pieces


class LocalChatModel(BaseChatModel):
    """A local Hugging Face causal LM behind LangChain's chat-model interface."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_dir: str = Field(description="Directory the model and tokenizer were loaded from.")
    hf_model: Any = Field(exclude=True, repr=False, description="The loaded transformers model.")
    tokenizer: Any = Field(exclude=True, repr=False, description="Its tokenizer (chat template).")
    max_new_tokens: int = Field(64, ge=1, description="Most tokens generated per reply.")
    sampling_temperature: float = Field(
        0.0, ge=0.0, description="Sampling temperature (0 = greedy); not the KD temperature."
    )
    stop_sequences: list[str] = Field(default_factory=list, description="Cut the reply here.")
    timeout_s: float = Field(60.0, gt=0, description="Hard wall-clock limit of one generation.")
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @classmethod
    def from_dir(
        cls, path: str | Path, *, device: str = "cpu", dtype: str = "float32", **kwargs: Any
    ) -> LocalChatModel:
        """Load a model directory once (config.json, weights, tokenizer with a chat template)."""
        model, tokenizer = load_local_model(path, device=device, dtype=dtype)
        return cls(model_dir=str(path), hf_model=model, tokenizer=tokenizer, **kwargs)

    @property
    def _llm_type(self) -> str:
        return "distillgraph-local"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_dir": self.model_dir,
            "max_new_tokens": self.max_new_tokens,
            "sampling_temperature": self.sampling_temperature,
        }

    # ---- prompt and generation -------------------------------------------------------------

    def prompt_ids(self, messages: Sequence[BaseMessage]) -> list[int]:
        """Token ids of the chat-templated prompt, ending with the assistant turn's opening."""
        enc = self.tokenizer.apply_chat_template(
            to_chat_dicts(messages), add_generation_prompt=True, tokenize=True, return_dict=True
        )
        return list(enc["input_ids"])

    def _generate_kwargs(self, stop: list[str] | None, **kwargs: Any) -> dict[str, Any]:
        temp = float(kwargs.get("sampling_temperature", self.sampling_temperature))
        out: dict[str, Any] = {
            "max_new_tokens": int(kwargs.get("max_new_tokens", self.max_new_tokens)),
            "do_sample": temp > 0,
            "pad_token_id": self.tokenizer.pad_token_id
            if self.tokenizer.pad_token_id is not None
            else self.tokenizer.eos_token_id,
        }
        if temp > 0:
            out["temperature"] = temp
        else:  # greedy: unset sampling knobs a model's generation_config may carry
            out.update(temperature=None, top_p=None, top_k=None)
        return out

    def _run_generate(
        self, messages: Sequence[BaseMessage], stops: list[str], gen: dict[str, Any], streamer: Any
    ) -> tuple[str, str]:
        """Generate under the lock; return (text cut at a stop, finish reason)."""
        import torch
        from transformers import StoppingCriteriaList

        ids = self.prompt_ids(messages)
        device = next(self.hf_model.parameters()).device
        input_ids = torch.tensor([ids], device=device)  # (1, T)
        with self._lock:
            # The clock starts once this conversation holds the model, so queueing behind other
            # conversations does not eat its time budget.
            crit = _DeadlineOrStop(
                time.monotonic() + self.timeout_s, stops, self.tokenizer, len(ids)
            )
            with torch.no_grad():
                out = self.hf_model.generate(
                    input_ids=input_ids,
                    attention_mask=torch.ones_like(input_ids),
                    stopping_criteria=StoppingCriteriaList([crit]),
                    streamer=streamer,
                    **gen,
                )
        new = out[0, len(ids) :]  # (T_new,)
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        text, hit_stop = cut_at_stop(text, stops)
        eos = self.tokenizer.eos_token_id
        if crit.timed_out:
            reason = "time_limit"
        elif hit_stop or (len(new) and eos is not None and int(new[-1]) == eos):
            reason = "stop"
        elif len(new) >= gen["max_new_tokens"]:
            reason = "length"
        else:
            reason = "stop"
        return text, reason

    def _finish(self, text: str, reason: str) -> tuple[str, dict[str, Any]]:
        meta = {"finish_reason": reason, "model_name": Path(self.model_dir).name}
        if reason == "time_limit":
            text = text + CUT_NOTE.format(limit=self.timeout_s)
        return text, meta

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        stops = [*self.stop_sequences, *(stop or [])]
        text, reason = self._run_generate(
            messages, stops, self._generate_kwargs(stop, **kwargs), None
        )
        text, meta = self._finish(text.strip(), reason)
        msg = AIMessage(content=text, response_metadata=meta)
        return ChatResult(generations=[ChatGeneration(message=msg)])

    def _start_stream(
        self, messages: list[BaseMessage], stop: list[str] | None, streamer: Any, **kwargs: Any
    ) -> tuple[threading.Thread, dict[str, Any]]:
        """Run generation in a background thread feeding `streamer`; the dict gets its result."""
        stops = [*self.stop_sequences, *(stop or [])]
        gen = self._generate_kwargs(stop, **kwargs)
        result: dict[str, Any] = {}

        def work() -> None:
            try:
                result["text"], result["reason"] = self._run_generate(
                    messages, stops, gen, streamer
                )
            except BaseException as e:  # re-raised in the consuming thread
                result["error"] = e
                streamer.end()  # unblock the consumer

        thread = threading.Thread(target=work, name="distillgraph-generate", daemon=True)
        thread.start()
        return thread, result

    def _pieces(self, stops: Sequence[str]) -> _StopFilter:
        return _StopFilter([*self.stop_sequences, *stops])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        from transformers import TextIteratorStreamer

        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        thread, result = self._start_stream(messages, stop, streamer, **kwargs)
        filt = self._pieces(stop or [])
        for piece in streamer:
            for out in filt.feed(piece):
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=out))
                if run_manager:
                    run_manager.on_llm_new_token(out, chunk=chunk)
                yield chunk
        thread.join()
        yield from self._final_chunks(filt, result, run_manager)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        from transformers import AsyncTextIteratorStreamer

        # The async streamer hands text to this event loop with call_soon_threadsafe, so waiting
        # for tokens never blocks the loop nor holds an executor thread.
        streamer = AsyncTextIteratorStreamer(
            self.tokenizer, skip_prompt=True, skip_special_tokens=True
        )
        thread, result = self._start_stream(messages, stop, streamer, **kwargs)
        filt = self._pieces(stop or [])
        async for piece in streamer:
            for out in filt.feed(piece):
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=out))
                if run_manager:
                    await run_manager.on_llm_new_token(out, chunk=chunk)
                yield chunk
        await asyncio.to_thread(thread.join)
        for chunk in self._final_chunks(filt, result, None):
            if run_manager and chunk.message.content:
                await run_manager.on_llm_new_token(chunk.message.content, chunk=chunk)
            yield chunk

    def _final_chunks(
        self,
        filt: _StopFilter,
        result: dict[str, Any],
        run_manager: CallbackManagerForLLMRun | None,
    ) -> Iterator[ChatGenerationChunk]:
        if "error" in result:
            raise result["error"]
        tail = filt.flush()
        _, meta = self._finish("", result.get("reason", "stop"))
        if result.get("reason") == "time_limit":
            tail += CUT_NOTE.format(limit=self.timeout_s)
        chunk = ChatGenerationChunk(
            message=AIMessageChunk(content=tail, response_metadata=meta, chunk_position="last")
        )
        if run_manager and tail:
            run_manager.on_llm_new_token(tail, chunk=chunk)
        yield chunk

    # ---- programs: greedy text with its token probabilities --------------------------------

    def generate_scored(
        self, messages: Sequence[BaseMessage], max_new_tokens: int = 48,
        allowed_words: Collection[str] | None = None,
        number: re.Pattern[str] | None = None,
    ) -> tuple[str, list[float]]:
        """Greedy reply to `messages` and the probability of each generated token.

        The agent graph reads the student's program with it: a low token probability marks a
        reading the model is unsure of, and the graph asks back instead of answering. With
        `allowed_words` the reply is kept to those words (`WordsOnly`); the probabilities are
        still the model's own, before the constraint, so a word the model wanted and could not
        write shows as low confidence.

        Returns:
            ``(text, [p(token_1), ..., p(token_n)])`` with the end-of-turn token not counted.
        """
        import torch
        from transformers import LogitsProcessorList

        ids = self.prompt_ids(messages)
        device = next(self.hf_model.parameters()).device
        input_ids = torch.tensor([ids], device=device)  # (1, T)
        gen = self._generate_kwargs(None, max_new_tokens=max_new_tokens, sampling_temperature=0)
        eot = _end_of_turn(self.tokenizer)
        if allowed_words is not None:
            gen["logits_processor"] = LogitsProcessorList(
                [WordsOnly(self.tokenizer, len(ids), allowed_words, eot, number)])
        with self._lock, torch.no_grad():
            out = self.hf_model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                output_logits=True,
                return_dict_in_generate=True,
                eos_token_id=eot,
                **gen,
            )
        new = out.sequences[0, len(ids) :]  # (T_new,)
        probs = []
        for step, tok in enumerate(new.tolist()):
            if tok in eot:
                break
            p = torch.softmax(out.logits[step][0].float(), dim=-1)[tok]
            probs.append(float(p))
        text = self.tokenizer.decode(new, skip_special_tokens=True).strip()
        return text, probs

    # ---- routing by scoring ----------------------------------------------------------------

    def score_labels(
        self, messages: Sequence[BaseMessage], labels: Sequence[str]
    ) -> dict[str, float]:
        """Log-probability of each label as the assistant's reply to `messages`.

        The prompt runs once (its KV cache is kept); each label's tokens are then scored on a
        copy of that cache, so routing costs one prompt pass plus a few tokens. No text is
        generated, so the result is deterministic.

        Returns:
            ``{label: sum of log p(label token | prompt, earlier label tokens)}``.
        """
        import copy

        import torch

        prompt = self.prompt_ids(messages)
        label_ids = {}
        for label in labels:
            ids = self.tokenizer(label, add_special_tokens=False)["input_ids"]
            if not ids:
                raise ValueError(f"label {label!r} has no tokens")
            label_ids[label] = list(ids)
        device = next(self.hf_model.parameters()).device
        scores = {}
        with self._lock, torch.no_grad():
            out = self.hf_model(
                input_ids=torch.tensor([prompt], device=device), use_cache=True, logits_to_keep=1
            )
            first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)  # (V,)
            for label, ids in label_ids.items():
                total = float(first[ids[0]])
                if len(ids) > 1:
                    cache = copy.deepcopy(out.past_key_values)
                    rest = self.hf_model(
                        input_ids=torch.tensor([ids[:-1]], device=device),
                        past_key_values=cache,
                        use_cache=True,
                    ).logits[0]  # (len(ids) - 1, V): predicts ids[1:]
                    logp = torch.log_softmax(rest.float(), dim=-1)
                    total += float(logp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])].sum())
                scores[label] = total
        return scores


def _end_of_turn(tokenizer: Any) -> list[int]:
    """Token ids that end an assistant turn: the chat template's end-of-turn and eos."""
    from distillation.data import end_of_turn_id

    ids = [end_of_turn_id(tokenizer)]
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


class _StopFilter:
    """Streams text while holding back what could be the start of a stop sequence."""

    def __init__(self, stops: Sequence[str]):
        self.stops = [s for s in stops if s]
        self.keep = max((len(s) for s in self.stops), default=1) - 1
        self.text = ""
        self.sent = 0
        self.stopped = False

    def feed(self, piece: str) -> list[str]:
        if self.stopped or not piece:
            return []
        self.text += piece
        cut, hit = cut_at_stop(self.text, self.stops)
        if hit:
            self.stopped = True
            out, self.sent = cut[self.sent :], len(cut)
            return [out] if out else []
        safe = len(self.text) - self.keep
        if safe <= self.sent:
            return []
        out, self.sent = self.text[self.sent : safe], safe
        return [out]

    def flush(self) -> str:
        if self.stopped:
            return ""
        out, self.sent = self.text[self.sent :], len(self.text)
        return out


def load_local_model(
    path: str | Path, *, device: str = "cpu", dtype: str = "float32"
) -> tuple[Any, Any]:
    """Load a model directory in eval mode; one-line `InputError` when it is not one."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise InputError(
            f"{path}: not a model directory (no config.json); pass a student checkpoint dir "
            f"such as {DEFAULT_STUDENT_DIR}"
        )
    try:
        from distillation.models import load_model_and_tokenizer
    except ImportError:  # distillation stage absent: load with transformers directly
        load_model_and_tokenizer = None
    if load_model_and_tokenizer is not None:
        model, tokenizer = load_model_and_tokenizer(str(path), dtype=dtype, device=device)
    else:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype)).to(device)
    model.eval()
    if getattr(tokenizer, "chat_template", None) is None:
        raise InputError(f"{path}: the tokenizer has no chat template; the graph needs one")
    return model, tokenizer


def build_chat_model(config: ModelConfig) -> BaseChatModel:
    """The one factory: a local model directory, or an OpenAI-compatible endpoint.

    Args:
        config: ``path`` for a local transformers directory, or ``base_url`` + ``name`` for an
            endpoint (its API key is read from the environment variable ``api_key_env``).

    Raises:
        InputError: Neither is set, or the endpoint client is not installed.
    """
    if config.path:
        return LocalChatModel.from_dir(
            config.path,
            device=config.device,
            dtype=config.dtype,
            max_new_tokens=config.max_new_tokens,
            sampling_temperature=config.sampling_temperature,
            stop_sequences=list(config.stop),
            timeout_s=config.timeout_s,
        )
    if config.base_url:
        import os

        try:
            from langchain_openai import ChatOpenAI
        except ImportError:
            raise InputError(
                "an endpoint model needs langchain-openai; install it with "
                "pip install 'distillgraph[openai]'"
            ) from None
        return ChatOpenAI(
            model=config.name,
            base_url=config.base_url,
            # local servers (vLLM, Ollama) accept any key; the client insists on one
            api_key=os.environ.get(config.api_key_env) or "not-needed",
            max_completion_tokens=config.max_new_tokens,
            temperature=config.sampling_temperature,
            stop=list(config.stop) or None,
            timeout=config.timeout_s,
            max_retries=1,
        )
    raise InputError("no model configured: set 'path' (a model dir) or 'base_url' and 'name'")
