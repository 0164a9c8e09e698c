"""Checkpoint I/O: what a run saves so it can resume exactly, and the best weights it has seen.

``<output_dir>/checkpoints/last`` holds the trainable weights, the optimizer and scheduler states,
the Python, NumPy, torch and CUDA RNG states, and the loop's counters (step, data position, best
validation, ...) together with the resolved config; ``checkpoints/best`` holds the weights of the
best validation and its metrics. Both are written aside and renamed into place, so a run killed
mid-write keeps its previous checkpoint. Only trainable weights are saved: frozen ones (a LoRA
base) are rebuilt identically at start-up.
"""

from __future__ import annotations

import json
import pickle
import random
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data_loaders.errors import InputError
from data_loaders.io import atomic_dir, atomic_write_json

if TYPE_CHECKING:
    import torch
    from accelerate import Accelerator

    from distillation.config import DistillationConfig

CHECKPOINTS = "checkpoints"
LAST, BEST = "last", "best"


def _trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    # Frozen weights (a LoRA base) are rebuilt identically at start-up; only trained ones vary.
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def load_weights(model: torch.nn.Module, path: Path) -> None:
    """Load trainable weights saved by `save_checkpoint`/`save_best` into ``model``."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    missing = set(state) - {n for n, _ in model.named_parameters()}
    if missing:
        raise InputError(f"{path}: checkpoint has weights the model lacks ({sorted(missing)[:3]})")
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, tensor in state.items():
            params[name].copy_(tensor)


def save_checkpoint(
    path: Path,
    model: torch.nn.Module,
    optimizer,
    scheduler,
    state: Mapping[str, Any],
    config: DistillationConfig,
    accelerator: Accelerator,
) -> None:
    """Write weights, optimizer, scheduler, RNG states and counters to ``path`` atomically."""
    import numpy as np
    import torch

    if not accelerator.is_main_process:
        accelerator.wait_for_everyone()
        return
    rng = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }
    with atomic_dir(path) as tmp:
        torch.save(_trainable_state(model), tmp / "model.pt")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        with open(tmp / "rng.pkl", "wb") as fh:
            pickle.dump(rng, fh)
        atomic_write_json(tmp / "state.json", {
            **state, "world_size": accelerator.num_processes,
            "config": config.model_dump(mode="json"),
        })
    accelerator.wait_for_everyone()


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer, scheduler) -> dict:
    """Restore what `save_checkpoint` wrote; returns the counters (step, epoch, pos, ...)."""
    import numpy as np
    import torch

    load_weights(model, path / "model.pt")
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu",
                                         weights_only=True))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
    with open(path / "rng.pkl", "rb") as fh:
        rng = pickle.load(fh)  # written by this program into its own run dir
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    state = json.loads((path / "state.json").read_text(encoding="utf-8"))
    state.pop("config", None)
    state.pop("world_size", None)
    return state


def best_matches(path: Path, best: Mapping) -> bool:
    """Whether ``path`` holds the weights of the best validation recorded in the run state."""
    try:
        saved = json.loads((path / "best.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (path / "model.pt").is_file() and saved.get("step") == best.get("step")


def save_best(path: Path, model: torch.nn.Module, best: Mapping, accelerator: Accelerator) -> None:
    """Keep the best student's weights (by val exact match, then val loss)."""
    import torch

    if accelerator.is_main_process:
        with atomic_dir(path) as tmp:
            torch.save(_trainable_state(model), tmp / "model.pt")
            atomic_write_json(tmp / "best.json", dict(best))
    accelerator.wait_for_everyone()


def last_good(out: Path) -> str:
    """A sentence naming the run's last good checkpoint, for divergence messages."""
    state = out / CHECKPOINTS / LAST / "state.json"
    if state.is_file():
        step = json.loads(state.read_text(encoding="utf-8"))["step"]
        return f"The last good checkpoint is {state.parent} (step {step})."
    return "No checkpoint was written yet."

