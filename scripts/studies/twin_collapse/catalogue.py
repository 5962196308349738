"""The twin-collapse study's catalogue: the published architectures' configs, their tiny smoke
versions, the one-property changes (ablations), and the random twin built as the product builds M0.

Every ``Arch`` names a transformers config class and its values (written here, no weights) and
where the values come from; an ablation is a base architecture with config overrides and/or a
change applied to the built model (``modify``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch

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
    "qwen2.5-coder-1.5b-gguf": Arch("Qwen2Config", dict(
        vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
        num_attention_heads=12, num_key_value_heads=2, hidden_act="silu", max_position_embeddings=32768,
        rope_theta=1000000.0, rms_norm_eps=9.999999974752427e-07, tie_word_embeddings=False, initializer_range=0.02,
        use_sliding_window=False, max_window_layers=28, bos_token_id=151643, eos_token_id=151645), (
        "the config transformers 5.24 builds from Qwen2.5-Coder-1.5B-Instruct.Q4_K_M.gguf (printed from the "
        "loaded config: 28 layers, d 1536, 12 heads / 2 KV, intermediate 8960, vocab 151936, rope_theta 1e6, "
        "untied); initializer_range 0.02, the default, which is also Qwen2.5's published value: the twin "
        "the product builds for the real-model study's larger model")),
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
                  "pythia": "pythia-160m", "qwen": "qwen2.5-0.5b"}
SMOKE_BASES = {"llama": "llama-tiny", "llama 1/24": "llama-tiny", "gpt2": "gpt2-tiny", "pythia": "pythia-tiny",
               "qwen": "qwen2-tiny"}


def ablations(bases: dict[str, str]) -> dict[str, tuple[str, str, dict, Callable | None]]:
    """name -> (base architecture, what changed, config overrides, post-build change)."""
    llama, published, gpt2, pythia, qwen = (bases[k] for k in ("llama", "llama 1/24", "gpt2", "pythia", "qwen"))
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
        # Qwen2.5 publishes 0.02: does its twin collapse for the same reason as SmolLM2's at 0.02?
        "qwen: init std 1/24": (qwen, "initializer_range 0.02 -> 1/24", dict(initializer_range=1 / 24), None),
        "qwen: q, k std 1/24": (qwen, "q_proj, k_proj x 2.08 (std 0.02 -> 1/24): attention logits x 4.3", {},
                                scale_block_weights(qk_up, ("self_attn.q_proj", "self_attn.k_proj"))),
        "qwen: embeddings x sqrt(d)": (qwen, "embedding output x sqrt(d) (Gemma's scaling)", {}, "sqrt_d"),
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

