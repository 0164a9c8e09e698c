"""Side-by-side evaluation of models on one dataset split: accuracy, cost and speed.

`evaluate_models` is the engine behind ``distillgraph evaluate`` and the demo. It loads every
model once, then measures them on the same examples:

1. **Load + memory.** Each model is loaded and warmed up (one batch-1 and one batched
   generation, untimed). Peak memory is the rise over the pre-load level during load and
   warm-up: ``torch.cuda.max_memory_allocated`` on a GPU, else the process RSS sampled every 2 ms.
2. **Accuracy + batched throughput.** Examples go in blocks of ``batch_size`` (grouped by task
   and reference length); every block is answered by every model (greedy, via
   `distillation.generation.generate_answers`), the model order rotating from block to block,
   so a slow spell of a shared machine hits all models alike and the speed ratios hold. By
   default each task has its own new-token limit: its longest reference answer plus slack.
3. **Latency at batch 1.** On the first ``latency_examples`` examples, each model (again in
   rotating order) answers one example at a time; time to first token is taken when the first
   new token leaves ``generate`` (a streamer), the answer's latency when it returns.

Scores come from `distillation.metrics`; roles are: the first model is the *reference*
(normally the teacher), ``baseline`` names the undistilled student, every other model is a
*candidate* whose "gap closed" is ``(cand - base) / (ref - base)``. `distillation.report`
writes the files.
"""

from __future__ import annotations

import datetime as _dt
import gc
import hashlib
import json
import os
import platform
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from data_loaders.errors import InputError
from data_loaders.program_text import ProgramReader, dataset_tables
from data_loaders.schema import TASK_OF_TYPE, QAPair
from distillation import metrics
from distillation.data import PROGRAM_KIND

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

REPORT_VERSION = 1
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
HISTORY_FILENAME = "training_history.jsonl"
ANSWER_SLACK_TOKENS = 8
MAX_AUTO_NEW_TOKENS = 512
PROGRAM_MAX_NEW_TOKENS = 48  # the longest programs are ~25 tokens
Limit = Callable[[QAPair], int]  # new-token limit for one example
_METRIC_KEYS = ("accuracy", "exact_match", "numeric_match", "token_f1", "yes_no", "rouge_l")
_PROPORTIONS = frozenset({"exact_match", "numeric_match", "yes_no"})

GAP_CLOSED_DOC = (
    "(candidate - baseline) / (reference - baseline) on accuracy: 1 means the "
    "candidate (distilled student) matches the reference (first --model, the teacher), 0 means "
    "no better than the baseline (--baseline, the undistilled student); null when the reference "
    "and baseline score the same (zero gap)."
)
TIMING_DOC = (
    "greedy decoding; every model warmed up first. Batched pass: blocks of batch_size examples "
    "(grouped by task and reference length), each block answered by every model in rotating "
    "order; answers/s, and answer tokens/s "
    "counting the decoded answers re-tokenized. Batch-1 pass: latency_examples examples, models "
    "interleaved per example; latency = one answer's generate() call; TTFT = time until its "
    "first new token; generated tokens/s counts every new token (stop token included). "
    "speedup = reference p50 latency / model p50 latency. Equal-tokens pass: the same "
    "examples again, each model decoding exactly EQUAL_NEW_TOKENS tokens (stop tokens "
    "ignored); speedup_equal_tokens = reference p50 / model p50 of that pass, the speed of "
    "the models themselves whatever the length of their answers."
)
CI_DOC = (
    "95%: Wilson interval for proportions (exact match, numeric, yes/no, accuracy of qa and "
    "validate types); seeded percentile bootstrap (1000 resamples) for means (token F1, "
    "ROUGE-L, and accuracy of groups holding summaries)."
)
MEMORY_DOC = (
    "rise over the pre-load level while the model loads and warms up (batch 1 and batch "
    "batch_size): torch.cuda.max_memory_allocated on a GPU, process RSS sampled every 2 ms on CPU."
)


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def check_dataset_dir(data_dir: str | Path, split: str) -> Path:
    """Return the split file of a dataset directory, or explain what is wrong with it.

    Raises:
        InputError: missing path, a file, a model directory, no manifest or no such split.
    """
    p = Path(data_dir).expanduser()
    if not p.exists():
        raise InputError(
            f"--data {p}: no such directory; pass a dataset directory from `distillgraph prepare`"
        )
    if not p.is_dir():
        raise InputError(f"--data {p}: is a file; pass the dataset directory that holds it")
    if not (p / "manifest.json").is_file():
        if (p / "config.json").is_file() or any(p.glob("*.safetensors")):
            raise InputError(
                f"--data {p}: this is a model directory (config.json, weights); pass it as "
                "--model and a dataset directory (manifest.json, test.jsonl) as --data"
            )
        raise InputError(
            f"--data {p}: not a dataset directory (no manifest.json); pass the output "
            "directory of `distillgraph prepare`"
        )
    split_file = p / f"{split}.jsonl"
    if not split_file.is_file():
        have = sorted(f.stem for f in p.glob("*.jsonl"))
        raise InputError(
            f"--split {split}: {split_file} not found; splits here: {', '.join(have) or 'none'}"
        )
    return split_file


def check_model_spec(spec: str) -> Path | None:
    """Refuse a model that is missing or is a dataset directory; return its path on disk.

    Args:
        spec: A model directory, a ``.gguf`` file, or ``"embedded"`` (the packaged teacher).

    Returns:
        The model directory or ``.gguf`` file; for ``"embedded"``, its converted directory.

    Raises:
        InputError: the path does not exist, is a dataset directory or holds no model.
    """
    from distillation.embedded import EMBEDDED_TEACHER
    from distillation.models import resolve_model_spec

    p = Path(spec).expanduser()
    if spec != EMBEDDED_TEACHER:
        if not p.exists():
            raise InputError(
                f"--model {p}: no such directory; pass a model directory (config.json, weights), "
                f"a .gguf file or '{EMBEDDED_TEACHER}'"
            )
        if p.is_dir() and not (p / "config.json").is_file():
            if (p / "manifest.json").is_file() or any(p.glob("*.jsonl")):
                raise InputError(
                    f"--model {p}: this is a dataset directory (manifest.json, *.jsonl); pass "
                    "it as --data and a model directory (config.json, weights) as --model"
                )
    path, gguf = resolve_model_spec(spec)
    return Path(path) / gguf if gguf else Path(path)


def load_examples(split_file: Path) -> list[QAPair]:
    """Read and validate a split file; errors name the file and line.

    Raises:
        InputError: a line that is not JSON or not a dataset record, or an empty split.
    """
    examples = []
    with open(split_file, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                examples.append(QAPair.model_validate(json.loads(line)))
            except json.JSONDecodeError as e:
                raise InputError(f"{split_file}:{lineno}: not valid JSON ({e.msg})") from None
            except ValidationError as e:
                err = e.errors()[0]
                loc = ".".join(str(x) for x in err["loc"]) or "(record)"
                raise InputError(
                    f"{split_file}:{lineno}: field '{loc}': {err['msg']}; "
                    "re-create the dataset with `distillgraph prepare`"
                ) from None
    if not examples:
        raise InputError(f"{split_file}: no examples; pick another --split")
    return examples


def sample_examples(examples: list[QAPair], max_examples: int | None, seed: int) -> list[QAPair]:
    """A seeded random subset of ``max_examples`` (file order kept), or all of them."""
    if max_examples is None or max_examples >= len(examples):
        return list(examples)
    keep = sorted(random.Random(seed).sample(range(len(examples)), max_examples))
    return [examples[i] for i in keep]


def default_labels(specs: Sequence[str]) -> list[str]:
    """Labels from directory names, made unique with the parent's name or a number."""
    names = [Path(s).name or str(s) for s in specs]
    out = []
    for i, (spec, name) in enumerate(zip(specs, names, strict=True)):
        if names.count(name) > 1:
            parent = Path(spec).expanduser().resolve().parent.name
            name = f"{parent}/{name}" if parent else f"{name}-{i + 1}"
        while name in out:
            name = f"{name}-{i + 1}"
        out.append(name)
    return out


def find_histories(
    labels: Sequence[str], paths: Sequence[Path | None], explicit: str | Path | None
) -> dict[str, Path]:
    """Training histories to plot: ``explicit`` if given, else any found beside a model dir.

    A model's history is ``<model>/training_history.jsonl`` or, as the trainer writes it, in the
    run directory one level up (``<run>/student`` → ``<run>/training_history.jsonl``).

    Raises:
        InputError: ``explicit`` does not exist.
    """
    if explicit is not None:
        p = Path(explicit).expanduser()
        if not p.is_file():
            raise InputError(f"--history {p}: no such file; pass a {HISTORY_FILENAME}")
        return {"history": p}
    found: dict[str, Path] = {}
    seen: set[Path] = set()
    for label, path in zip(labels, paths, strict=True):
        if path is None or not path.is_dir():
            continue
        for cand in (path / HISTORY_FILENAME, path.parent / HISTORY_FILENAME):
            if cand.is_file() and cand.resolve() not in seen:
                seen.add(cand.resolve())
                found[label] = cand
                break
    return found


def auto_max_new_tokens_by_task(spec: str, examples: Sequence[QAPair]) -> dict[str, int]:
    """Per task: its longest reference answer in ``spec``'s tokens plus slack, capped.

    The default limits: a one-word claim verdict is not given summary room, so a model that
    never stops (an undistilled student) costs what the task needs, not the longest summary.
    """
    from distillation.models import load_tokenizer

    tok = load_tokenizer(spec)
    longest: dict[str, int] = {}
    for ex in examples:
        n = len(tok.encode(ex.answer, add_special_tokens=False))
        longest[ex.task] = max(longest.get(ex.task, 0), n)
    cap = MAX_AUTO_NEW_TOKENS
    return {t: min(n + ANSWER_SLACK_TOKENS, cap) for t, n in sorted(longest.items())}


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def weights_size_bytes(path: Path | None) -> int | None:
    """Bytes of weight files (safetensors, bin, pt, gguf) of a model; None if there are none."""
    if path is None:
        return None
    if path.is_file():
        return path.stat().st_size
    files = [f for f in path.rglob("*") if f.is_file() and f.name.endswith(WEIGHT_SUFFIXES)]
    return sum(f.stat().st_size for f in files) if files else None


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------


def _current_rss() -> int | None:
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        pass
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class PeakMemory:
    """Context manager measuring the peak memory rise while the block runs.

    On CUDA it uses the allocator's peak statistics; on CPU a thread samples the resident set
    size every ``interval`` seconds. ``delta`` is ``None`` when neither is available.
    """

    def __init__(self, device_type: str, interval: float = 0.002):
        self.device_type = device_type
        self.interval = interval
        self.delta: int | None = None
        self.method = "cuda_max_memory_allocated" if device_type == "cuda" else "rss_sampled"
        self._stop = threading.Event()
        self._peak = 0

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            rss = _current_rss()
            if rss is not None and rss > self._peak:
                self._peak = rss

    def __enter__(self) -> PeakMemory:
        gc.collect()
        if self.device_type == "cuda":
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._start = torch.cuda.memory_allocated()
        else:
            self._start = _current_rss()
            self._peak = self._start or 0
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device_type == "cuda":
            import torch

            torch.cuda.synchronize()
            self.delta = int(torch.cuda.max_memory_allocated() - self._start)
            return
        self._stop.set()
        self._thread.join()
        rss = _current_rss()
        if self._start is None or rss is None:
            self.delta = None
            return
        self.delta = int(max(self._peak, rss) - self._start)


@dataclass
class LoadedModel:
    """One model under evaluation and everything measured about it."""

    label: str
    spec: str
    path: Path | None
    role: str
    model: Any = None
    tokenizer: Any = None
    load_s: float = 0.0
    peak_memory_bytes: int | None = None
    memory_method: str = ""
    predictions: dict[str, str] = field(default_factory=dict)
    programs: dict[str, str] = field(default_factory=dict)  # program lines (target: program)
    batched_s: float = 0.0
    batched_answers: int = 0
    batched_tokens: int = 0
    ttft_s: list[float] = field(default_factory=list)
    latency_s: list[float] = field(default_factory=list)
    equal_tokens_s: list[float] = field(default_factory=list)  # EQUAL_NEW_TOKENS each
    new_tokens_b1: int = 0


def _sync(device_type: str) -> None:
    if device_type == "cuda":
        import torch

        torch.cuda.synchronize()


Item = Callable[[QAPair], Any]
EQUAL_NEW_TOKENS = 16  # tokens every model decodes in the equal-work timing


def answer_item(ex: QAPair) -> QAPair:
    """The prompt of the answer target: the pair's context and question."""
    return ex


def program_item(ex: QAPair) -> dict:
    """The prompt of the program target: the pair's program prompt (`data.prompt_messages`)."""
    return {"kind": PROGRAM_KIND, "question": ex.program_input}


def _generate_block(
    m: LoadedModel, block: list[QAPair], max_new_tokens: int | list[int], item: Item = answer_item
) -> list[str]:
    from distillation.generation import generate_answers

    return list(
        generate_answers(
            m.model,
            m.tokenizer,
            [item(ex) for ex in block],
            max_new_tokens=max_new_tokens,
            batch_size=len(block),
        )
    )


def _answer_tokens(tokenizer: PreTrainedTokenizerBase, answers: Sequence[str]) -> int:
    return sum(len(tokenizer.encode(a, add_special_tokens=False)) for a in answers)


def _generate_one_timed(
    m: LoadedModel,
    example: QAPair,
    max_new_tokens: int,
    device_type: str,
    item: Item = answer_item,
    exact_new_tokens: int | None = None,
) -> tuple[float, float | None, int]:
    """Answer one example at batch 1; return (latency s, time to first token s, new tokens).

    ``exact_new_tokens``: decode exactly that many tokens (stop tokens ignored), so models
    whose answers differ in length are timed on equal work.
    """
    import torch
    from transformers import GenerationConfig
    from transformers.generation.streamers import BaseStreamer

    from distillation.data import encode_messages, end_of_turn_id, prompt_messages

    class _FirstToken(BaseStreamer):
        # generate() calls put() once with the prompt, then once per new token.
        def __init__(self) -> None:
            self.calls = 0
            self.t_first: float | None = None

        def put(self, value) -> None:
            self.calls += 1
            if self.calls == 2:
                self.t_first = time.perf_counter()

        def end(self) -> None:
            pass

    tok = m.tokenizer
    device = next(m.model.parameters()).device
    it = item(example)
    it = it.model_dump() if hasattr(it, "model_dump") else it
    ids = torch.tensor([encode_messages(tok, prompt_messages(it))], device=device)
    # Same stopping rule as generate_answers: end of the assistant turn, or eos.
    stop = [end_of_turn_id(tok)]
    if tok.eos_token_id is not None and tok.eos_token_id not in stop:
        stop.append(tok.eos_token_id)
    gen_cfg = GenerationConfig(
        max_new_tokens=exact_new_tokens or max_new_tokens,
        min_new_tokens=exact_new_tokens or 0,
        do_sample=False,
        num_beams=1,
        eos_token_id=stop,
        pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else stop[0],
    )
    streamer = _FirstToken()
    _sync(device_type)
    t0 = time.perf_counter()
    with torch.no_grad():
        out = m.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            generation_config=gen_cfg,
            streamer=streamer,
        )
    _sync(device_type)
    t1 = time.perf_counter()
    ttft = None if streamer.t_first is None else streamer.t_first - t0
    return t1 - t0, ttft, int(out.shape[1] - ids.shape[1])


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="ans", disable=not enabled, leave=False)


# --------------------------------------------------------------------------------------------
# Aggregating
# --------------------------------------------------------------------------------------------


def _summaries(
    rows: list[dict[str, float | None]], seed: int, binary_accuracy: bool
) -> dict[str, dict | None]:
    # Proportions get a Wilson interval, means (F1, ROUGE-L) a bootstrap one; "accuracy" is a
    # proportion unless the group holds summaries (scored by ROUGE-L).
    out = {}
    for key in _METRIC_KEYS:
        proportion = binary_accuracy if key == "accuracy" else key in _PROPORTIONS
        out[key] = metrics.summarize_scores([r[key] for r in rows], seed, proportion=proportion)
    return out


def _value(summary: dict | None) -> float | None:
    return None if summary is None else summary["value"]


def _pct(xs: Sequence[float], q: float) -> float | None:
    import numpy as np

    return float(np.percentile(np.asarray(xs, dtype=float), q)) if xs else None


def _ms_stats(xs: Sequence[float | None]) -> dict[str, float | None]:
    vals = [x * 1000 for x in xs if x is not None]
    return {
        "p50": _pct(vals, 50),
        "p95": _pct(vals, 95),
        "mean": sum(vals) / len(vals) if vals else None,
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _accuracy_block(
    examples: list[QAPair], predictions: dict[str, str], seed: int
) -> tuple[dict, list[dict]]:
    """Score every example; summarize overall, per task and per question type."""
    scores = [metrics.score_example(predictions[ex.id], ex.answer, ex.qtype) for ex in examples]
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        groups["overall", ""].append(i)
        groups["by_task", ex.task].append(i)
        groups["by_qtype", ex.qtype].append(i)

    def summarize(idx: list[int]) -> dict:
        binary = not any(examples[i].qtype in metrics.SUMMARY_TYPES for i in idx)
        return _summaries([scores[i] for i in idx], seed, binary)

    order = {t: i for i, t in enumerate(TASK_OF_TYPE)}
    tasks = sorted(k for kind, k in groups if kind == "by_task")
    qtypes = sorted(
        (k for kind, k in groups if kind == "by_qtype"), key=lambda q: (order.get(q, 99), q)
    )
    return {
        "overall": summarize(groups["overall", ""]),
        "by_task": {t: summarize(groups["by_task", t]) for t in tasks},
        "by_qtype": {q: summarize(groups["by_qtype", q]) for q in qtypes},
    }, scores


def _program_block(examples: list[QAPair], m: LoadedModel) -> dict[str, Any]:
    """Program exact match and the share of programs that ran, overall and per question type."""
    by: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    for ex in examples:
        line = (m.programs.get(ex.id) or "").strip()
        ran = not m.predictions.get(ex.id, "").startswith("(no answer:")
        by[ex.qtype].append((line == ex.program_text, ran))
    rows = [r for v in by.values() for r in v]

    def share(xs: list[tuple[bool, bool]], k: int) -> float:
        return sum(x[k] for x in xs) / len(xs) if xs else 0.0

    return {
        "exact_match": share(rows, 0),
        "runs": share(rows, 1),
        "by_qtype": {q: {"exact_match": share(v, 0), "runs": share(v, 1), "n": len(v)}
                     for q, v in sorted(by.items())},
    }


def _gap_closed(ref: dict, base: dict, cand: dict) -> dict:
    def one(a: dict | None, b: dict | None, c: dict | None) -> float | None:
        if a is None or b is None or c is None:
            return None
        return metrics.gap_closed(a["value"], b["value"], c["value"])

    return {
        "accuracy": one(
            ref["overall"]["accuracy"], base["overall"]["accuracy"], cand["overall"]["accuracy"]
        ),
        "exact_match": one(
            ref["overall"]["exact_match"],
            base["overall"]["exact_match"],
            cand["overall"]["exact_match"],
        ),
        "by_task": {
            t: one(
                ref["by_task"].get(t, {}).get("accuracy"),
                base["by_task"].get(t, {}).get("accuracy"),
                cand["by_task"][t]["accuracy"],
            )
            for t in cand["by_task"]
        },
    }


def _environment(device_type: str, dtype: str) -> dict[str, Any]:
    import torch
    import transformers

    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": device_type,
        "dtype": dtype,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }
    if device_type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(0)
    return env


def package_version() -> str:
    """The installed distillgraph version, or "unknown"."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("distillgraph")
    except PackageNotFoundError:
        return "unknown"


# --------------------------------------------------------------------------------------------
# Phases of one evaluation
# --------------------------------------------------------------------------------------------


@dataclass
class _Plan:
    """Checked inputs: everything is known to exist before any model is loaded."""

    specs: list[str]
    paths: list[Path | None]
    labels: list[str]
    baseline: str | None
    split_file: Path
    histories: dict[str, Path]
    out: Path


def _check_inputs(
    model_dirs: Sequence[str | Path],
    data_dir: str | Path,
    split: str,
    labels: Sequence[str] | None,
    baseline: str | None,
    out_dir: str | Path | None,
    history: str | Path | None,
    numbers: dict[str, tuple[int | None, int]],
) -> _Plan:
    specs = [str(s) for s in model_dirs]
    if not specs:
        raise InputError("--model: give at least one model directory")
    for name, (v, lo) in numbers.items():
        if v is not None and v < lo:
            raise InputError(f"{name} {v}: must be at least {lo}")
    split_file = check_dataset_dir(data_dir, split)
    paths = [check_model_spec(s) for s in specs]
    labels = list(labels) if labels else default_labels(specs)
    if len(labels) != len(specs):
        raise InputError(
            f"--label: {len(labels)} labels for {len(specs)} models; give one per --model"
        )
    if len(set(labels)) != len(labels):
        raise InputError(f"--label: labels must be unique, got {labels}")
    baseline_label = None
    if baseline is not None:
        if baseline in labels:
            baseline_label = baseline
        elif baseline in specs:
            baseline_label = labels[specs.index(baseline)]
        else:
            raise InputError(
                f"--baseline {baseline!r}: not one of the models' labels ({', '.join(labels)})"
            )
        if baseline_label == labels[0]:
            raise InputError(
                "--baseline: the first --model is the reference (teacher); the baseline must be "
                "another model (the undistilled student)"
            )
    base_i = labels.index(baseline_label) if baseline_label else None
    order = [i for i in range(1, len(specs)) if i != base_i]
    order += ([base_i] if base_i is not None else []) + [0]
    out = Path(out_dir).expanduser() if out_dir else split_file.parent.parent / "eval"
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: is a file; pass a directory for the report")
    return _Plan(
        specs=specs,
        paths=paths,
        labels=labels,
        baseline=baseline_label,
        split_file=split_file,
        # A history found in a run dir belongs to the distilled student, not to the teacher
        # or the baseline that may sit beside it: look beside candidates first.
        histories=find_histories([labels[i] for i in order], [paths[i] for i in order], history),
        out=out,
    )


def _load_and_warm_up(
    m: LoadedModel,
    examples: list[QAPair],
    batch_size: int,
    limit: Limit,
    device,
    dtype,
    item: Item = answer_item,
) -> None:
    """Load one model, run one untimed batch-1 and batched generation, record peak memory."""
    from distillation.models import load_model_and_tokenizer

    with PeakMemory(device.type) as mem:
        t0 = time.perf_counter()
        m.model, m.tokenizer = load_model_and_tokenizer(m.spec, dtype=dtype, device=str(device))
        m.load_s = time.perf_counter() - t0
        m.model.eval()
        _generate_one_timed(m, examples[0], limit(examples[0]), device.type, item)
        _generate_block(
            m, examples[:batch_size], [limit(ex) for ex in examples[:batch_size]], item
        )
    m.peak_memory_bytes, m.memory_method = mem.delta, mem.method


def _batched_pass(
    models: list[LoadedModel],
    examples: list[QAPair],
    batch_size: int,
    limit: Limit,
    device_type: str,
    progress: bool,
    item: Item = answer_item,
    execute: Callable[[QAPair, str], str] | None = None,
) -> None:
    """Answer every example with every model; blocks interleave models in rotating order.

    With `execute` (target: program) each generated line is kept in ``m.programs`` and the
    prediction scored is what running it on the table gives (`execute(example, line)`).

    Blocks group examples of one task and similar reference length: a block decodes until its
    longest answer is done, so a summary no longer holds seven one-word answers back.
    """
    ordered = sorted(examples, key=lambda ex: (ex.task, len(ex.answer), len(ex.context)))
    blocks = [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]
    bar = _progress(len(examples) * len(models), "evaluate (batched)", progress)
    for j, block in enumerate(blocks):
        for k in range(len(models)):
            m = models[(j + k) % len(models)]
            _sync(device_type)
            t0 = time.perf_counter()
            answers = _generate_block(m, block, [limit(ex) for ex in block], item)
            _sync(device_type)
            m.batched_s += time.perf_counter() - t0
            m.batched_answers += len(block)
            m.batched_tokens += _answer_tokens(m.tokenizer, answers)
            if execute is not None:
                m.programs.update({ex.id: a for ex, a in zip(block, answers, strict=True)})
                answers = [execute(ex, a) for ex, a in zip(block, answers, strict=True)]
            m.predictions.update({ex.id: a for ex, a in zip(block, answers, strict=True)})
            bar.update(len(block))
    bar.close()


def _latency_pass(
    models: list[LoadedModel],
    examples: list[QAPair],
    limit: Limit,
    device_type: str,
    progress: bool,
    item: Item = answer_item,
) -> None:
    """Time each example at batch 1 with every model, models in rotating order per example."""
    bar = _progress(len(examples) * len(models), "latency (batch 1)", progress)
    for i, ex in enumerate(examples):
        for k in range(len(models)):
            m = models[(i + k) % len(models)]
            lat, ttft, n_new = _generate_one_timed(m, ex, limit(ex), device_type, item)
            m.latency_s.append(lat)
            m.ttft_s.append(ttft)
            m.new_tokens_b1 += n_new
            lat, _, _ = _generate_one_timed(m, ex, limit(ex), device_type, item,
                                            exact_new_tokens=EQUAL_NEW_TOKENS)
            m.equal_tokens_s.append(lat)
            bar.update(1)
    bar.close()


def _model_entry(m: LoadedModel, accuracy: dict, batch_size: int) -> dict[str, Any]:
    lat_total = sum(m.latency_s)
    cost = {
        "params": int(sum(p.numel() for p in m.model.parameters())),
        "size_bytes": weights_size_bytes(m.path),
        "peak_memory_bytes": m.peak_memory_bytes,
        "memory_method": m.memory_method,
        "load_s": m.load_s,
        "ttft_ms": _ms_stats(m.ttft_s),
        "latency_ms": _ms_stats(m.latency_s),
        "latency_n": len(m.latency_s),
        "equal_tokens_ms": _ms_stats(m.equal_tokens_s),
        "equal_new_tokens": EQUAL_NEW_TOKENS,
        "gen_tokens_per_s_b1": m.new_tokens_b1 / lat_total if lat_total > 0 else None,
        "batch_size": batch_size,
        "answers_per_s": m.batched_answers / m.batched_s if m.batched_s > 0 else None,
        "answer_tokens_per_s_batched": m.batched_tokens / m.batched_s if m.batched_s > 0 else None,
        "answer_tokens_batched": m.batched_tokens,
    }
    return {
        "label": m.label,
        "spec": m.spec,
        "path": str(m.path) if m.path is not None else None,
        "role": m.role,
        "accuracy": accuracy,
        "cost": cost,
    }


def _compare(entries: list[dict], histories: dict[str, Path]) -> None:
    """Add ``vs_reference``, ``gap_closed`` and ``history`` to every model entry."""
    ref = entries[0]
    base = next((e for e in entries if e["role"] == "baseline"), None)
    ref_overall = ref["accuracy"]["overall"]
    for e in entries:
        rc, ec, overall = ref["cost"], e["cost"], e["accuracy"]["overall"]
        e["vs_reference"] = {
            "speedup_p50": _ratio(rc["latency_ms"]["p50"], ec["latency_ms"]["p50"]),
            "speedup_equal_tokens_p50": _ratio(rc["equal_tokens_ms"]["p50"],
                                               ec["equal_tokens_ms"]["p50"]),
            "speedup_batched": _ratio(ec["answers_per_s"], rc["answers_per_s"]),
            "param_ratio": _ratio(ec["params"], rc["params"]),
            "size_ratio": _ratio(ec["size_bytes"], rc["size_bytes"]),
            "accuracy_retained": _ratio(
                _value(overall["accuracy"]), _value(ref_overall["accuracy"])
            ),
            "exact_match_retained": _ratio(
                _value(overall["exact_match"]), _value(ref_overall["exact_match"])
            ),
        }
        e["gap_closed"] = (
            _gap_closed(ref["accuracy"], base["accuracy"], e["accuracy"])
            if base is not None and e["role"] == "candidate"
            else None
        )
        e["history"] = str(histories[e["label"]]) if e["label"] in histories else None


def _predictions_rows(
    examples: list[QAPair], models: list[LoadedModel], scores: dict[str, list[dict]]
) -> list[dict]:
    return [
        {
            "id": ex.id,
            "task": ex.task,
            "qtype": ex.qtype,
            "question": ex.question,
            "reference": ex.answer,
            "predictions": {m.label: m.predictions[ex.id] for m in models},
            **(
                {"program": ex.program_text,
                 "programs": {m.label: m.programs.get(ex.id) for m in models}}
                if any(m.programs for m in models)
                else {}
            ),
            "scores": {m.label: scores[m.label][i] for m in models},
        }
        for i, ex in enumerate(examples)
    ]


# --------------------------------------------------------------------------------------------
# The API
# --------------------------------------------------------------------------------------------


def evaluate_models(
    model_dirs: Sequence[str | Path],
    data_dir: str | Path,
    split: str = "test",
    *,
    labels: Sequence[str] | None = None,
    baseline: str | None = None,
    out_dir: str | Path | None = None,
    max_examples: int | None = None,
    batch_size: int = 8,
    max_new_tokens: int | None = None,
    latency_examples: int = 16,
    history: str | Path | None = None,
    device: str = "auto",
    dtype: str = "auto",
    seed: int = 0,
    progress: bool = True,
    write: bool = True,
    update_model_cards: bool = True,
    target: str = "auto",
) -> dict[str, Any]:
    """Evaluate models side by side on one split and (by default) write the report.

    Args:
        model_dirs: Model directories (or ``.gguf`` files, or ``"embedded"``). The first is the
            reference (normally the teacher); speedup and size ratios are taken against it.
        data_dir: Dataset directory from ``distillgraph prepare``.
        split: Split file to read (``<data_dir>/<split>.jsonl``).
        labels: Display names, one per model; default: directory names.
        baseline: Label (or model path as given) of the undistilled student; enables "gap
            closed" for every model that is neither reference nor baseline.
        out_dir: Where the report goes; default ``<data_dir>/../eval``.
        max_examples: Evaluate a seeded random subset of this many examples.
        batch_size: Batch size of the accuracy pass (and of the throughput figures).
        max_new_tokens: Generation limit per answer; ``None``: per task, the longest reference
            answer of that task's evaluated examples in the first model's tokens, plus
            `ANSWER_SLACK_TOKENS` (so long summaries are not cut), at most
            `MAX_AUTO_NEW_TOKENS` (the report's ``config.max_new_tokens`` is then a dict).
        latency_examples: Examples timed at batch 1 (each by every model).
        history: A ``training_history.jsonl`` to plot; default: any found next to a model.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        dtype: ``"auto"`` (float32 on CPU, bfloat16 on GPU), ``"float32"``, ``"bfloat16"``...
        seed: Seed for the subset, torch and the bootstrap intervals.
        progress: Show progress bars.
        write: Write report.json, report.md, predictions.jsonl and plots to ``out_dir``.
        update_model_cards: Put the headline table into each candidate's README.md.
        target: ``"program"``: each model writes the pair's program (its program prompt) and
            the answer scored is what the table computes from it, as the agent graph does;
            program exact match and the share of programs that run are reported beside it.
            ``"answer"``: the model answers from the pair's context. ``"auto"``: program when
            every evaluated pair carries a program target.

    Returns:
        The report (the content of ``report.json``).

    Raises:
        InputError: a missing or wrong-kind dataset/model directory, bad labels or settings.
    """
    import torch

    from distillation.models import resolve_device, resolve_dtype

    plan = _check_inputs(
        model_dirs,
        data_dir,
        split,
        labels,
        baseline,
        out_dir,
        history,
        {
            "--batch-size": (batch_size, 1),
            "--max-new-tokens": (max_new_tokens, 1),
            "--latency-examples": (latency_examples, 0),
            "--max-examples": (max_examples, 1),
        },
    )
    all_examples = load_examples(plan.split_file)
    auto_tokens = max_new_tokens is None
    examples = sample_examples(all_examples, max_examples, seed)
    limits: int | dict[str, int] = (
        auto_max_new_tokens_by_task(plan.specs[0], examples)
        if max_new_tokens is None
        else max_new_tokens
    )

    if target not in ("auto", "program", "answer"):
        raise InputError(f"--target {target!r}: use program, answer or auto")
    use_programs = target == "program" or (
        target == "auto" and all(ex.program_text and ex.program_input for ex in examples)
    )
    item: Item = answer_item
    execute = None
    if use_programs:
        if not all(ex.program_text and ex.program_input for ex in examples):
            raise InputError(
                "--target program: the split has pairs without a program target; re-create the "
                "dataset with `distillgraph prepare`"
            )
        reader = ProgramReader(dataset_tables(plan.split_file.parent))
        item = program_item

        def execute(ex: QAPair, line: str) -> str:
            done = reader.run(ex.provenance.table, ex.question, line)
            return done.answer if done.answer is not None else f"(no answer: {done.error})"

        if max_new_tokens is None:
            limits = PROGRAM_MAX_NEW_TOKENS

    def limit(ex: QAPair) -> int:
        return limits[ex.task] if isinstance(limits, dict) else limits
    dev = resolve_device(device)
    dtype_name = str(resolve_dtype(dtype, dev)).removeprefix("torch.")
    torch.manual_seed(seed)
    models = [
        LoadedModel(
            label=lab,
            spec=spec,
            path=path,
            role="reference" if i == 0 else "baseline" if lab == plan.baseline else "candidate",
        )
        for i, (lab, spec, path) in enumerate(zip(plan.labels, plan.specs, plan.paths, strict=True))
    ]

    for m in models:
        _load_and_warm_up(m, examples, batch_size, limit, dev, dtype, item)
    _batched_pass(models, examples, batch_size, limit, dev.type, progress, item, execute)
    _latency_pass(models, examples[:latency_examples], limit, dev.type, progress, item)

    entries, scores = [], {}
    for m in models:
        accuracy, scores[m.label] = _accuracy_block(examples, m.predictions, seed)
        entry = _model_entry(m, accuracy, batch_size)
        if use_programs:
            entry["program"] = _program_block(examples, m)
        entries.append(entry)
    _compare(entries, plan.histories)

    qtype_counts: dict[str, int] = defaultdict(int)
    for ex in examples:
        qtype_counts[ex.qtype] += 1
    data_path = plan.split_file.parent
    report: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "distillgraph_version": package_version(),
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "config": {
            "models": plan.specs,
            "labels": plan.labels,
            "reference": plan.labels[0],
            "baseline": plan.baseline,
            "data": str(data_path),
            "split": split,
            "out": str(plan.out),
            "max_examples": max_examples,
            "batch_size": batch_size,
            "max_new_tokens": limits,
            "max_new_tokens_auto": auto_tokens,
            "latency_examples": latency_examples,
            "history": str(history) if history else None,
            "device": device,
            "dtype": dtype,
            "seed": seed,
            "target": "program" if use_programs else "answer",
        },
        "dataset": {
            "dir": str(data_path),
            "split": split,
            "manifest_sha256": file_sha256(data_path / "manifest.json"),
            "split_sha256": file_sha256(plan.split_file),
            "n_split": len(all_examples),
            "n_examples": len(examples),
            "qtype_counts": dict(qtype_counts),
        },
        "environment": _environment(dev.type, dtype_name),
        "definitions": {
            "accuracy": metrics.HEADLINE_DOC,
            "gap_closed": GAP_CLOSED_DOC,
            "timing": TIMING_DOC,
            "confidence_intervals": CI_DOC,
            "peak_memory": MEMORY_DOC,
        },
        "models": entries,
        "histories": {k: str(v) for k, v in plan.histories.items()},
        "model_cards_updated": [],
    }

    if write:
        from distillation.report import update_model_card, write_report

        if update_model_cards:
            for m in models:
                if m.role == "candidate" and m.path is not None and m.path.is_dir():
                    report["model_cards_updated"].append(str(update_model_card(m.path, report)))
        write_report(
            report,
            plan.out,
            predictions=_predictions_rows(examples, models, scores),
            histories=plan.histories,
        )
    for m in models:  # free the weights before returning
        m.model = None
    gc.collect()
    return report
