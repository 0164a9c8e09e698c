"""The Python API of the distillation stage: `ModelDistiller`, a thin layer over the recipe.

    from distillation.api import DistillationConfig, ModelDistiller

    distiller = ModelDistiller(DistillationConfig(teacher_model_name="embedded", temperature=2.0,
                                                  alpha=0.5, output_dir="runs/my_student"))
    distiller.distill("runs/cars")          # a dataset dir from `distillgraph prepare`
    path = distiller.save_distilled_model() # a plain Hugging Face model directory

`distill` runs `distillation.trainer.run_distillation`, exactly what ``distillgraph distill``
runs. `load_teacher_model` / `load_student_model` give the models the recipe would start from,
for inspection or custom loops.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data_loaders.errors import InputError
from data_loaders.io import atomic_dir
from distillation.config import DistillationConfig
from distillation.losses import DistillationLoss

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from distillation.trainer import RunResult

__all__ = ["DistillationConfig", "DistillationLoss", "ModelDistiller"]


class ModelDistiller:
    """Distill a student from a teacher on QA pairs.

    Args:
        config: a `DistillationConfig`, a dict of its fields, or None for the defaults.
        **overrides: fields to change, e.g. ``max_steps=100`` or ``alpha=0.7``.
    """

    def __init__(
        self, config: DistillationConfig | Mapping[str, Any] | None = None, **overrides: Any
    ) -> None:
        if "alpha" in overrides:  # the alias, given as an override of a config using the name
            overrides["kd_ratio"] = overrides.pop("alpha")
        if config is None:
            config = DistillationConfig(**overrides)
        elif isinstance(config, Mapping):
            base = dict(config)
            if "alpha" in base and "kd_ratio" not in base:
                base["kd_ratio"] = base.pop("alpha")
            config = DistillationConfig(**{**base, **overrides})
        elif overrides:
            config = DistillationConfig.model_validate({**config.model_dump(), **overrides})
        self.config: DistillationConfig = config
        self.teacher: PreTrainedModel | None = None
        self.student: PreTrainedModel | None = None
        self.tokenizer: PreTrainedTokenizerBase | None = None
        self.result: RunResult | None = None

    def load_teacher_model(self) -> PreTrainedModel:
        """Load the configured teacher (and its tokenizer, as ``self.tokenizer``)."""
        from distillation.models import load_model_and_tokenizer

        if self.config.teacher_model_name == "tiny":
            raise InputError(
                "teacher_model_name: 'tiny' is built by distill() from the training data; "
                "name a model to load it here"
            )
        c = self.config
        self.teacher, self.tokenizer = load_model_and_tokenizer(
            c.teacher_model_name, dtype=c.dtype, device=c.device,
            trust_remote_code=c.trust_remote_code, quantization=c.quantization,
        )
        return self.teacher

    def load_student_model(self) -> PreTrainedModel:
        """The student the recipe starts from: the named model, or the pruned teacher.

        A pruned student's vocabulary is trimmed to the data's tokens (``trim_vocab``); without
        a ``data_dir`` that happens in `distill`, and this one keeps the teacher's vocabulary.

        After `distill`, this is the distilled student loaded from its exported directory.
        """
        from distillation.models import load_model_and_tokenizer
        from distillation.trainer import build_student, read_records

        if self.result is not None:
            self.student, self.tokenizer = load_model_and_tokenizer(
                str(self.result.student_dir), dtype="float32", device=self.config.device
            )
            return self.student
        teacher, tokenizer = self.teacher, self.tokenizer
        if self.config.student_model_name is None and teacher is None:
            teacher = self.load_teacher_model()
            tokenizer = self.tokenizer
        config, records = self.config, None
        if config.trims_vocab and config.data_dir is not None:
            train, val = read_records(config, None, None)
            records = train + val
        elif config.trims_vocab:  # no data yet: distill() trims it from the pairs it gets
            config = config.model_copy(update={"trim_vocab": False})
        self.student, self.tokenizer, _ = build_student(config, teacher, tokenizer, records)
        return self.student

    def distill(
        self,
        training_data: str | Path | Sequence[Any],
        *,
        val_data: Sequence[Any] | None = None,
        resume: bool = False,
        progress: bool = True,
    ) -> RunResult:
        """Run the distillation recipe.

        Args:
            training_data: a dataset directory (train.jsonl + val.jsonl), or a list of pairs
                (``QAPair`` objects or dicts with question, answer and context).
            val_data: validation pairs for a list; default: a seeded 10% of ``training_data``
                is held out (at least one pair).
            resume: continue from the output dir's last checkpoint.
            progress: show progress bars.

        Returns:
            The run's `RunResult` (``student_dir`` holds the exported student).
        """
        from distillation.trainer import run_distillation

        if isinstance(training_data, str | Path):
            self.config = self.config.model_copy(update={"data_dir": Path(training_data)})
            self.result = run_distillation(self.config, resume=resume, progress=progress)
        else:
            train = list(training_data)
            if val_data is None:
                train, val_data = holdout(train, self.config.seed)
            self.result = run_distillation(
                self.config, resume=resume, train_records=train, val_records=list(val_data),
                progress=progress,
            )
        self.student = None
        return self.result

    def save_distilled_model(self, path: str | Path | None = None) -> Path:
        """Return the exported student directory, copied to ``path`` if one is given.

        Raises:
            InputError: `distill` has not run yet.
        """
        if self.result is None:
            raise InputError("save_distilled_model: nothing distilled yet; call distill() first")
        src = Path(self.result.student_dir)
        if path is None or Path(path).resolve() == src.resolve():
            return src
        with atomic_dir(Path(path)) as tmp:
            shutil.copytree(src, tmp, dirs_exist_ok=True)
        return Path(path)


def holdout(pairs: list[Any], seed: int, fraction: float = 0.1) -> tuple[list, list]:
    """Split off a seeded ``fraction`` of pairs for validation (at least one pair)."""
    if len(pairs) < 2:
        raise InputError("training_data: give at least 2 pairs (1 to train, 1 to validate)")
    idx = list(range(len(pairs)))
    random.Random(f"holdout:{seed}").shuffle(idx)
    n_val = max(1, round(len(pairs) * fraction))
    val_ids = set(idx[:n_val])
    return ([p for i, p in enumerate(pairs) if i not in val_ids],
            [p for i, p in enumerate(pairs) if i in val_ids])
