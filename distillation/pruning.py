"""Students made from the teacher: DistilBERT-style layer pruning, and training only top layers.

`prune_layers` builds a new, shallower model that keeps some of the teacher's decoder layers
(evenly spaced by default, `evenly_spaced_layers`), with the same embeddings, final norm and LM
head and a config that matches; `train_top_layers` freezes all but the top decoder layers (used
by teacher adaptation). Both work on Llama-family (SmolLM2), Mistral and Qwen2/3 models, whose
decoder layers sit at ``model.model.layers``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from data_loaders.errors import InputError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

_SUPPORTED_PRUNE_TYPES = ("llama", "mistral", "qwen2", "qwen3")
# Config attributes that hold one entry per decoder layer and must follow the kept layers.
_PER_LAYER_CONFIG_LISTS = ("layer_types", "no_rope_layers")


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


def block_candidates(n_total: int, n_keep: int) -> list[list[int]]:
    """Every "first ``a`` + last ``n_keep - a`` layers" choice (one contiguous block removed).

    Removing one contiguous block of deep layers is what Gromov et al. (2024, "The Unreasonable
    Ineffectiveness of the Deeper Layers") and Minitron (2024) found to hurt least;
    ``block_candidates(30, 10)[2] == [0, 1, 2, 23, 24, ..., 29]``.
    """
    if not 2 <= n_keep < n_total:
        return [evenly_spaced_layers(n_total, n_keep)]
    return [list(range(a)) + list(range(n_total - (n_keep - a), n_total))
            for a in range(1, n_keep)]


def choose_layers(
    model: PreTrainedModel, n_keep: int, loss: Callable[[PreTrainedModel], float]
) -> tuple[list[int], dict[str, float]]:
    """The layer subset with the lowest ``loss``: evenly spaced or one block removed.

    Each candidate is scored by running ``model`` with only those decoder layers (swapped in
    place, then restored), so no copy is made; ``loss(model)`` should be the answer-token
    cross-entropy on a small calibration batch, without gradients.

    Returns:
        ``(best layer indices, {"0,1,2,23,...": loss})``.
    """
    import torch

    layers = _decoder_layers(model)
    n_total = len(layers)
    candidates = [evenly_spaced_layers(n_total, n_keep), *block_candidates(n_total, n_keep)]
    scores: dict[str, float] = {}
    base = model.model
    for idx in candidates:
        key = ",".join(map(str, idx))
        if key in scores:
            continue
        base.layers = torch.nn.ModuleList([layers[i] for i in idx])
        model.config.num_hidden_layers = len(idx)
        try:
            scores[key] = float(loss(model))
        finally:
            base.layers = layers
            model.config.num_hidden_layers = n_total
    best = min(scores, key=scores.get)
    return [int(i) for i in best.split(",")], scores


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
    config.pruned_from_layers = list(idx)  # saved in config.json: which teacher layers it holds
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
