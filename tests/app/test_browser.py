"""End to end in a real browser: `distillgraph chat` with a tiny model, driven by Chromium.

The server is started exactly as a user starts it (the CLI), with a real tiny model directory.
A random model mostly emits newlines, so the test restricts its generation to whole words
(``suppress_tokens`` in its generation config): the reply then streams word by word through
the real tokenizer, streamer and socket. Debian's Chromium is driven headless by Playwright
(never downloaded); the test skips when ``/usr/bin/chromium`` is missing. Screenshots go to
the test's tmp dir and to ``tests/app/_artifacts/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).resolve().parent / "_artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
QA = "What is the fuel economy of chevrolet chevelle malibu?"
SUMMARY = "Summarize chevrolet chevelle malibu."
CLAIM = "Is it true that chevrolet chevelle malibu has a fuel economy of 18 mpg?"
GROUP = "What is the average horsepower of cars with origin USA?"
STEP_WAIT_MS = 60_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's /usr/bin/chromium"),
]


def word_model(out_dir: Path) -> Path:
    """A tiny random model whose generation is limited to whole lowercase words."""
    from transformers import AutoTokenizer

    from distillation.tiny import build_tiny_model_dir

    build_tiny_model_dir(out_dir, n_layers=2, hidden_size=64)
    tok = AutoTokenizer.from_pretrained(out_dir)
    words = {i for i in range(len(tok)) if re.fullmatch(r" [a-z]{2,}", tok.decode([i]))}
    assert words, "the tiny tokenizer has no whole-word tokens"
    gen_path = out_dir / "generation_config.json"
    gen = json.loads(gen_path.read_text())
    gen["suppress_tokens"] = [i for i in range(len(tok)) if i not in words]
    gen_path.write_text(json.dumps(gen))
    return out_dir


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ChatServer:
    """`distillgraph chat` in its own process group, restartable on the same state dir."""

    def __init__(self, model: Path, state: Path, graph_config: Path, log: Path):
        self.model, self.state, self.graph_config, self.log = model, state, graph_config, log
        self.proc: subprocess.Popen | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> float:
        self.port = free_port()
        cmd = [
            sys.executable, "-m", "app.cli", "chat",
            "--model", str(self.model),
            "--data", str(REPO / "examples" / "data" / "cars.csv"),
            "--table-config", str(REPO / "configs" / "prepare_cars.yaml"),
            "--config", str(self.graph_config),
            "--state-dir", str(self.state),
            "--port", str(self.port), "--headless",
        ]  # fmt: skip
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        env.pop("DISTILLGRAPH_AUTH_USERS", None)
        t0 = time.perf_counter()
        with open(self.log, "a") as log:
            # Run from a neutral directory: the command must not depend on the checkout as cwd.
            self.proc = subprocess.Popen(
                cmd,
                cwd=self.state.parent,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chat server exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url, timeout=2) as r:
                    if r.status == 200:
                        return time.perf_counter() - t0
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"chat server did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the CLI and the chainlit child it started
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("chat")
    config = root / "graph.yaml"
    config.write_text("student:\n  max_new_tokens: 12\n")
    srv = ChatServer(word_model(root / "tiny"), root / "state", config, root / "server.log")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def open_page(browser, url: str):
    """A page whose received socket frames are recorded (to see tokens arrive one by one)."""
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    frames: list[str] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda f: frames.append(str(f))))
    page.goto(url)
    return page, frames


def wait_ready(page) -> None:
    """Wait until the chat is connected (the starters become clickable)."""
    page.wait_for_function(
        "() => [...document.querySelectorAll('button')]"
        ".some(b => b.innerText.includes('Ask a question') && !b.disabled)",
        timeout=STEP_WAIT_MS,
    )


def ask(page, text: str, n_turn: int) -> None:
    """Type a question and wait until its turn's last step is shown."""
    box = page.get_by_placeholder("Type your message here...")
    box.fill(text)
    box.press("Enter")
    wait_turns(page, n_turn)


def wait_turns(page, n: int) -> None:
    page.get_by_text("Check against the table").nth(n - 1).wait_for(timeout=STEP_WAIT_MS)


def wait_persisted(db: Path, thread_id: str, step_name: str, timeout_s: float = 30) -> None:
    """Poll the history database until the thread's step named `step_name` is stored."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.closing(sqlite3.connect(db)) as con:
            n = con.execute(
                'SELECT COUNT(*) FROM steps WHERE "threadId" = ? AND "name" = ?',
                (thread_id, step_name),
            ).fetchone()[0]
        if n:
            return
        assert time.monotonic() < deadline, f"step {step_name!r} never reached {db}"
        time.sleep(0.25)


def expand(page, label: str, index: int = -1) -> None:
    steps = page.get_by_text(label, exact=False)
    steps.nth(index if index >= 0 else steps.count() + index).click()


def save_screenshot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path))
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(path, ARTIFACTS / name)
    return path


def count_events(frames: list[str], event: str) -> int:
    return sum(f.startswith(f'42["{event}"') for f in frames)


def test_three_tasks_stream_with_steps_and_rows(server, browser, tmp_path):
    page, frames = open_page(browser, server.url)
    # the welcome screen names the table and model; starters ask about a real row
    page.get_by_text("Ask about").wait_for(timeout=STEP_WAIT_MS)
    assert "cars (311 rows" in page.inner_text("body")
    wait_ready(page)
    page.get_by_role("button", name="Ask a question").click()
    wait_turns(page, 1)
    assert page.get_by_text(QA).first.is_visible()  # the starter's question, from the table
    # the answer streamed: a stream start and token frames reached the browser
    assert count_events(frames, "stream_start") >= 1
    assert count_events(frames, "stream_token") >= 2
    ask(page, SUMMARY, 2)
    ask(page, CLAIM, 3)
    body = page.inner_text("body")
    for route in ("Route to qa", "Route to summarizer", "Route to validator"):
        assert route in body
    for step in (
        "Read the question",
        "Answer - question answering",
        "Answer - summary",
        "Answer - claim check",
    ):
        assert step in body
    # supporting rows: the table element under each reply (rendered once loaded)
    page.locator("table").nth(2).wait_for(timeout=STEP_WAIT_MS)
    assert page.locator("td", has_text="chevrolet chevelle malibu").count() >= 3
    expand(page, "Answer - question answering", 0)
    page.get_by_text("supporting rows of table").first.wait_for(timeout=5_000)
    expand(page, "Check against the table", 2)
    page.get_by_text("Supported by the table").first.wait_for(timeout=5_000)
    assert "table directly" in page.inner_text("body")  # the claim was checked by lookup
    save_screenshot(page, tmp_path, "chat_three_tasks.png")
    page.close()


def test_a_group_answer_shows_a_chart(server, browser, tmp_path):
    page, frames = open_page(browser, server.url)
    wait_ready(page)
    ask(page, GROUP, 1)
    # the chart element (`app.charts`, a cl.Pyplot) is an image under the reply
    chart = page.locator('img[alt="chart"]')
    chart.first.wait_for(timeout=STEP_WAIT_MS)
    page.wait_for_function(
        "() => [...document.querySelectorAll('img[alt=\"chart\"]')]"
        ".some(i => i.complete && i.naturalWidth > 100)",
        timeout=STEP_WAIT_MS,
    )
    assert chart.count() == 1
    assert page.get_by_text("122.47").count() >= 1  # the mean the table computed for USA
    save_screenshot(page, tmp_path, "chat_group_chart.png")
    page.close()


def test_conversation_survives_a_server_restart(server, browser, tmp_path):
    page, _ = open_page(browser, server.url)
    wait_ready(page)
    ask(page, CLAIM, 1)
    page.wait_for_url(re.compile(r".*/thread/[0-9a-f-]+$"), timeout=STEP_WAIT_MS)
    thread_id = page.url.rsplit("/", 1)[1]
    page.close()
    # Chainlit persists steps asynchronously: stop only once the turn's steps are in history.
    wait_persisted(server.state / "history.db", thread_id, "Route to validator")

    server.stop()
    restart_s = server.start()
    page, _ = open_page(browser, server.url)
    # history: the thread is listed and reopens with its steps
    page.get_by_text(CLAIM).first.click(timeout=STEP_WAIT_MS)
    page.wait_for_url(re.compile(f".*/thread/{thread_id}$"), timeout=STEP_WAIT_MS)
    page.get_by_text("Route to validator").first.wait_for(timeout=STEP_WAIT_MS)
    # memory: a follow-up is resolved against the car of the turn before the restart
    ask(page, "and its horsepower?", 2)
    expand(page, "Read the question")
    page.get_by_text("horsepower of chevrolet chevelle malibu").first.wait_for(timeout=5_000)
    save_screenshot(page, tmp_path, "chat_after_restart.png")
    page.close()
    assert restart_s < 90
