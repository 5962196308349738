"""(a) our pipeline and (b) the paper's reference pipeline, on the same texts."""

from __future__ import annotations

import copy
import math
import warnings

import torch

from .clock import now, sync, timed_attributes
from .models import pad_id

# ---- (a) our pipeline --------------------------------------------------------------------------


def time_pipeline(lm, token_ids: list[list[int]], batch_size: int, losses: bool = True) -> dict:
    """``text_statistics`` for M1 then M0 over ``token_ids`` at ``batch_size``, split into
    spectra, losses and the rest (forward, padding, bookkeeping). Includes the entropies.
    ``losses=False`` is the model argument ``losses=false``: no LM head, no losses."""
    from lm_eval_erank.core import representations

    device = lm.model.device
    pad = pad_id(lm)
    for model in (lm.model, lm.m0):  # first-call overheads (allocator, kernels) out of the timing
        representations.text_statistics(model, token_ids[:batch_size], batch_size, pad, losses=losses)
    with timed_attributes(representations, ("matrix_entropy", "token_losses", "head_losses"), device) as spent:
        sync(device)
        start = now()
        stats = {name: representations.text_statistics(model, token_ids, batch_size, pad, losses=losses)
                 for name, model in (("M1", lm.model), ("M0", lm.m0))}
        sync(device)
        total = now() - start
    n = len(token_ids)
    batches = representations.length_sorted_batches([len(t) for t in token_ids], batch_size)
    padded = sum(len(b) * max(len(token_ids[i]) for i in b) for b in batches)
    losses_s = spent["token_losses"] + spent["head_losses"]
    return {
        "texts": n, "batch_size": batch_size, "losses": losses, "total_s": total,
        "padded_over_real_tokens": padded / sum(len(t) for t in token_ids),
        "spectra_s": spent["matrix_entropy"], "losses_s": losses_s,
        "forward_s": total - spent["matrix_entropy"] - losses_s,
        "per_text_ms": 1e3 * total / n, "spectra_per_text_ms": 1e3 * spent["matrix_entropy"] / n,
        "forward_per_text_ms": 1e3 * (total - spent["matrix_entropy"] - losses_s) / n,
        "spectra_share": spent["matrix_entropy"] / total,
        "entropy_m1": stats["M1"].entropy.tolist(), "entropy_m0": stats["M0"].entropy.tolist(),
    }


# ---- (b) the paper's reference pipeline ---------------------------------------------------------

def reference_entropy(states: torch.Tensor) -> float:
    """Matrix entropy as the reference computes it: centre the rows, L2-normalise them,
    Sigma = Z^T Z / N (d x d), float32 ``torch.svd`` of Sigma / trace, -nansum(s log s)."""
    centred = states - states.mean(dim=0)
    z = centred / torch.linalg.vector_norm(centred, dim=1, keepdim=True)
    z = torch.nn.functional.normalize(z, dim=1)
    sigma = z.T @ z / z.shape[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.svd is deprecated; the reference uses it
        singular = torch.svd(sigma / torch.trace(sigma))[1]
    return -(singular * torch.log(singular)).nansum().item()


def float32_base(model: torch.nn.Module) -> torch.nn.Module:
    """The base model (``AutoModel`` part, the LM head's input as output) in float32."""
    base = model.base_model
    return base if base.dtype == torch.float32 else copy.deepcopy(base).float()


@torch.no_grad()
def time_reference(lm, token_ids: list[list[int]]) -> dict:
    """Reference pipeline per text, for M1 then M0: float32 base-model forward at batch 1, then
    the d x d float32 SVD spectrum. Returns forward / spectra time and the entropies."""
    device = lm.model.device
    bases = {"M1": float32_base(lm.model), "M0": float32_base(lm.m0)}
    spent = {"forward_s": 0.0, "spectra_s": 0.0}
    entropies = {"M1": [], "M0": []}
    for name, base in bases.items():
        reference_entropy(base(input_ids=torch.tensor([token_ids[0]], device=device)).last_hidden_state[0])  # warm-up
        for ids in token_ids:
            sync(device)
            start = now()
            states = base(input_ids=torch.tensor([ids], device=device)).last_hidden_state[0]
            sync(device)
            middle = now()
            entropies[name].append(reference_entropy(states))
            spent["forward_s"] += middle - start
            spent["spectra_s"] += now() - middle
    n = len(token_ids)
    total = spent["forward_s"] + spent["spectra_s"]
    return {"texts": n, **spent, "total_s": total, "per_text_ms": 1e3 * total / n,
            "spectra_per_text_ms": 1e3 * spent["spectra_s"] / n, "forward_per_text_ms": 1e3 * spent["forward_s"] / n,
            "spectra_share": spent["spectra_s"] / total,
            "entropy_m1": entropies["M1"], "entropy_m0": entropies["M0"]}


def compare_with_reference(ours: dict, reference: dict, indices: list[int]) -> dict:
    """Agreement of our entropies and Diff-eRank with the reference's on ``indices``
    (``ours`` covers every text, ``reference`` the texts at ``indices``)."""
    from lm_eval_erank.core.spectral import dataset_erank

    diffs, diff_erank = [], {}
    for model in ("m1", "m0"):
        our_h = [ours[f"entropy_{model}"][i] for i in indices]
        ref_h = reference[f"entropy_{model}"]
        diffs += [abs(a - b) for a, b in zip(our_h, ref_h) if math.isfinite(a) and math.isfinite(b)]
        diff_erank[model] = (dataset_erank(our_h), dataset_erank(ref_h))
    return {
        "max_abs_entropy_diff": max(diffs),
        "diff_erank_ours": diff_erank["m0"][0] - diff_erank["m1"][0],
        "diff_erank_reference": diff_erank["m0"][1] - diff_erank["m1"][1],
    }
