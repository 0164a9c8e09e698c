import hashlib

import pytest

from app.auth import (
    ENV_USERS,
    ENV_USERS_FILE,
    authenticate,
    hash_password,
    load_users,
    verify_password,
)
from data_loaders.errors import InputError


def test_pbkdf2_hash_verifies_only_the_right_password():
    stored = hash_password("s3cret", iterations=1000)
    assert stored.startswith("pbkdf2_sha256$1000$")
    assert verify_password("s3cret", stored)
    assert not verify_password("s3cret ", stored)
    # salted: the same password hashes differently each time
    assert hash_password("s3cret", iterations=1000) != stored


def test_sha256_hash_accepted():
    stored = "sha256:" + hashlib.sha256(b"pw").hexdigest()
    assert verify_password("pw", stored)
    assert not verify_password("pw2", stored)


def test_users_from_env_and_file(tmp_path):
    sha = "sha256:" + hashlib.sha256(b"a").hexdigest()
    file = tmp_path / "users.txt"
    file.write_text(f"# team\nbob:{hash_password('b', iterations=1000)}\n\n")
    users = load_users({ENV_USERS: f"alice:{sha}", ENV_USERS_FILE: str(file)})
    assert set(users) == {"alice", "bob"}
    assert authenticate(users, "alice", "a")
    assert authenticate(users, "bob", "b")
    assert not authenticate(users, "bob", "a")
    assert not authenticate(users, "carol", "a")


def test_no_users_means_no_password_login():
    assert load_users({}) == {}


@pytest.mark.parametrize("value", ["alice:plaintext", "alice", ":sha256:" + "0" * 64])
def test_bad_entries_are_refused(value):
    with pytest.raises(InputError, match=ENV_USERS):
        load_users({ENV_USERS: value})


def test_missing_users_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_users({ENV_USERS_FILE: str(tmp_path / "nope")})


def test_app_switches_to_password_login_when_users_are_configured(monkeypatch, tmp_path):
    import asyncio
    import importlib

    from chainlit.config import config as cl_config

    import app.app as app_module

    monkeypatch.setenv("DISTILLGRAPH_CHAT_DIR", str(tmp_path))
    monkeypatch.setenv(ENV_USERS, f"alice:{hash_password('pw', iterations=1000)}")
    try:
        module = importlib.reload(app_module)
        assert cl_config.code.password_auth_callback is not None
        user = asyncio.run(module.password_login("alice", "pw"))
        assert user is not None and user.identifier == "alice"
        assert asyncio.run(module.password_login("alice", "wrong")) is None
        assert asyncio.run(module.password_login("mallory", "pw")) is None
    finally:
        cl_config.code.password_auth_callback = None
        monkeypatch.delenv(ENV_USERS)
        module = importlib.reload(app_module)
    # without users everyone is the one local user (history still works)
    assert cl_config.code.header_auth_callback is not None
    assert asyncio.run(module.local_login({})).identifier == "local"
