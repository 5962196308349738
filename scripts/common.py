"""What the scripts share: the offline environment, the data beside the checkout, the model shapes.

The scripts run as ``python scripts/<name>.py``, which puts ``scripts/`` on ``sys.path``; one
imported by its file path (the tests do) puts its own folder there before ``import common``.
Importing this module imports neither torch nor lm-eval.
"""

from __future__ import annotations

import os
from pathlib import Path

# ---- offline environment ------------------------------------------------------------------------

# No hub or data set downloads, no tokenizer-parallelism warnings after a fork.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "TOKENIZERS_PARALLELISM": "false"}


def go_offline() -> None:
    """Make this process offline by default (variables already set win). Call it before the
    first import of torch, transformers or datasets: they read these at import."""
    for name, value in OFFLINE_ENV.items():
        os.environ.setdefault(name, value)


def offline_env(**extra: str) -> dict[str, str]:
    """This process's environment with the offline variables set (and ``extra``), for a child."""
    return dict(os.environ, **OFFLINE_ENV, **extra)


# ---- data ---------------------------------------------------------------------------------------

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"  # ../shared/data beside the checkout
# The benchmark data: ../shared/data, or $LM_EVAL_ERANK_BENCH_DATA (a copy with the same layout, e.g. on a GPU machine)
DATA = Path(os.environ.get("LM_EVAL_ERANK_BENCH_DATA") or SHARED_DATA)
HF_SCHEMA_FILES = {
    "piqa": "piqa_validation.jsonl",
    "openbookqa": "openbookqa_test.jsonl",
    "winogrande": "winogrande_validation.jsonl",
}


def tokenizer_corpus() -> tuple[list[str], str]:
    """Prose to train the tokenizer on (Tiny Shakespeare paragraphs, else the example texts)."""
    from lm_eval_erank.testing import tiny

    path = DATA / "tinyshakespeare" / "input.txt"
    if path.is_file():
        return [p for p in path.read_text(encoding="utf-8").split("\n\n") if p.strip()], str(path)
    return tiny.gold_texts(), "lm_eval_erank.testing.tiny.gold_texts()"


# ---- model shapes ---------------------------------------------------------------------------------

TOKENIZER_VOCAB = 8192
# name -> (architecture, config keyword arguments); vocab None = the tokenizer's size.
SHAPES = {
    "small": ("gpt2", {"n_embd": 256, "n_layer": 4, "n_head": 4, "n_positions": 1024, "vocab_size": None}),
    "gpt2-small": ("gpt2", {"n_embd": 768, "n_layer": 12, "n_head": 12, "n_positions": 1024, "vocab_size": 50257}),
    "opt-125m": ("opt", {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "ffn_dim": 3072,
                         "word_embed_proj_dim": 768, "max_position_embeddings": 2048, "vocab_size": 50272}),
    "opt-1.3b": ("opt", {"hidden_size": 2048, "num_hidden_layers": 24, "num_attention_heads": 32, "ffn_dim": 8192,
                         "word_embed_proj_dim": 2048, "max_position_embeddings": 2048, "vocab_size": 50272}),
}


def build_shape(shape: str, directory: Path, seed: int, dtype, save_to: Path | None = None):
    """An untrained model of ``shape`` (``tiny.build_tiny_model`` with the shape's config,
    seeded, in ``dtype``) and its byte-level BPE tokenizer (``TOKENIZER_VOCAB`` tokens trained on
    ``tokenizer_corpus()``, saved to ``directory / "tokenizer"``); both saved to ``save_to``
    when given. Returns (model, tokenizer, the config keyword arguments, the corpus's source)."""
    from lm_eval_erank.testing import tiny

    arch, config_kwargs = SHAPES[shape]
    corpus, source = tokenizer_corpus()
    tokenizer = tiny.train_tokenizer(corpus, directory / "tokenizer", add_bos=arch == "opt",
                                     vocab_size=TOKENIZER_VOCAB)
    config_kwargs = dict(config_kwargs, vocab_size=config_kwargs["vocab_size"] or len(tokenizer))
    model = tiny.build_tiny_model(arch, tokenizer, save_to, seed=seed, dtype=dtype, **config_kwargs)
    return model, tokenizer, config_kwargs, source
