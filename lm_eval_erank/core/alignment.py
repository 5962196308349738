"""eRank-based alignment scores of multi-modal LLMs (Wei et al., NeurIPS 2024, section 5).

For a LLaVA-style model (vision encoder -> connector/projector -> LLM) and one (image, text)
sample, five representations are measured (each a token matrix, reduced to its matrix entropy
H by :func:`lm_eval_erank.core.spectral.matrix_entropy`; eRank = exp(H)):

| eRank | tensor (transformers LLaVA / LLaVA-NeXT) | tokens |
|---|---|---|
| 1 | the input of ``multi_modal_projector`` (captured by a forward pre-hook): the vision tower's hidden states at ``config.vision_feature_layer`` (-2 for LLaVA-1.5), CLS dropped when ``vision_feature_select_strategy == "default"`` (kept for ``"full"``); several feature layers are concatenated on the feature axis, exactly as the model feeds its connector | the image's patch tokens (LLaVA-NeXT: every tile of the image, tiles concatenated) |
| 2 | the output of ``multi_modal_projector`` (forward hook) = ``get_image_features`` before LLaVA-NeXT's packing/unpadding | same tokens as eRank1 |
| 3 | LLM last hidden state (after the final norm) of the input ``<image>`` alone | positions with ``input_ids == config.image_token_id`` (BOS excluded) |
| 4 | LLM last hidden state of the text alone | every token fed (tokenizer's default special tokens, e.g. BOS) |
| 5 | LLM last hidden state of ``<image>\\n`` + text | every token fed (BOS, image tokens, text) |

All five come from ONE forward of the model per batch of samples: the batch holds, per sample,
an image-only row, a text-only row and an image+text row (right-padded; an attention mask
keeps padding out). The vision tower therefore encodes each image twice (once per image row);
eRank1/2 are read from the image-only rows' images.

Dataset scores (algorithm (a) of the paper): eRank_k = exp(mean_i H_k,i) over the samples where
H_k is defined; Image Reduction Ratio = (eRank1 - eRank2) / eRank1; Image-Text Alignment =
mean(eRank3, eRank4, eRank5) / max(eRank3, eRank4, eRank5). The ratios are computed over the
samples whose entropies they need are all defined (normally every sample).

``rotate`` (degrees, a multiple of 90) turns every image clockwise before the processor sees it,
the paper's rotation ablation (it rotated by 90).
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from . import aggregation as agg
from .checks import check_int, check_rotation, check_samples
from .errors import ErankValueError
from .metrics import COUNT, GEOMETRIC_MEAN, MetricSpec
from .spectral import matrix_entropy
from .twin import model_device

__all__ = [
    "AlignmentResult",
    "ENTROPY_KEYS",
    "MULTIMODAL_METRICS",
    "PAIR_TEMPLATE",
    "SUPPORTED_ARCHITECTURES",
    "UnsupportedArchitectureError",
    "alignment_eranks",
    "alignment_scores",
    "check_rotation",
    "check_samples",
    "check_supported",
    "excluded_reason",
    "image_reduction_ratio",
    "image_reduction_ratio_stderr",
    "image_text_alignment",
    "image_text_alignment_stderr",
    "image_token_id",
    "load_image",
    "per_sample_values",
    "rotate_image",
    "sample_entropies",
]

SUPPORTED_ARCHITECTURES = ("LlavaForConditionalGeneration", "LlavaNextForConditionalGeneration")
ENTROPY_KEYS = ("entropy1", "entropy2", "entropy3", "entropy4", "entropy5")
PAIR_TEMPLATE = "{image}\n{text}"


class UnsupportedArchitectureError(ErankValueError):
    pass


def check_supported(model) -> None:
    """Raise UnsupportedArchitectureError unless ``model`` is a supported LLaVA-family model."""
    name = type(model).__name__
    inner = getattr(model, "model", None)
    if name not in SUPPORTED_ARCHITECTURES or not hasattr(inner, "multi_modal_projector"):
        raise UnsupportedArchitectureError(
            f"multi-modal eRank: unsupported model class {name}. Supported: "
            f"{', '.join(SUPPORTED_ARCHITECTURES)} (transformers' LLaVA-1.5 and LLaVA-NeXT: a vision tower "
            "feeding `multi_modal_projector`, image tokens marked by config.image_token_id)."
        )


def image_token_id(model) -> int:
    config = model.config
    token = getattr(config, "image_token_id", None)
    if token is None:
        token = getattr(config, "image_token_index", None)
    if token is None:
        raise UnsupportedArchitectureError("the model config has no image_token_id / image_token_index")
    return int(token)


def rotate_image(image, degrees: int):
    """``image`` turned ``degrees`` clockwise (a multiple of 90; exact, canvas resized)."""
    from PIL import Image

    degrees = check_rotation(degrees)
    ops = {90: Image.Transpose.ROTATE_270, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_90}
    return image if degrees == 0 else image.transpose(ops[degrees])


def load_image(source, root: str | None = None):
    """An RGB PIL image from a PIL image, a {"bytes"/"path"} dict (datasets' Image), raw bytes or a path
    (relative paths are joined to ``root``)."""
    from PIL import Image

    if isinstance(source, Image.Image):
        image = source
    elif isinstance(source, dict) and source.get("bytes"):
        image = Image.open(io.BytesIO(source["bytes"]))
    elif isinstance(source, dict) and source.get("path"):
        return load_image(source["path"], root)
    elif isinstance(source, (bytes, bytearray)):
        image = Image.open(io.BytesIO(source))
    elif isinstance(source, (str, os.PathLike)):
        path = os.path.join(os.path.expandvars(root), source) if root else str(source)
        with Image.open(path) as opened:
            image = opened.convert("RGB")
        return image
    else:
        raise TypeError(f"cannot read an image from {type(source).__name__}")
    return image.convert("RGB")


# ---- per-sample entropies ----------------------------------------------------------------


def _entropies_of(matrices: Sequence[torch.Tensor]) -> list[float | None]:
    """Matrix entropy of each (N_i, d) matrix (one batched call), None where undefined."""
    longest = max(m.shape[0] for m in matrices)
    d = matrices[0].shape[1]
    states = matrices[0].new_zeros((len(matrices), longest, d))
    mask = torch.zeros((len(matrices), longest), dtype=torch.bool, device=states.device)
    for i, m in enumerate(matrices):
        states[i, : m.shape[0]] = m
        mask[i, : m.shape[0]] = True
    return [None if math.isnan(h) else float(h) for h in matrix_entropy(states, mask).tolist()]


def _tiles_per_image(model, inputs) -> list[int]:
    n_images = int(inputs["pixel_values"].shape[0])
    if type(model).__name__ == "LlavaNextForConditionalGeneration":
        from transformers.models.llava_next.modeling_llava_next import image_size_to_num_patches

        return [
            int(image_size_to_num_patches(size, model.config.image_grid_pinpoints, model.config.vision_config.image_size))
            for size in inputs["image_sizes"]
        ]
    return [1] * n_images


@torch.no_grad()
def sample_entropies(model, processor, images: Sequence, texts: Sequence[str], rotate: int = 0,
                     pair_template: str = PAIR_TEMPLATE) -> list[dict[str, Any]]:
    """Per sample: {entropy1..entropy5 (nats, None if undefined), n_vision_tokens, n_image_tokens,
    n_text_tokens, n_pair_tokens}, from one forward of ``model`` over the whole batch.

    ``images``: PIL images (or anything :func:`load_image` reads); ``texts``: one text per image.
    """
    check_supported(model)
    images, texts = check_samples(images, texts)
    k = len(texts)
    rotate = check_rotation(rotate)
    pil = [rotate_image(load_image(im), rotate) for im in images]
    token = getattr(processor, "image_token", None) or "<image>"
    rows = [token] * k + list(texts) + [pair_template.format(image=token, text=t) for t in texts]
    tokenizer = processor.tokenizer
    side = tokenizer.padding_side
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    try:
        inputs = processor(text=rows, images=pil + pil, padding=True, return_tensors="pt")
    finally:
        tokenizer.padding_side = side
    device = model_device(model)
    inputs = {key: value.to(device) for key, value in inputs.items() if isinstance(value, torch.Tensor)}
    inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    image_id = image_token_id(model)
    if not bool((inputs["input_ids"][:k] == image_id).any(dim=1).all()):
        raise ValueError(f"the processor's image placeholder {token!r} did not produce image_token_id {image_id}")

    captured: dict[str, list[torch.Tensor]] = {"in": [], "out": []}
    projector = model.model.multi_modal_projector
    hooks = [
        projector.register_forward_pre_hook(lambda module, args: captured["in"].append(args[0].detach())),
        projector.register_forward_hook(lambda module, args, out: captured["out"].append(out.detach())),
    ]
    try:
        # The base model (no LM head): last_hidden_state is the LLM's final-norm output.
        out = model.model(**inputs, return_dict=True)
    finally:
        for hook in hooks:
            hook.remove()
    vision_in = torch.cat(captured["in"], dim=0)
    vision_out = torch.cat(captured["out"], dim=0)
    tiles = _tiles_per_image(model, inputs)
    if sum(tiles) != vision_in.shape[0] or len(tiles) != 2 * k:
        raise RuntimeError(f"projector saw {vision_in.shape[0]} tiles, expected {sum(tiles)} for {2 * k} images")
    starts = np.cumsum([0] + tiles)
    enc = [vision_in[starts[i]: starts[i + 1]].reshape(-1, vision_in.shape[-1]) for i in range(k)]
    proj = [vision_out[starts[i]: starts[i + 1]].reshape(-1, vision_out.shape[-1]) for i in range(k)]

    hidden = out.last_hidden_state
    ids, attention = inputs["input_ids"], inputs["attention_mask"].bool()
    image_rows = hidden[:k]
    image_mask = (ids[:k] == image_id) & attention[:k]
    h3 = matrix_entropy(image_rows, image_mask)
    h4 = matrix_entropy(hidden[k: 2 * k], attention[k: 2 * k])
    h5 = matrix_entropy(hidden[2 * k:], attention[2 * k:])
    h1, h2 = _entropies_of(enc), _entropies_of(proj)

    def plain(h):
        return None if math.isnan(h) else float(h)

    return [
        {
            "entropy1": h1[i],
            "entropy2": h2[i],
            "entropy3": plain(h3[i].item()),
            "entropy4": plain(h4[i].item()),
            "entropy5": plain(h5[i].item()),
            "n_vision_tokens": int(enc[i].shape[0]),
            "n_image_tokens": int(image_mask[i].sum()),
            "n_text_tokens": int(attention[k + i].sum()),
            "n_pair_tokens": int(attention[2 * k + i].sum()),
        }
        for i in range(k)
    ]


# ---- dataset scores (pure numpy; shared with the harness aggregations) --------------------


def image_reduction_ratio(items: Sequence) -> float | None:
    """Items (eRank1_i, eRank2_i): (G1 - G2) / G1 with G = exp(mean log); None if all excluded."""
    g = agg.geometric_means(items)
    return None if g is None else float((g[0] - g[1]) / g[0])


def image_reduction_ratio_stderr(items: Sequence, iters: int = 1000) -> float | str:
    """Bootstrap over samples, the ratio recomputed from each replicate's exp-mean eRanks."""
    return agg.geometric_means_stderr(items, lambda g: (g[:, 0] - g[:, 1]) / g[:, 0], iters)


def image_text_alignment(items: Sequence) -> float | None:
    """Items (eRank3_i, eRank4_i, eRank5_i): mean(G3, G4, G5) / max(G3, G4, G5)."""
    g = agg.geometric_means(items)
    return None if g is None else float(g.mean() / g.max())


def image_text_alignment_stderr(items: Sequence, iters: int = 1000) -> float | str:
    """Bootstrap over samples, the alignment recomputed from each replicate's exp-mean eRanks."""
    return agg.geometric_means_stderr(items, lambda g: g.mean(axis=1) / g.max(axis=1), iters)


def _pair(first: int, last: int):
    def value(eranks):
        part = eranks[first:last]
        return None if None in part else part

    return value


def _erank(k: int):
    return lambda eranks: eranks[k - 1]


MULTIMODAL_METRICS: tuple[MetricSpec, ...] = (
    *(MetricSpec(f"erank{k}", *GEOMETRIC_MEAN, None, _erank(k)) for k in range(1, 6)),
    MetricSpec("image_reduction_ratio", image_reduction_ratio, image_reduction_ratio_stderr, None, _pair(0, 2)),
    MetricSpec("image_text_alignment", image_text_alignment, image_text_alignment_stderr, True, _pair(2, 5)),
    MetricSpec("mm_excluded", *COUNT, False, lambda eranks: int(None in eranks)),
)


def per_sample_values(row: dict[str, Any]) -> dict[str, Any]:
    """The per-document metric values of one sample's entropies (None where undefined)."""
    eranks = [None if row[key] is None else math.exp(row[key]) for key in ENTROPY_KEYS]
    return {m.name: m.value(eranks) for m in MULTIMODAL_METRICS}


def excluded_reason(row: dict[str, Any]) -> str | None:
    """Why a sample has no value for some eRank_k (None if it has all five)."""
    missing = [key.replace("entropy", "eRank") for key in ENTROPY_KEYS if row[key] is None]
    return f"have an undefined {'/'.join(missing)} (fewer than 2 tokens, or no spread)" if missing else None


def alignment_scores(rows: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    """Dataset scores from per-sample entropy rows (as returned by :func:`sample_entropies`)."""
    per_doc = [per_sample_values(r) for r in rows]
    scores: dict[str, float | None] = {f"erank{i}": agg.geometric_mean([p[f"erank{i}"] for p in per_doc])
                                       for i in range(1, 6)}
    scores["image_reduction_ratio"] = image_reduction_ratio([p["image_reduction_ratio"] for p in per_doc])
    scores["image_text_alignment"] = image_text_alignment([p["image_text_alignment"] for p in per_doc])
    return scores


@dataclass
class AlignmentResult:
    """``entropies``: {entropy1..entropy5: [H_i (nats) or None per sample]};
    ``scores``: {erank1..erank5, image_reduction_ratio, image_text_alignment};
    ``rows``: the per-sample dicts of :func:`sample_entropies`."""

    entropies: dict[str, list[float | None]]
    scores: dict[str, float | None]
    rows: list[dict[str, Any]] = field(repr=False)


def alignment_eranks(model, processor, images: Sequence, texts: Sequence[str], rotate: int = 0,
                     batch_size: int = 8, pair_template: str = PAIR_TEMPLATE,
                     progress: Callable[[int], Any] | None = None) -> AlignmentResult:
    """eRank1..5 and the two alignment scores of an already-loaded LLaVA-family model.

    ``images``: one image per text (PIL, bytes, a path or a datasets Image dict); ``texts``: a
    sequence of strings; ``batch_size``: samples per forward. Bad arguments fail here, before
    any forward, with a message saying what was expected.

    >>> result = alignment_eranks(model, processor, images[:2], ["a red square", "a blue circle"], batch_size=2)
    >>> sorted(result.scores), len(result.entropies["entropy1"])
    (['erank1', 'erank2', 'erank3', 'erank4', 'erank5', 'image_reduction_ratio', 'image_text_alignment'], 2)
    """
    check_supported(model)
    images, texts = check_samples(images, texts)
    rotate = check_rotation(rotate)
    batch_size = check_int("batch_size", batch_size)
    if not callable(processor) or not hasattr(processor, "tokenizer"):
        raise TypeError(f"processor must be the model's loaded processor (AutoProcessor.from_pretrained(...)), "
                        f"got {type(processor).__name__}")
    rows: list[dict[str, Any]] = []
    for start in range(0, len(texts), batch_size):
        chunk = slice(start, start + batch_size)
        rows += sample_entropies(model, processor, images[chunk], texts[chunk], rotate, pair_template)
        if progress is not None:
            progress(len(texts[chunk]))
    entropies = {key: [r[key] for r in rows] for key in ENTROPY_KEYS}
    return AlignmentResult(entropies=entropies, scores=alignment_scores(rows) if rows else {}, rows=rows)
