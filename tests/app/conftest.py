"""Shared helpers of the app tests: a recording Chainlit context, a clean data-layer slot."""

from __future__ import annotations

import os
import tempfile

# Chainlit writes .chainlit/ and .files/ into its app root when imported: keep them out of the
# checkout (this runs before any test module imports chainlit).
os.environ.setdefault("CHAINLIT_APP_ROOT", tempfile.mkdtemp(prefix="distillgraph-chainlit-"))

import chainlit.data as cl_data  # noqa: E402
import pytest  # noqa: E402
from chainlit.context import ChainlitContext, context_var  # noqa: E402
from chainlit.emitter import BaseChainlitEmitter  # noqa: E402
from chainlit.session import HTTPSession  # noqa: E402


class RecordingEmitter(BaseChainlitEmitter):
    """Collects what the app would send to the browser."""

    def __init__(self, session):
        super().__init__(session)
        self.events: list[tuple[str, dict]] = []

    async def send_step(self, step_dict):
        self.events.append(("send_step", dict(step_dict)))

    async def update_step(self, step_dict):
        self.events.append(("update_step", dict(step_dict)))

    async def stream_start(self, step_dict):
        self.events.append(("stream_start", dict(step_dict)))

    async def send_token(self, id, token, is_sequence=False, is_input=False):
        self.events.append(("send_token", {"id": id, "token": token, "is_sequence": is_sequence}))

    async def send_element(self, element_dict):
        self.events.append(("send_element", dict(element_dict)))

    def of(self, kind: str) -> list[dict]:
        return [d for k, d in self.events if k == kind]


def recording_context(thread_id: str = "thread-1", user=None) -> ChainlitContext:
    """Install a Chainlit context whose emitter records events (call inside a running loop)."""
    session = HTTPSession(
        id=f"session-{thread_id}", thread_id=thread_id, user=user, token=None, user_env={},
        client_type="webapp",
    )
    ctx = ChainlitContext(session, emitter=RecordingEmitter(session))
    context_var.set(ctx)
    return ctx


@pytest.fixture(autouse=True)
def no_global_data_layer():
    """Each test starts without Chainlit's process-wide data layer and ends the same way."""
    cl_data._data_layer = None
    cl_data._data_layer_initialized = True
    yield
    cl_data._data_layer = None
    cl_data._data_layer_initialized = True


@pytest.fixture
def chainlit_context():
    """`recording_context` as a fixture: call it inside the test's event loop."""
    return recording_context
