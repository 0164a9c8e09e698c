"""Round trip and model card of an exported GGUF: does the file compute what the student does?

`check_roundtrip` loads the GGUF back with transformers (``gguf_file=``, which undoes llama.cpp's
layout) and compares it with the source model directory: tokenizer ids of the rendered prompts,
the chat template, the logits of one prompt and greedy answers. `write_gguf_card` writes the
folder's ``README.md`` model card with those figures, so what is pushed to the Hub says what was
measured. torch and transformers are imported lazily.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from distillation.export import read_model_card, write_model_card
from distillation.gguf_export import GgufExport

# --------------------------------------------------------------------------------------------
# Round trip
# --------------------------------------------------------------------------------------------

DEFAULT_CHECK_MESSAGES: list[list[dict]] = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "How many rows have a price greater than 5?"}],
    [{"role": "system", "content": "Answer in one word."},
     {"role": "user", "content": "Which city has the highest total?"}],
    [{"role": "user", "content": "Write the numbers 1 2 3 and 2024-01-31."}],
]
"""Chats the round trip uses when no dataset is given."""


def dataset_messages(data_dir: Path, split: str = "test", n: int = 30) -> tuple[list, str]:
    """The first ``n`` prompts of a dataset split, as the student sees them.

    A dataset whose pairs carry program targets gives program prompts (what the agent graph asks
    the student), any other the answer prompts (`distillation.data.prompt_messages`).

    Returns:
        ``(chats, description)``, e.g. ``(…, "program prompts of runs/cars/data/test.jsonl")``.

    Raises:
        InputError: a missing directory or split, or malformed pairs (names the file and line).
    """
    from data_loaders.errors import InputError
    from distillation.data import program_records, prompt_messages, read_split

    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InputError(f"--data {data_dir}: not a directory; pass a dataset directory from "
                         "`distillgraph prepare`")
    path = data_dir / f"{split}.jsonl"
    records = read_split(path)
    kind = "answer"
    if all(r.get("program_text") and r.get("program_input") for r in records):
        records, kind = program_records(records), "program"
    chosen = records[:n]
    return [prompt_messages(r) for r in chosen], f"{kind} prompts of {path}"


def check_roundtrip(
    model_dir: Path,
    gguf_path: Path,
    messages: Sequence[list[dict]] | None = None,
    *,
    max_new_tokens: int = 32,
    batch_size: int = 8,
) -> dict:
    """Load ``gguf_path`` with transformers (``gguf_file=``) and compare it with ``model_dir``.

    Args:
        model_dir: the source model directory.
        gguf_path: the exported file.
        messages: chats to prompt both with (default `DEFAULT_CHECK_MESSAGES`).
        max_new_tokens: longest greedy answer.
        batch_size: prompts per forward.

    Returns:
        ``n`` prompts; ``answers_agree`` (greedy answers equal) and ``agreement`` (their share);
        ``token_ids_equal`` (both tokenizers give the same ids for every rendered prompt);
        ``chat_template_equal``; ``max_abs_logit_diff`` on the first prompt;
        ``same_prefix_chars`` (per differing answer, how many leading characters still agree);
        ``disagreements`` (up to 5 examples).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from distillation.embedded import ensure_pad_token
    from distillation.generation import generate_answers

    chats = list(messages) if messages is not None else DEFAULT_CHECK_MESSAGES
    gguf_path = Path(gguf_path)
    src_tok = AutoTokenizer.from_pretrained(model_dir)
    src = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    kw = {"gguf_file": gguf_path.name}
    back_tok = AutoTokenizer.from_pretrained(gguf_path.parent, **kw)
    back = AutoModelForCausalLM.from_pretrained(gguf_path.parent, dtype=torch.float32, **kw).eval()
    for tok in (src_tok, back_tok):
        ensure_pad_token(tok)

    texts = [src_tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
             for m in chats]
    ids_src = [src_tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    ids_back = [back_tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    with torch.no_grad():
        first = torch.tensor([ids_src[0]])
        diff = (src(first).logits - back(first).logits).abs().max().item()
    answers_src = generate_answers(src, src_tok, ids_src, max_new_tokens=max_new_tokens,
                                   batch_size=batch_size)
    answers_back = generate_answers(back, back_tok, ids_back, max_new_tokens=max_new_tokens,
                                    batch_size=batch_size)
    agree = [a == b for a, b in zip(answers_src, answers_back, strict=True)]
    return {
        "n": len(chats),
        "answers_agree": sum(agree),
        "agreement": sum(agree) / len(chats) if chats else None,
        "token_ids_equal": ids_src == ids_back,
        "chat_template_equal": back_tok.chat_template == src_tok.chat_template,
        "max_abs_logit_diff": diff,
        # Where answers part: a late split (near-tied tokens after a long common prefix) is
        # rounding; an early one points at the file.
        "same_prefix_chars": [
            len(os.path.commonprefix([a, b]))
            for a, b, ok in zip(answers_src, answers_back, agree, strict=True) if not ok
        ],
        "disagreements": [
            {"prompt": texts[i][-200:], "source": answers_src[i], "gguf": answers_back[i]}
            for i, ok in enumerate(agree) if not ok
        ][:5],
    }


# --------------------------------------------------------------------------------------------
# Model card
# --------------------------------------------------------------------------------------------


def _fmt_bytes(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def write_gguf_card(export: GgufExport, model_dir: Path, roundtrip: Mapping | None) -> Path:
    """Write ``README.md`` + ``model_card.json`` beside the GGUF.

    The card is the student's (its evaluation tables describe the source model), plus how the
    file was made, how to run it, and the round trip measured by `check_roundtrip`.

    Returns:
        The README path.
    """
    card = dict(read_model_card(model_dir))
    name = export.path.name
    card["title"] = f"{card.get('title', model_dir.name)} (GGUF, {export.quant})"
    card["library_name"] = "gguf"
    card["tags"] = ["gguf", "llama.cpp", "ollama"]
    card["summary"] = (
        f"`{name}` is the distilled student `{model_dir.name}` in llama.cpp's GGUF format "
        f"({export.quant}), with its tokenizer and chat template, for llama.cpp, Ollama, LM "
        "Studio or transformers (`gguf_file=`). Results in the tables below were measured on "
        "the source model; the round trip compares this file with it."
    )
    types = ", ".join(f"{n} {t}" for t, n in sorted(export.tensor_types.items()))
    sections = dict(card.get("sections") or {})
    sections["GGUF file"] = "\n".join([
        f"- **file:** `{name}` ({_fmt_bytes(export.size_bytes)}), architecture `llama`",
        f"- **weights:** {export.quant} ({types} tensors; norms stay F32)",
        "",
        "```bash",
        f"llama-cli -m {name} -cnv        # llama.cpp",
        "ollama create student -f Modelfile && ollama run student",
        "```",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        f'model = AutoModelForCausalLM.from_pretrained(".", gguf_file="{name}")',
        f'tokenizer = AutoTokenizer.from_pretrained(".", gguf_file="{name}")',
        "```",
    ])
    if roundtrip:
        rows = [
            {"check": "greedy answers equal",
             "result": f"{roundtrip['answers_agree']}/{roundtrip['n']} "
                       + roundtrip.get("source", "prompts")},
            {"check": "tokenizer ids equal", "result": str(roundtrip["token_ids_equal"])},
            {"check": "chat template kept", "result": str(roundtrip["chat_template_equal"])},
            {"check": "max |logit difference| (first prompt)",
             "result": f"{roundtrip['max_abs_logit_diff']:.3g}"},
        ]
        header = "| check | result |\n|---|---|\n"
        sections["Round trip"] = (
            "Loaded back with transformers (`gguf_file=`) and compared with the source model:"
            "\n\n" + header + "\n".join(f"| {r['check']} | {r['result']} |" for r in rows)
        )
    card["sections"] = sections
    write_model_card(export.path.parent, card)
    return export.path.parent / "README.md"
