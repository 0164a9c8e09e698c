"""Publishing an exported student on the Hugging Face Hub (``distillgraph export --push-to-hub``).

This module owns the one network call the project makes on purpose: creating a model repository
(if it does not exist) and uploading a folder to it with ``huggingface_hub.HfApi``. The token
comes from ``HF_TOKEN`` or the login ``hf auth login`` saved; with neither, or with a malformed
repository id, the user gets an `InputError` before anything is sent. huggingface_hub is
imported lazily.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from data_loaders.errors import InputError

ENV_HF_TOKEN = "HF_TOKEN"
"""Environment variable holding the Hub access token (huggingface_hub's own name for it)."""

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")


def check_repo_id(repo_id: str) -> str:
    """Return ``repo_id`` if it reads ``namespace/name``.

    Raises:
        InputError: anything else, naming the option and the expected form.
    """
    repo_id = repo_id.strip()
    if not _REPO_ID.match(repo_id) or ".." in repo_id or repo_id.endswith((".git", ".")):
        raise InputError(f"--push-to-hub {repo_id!r}: expected a Hub repository id like "
                         "your-name/cars-student-gguf")
    return repo_id


def resolve_token(token: str | None = None) -> str:
    """The token to push with: the argument, else ``HF_TOKEN``, else the saved login.

    Raises:
        InputError: no token anywhere.
    """
    if token:
        return token
    if env := os.environ.get(ENV_HF_TOKEN):
        return env
    from huggingface_hub import get_token

    saved = get_token()
    if not saved:
        raise InputError(f"--push-to-hub needs a Hub token with write access: export "
                         f"{ENV_HF_TOKEN}=hf_... or run `hf auth login`")
    return saved


def push_folder(
    folder: Path,
    repo_id: str,
    *,
    files: Sequence[str] | None = None,
    private: bool = False,
    token: str | None = None,
    commit_message: str = "Upload a student distilled with distillgraph",
) -> str:
    """Create the model repo ``repo_id`` if needed and upload ``folder`` (or just ``files``).

    Args:
        folder: local folder to upload.
        repo_id: ``namespace/name`` of a model repository.
        files: names inside ``folder`` to upload (default: everything in it).
        private: create the repository private (an existing repo keeps its visibility).
        token: access token; default `resolve_token`.
        commit_message: message of the upload commit.

    Returns:
        The repository's URL.

    Raises:
        InputError: bad repo id, no token, a missing folder or file, or the Hub refusing the
            upload (the message says what it answered).
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    repo_id = check_repo_id(repo_id)
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"push to {repo_id}: {folder} is not a directory")
    missing = [f for f in files or () if not (folder / f).is_file()]
    if missing:
        raise InputError(f"push to {repo_id}: missing in {folder}: {', '.join(missing)}")
    api = HfApi(token=resolve_token(token))
    try:
        url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            repo_type="model",
            allow_patterns=list(files) if files else None,
            commit_message=commit_message,
        )
    except HfHubHTTPError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"push to {repo_id} failed: {first}") from None
    return str(url)
