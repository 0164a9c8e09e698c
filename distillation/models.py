"""Loading models by spec, plus what teacher and student need to work together.

This module owns every way a model enters the pipeline. A *spec* string names a model:
``"embedded"`` (the SmolLM2-135M-Instruct GGUF of `distillation.embedded`), a local model
directory, a path to a ``.gguf`` file, or a Hub id (only then may ``from_pretrained`` download).
Every loader hands back a plain, savable ``PreTrainedModel`` on the resolved device and dtype,
bitsandbytes-quantized when asked. It also owns the checks that logit distillation needs (same
token ids in teacher and student) and LoRA wrapping and merging. Students pruned from the teacher
are `distillation.pruning`, tiny test models `distillation.tiny`. torch, transformers and peft
are imported lazily so importing this module is cheap.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from data_loaders.errors import InputError
from distillation.embedded import (
    EMBEDDED_TEACHER,
    embedded_teacher_dir,
    ensure_pad_token,
    fill_generation_ids,
    load_gguf_plain,
)

if TYPE_CHECKING:
    import torch
    from peft import PeftModel
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


# --------------------------------------------------------------------------------------------
# Devices and dtypes
# --------------------------------------------------------------------------------------------


def resolve_device(device: str = "auto") -> torch.device:
    """Turn a device name into a ``torch.device``.

    Args:
        device: ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...

    Raises:
        InputError: the name is not a device, or CUDA was asked for but is not available.
    """
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise InputError(
            f"device: {device!r} is not a torch device; use 'auto', 'cpu' or 'cuda'"
        ) from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device: {device!r} asked for, but CUDA is not available; use 'cpu'")
    return dev


_DTYPE_NAMES = {
    "float32": "float32",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
}


def resolve_dtype(dtype: str = "auto", device: torch.device | None = None) -> torch.dtype:
    """Turn a dtype name into a ``torch.dtype``.

    Args:
        dtype: ``"auto"``, ``"float32"``, ``"bfloat16"`` or ``"float16"`` (also ``fp32``,
            ``bf16``, ``fp16``). ``"auto"`` means bfloat16 on a GPU that supports it and float32
            otherwise; always float32 on CPU, where bfloat16 matmuls are very slow.
        device: the device the model will run on; ``None`` means `resolve_device("auto")`.

    Raises:
        InputError: unknown dtype name.
    """
    import torch

    if not isinstance(dtype, str):  # already a torch.dtype
        return dtype
    if dtype == "auto":
        device = device if device is not None else resolve_device("auto")
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    name = _DTYPE_NAMES.get(dtype.lower())
    if name is None:
        raise InputError(
            f"dtype: {dtype!r} is not supported; use one of auto, float32, bfloat16, float16"
        )
    return getattr(torch, name)


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def resolve_model_spec(spec: str) -> tuple[str, str | None]:
    """Resolve a model spec to ``(pretrained_path_or_id, gguf_file_or_None)``.

    Args:
        spec: ``"embedded"``; a local model directory (with ``config.json``, or holding exactly
            one ``.gguf`` file); a path to a ``.gguf`` file; or a Hub id such as
            ``"HuggingFaceTB/SmolLM2-360M-Instruct"`` (only a Hub id may download).

    Raises:
        InputError: a path that does not exist, a directory that holds no model, or a string
            that is neither a path nor a Hub id.
    """
    spec = str(spec).strip()
    if spec == EMBEDDED_TEACHER:
        return str(embedded_teacher_dir()), None
    path = Path(spec).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise InputError(
                f"model {spec!r}: a file was given but only .gguf files load directly; "
                "give the model directory instead"
            )
        return str(path.parent), path.name
    if path.is_dir():
        if (path / "config.json").is_file():
            return str(path), None
        ggufs = sorted(p.name for p in path.glob("*.gguf"))
        if len(ggufs) == 1:
            return str(path), ggufs[0]
        if ggufs:
            raise InputError(
                f"model {spec!r}: directory holds several .gguf files ({', '.join(ggufs)}); "
                "name one of them"
            )
        raise InputError(
            f"model {spec!r}: directory has no config.json and no .gguf file; "
            "give a Hugging Face model directory, a .gguf file or a Hub id"
        )
    looks_like_path = (
        spec.startswith((".", "/", "~"))
        or spec.lower().endswith(".gguf")
        or spec.count("/") > 1
        or "\\" in spec
    )
    if looks_like_path or not _HUB_ID.match(spec):
        raise InputError(
            f"model {spec!r}: no such file or directory (and not a Hub id like 'org/name'); "
            f"use {EMBEDDED_TEACHER!r}, a model directory, a .gguf file or a Hub id"
        )
    return spec, None


def _load_error(spec: str, e: Exception) -> InputError:
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return InputError(
        f"model {spec!r}: could not be loaded ({first}); check the path, or for a Hub id that it "
        "exists and is downloaded (HF_HUB_OFFLINE=1 forbids downloads)"
    )


def load_tokenizer(spec: str, *, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    """Load the tokenizer for a model spec, with a pad token (the eos token if it had none).

    The padding side is left as loaded: callers choose (left for batched generation).

    Raises:
        InputError: the spec does not resolve or the tokenizer cannot be loaded.
    """
    from transformers import AutoTokenizer

    path, gguf = resolve_model_spec(spec)
    kw = {"gguf_file": gguf} if gguf else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, **kw)
    except (OSError, ValueError) as e:
        raise _load_error(spec, e) from e
    ensure_pad_token(tokenizer)
    return tokenizer


def check_quantization(
    quantization: str | None, device: torch.device, key: str = "quantization"
) -> object | None:
    """Build a ``BitsAndBytesConfig`` or explain why quantized loading is impossible here.

    ``key`` is the config key the errors name (``quantization`` or ``student_quantization``).
    """
    if quantization is None:
        return None
    if quantization not in ("4bit", "8bit"):
        raise InputError(f"{key}: {quantization!r} is not one of '4bit', '8bit' or null")
    if device.type != "cuda":
        raise InputError(
            f"{key}: {quantization} needs a CUDA GPU (bitsandbytes), but the device is "
            f"{device.type}; set {key} to null"
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise InputError(
            f"{key}: {quantization} needs bitsandbytes; "
            f"pip install 'distillgraph[quant]' or set {key} to null"
        )
    import torch
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute,
    )


def _refuse_bin_only(spec: str, path: str) -> None:
    d = Path(path)
    if not d.is_dir():
        return
    has_st = any(d.glob("*.safetensors")) or (d / "model.safetensors.index.json").exists()
    has_bin = any(d.glob("pytorch_model*.bin"))
    if has_bin and not has_st:
        raise InputError(
            f"model {spec!r}: only pickle weights (pytorch_model*.bin) found; distillgraph loads "
            "safetensors only (pickles can run code). Convert it once: load it with "
            "transformers and save_pretrained(dir) (safetensors is the default)"
        )


def load_model(
    spec: str,
    *,
    dtype: str = "auto",
    device: str = "auto",
    trust_remote_code: bool = False,
    quantization: Literal["4bit", "8bit"] | None = None,
    quantization_key: str = "quantization",
) -> PreTrainedModel:
    """Load a causal LM as a plain, savable model in eval mode.

    Args:
        spec: see `resolve_model_spec`.
        dtype: see `resolve_dtype`.
        device: see `resolve_device`.
        trust_remote_code: allow model code from the model's repository.
        quantization: ``"4bit"``/``"8bit"`` loads through bitsandbytes (CUDA only), ``None``
            loads full precision. A ``.gguf`` file is always dequantized.
        quantization_key: the config key that asked for ``quantization``, named in errors.

    Raises:
        InputError: bad spec, pickle-only weights, a load failure, or quantization asked for
            where it is impossible (no CUDA, no bitsandbytes, or a .gguf source).
    """
    import torch
    from transformers import AutoModelForCausalLM

    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    bnb = check_quantization(quantization, dev, quantization_key)
    path, gguf = resolve_model_spec(spec)

    if gguf is not None:
        if bnb is not None:
            raise InputError(
                f"model {spec!r}: a .gguf file cannot be re-quantized with bitsandbytes; "
                f"set {quantization_key} to null"
            )
        try:
            model, _ = load_gguf_plain(path, gguf, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as e:
            raise _load_error(spec, e) from e
        return model.to(device=dev, dtype=torch_dtype)

    _refuse_bin_only(spec, path)
    kw: dict = {
        "dtype": torch_dtype,
        "use_safetensors": True,
        "trust_remote_code": trust_remote_code,
    }
    if bnb is not None:  # each `accelerate launch` process loads onto its own GPU
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        kw.update(quantization_config=bnb, device_map={"": index})
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kw)
    except (OSError, ValueError) as e:
        raise _load_error(spec, e) from e
    if bnb is None:
        model = model.to(dev)
    model.eval()
    return model


def load_model_and_tokenizer(spec: str, **kw) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a model and its tokenizer; ``kw`` as for `load_model`."""
    tokenizer = load_tokenizer(spec, trust_remote_code=kw.get("trust_remote_code", False))
    model = load_model(spec, **kw)
    fill_generation_ids(model, tokenizer)
    return model, tokenizer

# --------------------------------------------------------------------------------------------
# Tokenizer compatibility
# --------------------------------------------------------------------------------------------


def check_tokenizers_compatible(
    teacher_tok: PreTrainedTokenizerBase,
    student_tok: PreTrainedTokenizerBase,
    *,
    teacher_name: str = "teacher",
    student_name: str = "student",
) -> None:
    """Refuse a teacher/student pair whose token ids differ.

    Logit distillation compares the two models' distributions token id by token id, so both
    tokenizers must map the same strings to the same ids, and agree on bos/eos/unk. Pad ids are
    not compared: padded positions are masked out of every loss.

    Raises:
        InputError: naming what differs and what to do.
    """
    tv, sv = teacher_tok.get_vocab(), student_tok.get_vocab()
    if tv != sv:
        only_t = len(tv.keys() - sv.keys())
        only_s = len(sv.keys() - tv.keys())
        moved = sum(1 for k in tv.keys() & sv.keys() if tv[k] != sv[k])
        raise InputError(
            f"{student_name} tokenizer differs from {teacher_name}'s ({len(sv)} vs {len(tv)} "
            f"tokens; {only_t} only in {teacher_name}, {only_s} only in {student_name}, "
            f"{moved} with other ids): logit distillation needs the same token ids; pick a "
            f"student from the teacher's model family or set kd_ratio=0"
        )
    for attr in ("bos_token_id", "eos_token_id", "unk_token_id"):
        t_id, s_id = getattr(teacher_tok, attr, None), getattr(student_tok, attr, None)
        if t_id != s_id:
            raise InputError(
                f"{student_name} tokenizer's {attr} is {s_id} but {teacher_name}'s is {t_id}: "
                "logit distillation needs the same special tokens; pick a student from the "
                "teacher's model family or set kd_ratio=0"
            )


def _output_dim(model) -> int:
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None and getattr(head, "weight", None) is not None:
        return int(head.weight.shape[0])
    return int(model.config.vocab_size)


def shared_vocab_size(tokenizer: PreTrainedTokenizerBase, *models) -> int:
    """Return ``len(tokenizer)``, the number of real token ids, checking every model covers it.

    A model's output may be larger (embeddings padded to a multiple of 64); callers slice
    ``logits[..., :n]`` so padded ids never enter a softmax.

    Raises:
        InputError: some model has fewer outputs than the tokenizer has tokens.
    """
    n = len(tokenizer)
    for i, model in enumerate(models):
        dim = _output_dim(model)
        if dim < n:
            name = getattr(model.config, "name_or_path", "") or f"model #{i}"
            raise InputError(
                f"model {name!r} has {dim} output logits but the tokenizer has {n} tokens; "
                "use the model's own tokenizer or resize its embeddings"
            )
    return n


# --------------------------------------------------------------------------------------------
# LoRA
# --------------------------------------------------------------------------------------------


def apply_lora(
    model: PreTrainedModel,
    *,
    r: int = 16,
    alpha: int = 32,
    dropout: float = 0.05,
    target_modules: list[str] | str = "all-linear",
) -> PeftModel:
    """Wrap ``model`` (in place) with LoRA adapters; only the adapters are trainable.

    Args:
        model: a causal LM; if loaded quantized it is first prepared for k-bit training.
        r: adapter rank.
        alpha: LoRA scaling numerator (the update is scaled by ``alpha / r``).
        dropout: dropout on the adapter input.
        target_modules: module names, or ``"all-linear"`` (every linear layer but the LM head).

    Raises:
        InputError: a non-positive rank/alpha or a dropout outside [0, 1).
    """
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if r < 1 or alpha <= 0 or not 0 <= dropout < 1:
        raise InputError(
            f"lora: need r >= 1, alpha > 0 and 0 <= dropout < 1 (got r={r}, alpha={alpha}, "
            f"dropout={dropout})"
        )
    if getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False):
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=target_modules,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def merge_lora_full_precision(
    model: PeftModel,
    base_spec: str,
    *,
    dtype: str = "auto",
    device: str = "auto",
    trust_remote_code: bool = False,
) -> PreTrainedModel:
    """Merge a (Q)LoRA model's adapters into an unquantized copy of its base model.

    Merging into 4-/8-bit weights would round the result and leave a model that needs
    bitsandbytes to load; QLoRA exports instead reload the base in ``dtype`` and merge there.

    Args:
        model: a ``PeftModel`` (typically over a bitsandbytes-quantized base).
        base_spec: the base model to reload, see `resolve_model_spec`.
        dtype: the reloaded base's dtype, see `resolve_dtype`.
        device: see `resolve_device`.
        trust_remote_code: allow model code from the base model's repository.

    Returns:
        A plain model with the adapters merged in.
    """
    from peft import get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

    adapters = {k: v.detach().to("cpu") for k, v in get_peft_model_state_dict(model).items()}
    lora_config = model.peft_config[model.active_adapter]
    base = load_model(base_spec, dtype=dtype, device=device, trust_remote_code=trust_remote_code)
    merged = get_peft_model(base, lora_config)
    set_peft_model_state_dict(merged, adapters)
    return merged.merge_and_unload()
