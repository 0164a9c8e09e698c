"""The ``distillgraph`` command: the root CLI, plus this stage's ``chat``, ``serve``, ``feedback``.

The root sits at the top of the import graph: it imports each stage's ``register(app)``
(``data_loaders.cli``: prepare, synth; ``distillation.cli``: distill, evaluate, export;
``graphs.cli``: ask) and adds the UI's own commands. Command bodies import their heavy
dependencies (torch, transformers, chainlit) lazily, so ``distillgraph --help`` is fast. `main`
turns every usage mistake and every `InputError` into one line on stderr and exit code 2, never a
traceback.

``chat`` is a thin wrapper over ``chainlit run app/app.py``: it checks the options, turns them
into the ``DISTILLGRAPH_*`` environment variables `app.config` reads, prepares the state
directory (Chainlit's app root: welcome page, history database, graph memory, uploads) and
starts Chainlit in a child process. ``app.py`` is located through this package, so the command
works from any directory.

``serve`` builds the agent graph as ``ask`` does and serves it with the raw student over an
OpenAI-compatible HTTP API (`app.server`) under uvicorn, in this process.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from data_loaders import cli as prepare_cli
from data_loaders.errors import InputError
from distillation import cli as distill_cli
from graphs import cli as ask_cli
from graphs.config import DEFAULT_STUDENT_DIR, DEFAULT_TABLES

APP_DIR = Path(__file__).resolve().parent
APP_FILE = APP_DIR / "app.py"
WELCOME_FILE = APP_DIR / "chainlit.md"
SECRET_FILE = ".auth_secret"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_source(source: str) -> str:
    """An absolute path for a table file (the app may run elsewhere), or a SQL URL as given."""
    if "://" in source:
        return source
    path = Path(source).expanduser()
    if not path.is_file():
        raise InputError(
            f"--data {source}: file not found; pass a CSV/JSON/Parquet file or a SQL URL"
        )
    return str(path.resolve())


def _auth_secret(env: dict[str, str], chat_dir: Path, password_login: bool) -> str:
    """``CHAINLIT_AUTH_SECRET`` from the environment, else (local login only) one kept on disk.

    With password login the operator must set the secret: it signs every login cookie, and a
    value generated here would live in a file next to the history. Without it, the app's single
    local user still needs signed cookies; a secret kept in the state directory keeps them
    valid across restarts.
    """
    if secret := env.get("CHAINLIT_AUTH_SECRET"):
        return secret
    if password_login:
        raise InputError(
            "password login needs CHAINLIT_AUTH_SECRET; create one with `chainlit create-secret` "
            "and export it"
        )
    path = chat_dir / SECRET_FILE
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def chat_environment(
    *,
    model: Path | None,
    data: list[str],
    graph_config: Path | None,
    table_config: Path | None,
    state_dir: Path | None,
    db: str | None,
    base_env: dict[str, str] | None = None,
    overrides: list[str] | None = None,
) -> dict[str, str]:
    """The environment the Chainlit process runs with (checks every option first)."""
    from app.auth import load_users
    from app.config import ENV_CHAT_DIR, ENV_DATABASE_URL, chat_dir_from_env
    from graphs.config import ENV_GRAPH_CONFIG, ENV_MODEL, ENV_TABLE_CONFIG, ENV_TABLES

    env = dict(os.environ if base_env is None else base_env)
    if model is not None:
        if not (model / "config.json").is_file():
            raise InputError(f"--model {model}: not a model directory (no config.json)")
        env[ENV_MODEL] = str(model.resolve())
    if data:
        env[ENV_TABLES] = os.pathsep.join(_check_source(s) for s in data)
    for flag, path, key in (
        ("--config", graph_config, ENV_GRAPH_CONFIG),
        ("--table-config", table_config, ENV_TABLE_CONFIG),
    ):
        if path is not None:
            if not path.is_file():
                raise InputError(f"{flag} {path}: file not found")
            env[key] = str(path.resolve())
    if overrides:
        from graphs.config import ENV_GRAPH_SET, load_graph_config

        load_graph_config(graph_config, overrides)  # a bad key or value fails here, not in the UI
        env[ENV_GRAPH_SET] = json.dumps(list(overrides))
    if state_dir is not None:
        env[ENV_CHAT_DIR] = str(state_dir.expanduser().resolve())
    if db is not None:
        env[ENV_DATABASE_URL] = db
    chat_dir = chat_dir_from_env(env)
    env[ENV_CHAT_DIR] = str(chat_dir)
    users = load_users(env)  # a malformed users entry fails here, not at the first login
    env["CHAINLIT_AUTH_SECRET"] = _auth_secret(env, chat_dir, bool(users))
    # Chainlit reads chainlit.md and .chainlit/ from its app root and writes .files/ there.
    env["CHAINLIT_APP_ROOT"] = str(chat_dir)
    return env


def prepare_app_root(chat_dir: Path) -> None:
    """Put the welcome page into Chainlit's app root (refreshed on every start)."""
    from data_loaders.io import atomic_write_text

    atomic_write_text(chat_dir / "chainlit.md", WELCOME_FILE.read_text(encoding="utf-8"))


def chainlit_command(host: str, port: int, headless: bool) -> list[str]:
    """The ``chainlit run`` command line for this package's app."""
    cmd = [sys.executable, "-m", "chainlit", "run", str(APP_FILE)]
    cmd += ["--host", host, "--port", str(port)]
    if headless:
        cmd.append("--headless")
    return cmd


def chat(
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            help=f"Student model directory (default: {DEFAULT_STUDENT_DIR}, else the "
            "embedded teacher).",
        ),
    ] = None,
    data: Annotated[
        list[str] | None,
        typer.Option(
            "--data",
            help=f"Table file or SQL URL (repeatable; default: {', '.join(DEFAULT_TABLES)}).",
        ),
    ] = None,
    graph_config: Annotated[
        Path | None, typer.Option("--config", help="Graph YAML (configs/graph.yaml format).")
    ] = None,
    table_config: Annotated[
        Path | None,
        typer.Option("--table-config", help="YAML whose 'table:' section gives aliases and units."),
    ] = None,
    port: Annotated[int, typer.Option("--port", help="Port to serve on.")] = 8000,
    host: Annotated[
        str, typer.Option("--host", help="Interface to serve on (default: this machine only).")
    ] = "127.0.0.1",
    headless: Annotated[bool, typer.Option("--headless", help="Do not open a browser.")] = False,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            "--state-dir",
            help="History DB, memory and uploads (default ~/.local/share/distillgraph/chat).",
        ),
    ] = None,
    db: Annotated[
        str | None, typer.Option("--db", help="SQLAlchemy async URL of the history database.")
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Graph config override key=value (repeatable)."),
    ] = None,
    allow_anonymous: Annotated[
        bool,
        typer.Option(
            "--allow-anonymous",
            help="Serve a non-loopback --host without password login (anyone who can reach the "
            "port chats as the local user).",
        ),
    ] = False,
) -> None:
    """Chat with the distilled model about your tables in the browser (Chainlit UI)."""
    from rich.console import Console

    from app.auth import load_users
    from app.config import ENV_CHAT_DIR, ENV_USERS

    # Refuse before anything is written: the state directory, its secret, the welcome page.
    anonymous = not _is_loopback(host) and not load_users(dict(os.environ))
    if anonymous and not allow_anonymous:
        raise InputError(
            f"--host {host} serves beyond this machine without password login; set "
            f"{ENV_USERS} (see the README's chat section) or pass --allow-anonymous"
        )
    env = chat_environment(
        model=model,
        data=data or [],
        graph_config=graph_config,
        table_config=table_config,
        state_dir=state_dir,
        db=db,
        overrides=overrides,
    )
    chat_dir = Path(env[ENV_CHAT_DIR])
    prepare_app_root(chat_dir)
    console = Console(stderr=True)
    if anonymous:
        console.print(
            f"[yellow]warning:[/] serving on {host} without password login (--allow-anonymous): "
            "anyone who can reach the port chats as the local user"
        )
    console.print(f"chat UI on http://{host}:{port}  (state: {chat_dir})")
    try:
        code = subprocess.call(chainlit_command(host, port, headless), env=env)
    except KeyboardInterrupt:
        code = 130
    if code:
        raise typer.Exit(code)


def _check_port_free(host: str, port: int) -> None:
    """Refuse a port another process listens on before the model is loaded (seconds saved)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise InputError(
                f"--host {host} --port {port}: cannot listen there ({e.strerror}); pass another "
                "--port, or stop what uses it"
            ) from None


def serve(
    model: Annotated[str | None, typer.Option("--model", "-m", help=ask_cli.MODEL_HELP)] = None,
    data: Annotated[
        list[str] | None, typer.Option("--data", "-d", help=ask_cli.DATA_HELP)
    ] = None,
    graph_config: Annotated[
        Path | None,
        typer.Option("--config", "--graph-config", "-c", help="Graph YAML (configs/graph.yaml)."),
    ] = None,
    table_config: Annotated[
        str | None,
        typer.Option("--table-config", help="YAML with the `table:` section used at prepare time."),
    ] = None,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Graph config override key=value.")
    ] = None,
    memory: Annotated[
        str,
        typer.Option(
            "--memory",
            help="Conversation memory: SQLite file, postgresql:// URL, or 'memory' (in process).",
        ),
    ] = "runs/serve_memory.sqlite",
    host: Annotated[
        str, typer.Option("--host", help="Interface to serve on (default: this machine only).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to serve on.", min=1, max=65535)] = 8000,
    max_concurrency: Annotated[
        int,
        typer.Option(
            "--max-concurrency", min=1, max=256, help="Requests doing model work at once."
        ),
    ] = 4,
    max_tokens: Annotated[
        int,
        typer.Option("--max-tokens", min=1, max=4096, help="Largest max_tokens a request may ask."),
    ] = 512,
) -> None:
    """Serve the agent graph and the student over an OpenAI-compatible HTTP API."""
    from rich.console import Console

    try:
        import uvicorn

        from app.openai_api import ServerLimits
        from app.server import (
            AGENT_MODEL,
            ENV_API_KEYS,
            STUDENT_MODEL,
            api_keys_from_env,
            create_app,
        )
    except ImportError as e:
        raise InputError(
            f"serve needs FastAPI and uvicorn ({e.name} is missing); install them with "
            "pip install 'distillgraph[serve]'"
        ) from None
    from graphs.graph import build_graph
    from graphs.memory import close_checkpointer, open_checkpointer

    # Refuse before loading anything: an open port without keys, a port already taken.
    keys = api_keys_from_env()
    if not keys and not _is_loopback(host):
        raise InputError(
            f"--host {host} serves beyond this machine without API keys; set {ENV_API_KEYS}="
            "key1,key2 (clients send 'Authorization: Bearer <key>') or serve on 127.0.0.1"
        )
    _check_port_free(host, port)
    limits = ServerLimits(max_concurrency=max_concurrency, max_tokens=max_tokens)
    cfg = ask_cli.graph_config_from_options(graph_config, overrides, data, table_config)
    console = Console(stderr=True)
    saver = open_checkpointer(memory)
    try:
        with console.status("loading the student and the tables..."):
            graph = build_graph(model=model, config=cfg, checkpointer=saver)
        app = create_app(graph, api_keys=keys, limits=limits)
        names = ", ".join(app.state.service.student_names[1:])
        console.print(
            f"OpenAI-compatible API on http://{host}:{port}/v1 — models: {AGENT_MODEL} (agent "
            f"graph), {STUDENT_MODEL} ({names}); "
            + (f"{len(keys)} API key(s)" if keys else "no API key (loopback only)"),
            highlight=False,
        )
        uvicorn.run(app, host=host, port=port, log_level="info")
    finally:
        close_checkpointer(saver)


feedback_app = typer.Typer(help="Ratings given in the chat UI.", no_args_is_help=True)


@feedback_app.command("export")
def feedback_export(
    out: Annotated[Path, typer.Option("--out", help="JSONL file to write (atomically).")],
    db: Annotated[
        str | None,
        typer.Option(
            "--db", help="History database: SQLAlchemy URL or SQLite file (default: the chat's)."
        ),
    ] = None,
) -> None:
    """Write the thumbs-up/down rated turns as JSONL (question, answer, task, context, rating)."""
    from rich.console import Console

    from app.config import database_url_from_env
    from app.feedback import export_feedback

    ups, downs = export_feedback(db or database_url_from_env(), out)
    Console(stderr=True).print(f"wrote {ups + downs} rated turns ({ups} up, {downs} down) to {out}")


def register(app: typer.Typer) -> None:
    """Add ``chat``, ``serve`` and ``feedback export`` to the root CLI."""
    app.command("chat")(chat)
    app.command("serve")(serve)
    app.add_typer(feedback_app, name="feedback")


app = typer.Typer(
    name="distillgraph",
    help="Tables → QA pairs → distilled student model → LangGraph agent → Chainlit UI.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Distill a small local model that answers questions about your tables."""


# In the order `--help` lists them.
for _register in (prepare_cli.register, distill_cli.register, ask_cli.register, register):
    _register(app)

# typer >= 0.2x vendors click; its exception classes are found through typer's own public ones,
# so the same code works with either.
_USAGE_ERROR = typer.BadParameter.__mro__[1]
_CLICK_EXCEPTION = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def _usage_line(e: Exception) -> str:
    """One line for a usage mistake: the command it concerns, the message, where help is."""
    ctx = getattr(e, "ctx", None)
    path = ctx.command_path if ctx is not None else "distillgraph"
    message = " ".join(e.format_message().split())
    return f"error: {path}: {message} (see '{path} --help')"


def main(argv: list[str] | None = None) -> int:
    """Run the CLI: usage mistakes and `InputError` → one line on stderr and exit code 2."""
    command = typer.main.get_command(app)
    args = sys.argv[1:] if argv is None else argv
    if not args:
        args = ["--help"]  # the command alone prints its help, as `git` does
    try:
        rc = command.main(args=args, prog_name="distillgraph", standalone_mode=False)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return InputError.exit_code
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except _USAGE_ERROR as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # a group called alone: its help was shown
            return 0
        print(_usage_line(e), file=sys.stderr)
        return 2
    except _CLICK_EXCEPTION as e:
        print(f"error: {' '.join(e.format_message().split())}", file=sys.stderr)
        return e.exit_code
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    sys.exit(main())
