"""Optional password login for the chat UI, configured only through environment variables.

Users come from ``DISTILLGRAPH_AUTH_USERS`` (``"alice:<hash>,bob:<hash>"``) and/or the file named
by ``DISTILLGRAPH_AUTH_USERS_FILE`` (one ``name:<hash>`` per line, ``#`` comments). A hash is one
of:

* ``pbkdf2_sha256$<iterations>$<salt>$<hex digest>`` — made by ``python -m app.auth`` (salted,
  recommended);
* ``sha256:<hex digest>`` — unsalted SHA-256 of the password (accepted for convenience);
* a bcrypt hash (``$2b$...``) — needs the ``bcrypt`` package.

Plain-text passwords are refused. Chainlit also needs ``CHAINLIT_AUTH_SECRET`` (signs the login
cookie; make one with ``chainlit create-secret``). With no users configured the app logs everyone
in as the single local user ``local`` (history works, nothing is asked), which is only safe on
localhost.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import os
import secrets
import sys
from pathlib import Path

from app.config import ENV_USERS, ENV_USERS_FILE
from data_loaders.errors import InputError

LOCAL_USER = "local"
PBKDF2_ITERATIONS = 600_000


def hash_password(
    password: str, *, iterations: int = PBKDF2_ITERATIONS, salt: str | None = None
) -> str:
    """A salted PBKDF2-SHA256 hash in the ``pbkdf2_sha256$iters$salt$hex`` format."""
    salt = salt or secrets.token_hex(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations).hex()
    return f"pbkdf2_sha256${iterations}${salt}${digest}"


def _check_hash_format(user: str, stored: str, source: str) -> None:
    if stored.startswith("sha256:") and len(stored) == 7 + 64:
        return
    if stored.startswith("pbkdf2_sha256$") and stored.count("$") == 3:
        return
    if stored.startswith(("$2a$", "$2b$", "$2y$")):
        return
    raise InputError(
        f"{source}: user {user!r} has no recognised password hash; give 'sha256:<hex>', "
        "a bcrypt hash or a pbkdf2_sha256 hash from `python -m app.auth` (never a plain password)"
    )


def verify_password(password: str, stored: str) -> bool:
    """Check `password` against a stored hash in constant time."""
    if stored.startswith("sha256:"):
        digest = hashlib.sha256(password.encode()).hexdigest()
        return hmac.compare_digest(digest, stored[7:].lower())
    if stored.startswith("pbkdf2_sha256$"):
        _, iters, salt, expected = stored.split("$")
        digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), int(iters)).hex()
        return hmac.compare_digest(digest, expected.lower())
    if stored.startswith(("$2a$", "$2b$", "$2y$")):
        try:
            import bcrypt
        except ImportError:
            raise InputError("a bcrypt password hash needs `pip install bcrypt`") from None
        return bcrypt.checkpw(password.encode(), stored.encode())
    return False


def _parse_entries(entries: list[str], source: str) -> dict[str, str]:
    users: dict[str, str] = {}
    for entry in entries:
        entry = entry.strip()
        if not entry or entry.startswith("#"):
            continue
        if ":" not in entry:
            raise InputError(f"{source}: entry {entry!r} is not name:<password hash>")
        name, stored = entry.split(":", 1)
        name, stored = name.strip(), stored.strip()
        if not name:
            raise InputError(f"{source}: an entry has an empty user name")
        _check_hash_format(name, stored, source)
        users[name] = stored
    return users


def load_users(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The configured ``{user: hash}``; empty when password login is off."""
    env = os.environ if environ is None else environ
    users: dict[str, str] = {}
    if path := env.get(ENV_USERS_FILE):
        file = Path(path)
        if not file.is_file():
            raise InputError(f"{ENV_USERS_FILE}={path}: file not found; point it at a users file")
        users.update(_parse_entries(file.read_text(encoding="utf-8").splitlines(), str(file)))
    if value := env.get(ENV_USERS):
        users.update(_parse_entries(value.split(","), ENV_USERS))
    return users


def authenticate(users: dict[str, str], username: str, password: str) -> bool:
    """True when `username` exists and `password` matches its hash."""
    stored = users.get(username)
    if stored is None:
        # Do some hashing anyway so an unknown name does not answer noticeably faster.
        verify_password(password, hash_password("x", iterations=1000))
        return False
    return verify_password(password, stored)


def main() -> None:
    """Print a pbkdf2_sha256 hash for a password read without echo (``python -m app.auth``)."""
    password = getpass.getpass("password: ")
    if password != getpass.getpass("again: "):
        print("passwords differ", file=sys.stderr)
        sys.exit(2)
    print(hash_password(password))


if __name__ == "__main__":
    main()
