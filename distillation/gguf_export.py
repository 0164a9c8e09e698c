"""GGUF export of a distilled student: the file llama.cpp, Ollama and LM Studio run.

This module owns turning a Llama-architecture Hugging Face model directory into one GGUF file
(``f16`` or ``q8_0`` weights, norms in f32) that carries everything a runtime needs: the
``llama.*`` hyperparameters, the weights under llama.cpp's tensor names (q/k rows permuted the
way llama.cpp's rotary embedding expects), the byte-level BPE tokenizer (tokens, token types,
merges, bos/eos/pad/unk ids) and the chat template. Beside the file it writes an Ollama
``Modelfile``; `distillation.gguf_check` loads the file back and writes its model card. The file
is written under a temporary name and renamed into place. torch, transformers and gguf are
imported lazily.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from data_loaders.errors import InputError
from data_loaders.io import atomic_write_text

if TYPE_CHECKING:
    import numpy as np
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

Quant = Literal["f16", "q8_0"]
QUANTS: tuple[str, ...] = ("f16", "q8_0")
MODELFILE = "Modelfile"

# HF parameter name (inside one decoder layer) → llama.cpp tensor name.
_LAYER_TENSORS = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
_GLOBAL_TENSORS = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}
_LAYER_NAME = re.compile(r"^model\.layers\.(\d+)\.(.+)$")

# The Ollama template of a ChatML chat template (SmolLM2's and the tiny models'), in Go syntax.
_CHATML_GO_TEMPLATE = (
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n"
    "{{ .Content }}<|im_end|>\n"
    "{{ end }}<|im_start|>assistant\n"
)


@dataclass
class GgufExport:
    """What `export_gguf` wrote."""

    path: Path
    quant: str
    size_bytes: int
    n_tensors: int
    tensor_types: dict[str, int] = field(default_factory=dict)
    """How many tensors of each GGML type (``Q8_0``, ``F16``, ``F32``) the file holds."""
    modelfile: Path | None = None


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------


def check_model_dir(model_dir: Path) -> Path:
    """Refuse anything but a Hugging Face model directory with full weights.

    Raises:
        InputError: missing directory, no ``config.json``, an adapter-only directory, or a
            dataset directory.
    """
    model_dir = Path(model_dir).expanduser()
    if not model_dir.is_dir():
        raise InputError(f"--model {model_dir}: no such directory; pass a model directory "
                         "(config.json, safetensors), e.g. runs/cars/distill/student")
    if (model_dir / "adapter_config.json").is_file() and not (model_dir / "config.json").is_file():
        raise InputError(f"--model {model_dir}: holds a LoRA adapter only; export the student "
                         "with its adapters merged (the default of `distillgraph distill`)")
    if not (model_dir / "config.json").is_file():
        hint = ("this is a dataset directory; " if (model_dir / "manifest.json").is_file() else "")
        raise InputError(f"--model {model_dir}: {hint}no config.json; pass a model directory "
                         "written by `distillgraph distill` (its student/ folder)")
    return model_dir


def _check_config(config: Any, where: str) -> None:
    if getattr(config, "model_type", None) != "llama":
        raise InputError(f"{where}: model_type {getattr(config, 'model_type', None)!r} is not "
                         "supported; GGUF export writes the llama architecture (SmolLM2 and "
                         "students distilled from it are llama)")
    for flag in ("attention_bias", "mlp_bias"):
        if getattr(config, flag, False):
            raise InputError(f"{where}: {flag}=true is not part of the llama GGUF layout")
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    rope_type = rope.get("rope_type", rope.get("type")) if isinstance(rope, dict) else None
    if rope_type not in (None, "default"):
        raise InputError(f"{where}: rope scaling {rope_type!r} is not supported by this export "
                         "(only plain RoPE)")


def _rope_theta(config: Any) -> float:
    rope = getattr(config, "rope_parameters", None)
    if isinstance(rope, dict) and "rope_theta" in rope:
        return float(rope["rope_theta"])
    return float(getattr(config, "rope_theta", 10000.0))


def _head_dim(config: Any) -> int:
    return int(getattr(config, "head_dim", None)
               or config.hidden_size // config.num_attention_heads)


# --------------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------------


def permute_qk(weights: np.ndarray, n_head: int) -> np.ndarray:
    """Reorder q/k projection rows from HF's rotate-half layout to llama.cpp's interleaved one.

    HF's RoPE rotates the two halves of each head (dims ``i`` and ``i + d/2``); llama.cpp rotates
    adjacent pairs (``2i``, ``2i + 1``). Per head, the ``(2, d/2)`` row blocks are transposed to
    ``(d/2, 2)``. ``weights``: ``(n_head * d, in_features)``. Inverse of transformers'
    ``LlamaTensorProcessor._reverse_permute_weights``; as llama.cpp's ``convert_hf_to_gguf.py``.
    """
    d_half = weights.shape[0] // n_head // 2
    return (weights.reshape(n_head, 2, d_half, *weights.shape[1:])
            .swapaxes(1, 2)
            .reshape(weights.shape))


def gguf_tensors(model: PreTrainedModel) -> list[tuple[str, np.ndarray]]:
    """``(llama.cpp name, float32 array)`` for every weight, q/k permuted; tied head left out.

    Raises:
        InputError: a parameter with no llama.cpp counterpart (another architecture's layer).
    """
    import torch

    config = model.config
    n_head, n_kv = config.num_attention_heads, config.num_key_value_heads
    tied = bool(getattr(config, "tie_word_embeddings", False))
    out = []
    for name, tensor in model.state_dict().items():
        layer = _LAYER_NAME.match(name)
        if layer:
            leaf = _LAYER_TENSORS.get(layer.group(2))
            gguf_name = f"blk.{layer.group(1)}.{leaf}" if leaf else None
        else:
            gguf_name = _GLOBAL_TENSORS.get(name)
        if gguf_name is None:
            raise InputError(f"model weight {name!r} has no llama.cpp counterpart; only plain "
                             "llama models export to GGUF")
        if gguf_name == "output.weight" and tied:
            continue  # llama.cpp reuses token_embd when the file has no output tensor
        array = tensor.detach().to(torch.float32).cpu().numpy()
        if gguf_name.endswith("attn_q.weight"):
            array = permute_qk(array, n_head)
        elif gguf_name.endswith("attn_k.weight"):
            array = permute_qk(array, n_kv)
        out.append((gguf_name, array))
    return out


def _encode(array: np.ndarray, quant: str) -> tuple[np.ndarray, Any]:
    """The array as stored and its GGML type: 1-D tensors (norms) stay f32, as llama.cpp does."""
    from gguf import GGMLQuantizationType, quants

    if array.ndim == 1:
        return array.astype("float32"), GGMLQuantizationType.F32
    if quant == "q8_0":
        block = 32  # Q8_0 block size; a row that does not divide falls back to f16
        if array.shape[-1] % block == 0:
            qtype = GGMLQuantizationType.Q8_0
            return quants.quantize(array, qtype), qtype
    return array.astype("float16"), GGMLQuantizationType.F16


# --------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------


def _pre_tokenizer_name(backend_json: Mapping[str, Any], where: str) -> str:
    """llama.cpp's ``tokenizer.ggml.pre`` for a byte-level BPE's pre-tokenizer.

    Plain ``ByteLevel`` (the GPT-2 split regex) is ``gpt2``; SmolLM2's hub tokenizer (single
    digits, then ``ByteLevel``) is ``smollm``.
    """
    pre = backend_json.get("pre_tokenizer") or {}
    kind = pre.get("type")
    if kind == "ByteLevel" and pre.get("use_regex", True):
        return "gpt2"
    if kind == "Sequence":
        parts = [p.get("type") for p in pre.get("pretokenizers", [])]
        if parts == ["Digits", "ByteLevel"]:
            return "smollm"
    raise InputError(f"{where}: tokenizer pre-tokenizer {kind!r} has no llama.cpp equivalent "
                     "here; only GPT-2/SmolLM2-style byte-level BPE tokenizers are exported")


def tokenizer_fields(tokenizer: PreTrainedTokenizerBase, vocab_size: int, where: str) -> dict:
    """The GGUF tokenizer metadata of a byte-level BPE tokenizer (llama.cpp's ``gpt2`` model).

    Ids the model has but the tokenizer lacks become ``[PAD<id>]`` tokens of type UNUSED, as in
    llama.cpp's converter. Special added tokens are CONTROL, other added tokens USER_DEFINED.

    Raises:
        InputError: not a byte-level BPE, or more tokens than the model's embedding rows.
    """
    from gguf import TokenType

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise InputError(f"{where}: needs a fast tokenizer (tokenizer.json)")
    state = json.loads(backend.to_str())
    model = state.get("model") or {}
    if model.get("type") != "BPE" or (state.get("decoder") or {}).get("type") != "ByteLevel":
        raise InputError(f"{where}: tokenizer is {model.get('type')!r}, not byte-level BPE; only "
                         "GPT-2/SmolLM2-style tokenizers are exported to GGUF")
    pre = _pre_tokenizer_name(state, where)
    vocab = tokenizer.get_vocab()
    if len(vocab) > vocab_size:
        raise InputError(f"{where}: tokenizer has {len(vocab)} tokens but the model only "
                         f"{vocab_size} embedding rows")
    by_id = {i: t for t, i in vocab.items()}
    added = {i: a for i, a in tokenizer.added_tokens_decoder.items()}
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(TokenType.UNUSED)
        elif i in added:
            tokens.append(by_id[i])
            types.append(TokenType.CONTROL if added[i].special else TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[i])
            types.append(TokenType.NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    template = tokenizer.chat_template
    if isinstance(template, dict):  # named templates: llama.cpp reads the default one
        template = template.get("default") or next(iter(template.values()), None)
    probe = tokenizer("a")["input_ids"]
    return {
        "pre": pre,
        "tokens": tokens,
        "types": types,
        "merges": merges,
        "bos": tokenizer.bos_token_id,
        "eos": tokenizer.eos_token_id,
        "pad": tokenizer.pad_token_id,
        "unk": tokenizer.unk_token_id,
        "add_bos": bool(probe) and probe[0] == tokenizer.bos_token_id,
        "chat_template": template,
    }


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def default_out(model_dir: Path, quant: str) -> Path:
    """The default output: ``<parent>/<name>-<quant>/<name>-<quant>.gguf``.

    One folder per export (file, Modelfile, model card), ready for ``--push-to-hub``.
    """
    model_dir = Path(model_dir).resolve()
    stem = f"{model_dir.name}-{quant}"
    return model_dir.parent / stem / f"{stem}.gguf"


def export_gguf(
    model_dir: Path,
    out: Path | None = None,
    *,
    quant: str = "f16",
    progress: bool = True,
) -> GgufExport:
    """Write the model in ``model_dir`` as one GGUF file (plus an Ollama ``Modelfile`` beside).

    Args:
        model_dir: a Hugging Face llama model directory with a byte-level BPE tokenizer (what
            ``distillgraph distill`` writes to ``<output_dir>/student``).
        out: the ``.gguf`` path; default `default_out`.
        quant: ``f16`` (2-D weights in float16) or ``q8_0`` (8-bit blocks of 32; a tensor whose
            rows do not divide into blocks stays f16). Norms stay float32 either way.
        progress: show a progress bar over the tensors.

    Returns:
        What was written.

    Raises:
        InputError: unknown ``quant``, an output path not ending in ``.gguf``, or a model this
            export does not cover (names the reason).
    """
    import torch
    from gguf import GGML_QUANT_VERSION, GGUFWriter, LlamaFileType
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if quant not in QUANTS:
        raise InputError(f"--quant {quant}: unknown; choose one of {', '.join(QUANTS)}")
    model_dir = check_model_dir(model_dir)
    out = Path(out).expanduser() if out is not None else default_out(model_dir, quant)
    if out.suffix.lower() != ".gguf" or out.is_dir():
        raise InputError(f"--out {out}: must be a file path ending in .gguf")
    if out.resolve().parent == model_dir.resolve():
        raise InputError(f"--out {out}: inside the model directory, where the Modelfile and the "
                         "GGUF model card would overwrite the student's README.md; pick another "
                         "folder (default: <model>-<quant>/ beside it)")
    where = f"--model {model_dir}"
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(model_dir)
    except (OSError, ValueError) as e:
        raise InputError(f"{where}: cannot read config.json ({e})") from None
    _check_config(config, where)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tok = tokenizer_fields(tokenizer, config.vocab_size, where)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)

    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    counts: dict[str, int] = {}
    try:
        writer = GGUFWriter(tmp, "llama")
        writer.add_name(model_dir.name)
        writer.add_file_type(LlamaFileType.MOSTLY_F16 if quant == "f16"
                             else LlamaFileType.MOSTLY_Q8_0)
        if quant != "f16":
            writer.add_quantization_version(GGML_QUANT_VERSION)
        head_dim = _head_dim(config)
        writer.add_vocab_size(config.vocab_size)
        writer.add_context_length(config.max_position_embeddings)
        writer.add_embedding_length(config.hidden_size)
        writer.add_block_count(config.num_hidden_layers)
        writer.add_feed_forward_length(config.intermediate_size)
        writer.add_head_count(config.num_attention_heads)
        writer.add_head_count_kv(config.num_key_value_heads)
        writer.add_rope_dimension_count(head_dim)
        if head_dim != config.hidden_size // config.num_attention_heads:
            writer.add_key_length(head_dim)
            writer.add_value_length(head_dim)
        writer.add_rope_freq_base(_rope_theta(config))
        writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))

        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(tok["pre"])
        writer.add_token_list(tok["tokens"])
        writer.add_token_types(tok["types"])
        writer.add_token_merges(tok["merges"])
        for key, add in (("bos", writer.add_bos_token_id), ("eos", writer.add_eos_token_id),
                         ("pad", writer.add_pad_token_id), ("unk", writer.add_unk_token_id)):
            if tok[key] is not None:
                add(int(tok[key]))
        writer.add_add_bos_token(tok["add_bos"])
        if tok["chat_template"]:
            writer.add_chat_template(tok["chat_template"])

        tensors = gguf_tensors(model)
        del model
        for name, array in tqdm(tensors, desc=f"gguf {quant}", unit="tensor",
                                disable=not progress):
            data, qtype = _encode(array, quant)
            writer.add_tensor(name, data, raw_dtype=qtype)
            counts[qtype.name] = counts.get(qtype.name, 0) + 1
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file(progress=False)
        writer.close()
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    modelfile = write_modelfile(out, tokenizer)
    return GgufExport(path=out, quant=quant, size_bytes=out.stat().st_size,
                      n_tensors=sum(counts.values()), tensor_types=counts, modelfile=modelfile)


def modelfile_text(gguf_name: str, tokenizer: PreTrainedTokenizerBase) -> str:
    """An Ollama Modelfile for ``gguf_name`` (in the same folder): greedy, stops at end of turn.

    A ChatML chat template gets its Go ``TEMPLATE``; for any other, Ollama derives the template
    from the ``tokenizer.chat_template`` stored in the GGUF.
    """
    lines = [
        "# Ollama: ollama create <name> -f Modelfile && ollama run <name>",
        f"FROM ./{gguf_name}",
    ]
    template = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else ""
    if "<|im_start|>" in template and "<|im_end|>" in template:
        lines.append(f'TEMPLATE """{_CHATML_GO_TEMPLATE}"""')
    stops = []
    for token in ("<|im_end|>" if "<|im_end|>" in template else None, tokenizer.eos_token):
        if token and token not in stops:
            stops.append(token)
    lines += [f'PARAMETER stop "{t}"' for t in stops]
    # The agent graph decodes greedily; the student was validated that way.
    lines.append("PARAMETER temperature 0")
    return "\n".join(lines) + "\n"


def write_modelfile(gguf_path: Path, tokenizer: PreTrainedTokenizerBase) -> Path:
    """Write ``Modelfile`` beside ``gguf_path`` (atomically); returns its path."""
    path = Path(gguf_path).parent / MODELFILE
    atomic_write_text(path, modelfile_text(Path(gguf_path).name, tokenizer))
    return path
