"""What the chat app serves, read from environment variables (how `distillgraph chat` talks to it).

`chainlit run app/app.py` imports the app in a fresh process, so the CLI passes its options as
environment variables; starting Chainlit by hand with the same variables gives the same app.

=================================  ==============================================================
``DISTILLGRAPH_MODEL``             student model directory (default: the demo student
                                   `graphs.config.DEFAULT_STUDENT_DIR` when it exists, else the
                                   embedded SmolLM2 teacher)
``DISTILLGRAPH_TABLES``            tables to answer about, separated by ``os.pathsep``
                                   (default: `graphs.config.DEFAULT_TABLES` when they exist)
``DISTILLGRAPH_GRAPH_CONFIG``      graph YAML (``configs/graph.yaml`` format); optional
``DISTILLGRAPH_TABLE_CONFIG``      YAML whose ``table:`` section has aliases/units; optional
``DISTILLGRAPH_CHAT_DIR``          state directory: history DB, graph memory, uploads
                                   (default ``$XDG_DATA_HOME/distillgraph/chat``)
``DISTILLGRAPH_DATABASE_URL``      SQLAlchemy async URL of the history database
                                   (default ``sqlite+aiosqlite:///<chat dir>/history.db``)
``DISTILLGRAPH_MEMORY``            the graph's conversation memory: a SQLite file or a
                                   ``postgresql://`` URL (default ``<chat dir>/memory.sqlite``)
``DISTILLGRAPH_AUTH_USERS[_FILE]`` password users, see `app.auth`
=================================  ==============================================================

The first four are shared with the graph and named in `graphs.config`; the app's own are named
here (`app.auth` reads its two from here too).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from data_loaders.errors import InputError
from graphs.config import (
    DEFAULT_STUDENT_DIR,
    DEFAULT_TABLE_CONFIG,
    DEFAULT_TABLES,
    ENV_MODEL,
    EnvSettings,
)

ENV_CHAT_DIR = "DISTILLGRAPH_CHAT_DIR"
ENV_DATABASE_URL = "DISTILLGRAPH_DATABASE_URL"
ENV_MEMORY = "DISTILLGRAPH_MEMORY"
ENV_USERS = "DISTILLGRAPH_AUTH_USERS"
ENV_USERS_FILE = "DISTILLGRAPH_AUTH_USERS_FILE"

REPO_ROOT = Path(__file__).resolve().parent.parent


def default_chat_dir() -> Path:
    """``$XDG_DATA_HOME/distillgraph/chat`` (``~/.local/share/...``): history outlives caches."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "distillgraph" / "chat"


def chat_dir_from_env(environ: dict[str, str] | None = None) -> Path:
    """The state directory named by ``DISTILLGRAPH_CHAT_DIR``, else `default_chat_dir`."""
    env = os.environ if environ is None else environ
    return Path(env.get(ENV_CHAT_DIR) or default_chat_dir()).expanduser().resolve()


def database_url_from_env(environ: dict[str, str] | None = None) -> str:
    """``DISTILLGRAPH_DATABASE_URL``, else the SQLite ``history.db`` in the chat directory."""
    env = os.environ if environ is None else environ
    return env.get(ENV_DATABASE_URL) or sqlite_url(chat_dir_from_env(env) / "history.db")


def sqlite_url(path: str | Path) -> str:
    """The async SQLAlchemy URL of a SQLite file."""
    return f"sqlite+aiosqlite:///{Path(path).resolve()}"


def _in_repo(path: str) -> Path | None:
    """`path` resolved from the working directory, else from the repository; None if absent."""
    candidates = (Path(path), REPO_ROOT / path)
    return next((p.resolve() for p in candidates if p.exists()), None)


@dataclass(frozen=True)
class ChatSettings:
    """Resolved settings of one app process."""

    model: str | None  # model dir; None = the embedded teacher
    tables: tuple[str, ...]
    graph_config: str | None
    table_config: str | None
    chat_dir: Path
    database_url: str
    overrides: tuple[str, ...] = ()  # graph config key=value (``chat --set``)
    memory_url: str | None = None  # graph memory elsewhere (a postgresql:// URL, a SQLite file)

    @property
    def memory_path(self) -> Path:
        """Default SQLite file of the graph's checkpointer (conversation memory per thread)."""
        return self.chat_dir / "memory.sqlite"

    @property
    def memory(self) -> str:
        """The graph memory setting (`graphs.memory.open_checkpointer`): URL or SQLite file."""
        return self.memory_url or str(self.memory_path)

    @property
    def uploads_dir(self) -> Path:
        """Where tables uploaded in the chat are kept (per thread), so a resumed chat has them."""
        return self.chat_dir / "uploads"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ChatSettings:
        """Read the ``DISTILLGRAPH_*`` variables, filling in the defaults."""
        env = os.environ if environ is None else environ
        shared = EnvSettings.from_env(env)
        model = shared.model
        if model is None:
            found = _in_repo(DEFAULT_STUDENT_DIR)
            model = str(found) if found else None
        if model is not None and not Path(model).is_dir():
            raise InputError(f"{ENV_MODEL}={model}: not a model directory; pass --model DIR")
        tables = shared.tables
        if not tables:
            tables = tuple(str(p) for p in map(_in_repo, DEFAULT_TABLES) if p is not None)
        table_config = shared.table_config
        default_names = {Path(t).name for t in DEFAULT_TABLES}
        if table_config is None and tables and Path(tables[0]).name in default_names:
            found = _in_repo(DEFAULT_TABLE_CONFIG)
            table_config = str(found) if found else None
        return cls(
            model=model,
            tables=tables,
            graph_config=shared.graph_config,
            table_config=table_config,
            chat_dir=chat_dir_from_env(env),
            database_url=database_url_from_env(env),
            overrides=shared.overrides,
            memory_url=env.get(ENV_MEMORY) or None,
        )
