"""The `distillgraph` command: one Typer app whose subcommands live beside their stage.

Each stage package has a small command module with a ``register(app)`` function; command bodies
import their heavy dependencies (torch, transformers) lazily so ``distillgraph --help`` is fast.
Bad input surfaces as `InputError`: printed as one line on stderr, exit code 2.
"""

from __future__ import annotations

import importlib
import sys

import click
import typer

from data_loaders.errors import InputError

# Modules that contribute subcommands, in the order `--help` lists them.
COMMAND_MODULES = (
    "data_loaders.cli",  # prepare
    "distillation.commands",  # distill, evaluate
    "graphs.cli",  # ask
    "app.cli",  # chat, feedback
)

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


def _register_all() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:  # stage not installed in this build; its commands are absent
                continue
            raise
        module.register(app)


_register_all()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; map `InputError` to a one-line message and exit code 2."""
    command = typer.main.get_command(app)
    try:
        rc = command.main(args=argv, prog_name="distillgraph", standalone_mode=False)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return InputError.exit_code
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.exceptions.Abort:
        print("aborted", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    sys.exit(main())
