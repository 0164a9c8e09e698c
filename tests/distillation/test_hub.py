"""Tests for distillation.hub and ``distillgraph export --push-to-hub``, against a fake HfApi.

No test reaches the network: ``huggingface_hub.HfApi`` is replaced by a recorder, and the
offline flag is set in case anything slipped past it.
"""

from __future__ import annotations

from pathlib import Path

import huggingface_hub
import pytest
from huggingface_hub.errors import HfHubHTTPError

from app.cli import main
from data_loaders.errors import InputError
from distillation import hub
from distillation.tiny import build_tiny_model_dir


class FakeApi:
    """Records what `push_folder` asks of the Hub."""

    instances: list[FakeApi] = []
    fail: Exception | None = None

    def __init__(self, token=None):
        self.token = token
        self.calls: list[tuple[str, dict]] = []
        FakeApi.instances.append(self)

    def create_repo(self, repo_id, **kw):
        self.calls.append(("create_repo", {"repo_id": repo_id, **kw}))
        if FakeApi.fail is not None:
            raise FakeApi.fail
        return f"https://hub.example/{repo_id}"

    def upload_folder(self, **kw):
        self.calls.append(("upload_folder", kw))
        kw["uploaded"] = sorted(p.name for p in Path(kw["folder_path"]).iterdir()
                                if kw["allow_patterns"] is None
                                or p.name in kw["allow_patterns"])
        return "commit"


@pytest.fixture(autouse=True)
def fake_hub(monkeypatch):
    FakeApi.instances, FakeApi.fail = [], None
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv(hub.ENV_HF_TOKEN, "hf_test_token")
    return FakeApi


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "student")


def test_push_folder_creates_repo_and_uploads(tmp_path):
    (tmp_path / "a.gguf").write_bytes(b"x")
    (tmp_path / "other.txt").write_text("not uploaded")
    url = hub.push_folder(tmp_path, "me/tiny-gguf", files=["a.gguf"], private=True)
    assert url == "https://hub.example/me/tiny-gguf"
    (api,) = FakeApi.instances
    assert api.token == "hf_test_token"
    (c_name, create), (u_name, upload) = api.calls
    assert c_name == "create_repo" and u_name == "upload_folder"
    assert create == {"repo_id": "me/tiny-gguf", "repo_type": "model", "private": True,
                      "exist_ok": True}
    assert upload["repo_id"] == "me/tiny-gguf" and upload["uploaded"] == ["a.gguf"]


def test_export_push_uploads_the_export_folder(tiny_dir, tmp_path, capsys):
    out = tmp_path / "g" / "tiny.gguf"
    (out.parent).mkdir()
    (out.parent / "notes.txt").write_text("stays local")
    argv = ["export", "--model", str(tiny_dir), "--out", str(out), "--no-check", "-q",
            "--push-to-hub", "me/tiny-gguf"]
    assert main(argv) == 0, capsys.readouterr().err
    upload = FakeApi.instances[-1].calls[-1][1]
    assert Path(upload["folder_path"]) == out.parent
    assert upload["uploaded"] == ["Modelfile", "README.md", "model_card.json", "tiny.gguf"]
    assert "https://hub.example/me/tiny-gguf" in capsys.readouterr().err


def test_format_hf_pushes_the_model_directory(tiny_dir, capsys):
    assert main(["export", "--model", str(tiny_dir), "--format", "hf",
                 "--push-to-hub", "me/tiny"]) == 0, capsys.readouterr().err
    upload = FakeApi.instances[-1].calls[-1][1]
    assert Path(upload["folder_path"]) == tiny_dir and upload["allow_patterns"] is None
    assert "config.json" in upload["uploaded"] and "model.safetensors" in upload["uploaded"]


def test_token_from_saved_login_when_env_unset(monkeypatch):
    monkeypatch.delenv(hub.ENV_HF_TOKEN)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_saved")
    assert hub.resolve_token() == "hf_saved"
    assert hub.resolve_token("hf_given") == "hf_given"


def test_missing_token_is_refused_before_any_work(tiny_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(hub.ENV_HF_TOKEN)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    out = tmp_path / "g" / "tiny.gguf"
    assert main(["export", "--model", str(tiny_dir), "--out", str(out),
                 "--push-to-hub", "me/tiny"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "HF_TOKEN" in err[0]
    assert not out.parent.exists() and not FakeApi.instances


@pytest.mark.parametrize("repo_id", ["tiny", "me/", "/tiny", "me/tiny/extra", "me/ti ny",
                                     "me/..", "me/tiny.git"])
def test_bad_repo_ids_are_refused(repo_id):
    with pytest.raises(InputError, match="--push-to-hub"):
        hub.check_repo_id(repo_id)


class Refused(HfHubHTTPError):
    """An HfHubHTTPError without an HTTP response (its constructor wants one)."""

    def __init__(self, message: str):
        Exception.__init__(self, message)


def test_hub_refusal_is_one_line(tmp_path, tiny_dir, capsys):
    FakeApi.fail = Refused("401 Client Error: Unauthorized for url\nmore detail")
    assert main(["export", "--model", str(tiny_dir), "--format", "hf",
                 "--push-to-hub", "me/tiny"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: push to me/tiny failed: 401 Client Error: Unauthorized for url"]
