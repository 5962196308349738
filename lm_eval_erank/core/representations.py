"""Per-text matrix entropy and token loss from one batched forward pass (no lm-eval).

For each text (a list of token ids) and one causal LM, we run length-sorted, right-padded,
attention-masked batches, take the input of the LM head (the last-layer hidden states after
the final norm) and compute in the same pass:

    entropy = matrix_entropy(hidden states of the text's tokens)       (see spectral.py)
    loss    = mean over positions t = 1..N-1 of -log p(x_t | x_<t)      (nats/token)

Both are NaN for texts with fewer than 2 tokens (no spread, no prediction). With
``losses=False`` the loss is not computed (on the fast path the LM head is never applied).

Fast path: when ``model.base_model``'s last hidden state is exactly the LM head's input and
the head's output exactly the logits (checked once per model), we run the base model and
apply the head only at real predicting positions. Otherwise the full model runs and a forward
pre-hook on the LM head captures its input.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .errors import ErankValueError
from .spectral import NonFiniteRepresentationError, matrix_entropy

# Upper bound on the float32 logits materialised at once when computing token losses.
_LOSS_CHUNK_ELEMENTS = 2**26


class NonFiniteModelOutputError(ErankValueError):
    """A model produced inf/NaN hidden states or logits; ``text_index`` indexes the input texts."""

    def __init__(self, message: str, text_index: int):
        super().__init__(message)
        self.text_index = text_index


@dataclass(frozen=True)
class TextStatistics:
    """Per-text results of one model, in the order of the input texts (float64, NaN = undefined).

    layer_entropy maps a hidden-state index (see :func:`num_layers`) to (n_texts,) entropies;
    it always holds the last index, the LM head's input. loss is None when losses were not
    computed (``losses=False``).
    """

    layer_entropy: dict[int, torch.Tensor]
    loss: torch.Tensor | None
    last_layer: int

    @property
    def entropy(self) -> torch.Tensor:
        """(n_texts,) entropy of the LM head's input."""
        return self.layer_entropy[self.last_layer]


def num_layers(model: torch.nn.Module) -> int:
    """L, the number of transformer blocks. Hidden-state indices: 0 = the embeddings output,
    i = the output of block i, L = the LM head's input (after the final norm)."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return int(config.num_hidden_layers)


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches, longest texts first, at most ``batch_size`` texts and at
    most ``batch_size x median length`` padded tokens each (long outliers go in smaller
    batches, so they neither pad their neighbours nor exceed the typical batch's memory).

    Sorting is stable, so equal-length texts keep their input order.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    if not order:
        return []
    budget = batch_size * max(1, sorted(lengths)[len(lengths) // 2])
    batches: list[list[int]] = []
    for i in order:
        current = batches[-1] if batches else None
        if current is None or len(current) == batch_size or (len(current) + 1) * lengths[current[0]] > budget:
            batches.append([i])
        else:
            current.append(i)
    return batches


def pad_right(token_ids: Sequence[Sequence[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, N) input ids right-padded with ``pad_id`` and the (B, N) bool attention mask."""
    width = max(1, max(len(ids) for ids in token_ids))
    ids = torch.full((len(token_ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(token_ids), width), dtype=torch.bool)
    for row, seq in enumerate(token_ids):
        ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = True
    return ids.to(device), mask.to(device)


def token_losses(logits: torch.Tensor, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy per row, float64 (B,); NaN for rows with < 2 tokens.

    logits (B, N, V) in any dtype are upcast to float32 in row chunks to bound memory.
    """
    batch, width, vocab = logits.shape
    if width < 2:
        return torch.full((batch,), torch.nan, dtype=torch.float64, device=logits.device)
    rows_per_chunk = max(1, _LOSS_CHUNK_ELEMENTS // max(1, (width - 1) * vocab))
    targets = input_ids[:, 1:]
    predicted = mask[:, 1:]
    sums = []
    for start in range(0, batch, rows_per_chunk):
        chunk = slice(start, start + rows_per_chunk)
        nll = torch.nn.functional.cross_entropy(
            logits[chunk, :-1].float().transpose(1, 2), targets[chunk], reduction="none"
        )
        sums.append(torch.where(predicted[chunk], nll, 0.0).sum(dim=1, dtype=torch.float64))
    count = predicted.sum(dim=1)
    loss = torch.cat(sums) / count.clamp(min=1)
    return torch.where(count > 0, loss, torch.nan)


def _lm_head_input_hook(model: torch.nn.Module) -> tuple[Callable[[], torch.Tensor], Callable[[], None]]:
    head = model.get_output_embeddings()
    captured: dict[str, torch.Tensor] = {}

    def hook(_module, args):
        captured["states"] = args[0]

    handle = head.register_forward_pre_hook(hook)
    return (lambda: captured.pop("states")), handle.remove


_BASE_MODEL_PATH: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@torch.no_grad()
def base_model_gives_lm_head_input(model: torch.nn.Module) -> bool:
    """Whether ``model.base_model(...).last_hidden_state`` is exactly the LM head's input and
    ``lm_head(it)`` exactly the model's logits (no logit scaling or soft-capping), checked once
    per model on a short probe. Then the fast path can skip logits at padded positions."""
    if model in _BASE_MODEL_PATH:
        return _BASE_MODEL_PATH[model]
    ok = False
    base, head = getattr(model, "base_model", None), model.get_output_embeddings()
    if base is not None and base is not model and head is not None:
        device = next(model.parameters()).device
        probe = torch.arange(1, 6, device=device).clamp(max=head.weight.shape[0] - 1).unsqueeze(0)
        mask = torch.ones_like(probe)
        take_states, remove_hook = _lm_head_input_hook(model)
        try:
            logits = model(input_ids=probe, attention_mask=mask).logits
            states = take_states()
        finally:
            remove_hook()
        try:
            hidden = base(input_ids=probe, attention_mask=mask).last_hidden_state
            ok = torch.equal(hidden, states) and torch.equal(head(hidden), logits)
        except Exception:  # an unusual base model signature: keep the general path
            ok = False
    _BASE_MODEL_PATH[model] = ok
    return ok


def head_losses(head: torch.nn.Module, states: torch.Tensor, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy per row, float64 (B,), from the LM head's input; the head
    is applied only at real predicting positions, in float32 row chunks. NaN for < 2 tokens."""
    batch, width = input_ids.shape
    predicted = mask[:, 1:]
    count = predicted.sum(dim=1)
    sums = torch.zeros(batch, dtype=torch.float64, device=states.device)
    if width >= 2 and bool(predicted.any()):
        rows = states[:, :-1][predicted]
        targets = input_ids[:, 1:][predicted]
        owner = torch.arange(batch, device=states.device).unsqueeze(1).expand(batch, width - 1)[predicted]
        vocab = head.weight.shape[0]
        step = max(1, _LOSS_CHUNK_ELEMENTS // vocab)
        nll = torch.empty(rows.shape[0], dtype=torch.float64, device=states.device)
        for start in range(0, rows.shape[0], step):
            logits = head(rows[start : start + step]).float()
            picked = logits.gather(1, targets[start : start + step].unsqueeze(1)).squeeze(1)
            nll[start : start + step] = torch.logsumexp(logits, dim=-1) - picked
        sums.index_add_(0, owner, nll)
    return torch.where(count > 0, sums / count.clamp(min=1), torch.nan)


@torch.no_grad()
def text_statistics(
    model: torch.nn.Module,
    token_ids: Sequence[Sequence[int]],
    batch_size: int,
    pad_id: int,
    model_name: str = "model",
    progress: Callable[[int], None] | None = None,
    layers: Sequence[int] = (),
    losses: bool = True,
    skip_first_tokens: int = 0,
) -> TextStatistics:
    """Entropy of the LM head's input (and of other hidden states) and mean token loss for
    every text, one forward per batch.

    Args:
        model: a transformers causal LM (``get_output_embeddings()`` must be its LM head).
        token_ids: one list of token ids per text (already truncated to the model's length).
        batch_size: texts per forward; results do not depend on it beyond float round-off.
        pad_id: id used for right padding (masked out everywhere).
        model_name: how errors name the model (e.g. "M1", "M0").
        progress: called with the number of texts finished after each batch.
        layers: extra hidden-state indices (see :func:`num_layers`), from the same forward.
        losses: compute the token losses (False: ``loss`` is None and, on the fast path, the
            LM head is never applied: about a third of a GPT-2-small forward's work).
        skip_first_tokens: k, the first k positions of every text left out of the entropies
            (they still condition the others; the losses use every position). Default 0: all.

    Raises NonFiniteModelOutputError naming the text index and the model when a hidden
    state or loss is not finite.
    """
    device = next(model.parameters()).device
    last = num_layers(model)
    wanted = sorted(set(layers) | {last})
    n = len(token_ids)
    entropy = {layer: torch.full((n,), torch.nan, dtype=torch.float64) for layer in wanted}
    loss = torch.full((n,), torch.nan, dtype=torch.float64) if losses else None
    need_hidden = any(layer != last for layer in wanted)
    fast = base_model_gives_lm_head_input(model)
    take_states, remove_hook = _lm_head_input_hook(model)
    try:
        for batch in length_sorted_batches([len(t) for t in token_ids], batch_size):
            input_ids, mask = pad_right([token_ids[i] for i in batch], pad_id, device)
            if fast:
                out = model.base_model(input_ids=input_ids, attention_mask=mask.long(), output_hidden_states=need_hidden)
                states = {last: out.last_hidden_state}
                if losses:
                    batch_loss = head_losses(model.get_output_embeddings(), out.last_hidden_state, input_ids, mask)
            else:
                out = model(input_ids=input_ids, attention_mask=mask.long(), output_hidden_states=need_hidden)
                states = {last: take_states()}
                if losses:
                    batch_loss = token_losses(out.logits, input_ids, mask)
            if need_hidden:
                states.update({layer: out.hidden_states[layer] for layer in wanted if layer != last})
            index = torch.as_tensor(batch)
            measured = _without_first(mask, skip_first_tokens)
            for layer in wanted:
                try:
                    entropy[layer][index] = matrix_entropy(states[layer], measured).cpu()
                except NonFiniteRepresentationError as err:
                    where = "hidden states" if layer == last else f"hidden states of layer {layer}"
                    raise _non_finite(batch[err.text_index], model_name, where, model) from err
            if losses:
                bad_loss = torch.isinf(batch_loss) | (torch.isnan(batch_loss) & (mask.sum(1) >= 2))
                if bool(bad_loss.any()):
                    raise _non_finite(batch[int(bad_loss.nonzero()[0])], model_name, "logits", model)
                loss[index] = batch_loss.cpu()
            if progress is not None:
                progress(len(batch))
    finally:
        remove_hook()
    return TextStatistics(layer_entropy=entropy, loss=loss, last_layer=last)


def _without_first(mask: torch.Tensor, k: int) -> torch.Tensor:
    """``mask`` (B, N) with the first ``k`` positions of every right-padded row switched off."""
    if not k:
        return mask
    measured = mask.clone()
    measured[:, :k] = False
    return measured


def _non_finite(text_index: int, model_name: str, what: str, model: torch.nn.Module) -> NonFiniteModelOutputError:
    dtype = getattr(model, "dtype", None)
    return NonFiniteModelOutputError(
        f"{model_name} produced non-finite {what} for text {text_index} (dtype {dtype}). "
        "This is typical of float16 overflow or a broken checkpoint; run with dtype=bfloat16 "
        "or dtype=float32.",
        text_index=text_index,
    )
