"""The untrained twin M0: the trained model's architecture, randomly initialised (no lm-eval)."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging

import torch
from transformers import PreTrainedModel

from .checks import check_seed
from .errors import ErankError, ErankValueError

logger = logging.getLogger("lm_eval.erank.twin")

class TwinOutOfMemoryError(ErankError, torch.OutOfMemoryError):
    """Building M0 ran out of device memory; the message names the options that help."""


def parameter_checksum(model: torch.nn.Module) -> str:
    """SHA-256 over the names, shapes, dtypes and bytes of every parameter and buffer."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def model_device(model: torch.nn.Module) -> torch.device:
    """Device of the model's first parameter (where its inputs must go)."""
    return next(model.parameters()).device


def spans_devices(model: torch.nn.Module) -> bool:
    """Whether the model is dispatched over several devices (``hf_device_map``)."""
    return len({str(d) for d in (getattr(model, "hf_device_map", None) or {}).values()}) > 1


def empty_device_cache(device: torch.device) -> None:
    """Return the caching allocator's free blocks on ``device`` (CUDA, XPU, MPS; no-op on CPU)."""
    accelerator = getattr(torch, device.type, None)
    if accelerator is not None and hasattr(accelerator, "empty_cache"):
        accelerator.empty_cache()


@contextlib.contextmanager
def off_device(model: torch.nn.Module):
    """Move ``model`` to the CPU for the ``with`` block when it is on an accelerator (freeing its
    memory there) and back afterwards, also after an error. No-op for a model on the CPU."""
    device = model_device(model)
    if device.type == "cpu":
        yield
        return
    model.to("cpu")
    empty_device_cache(device)
    try:
        yield
    finally:
        empty_device_cache(device)
        model.to(device)


def check_twin_supported(model: PreTrainedModel) -> None:
    """Raise a clear error for models whose twin the wrapper cannot build or read."""
    config = model.config
    if getattr(config, "is_encoder_decoder", False):
        raise ErankValueError(
            f"hf-erank needs a decoder-only causal LM; {type(model).__name__} is encoder-decoder"
        )
    if model.get_output_embeddings() is None:
        raise ErankValueError(
            f"hf-erank reads the input of the LM head, but {type(model).__name__} has none; "
            "load a *ForCausalLM model"
        )


def _construct(model: PreTrainedModel, config, device: torch.device) -> PreTrainedModel:
    """``type(model)._from_config(config)`` on ``device`` in the model's dtype and attention
    implementation, with clear errors for no memory and configs that do not re-instantiate."""
    kwargs = {"dtype": model.dtype}
    attn = getattr(model.config, "_attn_implementation", None)
    if attn is not None:
        kwargs["attn_implementation"] = attn
    try:
        with torch.device(device):
            return type(model)._from_config(config, **kwargs)
    except torch.OutOfMemoryError as err:
        raise TwinOutOfMemoryError(
            f"building the random twin M0 on {device} ran out of memory (M1 is already there). "
            "Place M0 elsewhere with the model argument m0_device=<device> (e.g. m0_device=cpu "
            "or another GPU), let M1 and M0 take turns on the device with m0_swap=true, or use a "
            "smaller dtype (dtype=bfloat16)."
        ) from err
    except Exception as err:  # e.g. remote-code models whose config cannot be re-instantiated
        raise ErankValueError(
            f"cannot build the random twin M0 of {type(model).__name__} from its config: "
            f"{type(err).__name__}: {err}"
        ) from err


def twin_config(model: PreTrainedModel, initializer_range: float | None = None):
    """A copy of ``model.config`` for its twin, without ``quantization_config`` (a GGUF-loaded M1,
    dequantised by transformers, or a quantised one still carries it; the twin is an ordinary
    model in M1's dtype, built from the architecture alone), with ``initializer_range`` (the init
    std of its weights) replaced when given."""
    config = copy.deepcopy(model.config)
    if getattr(config, "quantization_config", None) is not None:
        del config.quantization_config
    if initializer_range is not None:
        target = config.get_text_config() if hasattr(config, "get_text_config") else config
        target.initializer_range = initializer_range
    return config


def twin_init_std(model: PreTrainedModel, initializer_range: float | None = None) -> float | None:
    """The init std the twin's weights are drawn with: ``initializer_range`` when given, else the
    (text) config's own; None when the config has none. Recorded with the results, so a comparison
    of runs can tell twins of different inits apart (``lm-eval-erank compare``)."""
    config = twin_config(model, initializer_range)
    target = config.get_text_config() if hasattr(config, "get_text_config") else config
    value = getattr(target, "initializer_range", None)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def loaded_from_gguf(model: PreTrainedModel) -> bool:
    """Whether transformers loaded ``model`` from a GGUF file (its config keeps the GGUF quantisation record)."""
    quantization = getattr(model.config, "quantization_config", None)
    if isinstance(quantization, dict):
        method = quantization.get("quant_method")
    else:
        method = getattr(quantization, "quant_method", None)
    return str(getattr(method, "value", method)).lower() == "gguf"


def warn_if_gguf_init_unknown(model: PreTrainedModel, initializer_range: float | None) -> None:
    """A GGUF file's metadata has no ``initializer_range``: without ``m0_initializer_range`` the
    twin takes the config class's default, which may differ from the published model's and
    decides the twin's collapse (docs/negative-diff-erank.md); say what the twin got and
    how to check and pass the published value, once per M1."""
    if initializer_range is not None or not loaded_from_gguf(model):
        return
    config = twin_config(model)
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    logger.warning(
        "erank: %s was loaded from a GGUF file, whose metadata carries no initializer_range, so the random twin "
        "M0 is initialised with %s's default, initializer_range=%s. If the model's published config.json (on its "
        "hub page) gives another initializer_range, pass that value as m0_initializer_range=<value>: the init std "
        "changes eRank(M0) and can turn the sign of Diff-eRank (docs/negative-diff-erank.md).",
        type(model).__name__, type(config).__name__, getattr(config, "initializer_range", None),
    )


def check_twin_buildable(model: PreTrainedModel, initializer_range: float | None = None) -> None:
    """Raise the errors :func:`build_random_twin` would, without allocating M0's weights
    (the architecture is built on the meta device)."""
    check_twin_supported(model)
    _construct(model, twin_config(model, initializer_range), torch.device("meta"))


def build_random_twin(model: PreTrainedModel, seed: int, device: str | torch.device | None = None,
                      initializer_range: float | None = None) -> PreTrainedModel:
    """M0: ``type(model)`` built from a copy of ``model.config`` (:func:`twin_config`, with
    ``initializer_range`` when given) with the library's own initialisation, in the model's dtype, directly on ``device`` (default: the model's own
    device), in eval mode.

    The global RNG state is forked, so building M0 does not disturb lm-eval's seeding.
    The same seed on the same device type gives the same weights.
    Models dispatched over several devices (``hf_device_map``) get the same placement
    unless ``device`` is given.
    """
    check_twin_supported(model)
    seed = check_seed(seed)
    config = twin_config(model, initializer_range)
    multi_device = device is None and spans_devices(model)
    if device is not None:
        device = torch.device(device)
    else:
        device = torch.device("cpu") if multi_device else model_device(model)
    accelerator = device.type != "cpu"
    fork = torch.random.fork_rng(devices=[device] if accelerator else [], device_type=device.type if accelerator else "cuda")
    with fork:
        torch.manual_seed(seed)
        twin = _construct(model, config, device)
    if multi_device:
        from accelerate import dispatch_model

        twin = dispatch_model(twin, device_map=model.hf_device_map)
    twin.eval()
    twin.requires_grad_(False)
    logger.info("built random twin M0 (%s, seed %d, %s, %s)", type(model).__name__, seed, model.dtype, device)
    return twin
