"""One measurement, from texts to a :class:`~lm_eval_erank.core.result.DiffErankResult`: the
function users call (``diff_erank``) and the one path it, the harness and the training
callback share (``pair_statistics``) (no lm-eval).

    from lm_eval_erank import diff_erank
    result = diff_erank(model, tokenizer, texts, layers="paper", batch_size=16)
    result.diff_erank(), result.reduced_loss(), result.per_text()[0]

``model`` is an already-loaded transformers causal LM (M1); M0 is its random twin (built
from its config, or passed in), or its true initial state loaded with ``m0_pretrained``. Per
text: the entropy of chosen hidden states and the mean token loss under both models; over the
texts: both eRank aggregations, Diff-eRank, the ratio, the reduced loss and the counts (see
docs/metrics.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .checks import (check_bool, check_int, check_m0_pretrained, check_model, check_positive_float, check_texts,
                     check_tokenizer, parse_layers)
from .m0_cache import DEFAULT_CACHE, resolve_cache
from .representations import num_layers, text_statistics
from .pretrained_m0 import PretrainedM0
from .progress import Progress, text_progress
from .result import DiffErankResult, combine
from .twin_provider import TwinProvider, make_twins, twins_statistics

# M0's seed when none is given: lm-eval's default torch seed (``--seed``), which is what the
# harness's ``m0_seed`` defaults to (the torch seed lm-eval set), so both give the same M0.
DEFAULT_M0_SEED = 1234


def encode_texts(tokenizer, texts: Sequence[str], max_length: int, add_bos_token: bool = False):
    """Token ids per text with the tokenizer's default special tokens, cut to ``max_length``
    (the first tokens are kept). ``add_bos_token`` prepends BOS where the tokenizer does not.

    Returns (ids: list[list[int]], truncated: list[bool]).
    """
    encoded = tokenizer(list(texts))["input_ids"] if texts else []
    bos = tokenizer.bos_token_id
    ids, truncated = [], []
    for seq in encoded:
        seq = list(seq)
        if add_bos_token and bos is not None and (not seq or seq[0] != bos):
            seq = [bos] + seq
        truncated.append(len(seq) > max_length)
        ids.append(seq[:max_length])
    return ids, truncated


def pad_token_id(tokenizer) -> int:
    """The id right padding uses: the tokenizer's pad token, else 0 (padding is masked out)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


def default_max_length(model) -> int:
    """The config's context length (``max_position_embeddings`` / ``n_positions``), else 2048."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None) or 2048


def pair_statistics(m1, twin: TwinProvider | Sequence[TwinProvider], token_ids, truncated, batch_size: int,
                    pad_id: int, layers: Sequence[int] = (), progress: Progress | None = None,
                    losses: bool = True, skip_first_tokens: int = 0) -> DiffErankResult:
    """Run M1, then each twin (one after another), over pre-tokenised texts: the one measurement
    the harness, ``diff_erank`` and the training callback share (the callback's twins keep their
    statistics, ``keep_statistics``, so M0 runs at its first evaluation only). ``progress(label)``
    is called at the start of each model's pass; ``skip_first_tokens`` leaves the first positions
    of every text out of the entropies."""
    twins = [twin] if isinstance(twin, TwinProvider) else list(twin)
    s1 = text_statistics(m1, token_ids, batch_size, pad_id, "M1", None if progress is None else progress("M1"),
                         layers, losses, skip_first_tokens)
    s0 = twins_statistics(twins, token_ids, batch_size, pad_id, layers, progress, losses, skip_first_tokens)
    return combine(s1, s0, token_ids, truncated, [t.seed for t in twins], [t.checksum for t in twins])


def _check_twin_source(m0, m0_cache) -> Path | None:
    """The cache directory, after checking that a given twin ``m0`` is not combined with a cache."""
    if m0 is None:
        return resolve_cache(m0_cache)
    check_model(m0, "m0")
    if m0_cache is not DEFAULT_CACHE and resolve_cache(m0_cache) is not None:
        raise ValueError("m0_cache cannot be used with m0=: the cache is keyed by m0_seed, which a given "
                         "twin need not match; pass m0_seed instead of m0, or m0_cache=None")
    return None


def diff_erank(
    model,
    tokenizer,
    texts: Sequence[str],
    *,
    m0_seed: int | None = None,
    m0=None,
    m0_device=None,
    layers="last",
    batch_size: int = 16,
    max_length: int | None = None,
    add_bos_token: bool = False,
    m0_cache: str | Path | None = DEFAULT_CACHE,
    losses: bool = True,
    m0_twins: int = 1,
    progress: bool = True,
    skip_first_tokens: int = 0,
    m0_initializer_range: float | None = None,
    m0_pretrained: str | Path | None = None,
    m0_revision: str | None = None,
) -> DiffErankResult:
    """Diff-eRank of an already-loaded causal LM on ``texts``.

    Args:
        model: M1, a transformers causal LM (in eval mode; its dtype and device are used).
        tokenizer: its tokenizer (default special tokens are added, as the paper does).
        texts: a sequence of strings (not one string); each is cut to ``max_length`` tokens
            (default: the config's ``max_position_embeddings``/``n_positions``).
        m0_seed: seed of the random twin M0 (ignored when ``m0`` is given); default (None) 1234,
            the harness's default (lm-eval's ``--seed``), so both give the same M0; with
            ``m0_twins=K`` the twins' seeds are m0_seed, ..., m0_seed + K - 1.
        m0: an already-built twin to reuse (e.g. across calls); default: built from the config.
        m0_device: where to build M0 (default: M1's device).
        layers: ``last`` | ``paper`` | ``all`` | ``"0:6:12"`` | an int | a sequence of hidden-state indices.
        batch_size: texts per forward.
        add_bos_token: prepend BOS where the tokenizer does not add it.
        m0_cache: a directory for M0's per-text results (see m0_cache.py); default: the
            harness's (``$LM_EVAL_ERANK_CACHE/m0``, else ``~/.cache/lm_eval_erank/m0``); None or
            ``"off"``: no cache. Not used with ``m0`` (the cache is keyed by the seed).
        losses: also compute the token losses (reduced loss); False skips the LM head.
        m0_twins: K, the number of random twins (run one after another): every value that
            involves M0 is the mean over twins, and ``erank_m0_twin_sd()`` their spread.
        progress: show a progress bar over the texts (stderr), one pass per model; False: silent.
        skip_first_tokens: k (default 0, the paper's), the first k positions of every text left
            out of the eRank statistics (they still condition the rest; the losses keep them): the
            first token can carry most of a middle layer's spread
            (docs/negative-diff-erank.md). A text needs k + 2 tokens for an eRank.
        m0_initializer_range: the twins' init std instead of the config's ``initializer_range``
            (e.g. the published value of a model loaded from a GGUF file, whose metadata has none).
        m0_pretrained: a hub name or directory to load M0 from instead of drawing a twin (the
            model's true initial state, e.g. Pythia's step-0 checkpoint), with ``m0_revision``
            (e.g. ``"step0"``): ``type(model).from_pretrained`` in M1's dtype, on ``m0_device``. It
            must have M1's architecture (same model type, every parameter name and shape), checked
            before any forward; not with ``m0``, ``m0_seed``, ``m0_twins`` > 1 or
            ``m0_initializer_range``. Its M0-cache entry is keyed by its weights' checksum.

    Raises TypeError/ValueError naming the argument for input it cannot use (e.g. a single
    string as ``texts``, an empty list, a layer outside [0, L]), before any forward.

    >>> result = diff_erank(model, tokenizer, ["The cat sat on the mat.", "A second text."], m0_cache=None,
    ...                     progress=False)
    >>> result.excluded, len(result.per_text()), result.erank_m1() >= 1.0
    (0, 2, True)
    """
    check_model(model)
    check_tokenizer(tokenizer)
    texts = check_texts(texts)
    batch_size = check_int("batch_size", batch_size)
    m0_twins = check_int("m0_twins", m0_twins)
    max_length = check_int("max_length", max_length, allow_none=True)
    add_bos_token, losses = check_bool("add_bos_token", add_bos_token), check_bool("losses", losses)
    progress = check_bool("progress", progress)
    skip_first_tokens = check_int("skip_first_tokens", skip_first_tokens, 0)
    m0_initializer_range = check_positive_float("m0_initializer_range", m0_initializer_range, allow_none=True)
    source = check_m0_pretrained(m0_pretrained, m0_revision, m0_seed=m0_seed, m0_twins=m0_twins,
                                 m0_initializer_range=m0_initializer_range, m0=m0)
    cache_dir = _check_twin_source(m0, m0_cache)
    was_training = model.training
    model.eval()
    try:
        wanted = parse_layers(layers, num_layers(model))
        pretrained = None if source is None else PretrainedM0(*source)
        seed = None if pretrained is not None else DEFAULT_M0_SEED if m0_seed is None else m0_seed
        twins = make_twins(model, seed, m0_twins, device=m0_device, m0=m0, cache_dir=cache_dir,
                           initializer_range=m0_initializer_range, pretrained=pretrained)
        ids, truncated = encode_texts(tokenizer, texts, max_length or default_max_length(model), add_bos_token)
        with text_progress(len(ids), "Diff-eRank", enabled=progress) as bar:
            return pair_statistics(model, twins, ids, truncated, batch_size, pad_token_id(tokenizer), wanted,
                                   progress=bar, losses=losses, skip_first_tokens=skip_first_tokens)
    finally:
        model.train(was_training)
