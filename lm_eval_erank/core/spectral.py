"""Matrix entropy and effective rank of token representations (pure torch, no lm-eval).

Definitions (Wei et al., NeurIPS 2024, Definitions 3.1-3.5). For one text with
representations R (N tokens x d):

    Z_i   = (R_i - mean_j R_j) / ||R_i - mean_j R_j||        (centre, L2-normalise rows)
    Sigma = Z^T Z / N                                          (d x d)
    l     = eigenvalues of Sigma / trace(Sigma)
    H     = -sum_k l_k log l_k                                 (matrix entropy, nats)
    eRank = exp(H)

The non-zero eigenvalues of Z^T Z equal those of the Gram matrix Z Z^T (N x N), so we
decompose whichever is smaller, in float64, with a symmetric eigensolver. A row whose
centred vector is exactly zero (the token's state equals the text's mean) stays zero:
it adds nothing to Sigma, and the trace normalisation makes H independent of N.

A text has no defined eRank when fewer than 2 tokens are valid or every centred row is
zero; its entropy is reported as NaN by :func:`matrix_entropy` and must be excluded by
the caller (the harness and API layers turn it into an explicit, counted exclusion).

Dataset aggregation (Definition 3.5): eRank = exp(mean_i H_i) (algorithm (a), the
geometric mean of per-text eRanks); algorithm (b) is mean_i exp(H_i).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .errors import ErankValueError

__all__ = [
    "NonFiniteRepresentationError",
    "matrix_entropy",
    "effective_rank",
    "dataset_erank",
    "mean_erank",
]


class NonFiniteRepresentationError(ErankValueError):
    """Representations contain inf/NaN; ``text_index`` is the first offending text in the batch."""

    def __init__(self, text_index: int):
        self.text_index = text_index
        super().__init__(f"non-finite representation in text {text_index} of the batch")


def _as_batch(states: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    if states.dim() == 2:
        states = states.unsqueeze(0)
        mask = None if mask is None else mask.unsqueeze(0)
    if states.dim() != 3:
        raise ValueError(f"states must be (N, d) or (B, N, d), got shape {tuple(states.shape)}")
    if mask is None:
        mask = torch.ones(states.shape[:2], dtype=torch.bool, device=states.device)
    if mask.shape != states.shape[:2]:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match states {tuple(states.shape[:2])}")
    return states, mask.to(dtype=torch.bool, device=states.device)


def _centred_rows(states: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, count): x (B, N, d) float64 = rows centred by the text's mean over valid tokens,
    after dividing each text by its largest magnitude (H is scale invariant; this keeps squares
    of extreme float64 values, 1e+-160, from overflowing); padded rows zero. count (B, 1) valid rows.

    Few passes over the (B, N, d) tensor: it is the only large one.
    """
    invalid = ~mask.unsqueeze(-1)
    x = states.to(torch.float64, copy=True).masked_fill_(invalid, 0.0)
    # The scale doubles as the finiteness check: amax/amin propagate NaN, and an inf anywhere
    # makes the largest magnitude inf (cheaper than isfinite over every element).
    flat = x.flatten(1)
    scale = torch.maximum(flat.amax(dim=1), -flat.amin(dim=1))
    finite = torch.isfinite(scale)
    if not bool(finite.all()):
        raise NonFiniteRepresentationError(int((~finite).nonzero()[0].item()))
    x.div_(torch.where(scale > 0, scale, 1.0).view(-1, 1, 1))
    count = mask.sum(dim=1, keepdim=True).to(torch.float64)
    x.sub_(x.sum(dim=1, keepdim=True) / count.clamp(min=1).unsqueeze(-1))
    return x.masked_fill_(invalid, 0.0), count


def _inverse_norms(squared_norms: torch.Tensor, count: torch.Tensor, d: int) -> torch.Tensor:
    """1 / ||row|| per row, 0 for rows that are zero up to float64 round-off of the mean
    (|x| <= 1 after scaling; e.g. all rows identical): such rows stay zero, not normalised noise."""
    norms = squared_norms.clamp(min=0).sqrt()
    tolerance = count * math.sqrt(d) * torch.finfo(torch.float64).eps
    return torch.where(norms > tolerance, 1.0 / torch.where(norms > tolerance, norms, 1.0), 0.0)


def normalized_centered_rows(states: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Z (B, N, d) float64: rows centred by the text's mean over valid tokens and L2-normalised.

    Padded rows (mask False) and rows whose centred vector is zero are zero (a centred row
    within float64 round-off of zero, relative to the text's largest magnitude, counts as zero).
    Raises NonFiniteRepresentationError if any valid row holds inf/NaN.
    """
    states, mask = _as_batch(states, mask)
    x, count = _centred_rows(states, mask)
    inverse = _inverse_norms(x.square().sum(dim=-1), count, x.shape[-1])
    return x.mul_(inverse.unsqueeze(-1))


def matrix_entropy(states: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Matrix entropy H (nats) per text, float64.

    Args:
        states: (N, d) for one text or (B, N, d) right-padded texts, any float dtype.
        mask: (B, N) bool, True for real tokens; None means all tokens are real.

    Returns:
        (B,) float64 (a 0-dim tensor for a single (N, d) input) in [0, log min(N - 1, d)]
        (N valid tokens; exactly 0 for N = 2); NaN where the eRank is undefined (fewer than
        2 valid tokens, or all centred rows zero).

    >>> float(matrix_entropy(torch.eye(3)))  # 3 tokens: the centred rows span 2 dimensions
    0.6931471805599453
    >>> float(matrix_entropy(torch.tensor([[1.0, 2.0], [3.0, 5.0]])))  # 2 tokens: exactly 0
    0.0
    """
    single = states.dim() == 2
    states, mask = _as_batch(states, mask)
    x, count = _centred_rows(states, mask)
    n, d = x.shape[1], x.shape[2]
    # Same non-zero spectrum either way; the smaller side is cheaper and better conditioned.
    if n <= d:
        gram = x @ x.transpose(1, 2)  # normalise the N x N Gram matrix, not the (B, N, d) rows
        inverse = _inverse_norms(gram.diagonal(dim1=1, dim2=2), count, d)
        gram.mul_(inverse.unsqueeze(-1)).mul_(inverse.unsqueeze(-2))
    else:
        x.mul_(_inverse_norms(x.square().sum(dim=-1), count, d).unsqueeze(-1))
        gram = x.transpose(1, 2) @ x
    eigenvalues = torch.linalg.eigvalsh(gram)
    trace = gram.diagonal(dim1=1, dim2=2).sum(dim=1, keepdim=True)
    defined = (trace.squeeze(1) > 0) & (mask.sum(dim=1) >= 2)
    spectrum = (eigenvalues / torch.where(trace > 0, trace, 1.0)).clamp(min=0.0)
    entropy = -torch.special.xlogy(spectrum, spectrum).sum(dim=1)
    # Centred rows span at most N - 1 dimensions, so 0 <= H <= log min(N - 1, d); clamp the
    # round-off (e.g. -2.2e-16 for 2 tokens, whose eRank is exactly 1).
    rank_bound = (mask.sum(dim=1) - 1).clamp(min=1, max=d).to(torch.float64)
    entropy = torch.minimum(entropy.clamp(min=0.0), rank_bound.log())
    entropy = torch.where(defined, entropy, torch.nan)
    return entropy[0] if single else entropy


def effective_rank(states: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """eRank = exp(matrix_entropy(states, mask)) in [1, min(N - 1, d)]; same shapes and NaN convention.

    >>> float(effective_rank(torch.eye(3)))
    2.0
    """
    return torch.exp(matrix_entropy(states, mask))


def _defined_entropies(entropies: Sequence[float] | torch.Tensor) -> torch.Tensor:
    h = torch.as_tensor(list(entropies) if not isinstance(entropies, torch.Tensor) else entropies, dtype=torch.float64)
    h = h[~torch.isnan(h)]
    if h.numel() == 0:
        raise ValueError("no text with a defined eRank (every text has fewer than 2 tokens)")
    return h


def dataset_erank(entropies: Sequence[float] | torch.Tensor) -> float:
    """Algorithm (a): exp(mean_i H_i) over texts with a defined entropy (NaNs skipped)."""
    return math.exp(float(_defined_entropies(entropies).mean()))


def mean_erank(entropies: Sequence[float] | torch.Tensor) -> float:
    """Algorithm (b): mean_i exp(H_i) over texts with a defined entropy (NaNs skipped)."""
    return float(torch.exp(_defined_entropies(entropies)).mean())
