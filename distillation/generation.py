"""Greedy answer generation, shared by validation, `distillgraph evaluate` and the agent graph.

`generate_answers` feeds the model exactly the prompt it was trained on (`data.encode_prompt`),
decodes greedily (no sampling, so no sampling temperature), and stops at the chat template's
end-of-turn token or eos. Prompts are left-padded and batched by length to waste little work.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from distillation.data import encode_messages, end_of_turn_id, prompt_messages

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def _prompt_ids(tokenizer: PreTrainedTokenizerBase, item: Any) -> list[int]:
    if hasattr(item, "model_dump"):  # QAPair
        item = item.model_dump()
    if isinstance(item, Mapping):
        return encode_messages(tokenizer, prompt_messages(item))
    if isinstance(item, str):  # an already rendered prompt (chat template applied)
        return tokenizer(item, add_special_tokens=False)["input_ids"]
    if isinstance(item, Sequence) and all(isinstance(i, int) for i in item):
        return list(item)
    raise TypeError(
        "generate_answers takes pairs (dicts/QAPair with context and question), rendered prompt "
        f"strings or lists of token ids; got {type(item).__name__}"
    )


def generate_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs_or_prompts: Sequence[Any],
    *,
    max_new_tokens: int | Sequence[int] = 32,
    batch_size: int = 8,
) -> list[str]:
    """Greedily answer each pair or prompt; returns the decoded answers in input order.

    Args:
        model: a causal LM (eval/train mode is restored afterwards).
        tokenizer: its tokenizer (must have a chat template for pairs).
        pairs_or_prompts: pairs (``QAPair`` or dicts with ``context`` and ``question``; a
            dict with ``kind: "program"`` gets the program prompt, see
            `data.prompt_messages`), rendered prompt strings, or lists of prompt token ids.
        max_new_tokens: longest answer in tokens, for all inputs or one limit per input
            (batches then group similar limits and decode up to their largest).
        batch_size: prompts per forward.

    Returns:
        One stripped answer string per input.
    """
    import torch
    from transformers import GenerationConfig

    prompts = [_prompt_ids(tokenizer, p) for p in pairs_or_prompts]
    if not prompts:
        return []
    stop = [end_of_turn_id(tokenizer)]
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in stop:
        stop.append(tokenizer.eos_token_id)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop[0]
    if isinstance(max_new_tokens, int):
        limits = [max_new_tokens] * len(prompts)
    else:
        limits = [int(n) for n in max_new_tokens]
        if len(limits) != len(prompts):
            raise ValueError(f"{len(limits)} max_new_tokens for {len(prompts)} inputs")
    device = next(model.parameters()).device
    order = sorted(range(len(prompts)), key=lambda i: (limits[i], len(prompts[i])))
    answers: list[str] = [""] * len(prompts)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            width = max(len(prompts[i]) for i in idx)
            ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):  # left padding: generation continues at the edge
                ids[row, width - len(prompts[i]) :] = torch.tensor(prompts[i])
                mask[row, width - len(prompts[i]) :] = 1
            # A fresh config: the model's own may ask for sampling (temperature, top_p).
            gen_config = GenerationConfig(
                max_new_tokens=max(limits[i] for i in idx),
                do_sample=False,
                eos_token_id=stop,
                pad_token_id=pad_id,
            )
            with torch.no_grad():
                out = model.generate(
                    input_ids=ids.to(device),
                    attention_mask=mask.to(device),
                    generation_config=gen_config,
                )
            for row, i in enumerate(idx):
                new = out[row, width:].tolist()
                cut = next((j for j, t in enumerate(new) if t in stop), len(new))
                answers[i] = tokenizer.decode(new[:cut], skip_special_tokens=True).strip()
    finally:
        model.train(was_training)
    return answers
