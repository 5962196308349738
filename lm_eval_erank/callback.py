"""Diff-eRank during training: a ``transformers.TrainerCallback`` (the paper's Appendix C).

    from lm_eval_erank.callback import DiffErankCallback
    trainer.add_callback(DiffErankCallback(trainer, held_out_texts, every_n_steps=500, tokenizer=tokenizer))

Every ``every_n_steps`` optimizer steps (and once before training), the callback computes
Diff-eRank of the model being trained on a fixed held-out text set and logs it through
``trainer.log`` (so every configured logger — TensorBoard, W&B, ... — receives it) as
``{prefix}<name>`` for each metric the table marks ``logged`` (``diff_erank``, ``erank_m1``,
``erank_m0``, ``erank_ratio``, ``reduced_loss``, ``loss_m1`` unless ``losses=False``,
``erank_m0_twin_sd`` with ``m0_twins=K`` > 1), and per-layer values with ``layers=``. Full
precision is in ``trainer.state.log_history`` and :attr:`DiffErankCallback.history` (the
Trainer's console rounds what it prints).

Each evaluation is the measurement the harness and ``diff_erank`` make (``pair_statistics``).
M0 does not change during training: its side (a random twin of the model's config; each of
the K twins in turn; or the checkpoint ``m0_pretrained`` names) is computed once per run, on
the first evaluation, then freed and its per-text statistics kept; with the M0 cache
(``m0_cache``, on by default like the harness and ``diff_erank``) a restarted or second run
reads it from disk instead. Every later evaluation costs one M1 pass over the texts. Each
evaluation shows a progress bar (cleared when done) and then one line with its values and its
duration (``progress=False``: silent). Runs on the main process only; the model must be whole
there (single process or DDP, not FSDP/ZeRO-3 sharding).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import TrainerCallback

from .core.checks import (check_bool, check_int, check_m0_pretrained, check_model, check_positive_float, check_seed,
                          check_texts, check_tokenizer, parse_layers)
from .core.m0_cache import DEFAULT_CACHE, check_writable, resolve_cache
from .core.measure import DEFAULT_M0_SEED, default_max_length, encode_texts, pad_token_id, pair_statistics
from .core.metrics import TABLE
from .core.pretrained_m0 import PretrainedM0, check_same_architecture
from .core.progress import Progress, text_progress
from .core.representations import num_layers
from .core.result import DiffErankResult
from .core.twin_provider import TwinProvider, make_twins


class DiffErankCallback(TrainerCallback):
    def __init__(self, trainer, texts: Sequence[str], every_n_steps: int = 500, *, tokenizer=None,
                 m0_seed: int | None = None, layers="last", batch_size: int = 16, max_length: int | None = None,
                 prefix: str = "erank/", at_start: bool = True, losses: bool = True, m0_twins: int = 1,
                 m0_cache: str | Path | None = DEFAULT_CACHE, progress: bool = True, skip_first_tokens: int = 0,
                 m0_initializer_range: float | None = None, m0_pretrained: str | Path | None = None,
                 m0_revision: str | None = None):
        """``texts``: the held-out texts (a sequence of strings); ``tokenizer``: default the
        Trainer's (``processing_class``/``tokenizer``); ``m0_cache``: M0's results cache
        directory (default the harness's, ``$LM_EVAL_ERANK_CACHE/m0`` or ``~/.cache/lm_eval_erank/m0``;
        None or ``"off"``: none); ``progress``: a bar and a line per evaluation; ``m0_pretrained``
        (and ``m0_revision``): load M0 from that checkpoint, e.g. the run's own step-0 save, instead
        of drawing a twin; the other options as in ``diff_erank`` (``m0_seed`` default 1234).
        Arguments are checked here, against ``trainer.model`` (a pretrained M0's architecture too),
        not at the first evaluation.

        >>> callback = DiffErankCallback(trainer, ["A held-out text.", "Another one."], every_n_steps=10)
        >>> callback.every_n_steps, callback.texts[0]
        (10, 'A held-out text.')
        """
        every_n_steps = check_int("every_n_steps", every_n_steps)
        self.texts = check_texts(texts, "texts (the held-out texts)")
        batch_size = check_int("batch_size", batch_size)
        max_length = check_int("max_length", max_length, allow_none=True)
        losses, self.progress = check_bool("losses", losses), check_bool("progress", progress)
        self.skip_first_tokens = check_int("skip_first_tokens", skip_first_tokens, 0)
        self.m0_initializer_range = check_positive_float("m0_initializer_range", m0_initializer_range, allow_none=True)
        self.m0_twins = check_int("m0_twins", m0_twins)
        source = check_m0_pretrained(m0_pretrained, m0_revision, m0_seed=m0_seed, m0_twins=self.m0_twins,
                                     m0_initializer_range=self.m0_initializer_range)
        self.m0_pretrained = None if source is None else PretrainedM0(*source)
        m0_seed = None if source is not None else check_seed(DEFAULT_M0_SEED if m0_seed is None else m0_seed)
        self.m0_cache = resolve_cache(m0_cache)
        if self.m0_cache is not None:
            check_writable(self.m0_cache)  # now, not at the first evaluation
        if tokenizer is not None:
            check_tokenizer(tokenizer)
        model = getattr(trainer, "model", None)
        if model is not None:  # else checked at the first evaluation, against the model given there
            check_model(model)
            parse_layers(layers, num_layers(model))
            if self.m0_pretrained is not None:
                check_same_architecture(model, self.m0_pretrained)
        self.trainer = trainer
        self.tokenizer = tokenizer or getattr(trainer, "processing_class", None) or getattr(trainer, "tokenizer", None)
        if self.tokenizer is None:
            raise ValueError("DiffErankCallback needs a tokenizer (pass tokenizer=... or give the Trainer one)")
        self.every_n_steps = every_n_steps
        self.m0_seed, self.layers_spec, self.batch_size = m0_seed, layers, batch_size
        self.max_length, self.prefix, self.at_start = max_length, prefix, at_start
        self.losses = losses
        self._twins: list[TwinProvider] | None = None  # made at the first evaluation; they keep M0's statistics
        self._m0_cache_hits: int | None = None  # texts of the first evaluation read from the M0 cache, once it ran
        self.history: list[tuple[int, dict]] = []

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if self.at_start:
            self._evaluate(state, control, model)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every_n_steps == 0:
            self._evaluate(state, control, model)

    @torch.no_grad()
    def _evaluate(self, state, control, model) -> None:
        if not state.is_world_process_zero:
            return
        start = time.perf_counter()
        m0_was_known = self._m0_cache_hits is not None
        was_training = model.training
        model.eval()
        try:
            with text_progress(len(self.texts), f"Diff-eRank at step {state.global_step}", enabled=self.progress,
                               leave=False) as progress:
                result = self._measure(model, progress)
        finally:
            model.train(was_training)
        summary = result.summary()
        keys = [m.name for m in TABLE if m.logged] + [k for k in summary if "_layer" in k]
        logs = {f"{self.prefix}{k}": summary[k] for k in keys if summary.get(k) is not None}
        self.history.append((state.global_step, logs))
        if self.progress:
            what = f"{self.m0_twins} twin(s)" if self.m0_pretrained is None else self.m0_pretrained.describe()
            m0 = ("M0 kept from the first evaluation" if m0_was_known else
                  f"M0 now: {what}, {self._m0_cache_hits} of {self.m0_twins * len(self.texts)} "
                  "texts from the M0 cache")
            tqdm.write(f"DiffErankCallback, step {state.global_step}: diff_erank {summary['diff_erank']!r}, erank_m1 "
                       f"{summary['erank_m1']!r}; {len(self.texts)} texts in {time.perf_counter() - start:.1f} s ({m0})")
        # trainer.log ends in on_log, which clears control.should_log: restore it, or the Trainer's
        # own training-loss log due at this step (logging_steps) would be dropped.
        should_log = getattr(control, "should_log", None)
        self.trainer.log(logs)
        if should_log is not None:
            control.should_log = should_log

    def _measure(self, model, progress: Progress | None) -> DiffErankResult:
        """One evaluation through ``pair_statistics``: M1's pass every time; M0's side on the first
        (computed, or read from the M0 cache), then kept by the twins (M0 itself freed)."""
        layers = parse_layers(self.layers_spec, num_layers(model))
        ids, truncated = encode_texts(self.tokenizer, self.texts, self.max_length or default_max_length(model))
        if self._twins is None:
            self._twins = make_twins(model, self.m0_seed, self.m0_twins, cache_dir=self.m0_cache,
                                     initializer_range=self.m0_initializer_range, pretrained=self.m0_pretrained,
                                     keep_statistics=True)
        result = pair_statistics(model, self._twins, ids, truncated, self.batch_size, pad_token_id(self.tokenizer),
                                 layers, progress, self.losses, self.skip_first_tokens)
        if self._m0_cache_hits is None:
            self._m0_cache_hits = sum(t.cache_hits for t in self._twins)
        return result
