"""M0 loaded from a checkpoint instead of drawn: the model's true initial state (Pythia's
``revision="step0"``, OLMo's first checkpoint), checked against M1's architecture (no lm-eval).

A random twin is ``type(M1)`` initialised by the library; a family that publishes its step-0
checkpoint has the state training really started from (Pythia was trained from
``small_init``/``wang_init``, not transformers' N(0, 0.02)). ``m0_pretrained=NAME`` (and
``m0_revision=``) loads that instead: ``type(M1).from_pretrained(NAME, revision=...)`` in M1's
dtype and attention implementation, on M0's device. Its identity is the checksum of its weights
(:func:`~lm_eval_erank.core.twin.parameter_checksum`), which keys its M0-cache entry and is
recorded as ``erank_m0_checksum``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from transformers import PretrainedConfig, PreTrainedModel

from .errors import ErankValueError
from .m0_cache import RUNTIME_ONLY_FIELDS
from .twin import TwinOutOfMemoryError, check_twin_supported, model_device, spans_devices, twin_config

logger = logging.getLogger("lm_eval.erank.twin")

# Names listed in an error before "... and N more".
_SHOWN = 5


class M0ArchitectureError(ErankValueError):
    """The checkpoint given as M0 is not M1's architecture (model type, parameter names or shapes)."""


@dataclass(frozen=True)
class PretrainedM0:
    """Where M0 is loaded from: a hub name or a local directory, and a revision (branch, tag or commit)."""

    name: str
    revision: str | None = None

    def describe(self) -> str:
        """``name`` or ``name@revision``.

        >>> PretrainedM0("EleutherAI/pythia-160m", "step0").describe()
        'EleutherAI/pythia-160m@step0'
        """
        return self.name if self.revision is None else f"{self.name}@{self.revision}"


def _listed(items: list[str]) -> str:
    more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return "; ".join(items[:_SHOWN]) + more


def read_m0_config(m1: PreTrainedModel, source: PretrainedM0) -> PretrainedConfig:
    """The config of the checkpoint ``source`` as M1's config class, after checking that its
    ``model_type`` is M1's (M0ArchitectureError otherwise; ValueError when it cannot be read)."""
    try:
        fields, _ = PretrainedConfig.get_config_dict(source.name, revision=source.revision)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read the config of m0_pretrained={source.describe()} (a hub name or a directory "
                         f"holding config.json and the weights): {type(err).__name__}: {err}") from err
    expected = m1.config.model_type
    if fields.get("model_type") != expected:
        raise M0ArchitectureError(
            f"m0_pretrained={source.describe()} is a {fields.get('model_type')!r} model, but M1 is {expected!r} "
            f"({type(m1).__name__}): M0 must have M1's architecture")
    return type(m1.config).from_dict(fields)


def _parameter_shapes(m1: PreTrainedModel, config: PretrainedConfig) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every parameter and buffer of ``type(m1)`` built from ``config`` on the meta device
    (nothing allocated)."""
    with torch.device("meta"):
        model = type(m1)._from_config(config)
    return {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}


def check_same_architecture(m1: PreTrainedModel, source: PretrainedM0) -> PretrainedConfig:
    """M0's config, after checking that the checkpoint ``source`` is M1's architecture: the same
    ``model_type`` and every parameter name and shape equal (both models built on the meta
    device from their configs: M1's without a quantisation record, so a GGUF-loaded or quantised
    M1 is compared by its architecture). M0ArchitectureError names what differs (config fields
    that differ without changing a shape, e.g. ``rms_norm_eps``, are allowed: M0 runs under its
    own config, and :func:`load_pretrained_m0` names them in a warning).
    """
    check_twin_supported(m1)
    config = read_m0_config(m1, source)
    ours, theirs = _parameter_shapes(m1, twin_config(m1)), _parameter_shapes(m1, config)
    differences = [f"{name}: {theirs[name]} in M0, {ours[name]} in M1" for name in sorted(ours.keys() & theirs.keys())
                   if ours[name] != theirs[name]]
    differences += [f"{name}: only in M1" for name in sorted(ours.keys() - theirs.keys())]
    differences += [f"{name}: only in M0" for name in sorted(theirs.keys() - ours.keys())]
    if differences:
        raise M0ArchitectureError(
            f"m0_pretrained={source.describe()} does not have M1's architecture ({type(m1).__name__}): "
            f"{_listed(differences)}. Config fields that differ: "
            f"{_listed(_differing_fields(twin_config(m1), config)) or 'none'}")
    return config


def _differing_fields(m1_config: PretrainedConfig, m0_config: PretrainedConfig) -> list[str]:
    """``field: M0's value vs M1's`` for the architecture fields (all but the runtime-only ones) that differ."""
    a, b = m1_config.to_dict(), m0_config.to_dict()
    return [f"{k} {b.get(k)!r} vs {a.get(k)!r}" for k in sorted(a.keys() | b.keys())
            if k not in RUNTIME_ONLY_FIELDS and a.get(k) != b.get(k)]


def load_pretrained_m0(m1: PreTrainedModel, source: PretrainedM0, device: str | torch.device | None = None
                       ) -> PreTrainedModel:
    """M0 = ``type(m1).from_pretrained(source.name, revision=source.revision)`` after
    :func:`check_same_architecture`, in M1's dtype and attention implementation, on ``device``
    (default: M1's device; M1's device map when M1 is split over devices and no ``device`` is
    given), in eval mode without gradients. A checkpoint that lacks some of M1's parameters (they
    would be initialised at random) is an M0ArchitectureError, one that holds them in other shapes
    than its config says a ValueError; config fields that differ from M1's without changing a shape are named in a warning.

    >>> m0 = load_pretrained_m0(model, PretrainedM0(str(step0_dir)))
    >>> type(m0) is type(model), m0.training
    (True, False)
    """
    config = check_same_architecture(m1, source)
    fields = _differing_fields(twin_config(m1), config)
    if fields:
        logger.warning("erank: m0_pretrained=%s has M1's parameter shapes, but its config differs from M1's in %s; "
                       "M0 runs under its own config", source.describe(), _listed(fields))
    if device is None and spans_devices(m1):
        placement = dict(m1.hf_device_map)
    else:
        placement = {"": str(torch.device(device) if device is not None else model_device(m1))}
    kwargs = {"dtype": m1.dtype}
    attn = getattr(m1.config, "_attn_implementation", None)
    if attn is not None:
        kwargs["attn_implementation"] = attn
    try:
        m0, info = type(m1).from_pretrained(source.name, revision=source.revision, config=config,
                                            device_map=placement, output_loading_info=True, **kwargs)
    except torch.OutOfMemoryError as err:
        raise TwinOutOfMemoryError(
            f"loading M0 (m0_pretrained={source.describe()}) on {placement} ran out of memory (M1 is already there). "
            "Place M0 elsewhere with m0_device=<device>, let M1 and M0 take turns with m0_swap=true, or use a "
            "smaller dtype (dtype=bfloat16).") from err
    except (OSError, ValueError, RuntimeError) as err:
        raise ValueError(f"cannot load M0 from m0_pretrained={source.describe()}: {type(err).__name__}: {err}") from err
    # (A tensor whose shape disagrees with the config is from_pretrained's own error, caught above.)
    if info.get("missing_keys"):
        raise M0ArchitectureError(
            f"m0_pretrained={source.describe()} does not hold M1's parameters: missing (from_pretrained would "
            f"draw them at random): {_listed(sorted(info['missing_keys']))}")
    if info.get("unexpected_keys"):  # e.g. buffers older checkpoints saved (attention masks): not parameters
        logger.info("erank: m0_pretrained=%s holds tensors M1's class does not use: %s", source.describe(),
                    _listed(sorted(info["unexpected_keys"])))
    m0.eval()
    m0.requires_grad_(False)
    logger.info("loaded M0 from %s (%s, %s, %s)", source.describe(), type(m1).__name__, m1.dtype, placement)
    return m0
