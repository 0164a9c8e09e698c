"""Typed config of the distillation recipe (`distillgraph distill`), validated from YAML.

`DistillationConfig` holds every knob of one run: which teacher and student, the loss
(``kd_ratio``/``alpha``, the KD softmax ``temperature``, the divergence), where the teacher's
soft targets come from (an on-disk top-k cache or an online forward), the optimizer and its
schedule, validation, checkpoints, the optional first stage that adapts the teacher to the
dataset, and the experiment trackers the metrics also go to (``report_to``). Every field has a
description and a range check; `load_distill_config` reads YAML plus ``key=value`` overrides and
refuses unknown keys by name.

Two temperatures are never mixed up here: ``temperature`` is the *KD softmax temperature* of the
distillation loss. Generation during validation is always greedy and has no temperature.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from data_loaders.config_loader import StrictModel, load_config

TRACKERS: tuple[str, ...] = ("tensorboard", "mlflow", "wandb")
"""What ``report_to`` accepts besides ``none`` (names as accelerate's ``log_with`` spells them)."""


def parse_report_to(value: object) -> list[str]:
    """``report_to`` as a list of tracker names: ``none``/null → ``[]``; ``"a,b"`` → ``[a, b]``.

    Raises:
        ValueError: an unknown name, or ``none`` together with a tracker.
    """
    if value is None:
        return []
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list | tuple):
        items = [str(x) for x in value]
    else:
        raise ValueError("must be none, a tracker name or a list of them, e.g. [tensorboard]")
    names = [x.strip().lower() for x in items if x.strip()]
    if "none" in names:
        if len(names) > 1:
            raise ValueError("'none' cannot be combined with trackers; drop it or them")
        return []
    for name in names:
        if name not in TRACKERS:
            raise ValueError(f"unknown tracker {name!r}; choose none, {', '.join(TRACKERS)} "
                             "(or a list of them)")
    return list(dict.fromkeys(names))


class LoraSettings(StrictModel):
    """LoRA adapter settings (see `distillation.models.apply_lora`)."""

    r: int = Field(16, ge=1, le=1024, description="Adapter rank.")
    alpha: float = Field(32.0, gt=0, description="Scaling numerator: updates are scaled alpha/r.")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the adapter input.")
    target_modules: list[str] | str = Field(
        "all-linear",
        description="Module names to adapt, or 'all-linear' (every linear layer but the LM head).",
    )


class TeacherAdaptationConfig(StrictModel):
    """First, optional stage: fine-tune the teacher on the train split with hard labels.

    A generic instruct teacher answers table questions poorly (SmolLM2-135M-Instruct: 5% exact
    match zero-shot), and a student cannot learn from a teacher what the teacher does not know.
    The adapted teacher is saved to ``<output_dir>/teacher_adapted`` and reused on re-runs when
    its fingerprint (base teacher, data, these settings) matches.
    """

    enabled: bool | Literal["auto"] = Field(
        "auto",
        description="true/false, or 'auto': on for the embedded teacher, off for a teacher you "
        "name (assumed ready for your task).",
    )
    mode: Literal["full", "lora"] = Field(
        "full",
        description="'full' fine-tunes every weight; 'lora' trains adapters and merges them. "
        "Default full, measured on SmolLM2-135M and the cars data (CPU, batch 8): a LoRA step "
        "(r 16, all linear layers, lr 1e-3) costs 97% of a full step, and LoRA needed 60 steps "
        "to reach the val loss full fine-tuning reaches in 36.",
    )
    train_top_layers: int | None = Field(
        None, ge=1, description="mode 'full' only: train just the top N decoder layers and the "
        "final norm (embeddings frozen), so backward stops early; null trains every weight."
    )
    max_steps: int = Field(48, ge=1, le=1_000_000, description="Optimizer steps at most.")
    batch_size: int = Field(8, ge=1, le=4096, description="Examples per optimizer step.")
    micro_batch_size: int | None = Field(
        None, ge=1, le=4096,
        description="Examples per forward/backward pass; batch_size / micro_batch_size of "
        "them are accumulated into one optimizer step (must divide batch_size): fewer "
        "activations held at once, the same examples per update. null: batch_size.",
    )
    gradient_checkpointing: bool = Field(
        True,
        description="Recompute each layer's activations in the backward pass instead of "
        "keeping them: less memory, about a third more compute per step.",
    )
    learning_rate: float = Field(1e-4, gt=0, le=1.0, description="Peak learning rate (AdamW).")
    warmup_steps: int = Field(10, ge=0, description="Linear warm-up steps before cosine decay.")
    eval_every: int = Field(
        50, ge=0, description="Validate every this many steps (0: only after the last step)."
    )
    eval_samples: int | None = Field(
        None, ge=1, description="Validation pairs per check (null: the run's eval_samples)."
    )
    target_exact_match: float | None = Field(
        0.95,
        ge=0.0,
        le=1.0,
        description="Stop as soon as validation exact match reaches this (null: never stop early).",
    )
    lora: LoraSettings = Field(
        default_factory=LoraSettings, description="Adapter settings when mode is 'lora'."
    )

    @model_validator(mode="after")
    def _micro_batches(self) -> TeacherAdaptationConfig:
        if self.micro_batch_size is not None and self.batch_size % self.micro_batch_size:
            raise ValueError(
                f"teacher_adaptation.micro_batch_size: {self.micro_batch_size} does not divide "
                f"batch_size {self.batch_size}; pick a divisor (e.g. {self.batch_size // 2 or 1})"
            )
        return self


class CacheConfig(StrictModel):
    """Where the teacher's top-k soft targets are stored (``soft_targets: cached``)."""

    dir: Path | None = Field(
        None, description="Cache directory; null means <output_dir>/teacher_cache."
    )
    rebuild: bool = Field(
        False, description="Rebuild the cache even if one exists (needed when its fingerprint "
        "differs: other teacher, data, tokenizer, temperature, top_k or max_seq_len)."
    )
    batch_size: int = Field(16, ge=1, le=4096, description="Examples per teacher forward.")


class DistillationConfig(StrictModel):
    """Everything one distillation run needs; field names match ``configs/*.yaml``."""

    model_config = ConfigDict(populate_by_name=True)

    # ---------------------------------------------------------------- models and data
    teacher_model_name: str = Field(
        "embedded",
        description="Teacher: 'embedded' (SmolLM2-135M-Instruct shipped with the package), a "
        "model directory, a .gguf file or a Hub id.",
    )
    student_model_name: str | None = Field(
        None,
        description="Student: a model spec like the teacher's, or null to build it by keeping "
        "student_layers of the (adapted) teacher's layers (DistilBERT-style init).",
    )
    student_layers: int | list[int] = Field(
        7,
        description="With student_model_name null: how many teacher layers to keep (evenly "
        "spaced, first and last kept) or their indices.",
    )
    layer_selection: Literal["even", "block"] = Field(
        "even",
        description="With student_layers a count: 'even' keeps evenly spaced layers (first and "
        "last included, DistilBERT-style); 'block' scores that choice and every 'first a + "
        "last b' one (one contiguous block removed; Gromov et al. 2024) by the answer-token "
        "cross-entropy of the teacher run with only those layers on 16 train pairs, and keeps "
        "the lowest.",
    )
    trim_vocab: bool | None = Field(
        None,
        description="Trim the pruned student's vocabulary to the token ids its data needs "
        "(every token of the train and val pairs as the student reads them, the byte-level "
        "alphabet, special tokens, the tokenizer's most common pieces: "
        "trim_vocab_keep_common) and distill over them with the teacher renormalised on them. "
        "null: on for a student pruned from the teacher without LoRA, off otherwise. The "
        "exported student is a plain model directory whose own tokenizer emits only kept ids.",
    )
    trim_vocab_keep_common: int = Field(
        8192,
        ge=0,
        description="With trim_vocab: also keep the tokens of the tokenizer's first N merges "
        "(its most common pieces), so words the data never had still encode in pieces the "
        "teacher knew rather than in single bytes.",
    )
    data_dir: Path | None = Field(
        None,
        description="Dataset directory from `distillgraph prepare` (train.jsonl, val.jsonl).",
    )
    output_dir: Path = Field(
        Path("runs/distill"),
        description="Run directory: checkpoints, training_history.jsonl, teacher_cache, student/.",
    )
    target: Literal["auto", "program", "answer"] = Field(
        "auto",
        description="What the student learns to write. auto: program when at least 90% of the "
        "train pairs carry a program target (datasets from `distillgraph prepare` do; pairs "
        "whose request hides a mention from the table's index have none and are left out), "
        "else answer. "
        "program: the one-line program over the "
        "request's mention slots that the agent graph runs on the table (the pair's "
        "program_text; routing comes from its op, so no routing examples are added; each "
        "train summary pair adds a prose example, the table's facts as slots -> their "
        "wording). answer: the answer text read from the pair's context rows (the graph then "
        "checks it).",
    )
    routing_share: float = Field(
        0.25,
        ge=0.0,
        le=1.0,
        description="Share of train pairs added again as routing examples (prompt: the agent "
        "graph's routing question about the pair's question; answer: its task), so the student "
        "can route in the graph. 0 turns them off. Used with target=answer only.",
    )

    # ---------------------------------------------------------------- loss
    kd_ratio: float = Field(
        0.5,
        alias="alpha",
        ge=0.0,
        le=1.0,
        description="Weight of the distillation term: loss = (1 - kd_ratio) * ce + kd_ratio * kd. "
        "0 trains on hard labels only. 'alpha' is accepted as an alias.",
    )
    temperature: float = Field(
        2.0,
        gt=0.0,
        le=100.0,
        description="KD softmax temperature of the distillation loss (not a sampling "
        "temperature: validation decodes greedily).",
    )
    divergence: Literal["forward_kl", "reverse_kl", "jsd"] = Field(
        "forward_kl", description="Divergence between teacher and student distributions."
    )
    beta: float = Field(
        0.5, ge=0.0, le=1.0, description="JSD interpolation weight (divergence 'jsd' only)."
    )
    soft_targets: Literal["cached", "sampled", "online"] = Field(
        "cached",
        description="'cached': run the teacher once and reuse its top-k log-probs from disk; "
        "'sampled': the same cache holding top_k draws from the teacher's distribution per "
        "token (an unbiased estimate; Anshumann et al. 2025), forward_kl only; "
        "'online': a full-vocabulary teacher forward at every step.",
    )
    top_k: int = Field(
        64, ge=1, le=1_000_000,
        description="Teacher log-probs kept per token in the cache (sampled: draws per token).",
    )
    loss_chunk_size: int | None = Field(
        1024,
        ge=1,
        description="Tokens per chunk in the loss (bounds memory); null computes it in one go.",
    )
    cache: CacheConfig = Field(default_factory=CacheConfig, description="Soft-target cache.")

    # ---------------------------------------------------------------- optimization
    max_steps: int = Field(400, ge=1, le=10_000_000, description="Optimizer steps to train.")
    batch_size: int = Field(8, ge=1, le=4096, description="Examples per micro-batch.")
    grad_accum_steps: int = Field(
        1, ge=1, le=4096, description="Micro-batches per optimizer step."
    )
    learning_rate: float = Field(2e-4, gt=0.0, le=1e30, description="Peak learning rate (AdamW).")
    weight_decay: float = Field(0.0, ge=0.0, le=10.0, description="AdamW weight decay.")
    warmup_steps: int = Field(10, ge=0, description="Linear warm-up steps before the decay.")
    lr_schedule: Literal["cosine", "constant"] = Field(
        "cosine", description="After warm-up: cosine decay to min_lr_ratio, or constant."
    )
    min_lr_ratio: float = Field(
        0.1, ge=0.0, le=1.0, description="Final learning rate as a fraction of the peak."
    )
    max_grad_norm: float | None = Field(
        1.0, gt=0.0, description="Clip gradients to this global norm (null: no clipping)."
    )
    seed: int = Field(0, ge=0, description="Seed for init, data order and dropout.")
    max_seq_len: int = Field(
        768, ge=8, le=131072, description="Longest example in tokens; longer prompts are "
        "cut from the left (the answer is always kept)."
    )

    # ---------------------------------------------------------------- validation, checkpoints
    eval_every: int = Field(
        50, ge=0, description="Validate every this many steps (0: only at the end)."
    )
    eval_samples: int = Field(
        64, ge=1, description="Validation pairs used for val_loss and val_exact_match."
    )
    eval_max_new_tokens: int = Field(
        128, ge=1, le=4096, description="Longest generated answer during validation."
    )
    early_stopping_patience: int | None = Field(
        None,
        ge=1,
        description="Stop after this many validations without improvement (null: never).",
    )
    save_every: int = Field(
        50, ge=1, description="Write a resumable checkpoint every this many steps."
    )

    # ---------------------------------------------------------------- hardware
    device: str = Field("auto", description="'auto' (CUDA if available), 'cpu' or 'cuda[:n]'.")
    dtype: str = Field(
        "auto",
        description="Teacher weights' dtype: auto (bfloat16 on a GPU, float32 on CPU), float32, "
        "bfloat16, float16. The student trains in float32 (bf16 autocast on GPUs).",
    )
    trust_remote_code: bool = Field(
        False, description="Allow model code from a model's repository (only if you trust it)."
    )
    quantization: Literal["4bit", "8bit"] | None = Field(
        None,
        description="Load the teacher quantized with bitsandbytes (CUDA only); needs a named "
        "student_model_name because a pruned student cannot be copied from a quantized teacher.",
    )
    student_lora: LoraSettings | None = Field(
        None, description="Train LoRA adapters on the student instead of all its weights."
    )
    student_quantization: Literal["4bit", "8bit"] | None = Field(
        None,
        description="QLoRA: load the named student quantized with bitsandbytes (CUDA only) and "
        "train student_lora adapters on it; the export merges them into the full-precision "
        "student. Needs student_model_name and student_lora.",
    )
    teacher_adaptation: TeacherAdaptationConfig = Field(
        default_factory=TeacherAdaptationConfig, description="Optional first stage."
    )

    # ---------------------------------------------------------------- experiment tracking
    report_to: list[str] = Field(
        default_factory=list,
        description="Experiment trackers that get the rows of training_history.jsonl at the "
        "same steps (train/loss, train/ce, train/kd, eval/val_exact_match ...): none, "
        "tensorboard (files under <output_dir>/tracking), mlflow (MLFLOW_TRACKING_URI), wandb, "
        "or a list of them. Through accelerate's trackers; each needs its package installed.",
    )

    @field_validator("student_layers")
    @classmethod
    def _layers(cls, v: int | list[int]) -> int | list[int]:
        if isinstance(v, int):
            if v < 1:
                raise ValueError("must be >= 1 (layers to keep) or a list of layer indices")
            return v
        if not v:
            raise ValueError("the list of layers to keep is empty")
        if any(i < 0 for i in v) or len(set(v)) != len(v):
            raise ValueError(f"layer indices must be distinct and >= 0, got {v}")
        return sorted(v)

    @field_validator("report_to", mode="before")
    @classmethod
    def _report_to(cls, v: object) -> list[str]:
        return parse_report_to(v)

    @field_validator("teacher_model_name")
    @classmethod
    def _teacher(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must name a teacher ('embedded', a directory or a Hub id)")
        return v.strip()

    @model_validator(mode="after")
    def _consistent(self) -> DistillationConfig:
        if self.quantization is not None and self.student_model_name is None:
            raise ValueError(
                "quantization: a pruned student cannot be copied from a quantized teacher; "
                "name a student_model_name or set quantization to null"
            )
        if self.student_quantization is not None:
            if self.student_model_name is None:
                raise ValueError(
                    "student_quantization: QLoRA needs a named student; set student_model_name "
                    "or student_quantization to null"
                )
            if self.student_lora is None:
                raise ValueError(
                    "student_quantization: a quantized student trains LoRA adapters only; set "
                    "student_lora (e.g. student_lora.r=16) or student_quantization to null"
                )
        if self.soft_targets == "sampled" and self.divergence != "forward_kl":
            raise ValueError(
                "soft_targets: sampled targets estimate the forward KL only (an id never drawn "
                "has probability 0, which reverse KL and JSD cannot weigh); set divergence: "
                "forward_kl or soft_targets: cached"
            )
        if self.trim_vocab and (self.student_model_name is not None
                                or self.student_lora is not None):
            raise ValueError(
                "trim_vocab: trimming applies to a student pruned from the teacher without "
                "LoRA (student_model_name and student_lora null); set trim_vocab to null or false"
            )
        return self

    @property
    def trims_vocab(self) -> bool:
        """Whether the student's vocabulary is trimmed (resolving ``trim_vocab: null``)."""
        if self.trim_vocab is None:
            return self.student_model_name is None and self.student_lora is None
        return self.trim_vocab

    @property
    def adapt_teacher(self) -> bool:
        """Whether the teacher-adaptation stage runs (resolving ``enabled: auto``)."""
        enabled = self.teacher_adaptation.enabled
        if enabled == "auto":
            return self.teacher_model_name == "embedded"
        return bool(enabled)

    @property
    def cache_dir(self) -> Path:
        """The soft-target cache directory (``cache.dir`` or ``<output_dir>/teacher_cache``)."""
        return self.cache.dir if self.cache.dir is not None else self.output_dir / "teacher_cache"


def load_distill_config(
    path: str | Path | None = None, overrides: list[str] | None = None
) -> DistillationConfig:
    """Load a distill YAML (optional) plus ``key=value`` overrides into `DistillationConfig`.

    Raises:
        InputError: missing/malformed file, unknown key (named), or a value out of range.
    """
    return load_config(DistillationConfig, path, overrides)
