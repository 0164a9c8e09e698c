"""Tiny random test models: a Hugging Face directory with a seconds-fast Llama and its tokenizer.

`build_tiny_model_dir` writes a 2-4 layer random Llama whose byte-level BPE tokenizer is trained
on the fly, with SmolLM2's special tokens and a ChatML chat template, so every unit test (and the
``tiny`` teacher of a test run) exercises the same code paths as the real model, offline and in
about a second. torch, tokenizers and transformers are imported lazily.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from data_loaders.io import atomic_dir

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
