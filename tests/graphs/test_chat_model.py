"""The local chat model on a tiny random model: prompt, generation, streaming, limits, scoring."""

from __future__ import annotations

import asyncio
import math
import threading

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from data_loaders.errors import InputError
from data_loaders.serialize import build_messages
from graphs.chat_model import LocalChatModel, _StopFilter, build_chat_model, cut_at_stop
from graphs.config import ModelConfig

MSGS = [SystemMessage("Answer briefly."), HumanMessage("What is the horsepower of ford pinto?")]


def test_prompt_is_the_training_prompt(tiny_chat):
    from distillation.data import encode_prompt

    m = build_messages("[row 0] name: a | power: 3", "What is the power of a?")
    lc = [SystemMessage(m[0]["content"]), HumanMessage(m[1]["content"])]
    assert tiny_chat.prompt_ids(lc) == encode_prompt(
        tiny_chat.tokenizer, "[row 0] name: a | power: 3", "What is the power of a?"
    )


def test_invoke_and_stream_agree(tiny_chat):
    reply = tiny_chat.invoke(MSGS)
    assert reply.response_metadata["finish_reason"] in ("stop", "length")
    chunks = list(tiny_chat.stream(MSGS))
    assert len(chunks) >= 2
    assert "".join(c.content for c in chunks).strip() == reply.content
    assert chunks[-1].response_metadata["finish_reason"] == reply.response_metadata["finish_reason"]


def test_astream_does_not_block_the_event_loop(tiny_model_dir):
    model = LocalChatModel.from_dir(tiny_model_dir, max_new_tokens=40)

    async def main():
        ticks = 0
        done = asyncio.Event()

        async def ticker():
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.005)

        t = asyncio.create_task(ticker())
        parts = [c.content async for c in model.astream(MSGS)]
        done.set()
        await t
        return ticks, parts

    ticks, parts = asyncio.run(main())
    assert len(parts) >= 2 and ticks >= 3


def test_time_limit_cuts_and_says_so(tiny_model_dir):
    model = LocalChatModel.from_dir(tiny_model_dir, max_new_tokens=2000, timeout_s=0.05)
    reply = model.invoke(MSGS)
    assert reply.response_metadata["finish_reason"] == "time_limit"
    assert "[cut: the 0.05 s generation time limit was reached]" in reply.content
    streamed = "".join(c.content for c in model.stream(MSGS))
    assert "[cut:" in streamed


def test_stop_sequences():
    assert cut_at_stop("a b STOP c", ["STOP"]) == ("a b ", True)
    f = _StopFilter(["<END>"])
    out = [x for piece in ["hel", "lo <E", "ND> junk"] for x in f.feed(piece)]
    assert "".join(out) + f.flush() == "hello "


def test_score_labels_matches_unpadded_forward(tiny_chat):
    import torch

    scores = tiny_chat.score_labels(MSGS, ["qa", "summarize", "validate"])
    assert set(scores) == {"qa", "summarize", "validate"}
    assert all(math.isfinite(v) and v < 0 for v in scores.values())
    prompt = tiny_chat.prompt_ids(MSGS)
    label = tiny_chat.tokenizer("summarize", add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt + label])
    with torch.no_grad():
        logp = torch.log_softmax(tiny_chat.hf_model(ids).logits.float(), -1)[0]
    ref = sum(float(logp[len(prompt) - 1 + i, t]) for i, t in enumerate(label))
    assert scores["summarize"] == pytest.approx(ref, abs=1e-4)


def test_one_copy_serves_concurrent_threads(tiny_chat):
    expected = tiny_chat.invoke(MSGS).content
    results, errors = [], []

    def work():
        try:
            results.append(tiny_chat.invoke(MSGS).content)
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and results == [expected] * 8  # greedy: identical, no interleaving


def test_factory(tiny_model_dir, tmp_path, monkeypatch):
    m = build_chat_model(ModelConfig(path=str(tiny_model_dir), max_new_tokens=3, stop=["x"]))
    assert isinstance(m, LocalChatModel) and m.max_new_tokens == 3 and m.stop_sequences == ["x"]
    monkeypatch.setenv("MY_KEY", "sk-test")
    remote = build_chat_model(
        ModelConfig(base_url="http://127.0.0.1:9/v1", name="teacher-7b", api_key_env="MY_KEY")
    )
    assert type(remote).__name__ == "ChatOpenAI" and remote.model_name == "teacher-7b"
    with pytest.raises(InputError, match="no model configured"):
        build_chat_model(ModelConfig())
    with pytest.raises(InputError, match="not a model directory"):
        build_chat_model(ModelConfig(path=str(tmp_path)))
    with pytest.raises(ValueError):
        ModelConfig(base_url="http://x/v1")  # needs a name


class _Pieces:
    """A tokenizer stand-in: token i decodes to PIECES[i]."""

    PIECES = ["", "look", "up", " lookup", " E", "1", "2", " Weight", "_in_lbs", " Height",
              " 3", "\n", " ", "x"]

    def __len__(self):
        return len(self.PIECES)

    def decode(self, ids, skip_special_tokens=True):
        return "".join(self.PIECES[i] for i in ids)


def test_words_only_keeps_a_reply_to_the_allowed_words():
    from graphs.chat_model import WordsOnly

    p = WordsOnly(_Pieces(), 0, {"lookup", "E1", "Weight_in_lbs"}, end_ids=[99])
    allowed = lambda text: {_Pieces.PIECES[i] if i < 99 else "END" for i in p.allowed(text)}  # noqa: E731
    # any allowed word may start (the order is the parser's job), nothing else may
    assert {"look", " lookup", " E", " Weight"} <= allowed("")
    assert not {"x", "up", " Height", " 3", "\n"} & allowed("")
    assert allowed("look") == {"up"}
    after = allowed("lookup")
    assert {" E", " Weight", "END"} <= after and not {" Height", "up", " 3"} & after
    assert allowed("lookup E") == {"1"}  # E1 is the request's slot, E2 is not
    assert allowed("lookup E1 Weight") == {"_in_lbs"}
    assert "\n" not in allowed("lookup E1") and " " not in allowed("lookup E1 ")


def test_constrained_decoding_keeps_the_model_s_own_probabilities(tiny_chat):
    from langchain_core.messages import HumanMessage

    msgs = [HumanMessage("hello")]
    free, p_free = tiny_chat.generate_scored(msgs, max_new_tokens=6)
    text, p = tiny_chat.generate_scored(msgs, max_new_tokens=6, allowed_words={"a", "b", "ab"})
    assert set(text.split()) <= {"a", "b", "ab"}
    assert all(0.0 <= x <= 1.0 for x in p) and len(p) <= 6
