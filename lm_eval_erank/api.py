"""Diff-eRank outside the harness: the public Python front (the names are defined in ``core/``).

    from lm_eval_erank import diff_erank
    result = diff_erank(model, tokenizer, texts, layers="paper", batch_size=16)
    result.diff_erank(), result.reduced_loss(), result.per_text()[0]

``pair_statistics`` is the one path the harness, the callback and ``diff_erank`` share.
"""

from .core.checks import check_int, check_model, check_texts, check_tokenizer
from .core.m0_cache import DEFAULT_CACHE, resolve_cache
from .core.measure import DEFAULT_M0_SEED, default_max_length, diff_erank, encode_texts, pair_statistics
from .core.result import DiffErankResult, combine
from .core.twin_provider import TwinProvider, make_twins, twins_statistics

__all__ = [
    "DEFAULT_CACHE", "DEFAULT_M0_SEED", "DiffErankResult", "TwinProvider", "check_int", "check_model", "check_texts",
    "check_tokenizer", "combine", "default_max_length", "diff_erank", "encode_texts", "make_twins",
    "pair_statistics", "resolve_cache", "twins_statistics",
]
