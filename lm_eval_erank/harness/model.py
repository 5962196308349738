"""The ``hf-erank`` model: lm-eval's HFLM plus M0 (the random twin, or a loaded initial state)
and the ``erank`` request."""

from __future__ import annotations

import difflib
import inspect
import logging

import torch
from lm_eval.api.instance import Instance
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM

from .._version import __version__
from ..core.checks import check_bool, check_int, check_m0_pretrained, check_positive_float, check_seed, parse_layers
from ..core.collapse import warn_if_collapsed
from ..core.errors import ErankValueError
from ..core.exclusions import excluded_reason, warn_excluded, warn_truncated
from ..core.m0_cache import DEFAULT_CACHE, check_writable, resolve_cache
from ..core.measure import encode_texts, pad_token_id, pair_statistics
from ..core.pretrained_m0 import PretrainedM0
from ..core.progress import text_progress
from ..core.representations import NonFiniteModelOutputError, num_layers, text_statistics
from ..core.twin import check_twin_buildable, check_twin_supported, twin_init_std
from ..core.twin_provider import make_twins
from . import lm_eval_internals as internals

logger = logging.getLogger("lm_eval.erank.model")


@register_model("hf-erank", "erank")
class ErankHFLM(HFLM):
    """HFLM (every ``hf`` model argument works) that also serves ``erank`` requests.

    Extra model arguments:
        m0_seed: seed of the random twin M0 (default: the torch seed lm-eval set from
            ``--seed``, 1234 unless changed: the Python API's default too).
        m0_device: device for M0 (default: M1's device), for when both do not fit on one.
        layers: hidden states to measure besides the LM head's input: ``last`` (default),
            ``paper``, ``all`` or indices joined by ':' (0 = embeddings, i = block i).
        m0_cache: directory of M0's cached per-text results (default: ``$LM_EVAL_ERANK_CACHE/m0``,
            else ``~/.cache/lm_eval_erank/m0``), or ``off``; checked writable before the model loads.
        m0_swap: ``true`` lets M1 and M0 take turns on M1's device, for a device that cannot
            hold both: M1 runs over every erank text, moves to the CPU, M0 is built on the
            device, runs and is freed, and M1 moves back. Device memory peaks at one model plus
            activations; each erank pass pays one M0 build and two M1 transfers.
        losses: ``true`` (default) also computes the token losses of M1 and M0 (metrics
            reduced_loss, loss_m1, loss_m0); ``false`` leaves them out and skips the LM head
            (about a third of the erank requests' work at a GPT-2-small shape on a CPU).
        m0_twins: K (default 1), the number of random twins, seeds m0_seed .. m0_seed + K - 1,
            run one after another (one resident beside M1): every value involving M0 is the
            mean over twins, its stderr covers texts and twins, and erank_m0_twin_sd is reported.
        skip_first_tokens: k (default 0, the paper's): leave the first k positions of every
            erank text out of the eRank statistics (the losses keep them); a text needs k + 2
            tokens. The first token can carry most of a middle layer's spread.
        m0_initializer_range: the twins' init std instead of the config's initializer_range
            (a GGUF file carries none: pass the published model's value).
        m0_pretrained: a hub name or directory to load M0 from instead of drawing a twin: the
            model's true initial state (e.g. Pythia's step-0 checkpoint), in M1's dtype, on
            m0_device (or M1's device; with m0_swap during M0's turn). It must have M1's
            architecture (model type, every parameter name and shape), checked before any
            request; not with m0_seed, m0_twins > 1 or m0_initializer_range.
        m0_revision: the revision (branch, tag or commit) of m0_pretrained, e.g. step0.

    The loglikelihood and generation paths are HFLM's, untouched.
    """

    OWN_ARGUMENTS = ("m0_seed", "m0_device", "m0_swap", "layers", "m0_cache", "losses", "m0_twins",
                     "skip_first_tokens", "m0_initializer_range", "m0_pretrained", "m0_revision")
    HF_ARGUMENTS = tuple(sorted(set(inspect.signature(HFLM.__init__).parameters) - {"self", "kwargs"}))

    def __init__(self, *args, m0_seed: int | str | None = None, m0_device: str | None = None,
                 m0_swap: bool | str = False, layers: str = "last", m0_cache: str | None = None,
                 losses: bool | str = True, m0_twins: int | str = 1, skip_first_tokens: int | str = 0,
                 m0_initializer_range: float | str | None = None, m0_pretrained: str | None = None,
                 m0_revision: str | None = None, **kwargs) -> None:
        # Everything that can be checked without the model, before the (slow) model load.
        self._check_argument_names(kwargs)
        n_twins = check_int("m0_twins", m0_twins, from_text=True)
        self.losses = check_bool("losses", losses, from_text=True)
        self.m0_swap = check_bool("m0_swap", m0_swap, from_text=True)
        self.skip_first_tokens = check_int("skip_first_tokens", skip_first_tokens, 0, from_text=True)
        initializer_range = check_positive_float("m0_initializer_range", m0_initializer_range, allow_none=True,
                                                 from_text=True)
        source = check_m0_pretrained(m0_pretrained, m0_revision, m0_seed=m0_seed, m0_twins=n_twins,
                                     m0_initializer_range=initializer_range)
        self.m0_pretrained = None if source is None else PretrainedM0(*source)
        seed = None if source is not None else check_seed(torch.initial_seed() if m0_seed is None else m0_seed)
        if self.m0_swap and m0_device is not None:  # TwinProvider checks it too
            raise ErankValueError("m0_swap=true runs M0 on M1's device; it cannot be combined with m0_device")
        cache_dir = resolve_cache(DEFAULT_CACHE if m0_cache is None else str(m0_cache))
        if cache_dir is not None:
            check_writable(cache_dir)  # not after every forward has run
        try:
            super().__init__(*args, **kwargs)
        except TypeError as err:
            if "unexpected keyword argument" not in str(err):
                raise
            raise ErankValueError(
                f"hf-erank got a model argument nobody accepts ({err}). It takes every --model hf "
                f"argument plus {', '.join(self.OWN_ARGUMENTS)}; other keys are passed to "
                "from_pretrained, which rejected this one."
            ) from err
        if self.backend != "causal":
            raise ErankValueError("hf-erank needs a decoder-only causal LM (backend 'causal'); got an encoder-decoder")
        check_twin_supported(self.model)
        self.layers = parse_layers(str(layers), num_layers(self.model))
        self._use_cpu_processes_as_data_parallel_ranks()
        self.twins = make_twins(self.model, seed, n_twins, device=m0_device, cache_dir=cache_dir, swap=self.m0_swap,
                                initializer_range=initializer_range, pretrained=self.m0_pretrained)
        self.twin = self.twins[0]
        self.erank_auto_batch_size: int | None = None
        if self.m0_swap:
            if self.m0_pretrained is None:  # (make_twins checked a pretrained M0's architecture)
                check_twin_buildable(self.model, initializer_range)  # the architecture only: M0 is built when its turn comes
            return
        # Built now, even when the cache may hold every result: a twin that cannot be built
        # (no memory, a config that does not re-instantiate) fails before any request runs.
        # (With K > 1 twins the others are built in turn during the erank pass.)
        self.twin.model  # noqa: B018
        if self.world_size > 1:
            self._check_same_m0_on_every_rank()

    @classmethod
    def _check_argument_names(cls, kwargs: dict) -> None:
        """A key close to one hf-erank or hf accepts (``m0seed``) is a typo: say which was meant.
        Other unknown keys go on to ``from_pretrained``, as under ``--model hf``."""
        hf = cls.HF_ARGUMENTS
        for key in kwargs:
            if key not in hf:  # a stricter cutoff for hf's names: from_pretrained's max_memory is no typo
                close = (difflib.get_close_matches(key, cls.OWN_ARGUMENTS, n=1, cutoff=0.75)
                         or difflib.get_close_matches(key, hf, n=1, cutoff=0.85))
                if close:
                    raise ErankValueError(f"hf-erank: unknown model argument {key!r}; did you mean {close[0]}? "
                                     f"(hf-erank's own: {', '.join(cls.OWN_ARGUMENTS)}; every --model hf argument works)")

    @property
    def m0_twins(self) -> int:
        return len(self.twins)

    @property
    def m0(self):
        """M0 (with ``m0_swap``, built or loaded here next to M1 if it is not resident)."""
        return self.twin.model

    @property
    def m0_seed(self) -> int | None:
        return self.twin.seed

    @property
    def m0_checksum(self) -> str:
        return self.twin.checksum

    def _use_cpu_processes_as_data_parallel_ranks(self) -> None:
        """HFLM counts data-parallel ranks only on GPUs; under ``torchrun``/``accelerate`` with
        CPU processes every process would evaluate every doc and write its own files."""
        accelerator = getattr(self, "accelerator", None)
        if accelerator is not None and accelerator.num_processes > 1 and self.world_size == 1:
            internals.set_data_parallel_ranks(self, accelerator.process_index, accelerator.num_processes,
                                              accelerator.device)
            logger.info("erank: data parallel over %d CPU processes (rank %d)", self.world_size, self.rank)

    def _check_same_m0_on_every_rank(self) -> None:
        """Every rank's twins are identical (after an erank pass: every twin; before: the first)."""
        checksums = [None] * self.world_size
        mine = [t.known_checksum for t in self.twins] if len(self.twins) > 1 else self.m0_checksum
        torch.distributed.all_gather_object(checksums, mine)
        if len(set(checksums)) != 1:
            raise RuntimeError(
                f"M0 differs between data-parallel ranks ({checksums}); "
                "give every process the same m0_seed (or m0_pretrained) and device type"
            )

    # ---- the erank request -------------------------------------------------------------

    def erank_token_ids(self, text: str) -> tuple[list[int], bool]:
        """Token ids of ``text`` as the ``erank`` request feeds them, and whether they were cut."""
        ids, truncated = encode_texts(self.tokenizer, [text], self.max_length, bool(self.add_bos_token))
        return ids[0], truncated[0]

    def erank(self, requests: list[Instance], disable_tqdm: bool = False) -> list[dict]:
        """Per request (one text): entropy and mean token loss under M1 and M0, token count.

        Returns plain dicts {entropy_m1, entropy_m0, loss_m1, loss_m0, n_tokens, truncated,
        layers: {i: {entropy_m1, entropy_m0}}}; undefined values are None; without the loss
        keys when ``losses=false``.
        """
        if not requests:
            return []
        ids, truncated = encode_texts(self.tokenizer, [r.args[0] for r in requests], self.max_length,
                                      bool(self.add_bos_token))
        warn_truncated([r.task_name for r in requests], truncated, self.max_length)
        batch_size = self._erank_batch_size(max(len(t) for t in ids))
        pad_id = pad_token_id(self.tokenizer)
        # One pass over the documents per model: the bar counts documents and names the model.
        with text_progress(len(ids), "Running erank requests", enabled=not disable_tqdm and self.rank == 0,
                           unit="doc") as bar:
            try:
                result = pair_statistics(self.model, self.twins, ids, truncated, batch_size, pad_id,
                                         self.layers, progress=bar, losses=self.losses,
                                         skip_first_tokens=self.skip_first_tokens)
            except NonFiniteModelOutputError as err:
                req = requests[err.text_index]
                raise NonFiniteModelOutputError(
                    f"task {req.task_name}, doc {req.doc_id}: {err}", text_index=err.text_index
                ) from None
        if (self.m0_swap or len(self.twins) > 1) and self.world_size > 1:  # twins were built in this pass
            self._check_same_m0_on_every_rank()
        rows = result.per_text()
        tasks = [r.task_name for r in requests]
        warn_excluded(tasks, [excluded_reason(row, self.skip_first_tokens) for row in rows])
        if self.rank == 0:
            warn_if_collapsed(tasks, rows)
        return [{key: value for key, value in row.items() if key != "layers" or value} for row in rows]

    def _erank_batch_size(self, longest: int) -> int:
        if str(self.batch_size).startswith("auto"):
            # Kept apart from HFLM's batch_sizes, which its own auto detection resets.
            if self.erank_auto_batch_size is None:
                self.erank_auto_batch_size = self._detect_erank_batch_size(longest)
            return self.erank_auto_batch_size
        return int(self.batch_size)

    def _detect_erank_batch_size(self, longest: int) -> int:
        """Largest batch (<= max_batch_size) for which M1 and M0 forwards fit at the longest text."""
        from accelerate.utils import find_executable_batch_size

        # With m0_swap one model is resident at a time; M0 has M1's architecture and needs
        # the same memory, so probing M1 alone suffices (and does not build M0 beside it).
        models = (self.model,) if self.m0_swap else (self.model, self.m0)  # one twin is resident at a time

        @find_executable_batch_size(starting_batch_size=self.max_batch_size)
        def probe(batch_size: int) -> int:
            ids = [[1] * longest for _ in range(batch_size)]
            for model in models:
                text_statistics(model, ids, batch_size, 0, layers=self.layers, losses=self.losses)
            return batch_size

        batch_size = probe()
        if self.world_size > 1:
            sizes = self.all_gather(torch.tensor([batch_size], device=self.device))
            batch_size = int(sizes.min())
        logger.info("erank: batch size %d (auto)", batch_size)
        return batch_size

    def get_model_info(self) -> dict:
        info = super().get_model_info()
        info.update(
            {
                "erank_m0_seed": self.m0_seed,
                "erank_m0_checksum": self.twin.known_checksum if self.m0_swap else self.m0_checksum,
                "erank_m0_twins": len(self.twins),
                "erank_m0_seeds": [t.seed for t in self.twins],
                "erank_m0_checksums": [t.known_checksum for t in self.twins],
                "erank_m0_device": str(self.twin.device or next(self.model.parameters()).device),
                "erank_dtype": str(self.model.dtype),
                "erank_layers": list(self.layers),
                "erank_losses": self.losses,
                "erank_skip_first_tokens": self.skip_first_tokens,
                "erank_m0_initializer_range": self.twin.initializer_range,
                "erank_m0_pretrained": None if self.m0_pretrained is None else self.m0_pretrained.name,
                "erank_m0_revision": None if self.m0_pretrained is None else self.m0_pretrained.revision,
                "erank_m0_init_std": (None if self.m0_pretrained is not None
                                      else twin_init_std(self.model, self.twin.initializer_range)),
                "erank_model_type": getattr(self.model.config, "model_type", None),
                "erank_m0_swap": self.m0_swap,
                "erank_last_layer": num_layers(self.model),
                "erank_m0_cache": str(self.twin.cache.path) if self.twin.cache else None,
                "erank_auto_batch_size": self.erank_auto_batch_size,
                "lm_eval_erank_version": __version__,
            }
        )
        return info
