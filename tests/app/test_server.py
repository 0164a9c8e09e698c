"""`distillgraph serve`: the OpenAI-compatible API on a tiny random model and the cars table.

In process with FastAPI's ``TestClient`` (replies, streaming, memory, keys, limits, bad input,
concurrency), and over a real uvicorn server on a free loopback port for the official ``openai``
client, ``ChatOpenAI``, a client that disconnects mid-stream, and a graph whose student is this
server's raw student (``build_graph(model="http://...")``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from app.cli import main
from app.openai_api import ServerLimits
from app.server import AGENT_MODEL, STUDENT_MODEL, create_app
from graphs import build_graph

ROOT = Path(__file__).resolve().parents[2]
CARS = ROOT / "examples" / "data" / "cars.csv"
CARS_CONFIG = ROOT / "configs" / "prepare_cars.yaml"
SMALL = ["student.max_new_tokens=4", "retrieval.max_chars=800"]  # keep CPU time low
WEIGHT_Q = "What is the weight of ford pinto?"


@pytest.fixture(scope="module")
def cars():
    from data_loaders.config import TableConfig
    from data_loaders.config_loader import load_config
    from data_loaders.loaders import load_tables

    return load_tables([CARS], load_config(TableConfig, CARS_CONFIG, section="table"))[0]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    from distillation.tiny import build_tiny_model_dir

    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "tiny-student", seed=0)


@pytest.fixture(scope="module")
def student(tiny_dir):
    from graphs.chat_model import LocalChatModel

    return LocalChatModel.from_dir(tiny_dir, max_new_tokens=6)


@pytest.fixture(scope="module")
def graph(student, cars):
    return build_graph(student, [cars], checkpointer="memory", overrides=SMALL)


@contextlib.contextmanager
def client_for(graph, **kw) -> Iterator[TestClient]:
    # One TestClient context = one event loop for every request, as under uvicorn.
    with TestClient(create_app(graph, **kw)) as c:
        yield c


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def ask(c: TestClient, text: str, model: str = AGENT_MODEL, **body: Any) -> httpx.Response:
    return c.post("/v1/chat/completions", json={"model": model, "messages": user(text), **body})


def events(resp: httpx.Response) -> list[Any]:
    """The SSE payloads of a streamed reply, in order (``"[DONE]"`` as a string)."""
    assert resp.headers["content-type"].startswith("text/event-stream")
    out = []
    for block in resp.text.split("\n\n"):
        if block.strip():
            assert block.startswith("data: "), block
            data = block[len("data: "):]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def assert_error(resp: httpx.Response, status: int, code: str | None, param: str | None = None):
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    assert err["code"] == code
    if param is not None:
        assert err["param"] == param
    return err


# ---- replies ---------------------------------------------------------------------------------


def test_health_and_models(graph):
    with client_for(graph) as c:
        h = c.get("/health").json()
        assert h["status"] == "ok" and h["in_flight"] == 0
        assert h["models"] == [AGENT_MODEL, STUDENT_MODEL, "tiny-student"]
        ids = [m["id"] for m in c.get("/v1/models").json()["data"]]
        assert ids == [AGENT_MODEL, STUDENT_MODEL]


def test_agent_reply_carries_what_the_graph_did(graph):
    with client_for(graph) as c:
        r = ask(c, WEIGHT_Q)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion" and body["model"] == AGENT_MODEL
    choice = body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "2046 lbs"}
    assert choice["finish_reason"] == "stop"
    dg = body["distillgraph"]
    assert dg["route"] == "qa" and dg["entity"] == "ford pinto" and dg["table"] == "cars"
    assert dg["answered_by"] in ("student", "table") and dg["verdict"]["supported"] is True
    assert dg["row_ids"] == [37] and "qa" in dg["timings"]
    assert r.headers["X-Thread-Id"] == dg["thread_id"]  # a new thread, named for the client


def test_agent_stream_sends_steps_then_the_checked_reply(graph):
    with client_for(graph) as c:
        r = ask(c, WEIGHT_Q, stream=True, thread_id="s1")
    assert r.status_code == 200
    ev = events(r)
    assert ev[-1] == "[DONE]" and ev[0]["choices"][0]["delta"]["role"] == "assistant"
    chunks = ev[:-1]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    steps = [c["distillgraph"]["step"] for c in chunks if "step" in c.get("distillgraph", {})]
    assert steps == ["process_input", "route", "qa", "finalize"]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == "2046 lbs"
    last = chunks[-1]
    assert last["choices"][0]["finish_reason"] == "stop"
    assert last["distillgraph"]["thread_id"] == "s1" and last["distillgraph"]["route"] == "qa"


def test_thread_memory_continues_and_nothing_leaks(graph):
    follow_up = "and its horsepower?"
    with client_for(graph, api_keys=["key-a", "key-b"]) as c:
        a = {"Authorization": "Bearer key-a"}
        b = {"Authorization": "Bearer key-b"}
        first = c.post("/v1/chat/completions", headers=a,
                       json={"model": AGENT_MODEL, "messages": user(WEIGHT_Q), "thread_id": "t1"})
        assert first.json()["distillgraph"]["entity"] == "ford pinto"
        # the same thread (named by the header this time) resolves the follow-up ...
        same = c.post("/v1/chat/completions", headers={**a, "X-Thread-Id": "t1"},
                      json={"model": AGENT_MODEL, "messages": user(follow_up)})
        assert same.json()["distillgraph"]["query"] == "What is the horsepower of ford pinto?"
        # ... another thread does not, nor does the same thread id under another key
        for headers, tid in ((a, "t2"), (b, "t1")):
            other = c.post("/v1/chat/completions", headers=headers,
                           json={"model": AGENT_MODEL, "messages": user(follow_up),
                                 "thread_id": tid})
            dg = other.json()["distillgraph"]
            assert dg["query"] == follow_up and "ford pinto" not in json.dumps(dg), dg


def test_student_reply_stream_and_usage(graph, student):
    with client_for(graph) as c:
        body = {"temperature": 0, "max_tokens": 5}
        plain = ask(c, "Hello there", model=STUDENT_MODEL, **body).json()
        alias = ask(c, "Hello there", model="tiny-student", **body).json()
        streamed = ask(c, "Hello there", model=STUDENT_MODEL, stream=True,
                       stream_options={"include_usage": True}, **body)
    assert "distillgraph" not in plain
    text = plain["choices"][0]["message"]["content"]
    assert alias["choices"][0]["message"]["content"] == text  # greedy: the same reply
    assert plain["choices"][0]["finish_reason"] in ("stop", "length")
    prompt = len(student.prompt_ids([HumanMessage("Hello there")]))
    assert plain["usage"]["prompt_tokens"] == prompt
    ev = events(streamed)
    assert ev[-1] == "[DONE]"
    usage_chunk = ev[-2]
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["prompt_tokens"] == prompt
    parts = [c["choices"][0]["delta"].get("content", "") for c in ev[:-2]]
    assert "".join(parts).strip() == text
    assert ev[-3]["choices"][0]["finish_reason"] == plain["choices"][0]["finish_reason"]


def test_graph_state_becomes_json():
    import numpy as np

    from app.server import jsonable

    state = {"confidence": float("nan"), "p": np.float32(0.5), "rows": (np.int64(3),),
             "spec": {"op": "lookup", "where": {1, }}, "obj": object}
    out = jsonable(state)
    assert out["confidence"] is None and out["p"] == 0.5 and out["rows"] == [3]
    assert out["spec"] == {"op": "lookup", "where": [1]} and isinstance(out["obj"], str)
    json.dumps(out, allow_nan=False)


# ---- bad input -------------------------------------------------------------------------------


OK = {"model": AGENT_MODEL, "messages": user(WEIGHT_Q)}


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        (b"{not json", 400, "invalid_json", None),
        (b"[1, 2]", 400, "invalid_json", None),
        (b"\xff\xfe", 400, "invalid_json", None),
        ({"messages": user("hi")}, 400, "missing_required_parameter", "model"),
        ({"model": "gpt-4o", "messages": user("hi")}, 404, "model_not_found", "model"),
        ({"model": AGENT_MODEL, "messages": []}, 400, "empty_array", "messages"),
        ({"model": AGENT_MODEL, "messages": "hi"}, 400, "invalid_value", "messages"),
        ({"model": AGENT_MODEL, "messages": [{"role": "robot", "content": "x"}]}, 400,
         "invalid_value", "messages[0].role"),
        ({"model": AGENT_MODEL, "messages": user("hi") * 9}, 400, "too_many_messages", "messages"),
        ({"model": AGENT_MODEL, "messages": user("x" * 501)}, 400, "context_length_exceeded",
         "messages[0].content"),
        ({**OK, "max_tokens": 100}, 400, "invalid_value", "max_tokens"),
        ({**OK, "max_tokens": 0}, 400, "invalid_value", "max_tokens"),
        ({**OK, "temperature": 9}, 400, "invalid_value", "temperature"),
        ({**OK, "n": 2}, 400, "invalid_value", "n"),
        ({**OK, "thread_id": "../etc"}, 400, "invalid_value", "thread_id"),
        ({"model": AGENT_MODEL, "messages": [*user("hi"), {"role": "assistant", "content": "x"}]},
         400, "invalid_value", "messages[1].role"),
        ({"model": AGENT_MODEL, "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "http://x"}}]}]}, 400, "invalid_value",
         "messages[0].content"),
        ({**OK, "messages": user("y" * 400) * 3}, 413, "request_too_large", None),
    ],
    ids=["malformed", "not-object", "not-utf8", "no-model", "unknown-model", "empty-messages",
         "messages-not-list", "bad-role", "too-many-messages", "overlong-message",
         "max-tokens-above-cap", "max-tokens-zero", "temperature", "n", "thread-id",
         "agent-last-not-user", "image-part", "body-too-large"],
)
def test_bad_requests_get_openai_errors_and_the_server_keeps_serving(graph, body, status, code,
                                                                     param):
    limits = ServerLimits(max_body_bytes=1024, max_messages=8, max_message_chars=500,
                          max_tokens=50)
    with client_for(graph, limits=limits) as c:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        r = c.post("/v1/chat/completions", content=raw,
                   headers={"Content-Type": "application/json"})
        assert_error(r, status, code, param)
        assert ask(c, WEIGHT_Q).status_code == 200


def test_body_over_the_limit_is_refused_while_streaming_in(graph):
    """No Content-Length (chunked upload): the body is cut off once past the limit."""
    with client_for(graph, limits=ServerLimits(max_body_bytes=2048)) as c:
        def parts():
            yield b'{"model": "distillgraph-agent", "messages": [{"role": "user", "content": "'
            for _ in range(10):
                yield b"z" * 1000
            yield b'"}]}'

        r = c.post("/v1/chat/completions", content=parts())
        assert_error(r, 413, "request_too_large")


def test_unknown_paths_and_methods(graph):
    with client_for(graph) as c:
        assert_error(c.get("/v1/nothing"), 404, "not_found")
        assert_error(c.get("/v1/chat/completions"), 405, "method_not_allowed")


def test_api_keys(graph):
    with client_for(graph, api_keys=["s3cret"]) as c:
        assert c.get("/health").status_code == 200  # for load balancers: no key
        assert_error(c.get("/v1/models"), 401, "invalid_api_key")
        assert_error(ask(c, WEIGHT_Q), 401, "invalid_api_key")
        r = c.post("/v1/chat/completions", json=OK, headers={"Authorization": "Bearer wrong"})
        err = assert_error(r, 401, "invalid_api_key")
        assert "s3cret" not in json.dumps(err) and r.headers["WWW-Authenticate"] == "Bearer"
        r = c.post("/v1/chat/completions", json=OK, headers={"Authorization": "Basic s3cret"})
        assert_error(r, 401, "invalid_api_key")
        r = c.post("/v1/chat/completions", json=OK, headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 200


def test_model_failure_is_a_500_and_the_server_keeps_serving(graph):
    with client_for(graph, student=Broken()) as c:
        r = ask(c, "hi", model=STUDENT_MODEL)
        err = assert_error(r, 500, "internal_error")
        assert err["type"] == "server_error" and "RuntimeError" in err["message"]
        assert "weights on fire" not in err["message"]  # details go to the log only
        ev = events(ask(c, "hi", model=STUDENT_MODEL, stream=True))
        assert ev[-2]["error"]["code"] == "internal_error" and ev[-1] == "[DONE]"
        assert c.get("/health").json()["in_flight"] == 0
        assert ask(c, WEIGHT_Q).status_code == 200


# ---- concurrency -----------------------------------------------------------------------------


class Broken(BaseChatModel):
    @property
    def _llm_type(self) -> str:
        return "broken"

    def _generate(self, messages, stop=None, run_manager=None, **kw) -> ChatResult:
        raise RuntimeError("weights on fire")


class Gate(BaseChatModel):
    """A chat model whose replies wait for `release` (signals `entered` when one starts)."""

    entered: Any
    release: Any

    @property
    def _llm_type(self) -> str:
        return "gate"

    def _generate(self, messages, stop=None, run_manager=None, **kw) -> ChatResult:
        self.entered.set()
        assert self.release.wait(30), "the test never opened the gate"
        return ChatResult(generations=[ChatGeneration(message=AIMessage("opened"))])


def test_a_waiting_model_neither_blocks_the_loop_nor_exceeds_the_slots(graph):
    gate = Gate(entered=threading.Event(), release=threading.Event())
    limits = ServerLimits(max_concurrency=1, queue_timeout_s=0.2)
    with client_for(graph, student=gate, limits=limits) as c:
        results: dict[str, httpx.Response] = {}
        t = threading.Thread(target=lambda: results.update(r=ask(c, "wait", model=STUDENT_MODEL)))
        t.start()
        try:
            assert gate.entered.wait(30)
            # the model is busy in a worker thread: the event loop still answers
            assert c.get("/health").json()["in_flight"] == 1
            # the one slot is taken: the next model request waits, then gets a 503
            err = assert_error(ask(c, "second", model=STUDENT_MODEL), 503, "overloaded")
            assert err["type"] == "server_error"
        finally:
            gate.release.set()
            t.join(30)
        assert results["r"].json()["choices"][0]["message"]["content"] == "opened"
        assert c.get("/health").json()["in_flight"] == 0


# ---- a real server ---------------------------------------------------------------------------


@contextlib.contextmanager
def serving(app) -> Iterator[str]:
    """Run `app` under uvicorn on a free loopback port in a thread; yield its /v1 URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started:
                break
            time.sleep(0.02)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


KEY = "test-key-1"


@pytest.fixture(scope="module")
def server_url(graph):
    app = create_app(graph, api_keys=[KEY, "test-key-2"])
    with serving(app) as url:
        yield url, app


def test_official_openai_client(server_url):
    import openai

    url, _ = server_url
    client = openai.OpenAI(base_url=url, api_key=KEY, max_retries=0)
    assert [m.id for m in client.models.list()] == [AGENT_MODEL, STUDENT_MODEL]
    r = client.chat.completions.create(
        model=AGENT_MODEL, messages=user(WEIGHT_Q), extra_body={"thread_id": "oa"}
    )
    assert r.choices[0].message.content == "2046 lbs"
    assert r.model_extra["distillgraph"]["route"] == "qa"
    follow = client.chat.completions.create(
        model=AGENT_MODEL, messages=user("and its horsepower?"), extra_headers={"X-Thread-Id": "oa"}
    )
    assert follow.model_extra["distillgraph"]["query"] == "What is the horsepower of ford pinto?"
    stream = client.chat.completions.create(model=AGENT_MODEL, messages=user(WEIGHT_Q), stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "2046 lbs"
    s = client.chat.completions.create(model=STUDENT_MODEL, messages=user("hi"), max_tokens=3)
    assert s.usage.prompt_tokens > 0
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-4o", messages=user("hi"))
    assert e.value.code == "model_not_found" and e.value.param == "model"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=AGENT_MODEL, messages=[])
    assert e.value.code == "empty_array"
    bad = openai.OpenAI(base_url=url, api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as e:
        bad.chat.completions.create(model=AGENT_MODEL, messages=user("hi"))
    assert e.value.code == "invalid_api_key"


def test_langchain_chat_openai(server_url):
    from langchain_openai import ChatOpenAI

    url, _ = server_url
    llm = ChatOpenAI(base_url=url, api_key=KEY, model=AGENT_MODEL, max_retries=0)
    assert llm.invoke(WEIGHT_Q).content == "2046 lbs"
    assert "".join(str(c.content) for c in llm.stream(WEIGHT_Q)) == "2046 lbs"
    raw = ChatOpenAI(base_url=url, api_key=KEY, model=STUDENT_MODEL, max_retries=0,
                     max_completion_tokens=3)
    reply = raw.invoke("hi")
    assert reply.usage_metadata["input_tokens"] > 0


def test_graph_over_the_servers_raw_student(server_url, cars, monkeypatch):
    """`build_graph(model=URL)`: a graph here whose student answers at the server."""
    url, app = server_url
    monkeypatch.setenv("OPENAI_API_KEY", KEY)  # ModelConfig.api_key_env
    remote = build_graph(url, [cars], checkpointer="memory", overrides=SMALL)
    assert type(remote.distillgraph_nodes.student).__name__ == "ChatOpenAI"
    assert remote.distillgraph_nodes.student.model_name == STUDENT_MODEL
    before = app.state.service.served
    s = remote.invoke({"messages": [("user", "Tell me about the ford pinto")]},
                      {"configurable": {"thread_id": "remote"}})
    assert s["task"] == "summarizer" and s["answer"] and s["entity"] == "ford pinto"
    assert app.state.service.served > before  # the student was asked over HTTP


class Trickle(BaseChatModel):
    """Streams one piece, then waits forever; records whether the wait was cancelled."""

    cancelled: Any

    @property
    def _llm_type(self) -> str:
        return "trickle"

    def _generate(self, messages, stop=None, run_manager=None, **kw) -> ChatResult:
        raise NotImplementedError

    async def _astream(self, messages, stop=None, run_manager=None, **kw
                       ) -> AsyncIterator[ChatGenerationChunk]:
        yield ChatGenerationChunk(message=AIMessageChunk(content="first"))
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


def test_client_disconnecting_mid_stream_frees_its_slot(graph):
    model = Trickle(cancelled=threading.Event())
    app = create_app(graph, student=model, limits=ServerLimits(max_concurrency=1))
    with serving(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        body = {"model": STUDENT_MODEL, "messages": user("hi"), "stream": True}
        with http.stream("POST", "/chat/completions", json=body) as r:
            lines = r.iter_lines()
            seen = [next(lines) for _ in range(3)]  # role chunk, blank line, first piece
            assert '"first"' in seen[2]
        # closed mid-stream: the server stops the generation and frees the one slot
        assert model.cancelled.wait(30)
        base = url.removesuffix("/v1")
        for _ in range(500):
            if http.get(f"{base}/health").json()["in_flight"] == 0:
                break
            time.sleep(0.02)
        assert http.get(f"{base}/health").json()["in_flight"] == 0
        r = http.post("/chat/completions", json={"model": AGENT_MODEL, "messages": user(WEIGHT_Q)})
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "2046 lbs"


# ---- the command -----------------------------------------------------------------------------


def test_serve_refuses_an_open_host_without_keys(monkeypatch, capsys):
    monkeypatch.delenv("DISTILLGRAPH_API_KEYS", raising=False)
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "DISTILLGRAPH_API_KEYS" in err


def test_serve_refuses_a_taken_port(monkeypatch, capsys):
    monkeypatch.delenv("DISTILLGRAPH_API_KEYS", raising=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert main(["serve", "--port", str(s.getsockname()[1])]) == 2
    assert "cannot listen there" in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_command_builds_and_serves(tiny_dir, monkeypatch, capsys):
    launched = {}
    port = free_port()
    monkeypatch.setenv("DISTILLGRAPH_API_KEYS", "k1, k2")
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: launched.update(app=app, **kw))
    argv = ["serve", "--model", str(tiny_dir), "--data", str(CARS), "--table-config",
            str(CARS_CONFIG), "--memory", "memory", "--host", "0.0.0.0", "--port", str(port),
            "--max-concurrency", "2", "--set", "student.max_new_tokens=4"]
    assert main(argv) == 0, capsys.readouterr().err
    assert launched["host"] == "0.0.0.0" and launched["port"] == port
    assert "2 API key(s)" in capsys.readouterr().err
    with TestClient(launched["app"]) as c:
        assert c.get("/health").json()["max_concurrency"] == 2
        assert_error(ask(c, WEIGHT_Q), 401, "invalid_api_key")
        r = c.post("/v1/chat/completions", json=OK, headers={"Authorization": "Bearer k2"})
        assert r.json()["choices"][0]["message"]["content"] == "2046 lbs"
