"""``!function`` helpers of the representation-only tasks (``erank_lm`` group).

Referenced from the task YAMLs by dotted path (``!function lm_eval_erank.task_utils.NAME``),
never by a path relative to the YAML, so this module is imported once.

- ``dolly_docs``: ``process_docs`` of ``erank_dolly``: the records with a non-empty ``context``.
- ``paper_sample``: ``process_docs`` of ``erank_wikipedia`` / ``erank_openwebtext2``: a seeded
  random sample of 10,000 documents, drawn as the reference code of the paper does.
- ``wikitext_text``: ``erank_text`` of ``erank_wikitext``: the document text lm-eval's
  ``wikitext`` task scores (its detokenised ``page``).

lm-eval applies ``process_docs`` to the evaluation split (and to any other split it loads).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from . import lm_eval_internals as internals

# The reference code of the paper (waltonfuture/Diff-eRank, utils/diff_erank_dataset.py) draws
# its wikipedia and openwebtext2 samples with
#     random.seed(123); random_indices = random.sample(range(len(split)), 10000)
# and evaluates the documents in that order. paper_sample() draws exactly those indices, so on
# the same split (suolyer/pile_openwebtext2 validation) it selects the paper's documents.
SAMPLE_SIZE = 10_000
SAMPLE_SEED = 123


def sample_indices(n_docs: int, size: int = SAMPLE_SIZE, seed: int = SAMPLE_SEED) -> list[int]:
    """``random.Random(seed).sample(range(n_docs), min(size, n_docs))``.

    Depends on nothing but its arguments (a private generator: the global ``random`` state,
    numpy and torch seeds are neither read nor changed). With fewer than ``size`` documents
    it returns all of them, in a seeded order.
    """
    if n_docs < 0 or size < 0:
        raise ValueError(f"sample_indices: n_docs and size must be >= 0 (got {n_docs}, {size})")
    return random.Random(seed).sample(range(n_docs), min(size, n_docs))


def sample_docs(docs, size: int = SAMPLE_SIZE, seed: int = SAMPLE_SEED):
    """The seeded sample of ``docs`` (a ``datasets.Dataset`` or a sequence), in sample order."""
    indices = sample_indices(len(docs), size, seed)
    if hasattr(docs, "select"):
        return docs.select(indices)
    return [docs[i] for i in indices]


def paper_sample(dataset):
    """``process_docs``: 10,000 documents drawn with seed 123 (all of them if fewer)."""
    return sample_docs(dataset)


def has_context(doc: dict[str, Any]) -> bool:
    """The reference keeps a dolly record when ``len(context) > 0``."""
    context = doc.get("context")
    return context is not None and len(context) > 0


def dolly_docs(dataset):
    """``process_docs`` of ``erank_dolly``: the records whose ``context`` is not empty."""
    if hasattr(dataset, "filter"):
        return dataset.filter(has_context)
    return [doc for doc in dataset if has_context(doc)]


def wikitext_text(doc: dict[str, Any]) -> str:
    """``erank_text`` of ``erank_wikitext``: lm-eval's ``wikitext_detokenizer(doc)`` (of ``page``),
    so the text is exactly the one its ``wikitext`` task scores."""
    return internals.wikitext_detokenizer()(doc)


__all__: Sequence[str] = (
    "SAMPLE_SEED", "SAMPLE_SIZE", "dolly_docs", "has_context", "paper_sample", "sample_docs",
    "sample_indices", "wikitext_text",
)
