"""Side-by-side benchmark of lm-eval-erank: our pipeline, the paper's reference, the harness.

One process, one model, one set of texts; every requirement is a ratio of two timings taken
here, on this machine:

(a) our pipeline (``text_statistics`` for M1 and M0 at the harness batch size) split into
    forward, spectra (``matrix_entropy``) and losses (``token_losses``, or ``head_losses`` on the
    fast path, which includes the LM head at real positions): spectra share <= 5%;
(b) the paper's reference pipeline re-implemented from its definitions (per text: base-model
    forward in float32 at batch 1, d x d covariance of the centred, row-normalised states,
    float32 ``torch.svd``, for M1 and M0) on the same texts: spectra >= 100x faster, whole
    per-text cost >= 3x lower; entropies must agree with ours;
(c) harness time of each standard local task (``hf``) vs its erank counterpart
    (``hf-erank``), same model, batch size and docs, model loading excluded: <= 2.2x;
(d) building the random twin M0 vs loading M1 from local disk: build <= load;
(e) ``batch_size=auto`` serves erank requests (the chosen size and the agreement with a
    fixed batch size are reported);
(f) M0's results cache: M1 + M0 over all texts with the cache off, empty and full (the
    saving a sweep over checkpoints of one architecture gets from the second checkpoint on);
(g) memory: M1 + M0 over all texts with both resident (default) and with ``m0_swap=true``
    (one model resident at a time): time, and on CUDA the peak device memory of each against
    the weights of M1 + M0;
(h) with ``--twins K``: the ``erank_piqa`` / ``piqa`` harness time ratio with one random twin
    and with K twins (``m0_twins=K``, run one after another), best of ``--repeats``
    (``--twins-only`` runs just the setup and (h)).
(i) ``erank_<name>`` of a user's own tasks (no erank YAML written): harness time of a
    generation task (PIQA prompts, greedy, ``--gen-toks`` tokens) and of a group of the three
    standard tasks under ``hf``, vs ``erank_<name>`` under ``hf-erank``; their own metrics
    must come out identical.

Models are built from configs (no downloads), saved to a temporary directory and loaded with
``pretrained=<dir>`` as a user would. Texts are the gold texts of the erank tasks on real
PIQA / OpenBookQA / WinoGrande docs when ../shared/data/hf_schema holds them (else the example's docs).

    python scripts/bench.py [--shape small|gpt2-small|opt-1.3b] [--docs N] [--batch-size B]
                            [--device cpu|cuda] [--out bench.json]

Times are wall-clock by default; ``--clock cpu`` measures this process's CPU time instead,
which other processes sharing the cores disturb far less (use it with ``--threads 1``).

Instrumentation note: the library exposes no timing hooks, so stages are timed by wrapping
``lm_eval_erank.representations.matrix_entropy`` / ``token_losses`` and the LM instances'
``loglikelihood`` / ``erank`` methods for the duration of a measurement (restored after).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

# ../shared/data beside the checkout, or $LM_EVAL_ERANK_BENCH_DATA (a copy with the same layout, e.g. on a GPU machine)
DATA = Path(os.environ.get("LM_EVAL_ERANK_BENCH_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
HF_SCHEMA_FILES = {
    "piqa": "piqa_validation.jsonl",
    "openbookqa": "openbookqa_test.jsonl",
    "winogrande": "winogrande_validation.jsonl",
}
TASKS = ("piqa", "openbookqa", "winogrande")
# Lower bound of the erank/standard time ratio: the standard task's forwards (one per choice)
# plus the two forwards (M1, M0) of the gold text.
HARNESS_FLOOR = {"piqa": 2.0, "openbookqa": 1.5, "winogrande": 2.0}
TARGETS = {"spectra_share_max": 0.05, "harness_ratio_max": 2.2, "spectra_speedup_min": 100.0,
           "per_text_speedup_min": 3.0, "build_over_load_max": 1.0}
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
now = CLOCKS["wall"]  # the clock of every measurement; main() sets it from --clock
M1_SEED, M0_SEED = 0, 1234
TASK_PREFIX = "bench"
TOKENIZER_VOCAB = 8192
# name -> (architecture, config keyword arguments); vocab None = the tokenizer's size.
SHAPES = {
    "small": ("gpt2", {"n_embd": 256, "n_layer": 4, "n_head": 4, "n_positions": 1024, "vocab_size": None}),
    "gpt2-small": ("gpt2", {"n_embd": 768, "n_layer": 12, "n_head": 12, "n_positions": 1024, "vocab_size": 50257}),
    "opt-125m": ("opt", {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "ffn_dim": 3072,
                         "word_embed_proj_dim": 768, "max_position_embeddings": 2048, "vocab_size": 50272}),
    "opt-1.3b": ("opt", {"hidden_size": 2048, "num_hidden_layers": 24, "num_attention_heads": 32, "ffn_dim": 8192,
                         "word_embed_proj_dim": 2048, "max_position_embeddings": 2048, "vocab_size": 50272}),
}


# ---- setup: data, tokenizer, model, LM instances ---------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; device-dependent defaults (dtype, batch size) are filled in."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", default="small", choices=sorted(SHAPES))
    parser.add_argument("--docs", type=int, default=200, help="docs per task (first N of each data file)")
    parser.add_argument("--batch-size", type=int, default=None, help="harness batch size (default 16 cpu, 32 cuda)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                        help="model dtype in the harness (default float32 cpu, bfloat16 cuda)")
    parser.add_argument("--ref-texts", type=int, default=None,
                        help="texts for the reference pipeline, evenly spaced over all texts (default: all on "
                             "cpu, 48 on cuda, where its d x d SVD takes ~0.6 s per text and model at opt-1.3b)")
    parser.add_argument("--repeats", type=int, default=2,
                        help="repeats of the harness and M0-build/load timings (the best is reported)")
    parser.add_argument("--auto-docs", type=int, default=8, help="docs for the batch_size=auto check")
    parser.add_argument("--auto-max-batch", type=int, default=64,
                        help="max_batch_size of the batch_size=auto check (lm-eval's default 64)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's own choice); 1 is steadier on a shared machine")
    parser.add_argument("--clock", default="wall", choices=sorted(CLOCKS),
                        help="wall: elapsed time; cpu: this process's CPU time (user + sys, all threads), "
                             "steadier when other processes share the cores (CPU runs only)")
    parser.add_argument("--twins", type=int, default=None,
                        help="(h): also time erank_piqa with m0_twins=K against piqa, beside K = 1")
    parser.add_argument("--twins-only", action="store_true", help="run only the setup and (h) (needs --twins)")
    parser.add_argument("--gen-toks", type=int, default=32, help="max_gen_toks of the generation task of (i)")
    parser.add_argument("--out", default="bench.json")
    args = parser.parse_args(argv)
    if args.twins_only and not args.twins:
        parser.error("--twins-only needs --twins K")
    args.batch_size = args.batch_size or (32 if args.device == "cuda" else 16)
    args.dtype = args.dtype or ("bfloat16" if args.device == "cuda" else "float32")
    if args.ref_texts is None and args.device == "cuda":
        args.ref_texts = 48
    if args.clock == "cpu" and args.device == "cuda":
        parser.error("--clock cpu does not see GPU work; use --clock wall with --device cuda")
    return args


def load_rows(docs: int) -> dict[str, list[dict]] | None:
    """First ``docs`` rows of each real data file (hub schemas), or None if any file is missing."""
    paths = {name: DATA / "hf_schema" / file for name, file in HF_SCHEMA_FILES.items()}
    if not all(p.is_file() for p in paths.values()):
        return None
    rows = {}
    for name, path in paths.items():
        with path.open(encoding="utf-8") as handle:
            rows[name] = [json.loads(line) for _, line in zip(range(docs), handle)]
    return rows


def tokenizer_corpus() -> tuple[list[str], str]:
    """Prose to train the tokenizer on (Tiny Shakespeare paragraphs, else the example texts)."""
    from lm_eval_erank import example

    path = DATA / "tinyshakespeare" / "input.txt"
    if path.is_file():
        return [p for p in path.read_text(encoding="utf-8").split("\n\n") if p.strip()], str(path)
    return example.gold_texts(), "lm_eval_erank.example.gold_texts()"


def build_model_dir(shape: str, directory: Path, dtype: torch.dtype) -> dict:
    """Train a tokenizer, build an untrained model of ``shape`` from its config (seeded) and save
    both to ``directory``. Returns a description (parameters, vocab, corpus)."""
    from transformers import AutoModelForCausalLM, GPT2Config, OPTConfig

    from lm_eval_erank import example

    arch, config_kwargs = SHAPES[shape]
    corpus, source = tokenizer_corpus()
    tokenizer = example.train_tokenizer(corpus, directory / "tokenizer", add_bos=arch == "opt", vocab_size=TOKENIZER_VOCAB)
    config_kwargs = dict(config_kwargs, vocab_size=config_kwargs["vocab_size"] or len(tokenizer))
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
           "pad_token_id": tokenizer.pad_token_id}
    config = (GPT2Config if arch == "gpt2" else OPTConfig)(**config_kwargs, **ids)
    torch.manual_seed(M1_SEED)
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.save_pretrained(directory / "model")
    tokenizer.save_pretrained(directory / "model")
    info = {"arch": arch, "config": config_kwargs, "parameters": sum(p.numel() for p in model.parameters()),
            "tokenizer_vocab": len(tokenizer), "tokenizer_corpus": source}
    del model
    gc.collect()
    return info


def make_lm(kind: str, model_dir: Path, args: argparse.Namespace, batch_size: int | str, **erank_args):
    """An ``hf`` (HFLM) or ``hf-erank`` (ErankHFLM) instance loaded from ``model_dir``.

    The erank model runs with its M0 results cache off: every measurement pays for M0's
    forwards, as a first evaluation does (and nothing is written to the user's cache)."""
    from lm_eval.models.huggingface import HFLM

    from lm_eval_erank.model import ErankHFLM

    common = {"pretrained": str(model_dir), "device": args.device, "dtype": args.dtype, "batch_size": batch_size,
              "max_batch_size": args.auto_max_batch}
    return HFLM(**common) if kind == "hf" else ErankHFLM(**common, m0_seed=M0_SEED, m0_cache="off", **erank_args)


def gold_token_ids(lm, task_manager) -> tuple[list[list[int]], list[str]]:
    """Token ids of every erank request the three local erank tasks send, as the model tokenises
    them, and the task of each text (piqa texts first, then openbookqa, then winogrande)."""
    names = [f"{TASK_PREFIX}_erank_{t}" for t in TASKS]
    tasks = task_manager.load(names)["tasks"]
    token_ids, owners = [], []
    for name, task in zip(TASKS, (tasks[n] for n in names)):
        for doc in task.eval_docs:
            token_ids.append(lm.erank_token_ids(task.erank_text(doc))[0])
            owners.append(name)
    return token_ids, owners


# ---- timing instruments -----------------------------------------------------------------------

def sync(device: torch.device) -> None:
    """Wait for queued accelerator work so timings are complete."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def timed_attributes(owner, names: tuple[str, ...], device: torch.device):
    """Temporarily wrap ``owner.<name>`` callables to accumulate their time (seconds, on the chosen clock) into
    the yielded dict; module globals and instance methods both work. Restored on exit."""
    spent = {name: 0.0 for name in names}
    originals = {name: getattr(owner, name) for name in names}
    in_instance = {name: name in vars(owner) for name in names}  # else a class attribute: delete ours

    def wrap(name, fn):
        def timed(*a, **k):
            sync(device)
            start = now()
            try:
                return fn(*a, **k)
            finally:
                sync(device)
                spent[name] += now() - start
        return timed

    for name, fn in originals.items():
        setattr(owner, name, wrap(name, fn))
    try:
        yield spent
    finally:
        for name, fn in originals.items():
            if in_instance[name]:
                setattr(owner, name, fn)
            else:
                delattr(owner, name)


def without_entropies(timing: dict) -> dict:
    """A timing dict without its per-text entropy lists (kept out of the report)."""
    return {k: v for k, v in timing.items() if not k.startswith("entropy_")}


def evenly_spaced(n: int, k: int | None) -> list[int]:
    """``k`` indices spread evenly over range(n) (all of them when k is None or >= n)."""
    if k is None or k >= n:
        return list(range(n))
    return [i * n // k for i in range(k)]


# ---- (a) our pipeline --------------------------------------------------------------------------

def time_pipeline(lm, token_ids: list[list[int]], batch_size: int, losses: bool = True) -> dict:
    """``text_statistics`` for M1 then M0 over ``token_ids`` at ``batch_size``, split into
    spectra, losses and the rest (forward, padding, bookkeeping). Includes the entropies.
    ``losses=False`` is the model argument ``losses=false``: no LM head, no losses."""
    from lm_eval_erank import representations

    device = lm.model.device
    pad_id = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    for model in (lm.model, lm.m0):  # first-call overheads (allocator, kernels) out of the timing
        representations.text_statistics(model, token_ids[:batch_size], batch_size, pad_id, losses=losses)
    with timed_attributes(representations, ("matrix_entropy", "token_losses", "head_losses"), device) as spent:
        sync(device)
        start = now()
        stats = {name: representations.text_statistics(model, token_ids, batch_size, pad_id, losses=losses)
                 for name, model in (("M1", lm.model), ("M0", lm.m0))}
        sync(device)
        total = now() - start
    n = len(token_ids)
    batches = representations.length_sorted_batches([len(t) for t in token_ids], batch_size)
    padded = sum(len(b) * max(len(token_ids[i]) for i in b) for b in batches)
    return {
        "texts": n, "batch_size": batch_size, "losses": losses, "total_s": total,
        "padded_over_real_tokens": padded / sum(len(t) for t in token_ids),
        "spectra_s": spent["matrix_entropy"], "losses_s": (spent["token_losses"] + spent["head_losses"]),
        "forward_s": total - spent["matrix_entropy"] - (spent["token_losses"] + spent["head_losses"]),
        "per_text_ms": 1e3 * total / n, "spectra_per_text_ms": 1e3 * spent["matrix_entropy"] / n,
        "forward_per_text_ms": 1e3 * (total - spent["matrix_entropy"] - (spent["token_losses"] + spent["head_losses"])) / n,
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
    from lm_eval_erank.spectral import dataset_erank

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


# ---- (c) the harness ----------------------------------------------------------------------------

def evaluate(lm, task: str, task_manager, limit: int | None = None) -> tuple[float, dict, dict]:
    """``simple_evaluate`` of one task with an already-built LM instance (no model loading).

    Returns the time taken (on the chosen clock), the task's metrics and the time spent inside
    each request type (and, for erank requests, inside the spectra and losses)."""
    import lm_eval

    from lm_eval_erank import representations

    device = lm.model.device
    methods = ("loglikelihood", "generate_until", "erank") if hasattr(lm, "m0") else ("loglikelihood", "generate_until")
    with timed_attributes(lm, methods, device) as requests, \
            timed_attributes(representations, ("matrix_entropy", "token_losses", "head_losses"), device) as stages:
        start = now()
        out = lm_eval.simple_evaluate(model=lm, tasks=[task], task_manager=task_manager, limit=limit,
                                      log_samples=False, verbosity="ERROR")
        seconds = now() - start
    return seconds, out["results"][task], {**{f"{k}_s": v for k, v in requests.items()},
                                        "erank_spectra_s": stages["matrix_entropy"],
                                        "erank_losses_s": (stages["token_losses"] + stages["head_losses"])}


def time_harness(hf_lm, erank_lm, task_manager, repeats: int) -> dict:
    """Time of each standard local task (``hf``) and its erank counterpart (``hf-erank``),
    interleaved, best of ``repeats``, after a warm-up of both on 4 docs (dataset caches,
    first-call overheads)."""
    for name in TASKS:
        evaluate(hf_lm, f"{TASK_PREFIX}_{name}", task_manager, limit=4)
        evaluate(erank_lm, f"{TASK_PREFIX}_erank_{name}", task_manager, limit=4)
    runs = {(name, side): [] for name in TASKS for side in ("standard", "erank")}
    for _ in range(repeats):
        for name in TASKS:
            runs[name, "standard"].append(evaluate(hf_lm, f"{TASK_PREFIX}_{name}", task_manager))
            runs[name, "erank"].append(evaluate(erank_lm, f"{TASK_PREFIX}_erank_{name}", task_manager))
    rows = {}
    for name in TASKS:
        std_s, std_metrics, std_req = min(runs[name, "standard"], key=lambda run: run[0])
        er_s, er_metrics, er_req = min(runs[name, "erank"], key=lambda run: run[0])
        rows[name] = {
            "standard_s": std_s, "erank_s": er_s, "ratio": er_s / std_s,
            "floor": HARNESS_FLOOR[name], "ratio_over_floor": er_s / std_s / HARNESS_FLOOR[name],
            "standard_runs_s": [run[0] for run in runs[name, "standard"]],
            "erank_runs_s": [run[0] for run in runs[name, "erank"]],
            "standard_loglikelihood_s": std_req["loglikelihood_s"],
            "erank_loglikelihood_s": er_req["loglikelihood_s"], "erank_requests_s": er_req["erank_s"],
            "erank_spectra_s": er_req["erank_spectra_s"], "erank_losses_s": er_req["erank_losses_s"],
            "erank_spectra_share": er_req["erank_spectra_s"] / er_req["erank_s"],
            "erank_other_s": er_s - er_req["erank_s"] - er_req["loglikelihood_s"],
            "standard_other_s": std_s - std_req["loglikelihood_s"],
            "acc_standard": std_metrics.get("acc,none"), "acc_erank": er_metrics.get("acc,none"),
            "diff_erank": er_metrics.get("diff_erank,none"),
        }
    return rows


def time_twins(hf_lm, erank_lm, model_dir: Path, args: argparse.Namespace, task_manager) -> dict:
    """(h) erank_piqa / piqa harness time with one twin and with ``args.twins`` twins (M0 cache off),
    interleaved, best of ``args.repeats`` after a warm-up on 4 docs."""
    twins_lm = make_lm("hf-erank", model_dir, args, args.batch_size, m0_twins=args.twins)
    lms = {"standard": (hf_lm, f"{TASK_PREFIX}_piqa"), "twins_1": (erank_lm, f"{TASK_PREFIX}_erank_piqa"),
           f"twins_{args.twins}": (twins_lm, f"{TASK_PREFIX}_erank_piqa")}
    for lm, task in lms.values():
        evaluate(lm, task, task_manager, limit=4)
    runs = {name: [] for name in lms}
    for _ in range(args.repeats):
        for name, (lm, task) in lms.items():
            runs[name].append(evaluate(lm, task, task_manager))
    best = {name: min(run[0] for run in runs[name]) for name in lms}
    metrics = {name: min(runs[name], key=lambda run: run[0])[1] for name in lms}
    out = {"twins": args.twins, "seconds": best, "runs_s": {n: [r[0] for r in runs[n]] for n in lms}}
    for name in lms:
        if name != "standard":
            out[f"ratio_{name}"] = best[name] / best["standard"]
            out[f"diff_erank_{name}"] = metrics[name].get("diff_erank,none")
            out[f"diff_erank_stderr_{name}"] = metrics[name].get("diff_erank_stderr,none")
    out["erank_m0_twin_sd"] = metrics[f"twins_{args.twins}"].get("erank_m0_twin_sd,none")
    del twins_lm
    gc.collect()
    return out
# ---- (i) erank_<name>: a user's generation task and group, wrapped on demand ----------------------

WRAPPED = {"generation": f"{TASK_PREFIX}_gen", "group": f"{TASK_PREFIX}_group"}


def write_wrapped_bases(directory: Path, gen_toks: int) -> None:
    """Beside the local tasks: a generation task on the PIQA docs (prompt -> gold solution,
    greedy, ``gen_toks`` tokens at most, stopping at a newline) and a group of the three standard
    tasks, as a user's ``--include_path`` holds them; the erank side runs ``erank_<name>``."""
    import yaml

    gen = {"task": WRAPPED["generation"], "dataset_path": "json", "dataset_name": None, "test_split": "test",
           "dataset_kwargs": {"data_files": {"test": str(directory / "data" / "piqa.jsonl")}},
           "output_type": "generate_until", "doc_to_text": "Question: {{goal}}\nAnswer:",
           "doc_to_target": "{{[sol1, sol2][label]}}",
           "generation_kwargs": {"until": ["\n"], "max_gen_toks": gen_toks, "do_sample": False},
           "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}]}
    group = {"group": WRAPPED["group"], "task": [f"{TASK_PREFIX}_{t}" for t in TASKS],
             "aggregate_metric_list": [{"metric": "acc", "weight_by_size": True}]}
    for config in (gen, group):
        name = config.get("group", config.get("task"))
        (directory / f"{name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def time_wrapped(hf_lm, erank_lm, task_manager, repeats: int) -> dict:
    """Harness time of each base of ``WRAPPED`` (``hf``) and of ``erank_<base>`` (``hf-erank``),
    interleaved, best of ``repeats`` after a 4-doc warm-up; whether the base metrics agree."""
    runs = {}
    for kind, base in WRAPPED.items():
        evaluate(hf_lm, base, task_manager, limit=4)
        evaluate(erank_lm, f"erank_{base}", task_manager, limit=4)
        runs[kind] = {"standard": [], "erank": []}
    for _ in range(repeats):
        for kind, base in WRAPPED.items():
            runs[kind]["standard"].append(evaluate(hf_lm, base, task_manager))
            runs[kind]["erank"].append(evaluate(erank_lm, f"erank_{base}", task_manager))
    rows = {}
    for kind, base in WRAPPED.items():
        std_s, std_metrics, std_req = min(runs[kind]["standard"], key=lambda run: run[0])
        er_s, er_metrics, er_req = min(runs[kind]["erank"], key=lambda run: run[0])
        base_metrics = {k: v for k, v in std_metrics.items() if "," in k}
        rows[kind] = {
            "task": f"erank_{base}", "standard_s": std_s, "erank_s": er_s, "ratio": er_s / std_s,
            "standard_model_s": std_req["loglikelihood_s"] + std_req["generate_until_s"],
            "erank_model_s": er_req["loglikelihood_s"] + er_req["generate_until_s"],
            "erank_requests_s": er_req["erank_s"],
            "same_base_metrics": all(er_metrics.get(k) == v for k, v in base_metrics.items()),
            "base_metrics": base_metrics, "diff_erank": er_metrics.get("diff_erank,none"),
        }
    return rows


# ---- (d) building M0 vs loading M1 ---------------------------------------------------------------

def time_twin_build(erank_lm, model_dir: Path, args: argparse.Namespace) -> dict:
    """Best of ``args.repeats`` builds of M0 (``build_random_twin``) and of loads of M1
    (``AutoModelForCausalLM.from_pretrained(dir)`` onto the device, after one warm-up load, so
    the files are in the page cache; also with every weight page read); also checks that two builds with one seed are identical,
    equal the harness's M0 and land on the model's device."""
    from transformers import AutoModelForCausalLM

    from lm_eval_erank.twin import build_random_twin

    device = erank_lm.model.device
    dtype = getattr(torch, args.dtype)

    def build():
        return build_random_twin(erank_lm.model, M0_SEED)

    def load():
        return AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, device_map=str(device))

    def load_and_read():
        # On the CPU, from_pretrained may leave the weights memory-mapped: their bytes are read
        # at the first forward. Reading one element per 4 KiB page puts that cost in the load.
        model = load()
        for tensor in model.state_dict().values():
            tensor.reshape(-1)[:: max(1, 4096 // tensor.element_size())].sum()
        return model

    def seconds(fn) -> list[float]:
        times = []
        for _ in range(args.repeats):
            sync(device)
            start = now()
            model = fn()
            sync(device)
            times.append(now() - start)
            del model
            gc.collect()
        return times

    seconds(load)  # warm-up: imports and page cache
    build_times, load_times, read_times = seconds(build), seconds(load), seconds(load_and_read)
    first, second = build(), build()
    weights = [first.state_dict().values(), second.state_dict().values(), erank_lm.m0.state_dict().values()]
    reproducible = all(torch.equal(a, b) and torch.equal(a, c) for a, b, c in zip(*weights))
    on_device = all(p.device == device for p in first.parameters())
    return {"build_s": min(build_times), "load_s": min(load_times), "build_over_load": min(build_times) / min(load_times),
            "build_times_s": build_times, "load_times_s": load_times,
            "load_and_read_s": min(read_times), "build_over_load_and_read": min(build_times) / min(read_times),
            "reproducible": reproducible, "built_on_device": on_device}


# ---- (e) batch_size=auto ---------------------------------------------------------------------------

def check_auto_batch(model_dir: Path, args: argparse.Namespace, erank_lm, task_manager) -> dict:
    """Run ``erank_piqa`` on a few docs with ``batch_size=auto`` and compare its metrics with the
    fixed-batch instance on the same docs.

    The chosen size is recorded by wrapping ``ErankHFLM._erank_batch_size`` on the instance:
    ``batch_sizes["erank"]`` cannot be read afterwards, because HFLM's loglikelihood pass
    (which runs after the erank requests) resets ``batch_sizes`` when it auto-detects."""
    auto_lm = make_lm("hf-erank", model_dir, args, "auto")
    chosen = []
    detect = auto_lm._erank_batch_size
    auto_lm._erank_batch_size = lambda longest: chosen.append(detect(longest)) or chosen[-1]
    task = f"{TASK_PREFIX}_erank_piqa"
    try:
        seconds, auto_metrics, requests = evaluate(auto_lm, task, task_manager, limit=args.auto_docs)
        _, fixed_metrics, _ = evaluate(erank_lm, task, task_manager, limit=args.auto_docs)
    finally:
        del auto_lm
        gc.collect()
    keys = ("erank_m1,none", "erank_m0,none", "diff_erank,none", "acc,none")
    return {"docs": args.auto_docs, "max_batch_size": args.auto_max_batch, "works": bool(chosen),
            "chosen_batch_size": chosen[0] if chosen else None,
            "seconds": seconds, "erank_requests_s": requests["erank_s"],
            "max_abs_metric_diff_vs_fixed": max(abs(auto_metrics[k] - fixed_metrics[k]) for k in keys),
            "diff_erank": auto_metrics["diff_erank,none"]}


# ---- (f) M0's results cache --------------------------------------------------------------------------

def time_m0_cache(erank_lm, token_ids: list[list[int]], batch_size: int, directory: Path) -> dict:
    """M1 + M0 over ``token_ids`` (``api.pair_statistics``) without the cache, with an empty
    cache (computes and writes M0) and with a full one (reads M0): the saving a checkpoint sweep
    of one architecture gets from the second checkpoint on. M0 is passed in (its build is not timed)."""
    from lm_eval_erank.api import TwinProvider, pair_statistics

    device = erank_lm.model.device
    pad_id = erank_lm.tokenizer.pad_token_id if erank_lm.tokenizer.pad_token_id is not None else 0
    truncated = [False] * len(token_ids)

    def run(cache_dir):
        twin = TwinProvider(erank_lm.model, M0_SEED, m0=erank_lm.m0, cache_dir=cache_dir)
        sync(device)
        start = now()
        result = pair_statistics(erank_lm.model, twin, token_ids, truncated, batch_size, pad_id)
        sync(device)
        return now() - start, result

    off_s, off = run(None)
    cold_s, cold = run(directory)
    warm_s, warm = run(directory)
    last = off.last_layer
    return {"off_s": off_s, "cold_s": cold_s, "warm_s": warm_s, "warm_over_off": warm_s / off_s,
            "saving": 1 - warm_s / off_s,
            "warm_equals_cold": bool(torch.equal(warm.entropy_m0[last], cold.entropy_m0[last])),
            "max_abs_diff_cached_vs_fresh": float((warm.entropy_m0[last] - off.entropy_m0[last]).abs().max()),
            "cache_bytes": sum(f.stat().st_size for f in directory.glob("*.json"))}


# ---- (g) memory: both models resident vs m0_swap --------------------------------------------------

def process_memory(field: str) -> int | None:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) of this process in bytes (Linux), else None."""
    status = Path("/proc/self/status")
    if not status.is_file():
        return None
    for line in status.read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    return None


def reset_peak_rss() -> None:
    """Reset the peak resident set (VmHWM) to the current one (Linux; ignored elsewhere)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def time_m0_swap(erank_lm, model_dir: Path, args: argparse.Namespace, token_ids: list[list[int]]) -> dict:
    """M1 + M0 over ``token_ids`` as the harness runs them, with both models resident (the
    existing instance) and with ``m0_swap=true`` (a second instance: M0 is built, run and freed,
    M1 waits on the CPU), same texts and batch size. Also the peak memory of each pass: the
    weights its own models hold when it starts plus the growth of the peak during the pass
    (CUDA: the allocator's peak; CPU: the process's peak resident set, reset through
    /proc/self/clear_refs, an approximation: pages freed earlier and reused are not counted;
    on the CPU, M1 "waiting on the CPU" frees nothing, so only the both-resident figure speaks
    to the device case)."""
    from lm_eval_erank.api import pair_statistics

    device = erank_lm.model.device
    cuda = device.type == "cuda"
    pad_id = erank_lm.tokenizer.pad_token_id if erank_lm.tokenizer.pad_token_id is not None else 0
    truncated = [False] * len(token_ids)
    swap_lm = make_lm("hf-erank", model_dir, args, args.batch_size, m0_swap=True)

    def weight_bytes(model) -> int:
        return sum(t.numel() * t.element_size() for t in model.state_dict().values())

    def measure(run, resident_bytes: int):
        gc.collect()
        sync(device)
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        else:
            reset_peak_rss()
        before = torch.cuda.memory_allocated(device) if cuda else process_memory("VmRSS")
        start = now()
        result = run()
        sync(device)
        seconds = now() - start
        peak = torch.cuda.max_memory_allocated(device) if cuda else process_memory("VmHWM")
        return seconds, None if peak is None else resident_bytes + peak - before, result

    m1_bytes, m0_bytes = weight_bytes(erank_lm.model), weight_bytes(erank_lm.m0)
    both_s, both_peak, both = measure(lambda: pair_statistics(erank_lm.model, erank_lm.twin, token_ids, truncated,
                                                              args.batch_size, pad_id), m1_bytes + m0_bytes)
    swap_s, swap_peak, swapped = measure(lambda: pair_statistics(swap_lm.model, swap_lm.twin, token_ids, truncated,
                                                                 args.batch_size, pad_id), m1_bytes)
    last = both.last_layer
    report = {"both_resident_s": both_s, "m0_swap_s": swap_s, "swap_over_both": swap_s / both_s,
              "swap_extra_s": swap_s - both_s, "m1_weight_bytes": m1_bytes, "m0_weight_bytes": m0_bytes,
              "both_peak_bytes": both_peak, "swap_peak_bytes": swap_peak,
              "memory": "cuda allocator" if cuda else "process resident set",
              "both_peak_over_weights": both_peak / (m1_bytes + m0_bytes) if both_peak else None,
              "swap_peak_over_weights": swap_peak / (m1_bytes + m0_bytes) if swap_peak else None,
              "same_results": bool(torch.equal(both.entropy_m0[last], swapped.entropy_m0[last])
                                   and torch.equal(both.entropy_m1[last], swapped.entropy_m1[last]))}
    return report  # swap_lm (a second M1) is freed with this frame


# ---- report ----------------------------------------------------------------------------------------

def machine_info(args: argparse.Namespace) -> dict:
    """Platform, CPU count, library versions, device name and dtype."""
    import lm_eval
    import transformers

    if args.device == "cuda":
        device_name = torch.cuda.get_device_name(0)
    else:
        cpuinfo = Path("/proc/cpuinfo")
        models = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                  if line.startswith("model name")] if cpuinfo.is_file() else []
        device_name = models[0] if models else platform.processor() or platform.machine()
    return {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "transformers": transformers.__version__, "lm_eval": lm_eval.__version__,
            "device": args.device, "device_name": device_name, "dtype": args.dtype}


def cpu_load() -> dict:
    """Load average and CPU pressure now (other processes competing for the cores)."""
    pressure = Path("/proc/pressure/cpu")
    some = pressure.read_text().splitlines()[0].split() if pressure.is_file() else []
    return {"loadavg_1min": os.getloadavg()[0],
            "cpu_pressure_some_avg10": float(some[1].split("=")[1]) if some else None}


def verdicts(report: dict) -> dict:
    """Each requirement's figure against its target (True = met)."""
    ours, ref, twin = report["ours_all_texts"], report["reference"], report["twin"]
    harness = report["harness"]
    return {
        "1_spectra_share_ours": ours["spectra_share"] <= TARGETS["spectra_share_max"],
        "1_spectra_share_in_harness": all(r["erank_spectra_share"] <= TARGETS["spectra_share_max"] for r in harness.values()),
        **{f"2_harness_ratio_{name}": r["ratio"] <= TARGETS["harness_ratio_max"] for name, r in harness.items()},
        "3_spectra_speedup": ref["spectra_speedup"] >= TARGETS["spectra_speedup_min"],
        "3_per_text_speedup": ref["per_text_speedup"] >= TARGETS["per_text_speedup_min"],
        "3_per_text_speedup_without_losses": ref["per_text_speedup_without_losses"] >= TARGETS["per_text_speedup_min"],
        "4_build_not_slower_than_load": twin["build_over_load"] <= TARGETS["build_over_load_max"],
        "4_reproducible_on_device": twin["reproducible"] and twin["built_on_device"],
        "6_auto_batch": report["auto_batch"]["works"],
        "5_m0_swap_same_results": report["m0_swap"]["same_results"],
        "7_wrapped_base_metrics_unchanged": all(r["same_base_metrics"] for r in report["wrapped"].values()),
    }


def swap_line(swap: dict) -> str:
    """Section (g) of the table."""
    line = (f"(g) M1 + M0 over all texts: both resident {swap['both_resident_s']:.2f} s, m0_swap=true "
            f"{swap['m0_swap_s']:.2f} s ({swap['swap_over_both']:.2f}x, +{swap['swap_extra_s']:.2f} s: M0 build"
            f" and M1 transfers), same results {swap['same_results']}")
    if swap["both_peak_bytes"] is None:
        return line + "; peak memory: not measurable here"
    gib = 2**30
    return line + (f";\n    peak memory ({swap['memory']}) {swap['both_peak_bytes'] / gib:.3f} GiB both resident, "
                   f"{swap['swap_peak_bytes'] / gib:.3f} GiB m0_swap; weights M1 {swap['m1_weight_bytes'] / gib:.3f} + "
                   f"M0 {swap['m0_weight_bytes'] / gib:.3f} GiB ({swap['both_peak_over_weights']:.2f}x / "
                   f"{swap['swap_peak_over_weights']:.2f}x of M1 + M0)")


def twins_line(twins: dict) -> str:
    k = twins["twins"]
    return (f"(h) erank_piqa / piqa harness time: 1 twin {twins['ratio_twins_1']:.2f}x, {k} twins "
            f"{twins[f'ratio_twins_{k}']:.2f}x (piqa {twins['seconds']['standard']:.2f} s)")


def print_table(report: dict) -> None:
    """The figures as a readable plain-text table."""
    m, ours, ref = report["machine"], report["ours_all_texts"], report["reference"]
    sub, cmp_, lean = ref["ours_same_texts"], ref["agreement"], ref["ours_same_texts_without_losses"]
    lines = [
        f"machine: {m['device_name']} ({m['device']}, {m['cpu_count']} CPUs, {m['torch_threads']} torch threads), "
        f"clock: {report['clock']}, "
        f"torch {m['torch']}, transformers {m['transformers']}, lm-eval {m['lm_eval']}, dtype {m['dtype']}",
        f"model: {report['shape']} ({report['model']['parameters'] / 1e6:.1f}M parameters), "
        f"texts: {ours['texts']} ({report['docs_source']}, {report['docs']} docs/task), "
        f"mean {report['mean_tokens']:.1f} tokens ("
        + ", ".join(f"{t} {v:.1f}" for t, v in report["mean_tokens_per_task"].items())
        + f"), batch {report['batch_size']}",
        "cpu load (1-min average) at the stages: "
        + ", ".join(f"{k} {v['loadavg_1min']:.1f}" for k, v in report["cpu_load"].items()),
        "",
        "(a) our pipeline, M1 + M0, per text          total   forward*   spectra   losses   spectra share",
        f"    all texts                              {ours['per_text_ms']:8.3f} {ours['forward_per_text_ms']:9.3f} "
        f"{ours['spectra_per_text_ms']:9.4f} {1e3 * ours['losses_s'] / ours['texts']:8.3f}   "
        f"{100 * ours['spectra_share']:6.2f}%  (target <= 5%)",
        f"    * forward = total - spectra - losses (the losses include the LM head), padding included (padded/real tokens "
        f"{ours['padded_over_real_tokens']:.2f}); times in ms",
        "",
        f"(b) reference pipeline on {ref['texts']} texts, per text (ms)  total   forward   spectra",
        f"    reference (fp32, batch 1, d x d svd)    {ref['per_text_ms']:9.3f} {ref['forward_per_text_ms']:9.3f} "
        f"{ref['spectra_per_text_ms']:9.3f}   (spectra {100 * ref['spectra_share']:.1f}% of its time)",
        f"    ours on the same texts                  {sub['per_text_ms']:9.3f} {sub['forward_per_text_ms']:9.3f} "
        f"{sub['spectra_per_text_ms']:9.4f}   (+ losses {1e3 * sub['losses_s'] / sub['texts']:.3f})",
        f"    ours, losses=false (reference's outputs) {lean['per_text_ms']:8.3f} {lean['forward_per_text_ms']:9.3f} "
        f"{lean['spectra_per_text_ms']:9.4f}   (entropies equal to the full run: {ref['lean_entropies_equal']})",
        f"    spectra speed-up {ref['spectra_speedup']:.1f}x (target >= 100x); whole per-text speed-up "
        f"{ref['per_text_speedup']:.2f}x with losses, {ref['per_text_speedup_without_losses']:.2f}x with "
        "losses=false (target >= 3x)",
        f"    max |H_ours - H_ref| = {cmp_['max_abs_entropy_diff']:.2e} nats; Diff-eRank ours "
        f"{cmp_['diff_erank_ours']:.4f} vs reference {cmp_['diff_erank_reference']:.4f}",
        "",
        f"(c) harness time (s, {report['clock']})  standard   erank   ratio  floor  ratio/floor | erank req  spectra  ll(erank)  other(erank/std)",
    ]
    for name, r in report["harness"].items():
        lines.append(
            f"    {name:<22} {r['standard_s']:9.2f} {r['erank_s']:7.2f} {r['ratio']:6.2f}x "
            f"{r['floor']:5.1f}x {r['ratio_over_floor']:8.2f}    | {r['erank_requests_s']:8.2f} "
            f"{100 * r['erank_spectra_share']:6.2f}% {r['erank_loglikelihood_s']:8.2f}   "
            f"{r['erank_other_s']:5.2f}/{r['standard_other_s']:.2f}"
        )
    lines.append("    target: ratio <= 2.2x; 'spectra' = share of the erank requests' time")
    lines.append(f"(i) erank_<name> (s, {report['clock']})        standard   erank   ratio | model requests std/erank  "
                 "erank req  base metrics identical")
    for kind, r in report["wrapped"].items():
        lines.append(
            f"    {r['task']:<26} {r['standard_s']:9.2f} {r['erank_s']:7.2f} {r['ratio']:6.2f}x | "
            f"{r['standard_model_s']:8.2f}/{r['erank_model_s']:.2f}       {r['erank_requests_s']:8.2f}   "
            f"{r['same_base_metrics']}"
        )
    lines.append(f"    ({report['gen_toks']} new tokens at most per generation, greedy; the group is piqa + openbookqa + winogrande)")
    twin, auto, cache = report["twin"], report["auto_batch"], report["m0_cache"]
    lines += [
        "",
        f"(d) build M0 {twin['build_s']:.3f} s vs load M1 from disk {twin['load_s']:.3f} s "
        f"(best of {report['repeats']}): {twin['build_over_load']:.2f}x (target <= 1); with every weight page "
        f"read {twin['load_and_read_s']:.3f} s: {twin['build_over_load_and_read']:.2f}x; "
        f"reproducible {twin['reproducible']}, built on device {twin['built_on_device']}",
        f"(e) batch_size=auto (max {auto['max_batch_size']}) on {auto['docs']} erank_piqa docs: works {auto['works']}, "
        f"chosen erank batch {auto['chosen_batch_size']}, max |metric diff| vs fixed batch "
        f"{auto['max_abs_metric_diff_vs_fixed']:.2e}, {auto['seconds']:.1f} s",
        f"(f) M0 cache, M1 + M0 over all texts: off {cache['off_s']:.2f} s, empty {cache['cold_s']:.2f} s, "
        f"full {cache['warm_s']:.2f} s: saving {100 * cache['saving']:.0f}% per later checkpoint "
        f"(cached = fresh to {cache['max_abs_diff_cached_vs_fresh']:.1e} nats, {cache['cache_bytes'] / 1024:.0f} KiB on disk)",
        swap_line(report["m0_swap"]),
        *([twins_line(report["twins"])] if "twins" in report else []),
        "",
        "verdicts: " + ", ".join(f"{k} {'PASS' if v else 'MISS'}" for k, v in report["verdicts"].items()),
        f"script wall time: {report['script_wall_s']:.1f} s",
    ]
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    """Build everything, run (a)-(f), print the table and write the JSON report."""
    started = time.perf_counter()
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device available")
    if args.threads:
        torch.set_num_threads(args.threads)
    global now
    now = CLOCKS[args.clock]
    from lm_eval.tasks import TaskManager

    from lm_eval_erank import example
    from lm_eval_erank.plugin import register

    register()
    report: dict = {"shape": args.shape, "docs": args.docs, "batch_size": args.batch_size, "repeats": args.repeats,
                    "clock": args.clock, "gen_toks": args.gen_toks,
                    "machine": machine_info(args), "cpu_load": {}}

    def stage(name: str, message: str) -> None:
        report["cpu_load"][name] = cpu_load()
        print(f"[bench {time.perf_counter() - started:6.1f}s] {message}", flush=True)

    with tempfile.TemporaryDirectory(prefix="erank-bench-") as tmp:
        tmp = Path(tmp)
        stage("setup", "building the tokenizer, the model and the local tasks")
        rows = load_rows(args.docs)
        report["docs_source"] = "hf_schema files" if rows else "example docs"
        example.write_local_tasks(tmp / "tasks", prefix=TASK_PREFIX, rows_override=rows)
        write_wrapped_bases(tmp / "tasks", args.gen_toks)
        task_manager = TaskManager(include_path=str(tmp / "tasks"))
        report["model"] = build_model_dir(args.shape, tmp, getattr(torch, args.dtype))
        model_dir = tmp / "model"
        hf_lm = make_lm("hf", model_dir, args, args.batch_size)
        erank_lm = make_lm("hf-erank", model_dir, args, args.batch_size)
        if args.twins_only:
            stage("twins", f"(h) erank_piqa / piqa with 1 and {args.twins} twins, best of {args.repeats}")
            report["twins"] = time_twins(hf_lm, erank_lm, model_dir, args, task_manager)
            stage("end", "done")
            print(twins_line(report["twins"]))
            Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
            print(f"wrote {args.out}")
            return 0
        token_ids, owners = gold_token_ids(erank_lm, task_manager)
        report["mean_tokens"] = statistics.mean(len(t) for t in token_ids)
        report["texts_per_task"] = {t: owners.count(t) for t in TASKS}
        report["mean_tokens_per_task"] = {
            t: statistics.mean(len(ids) for ids, owner in zip(token_ids, owners) if owner == t) for t in TASKS}

        stage("ours", f"(a) our pipeline on {len(token_ids)} texts")
        ours = time_pipeline(erank_lm, token_ids, args.batch_size)
        report["ours_all_texts"] = without_entropies(ours)
        indices = evenly_spaced(len(token_ids), args.ref_texts)
        subset = [token_ids[i] for i in indices]
        stage("reference", f"(b) the reference pipeline on {len(subset)} texts")
        reference = time_reference(erank_lm, subset)
        ours_same = ours if len(subset) == len(token_ids) else time_pipeline(erank_lm, subset, args.batch_size)
        ours_lean = time_pipeline(erank_lm, subset, args.batch_size, losses=False)
        report["reference"] = {
            **without_entropies(reference), "ours_same_texts": without_entropies(ours_same),
            "ours_same_texts_without_losses": without_entropies(ours_lean),
            "spectra_speedup": reference["spectra_s"] / ours_same["spectra_s"],
            "per_text_speedup": reference["total_s"] / ours_same["total_s"],
            "per_text_speedup_without_losses": reference["total_s"] / ours_lean["total_s"],
            "lean_entropies_equal": ours_lean["entropy_m1"] == ours_same["entropy_m1"]
            and ours_lean["entropy_m0"] == ours_same["entropy_m0"],
            "agreement": compare_with_reference(ours, reference, indices),
        }
        stage("harness", f"(c) the harness, standard vs erank tasks, best of {args.repeats}")
        report["harness"] = time_harness(hf_lm, erank_lm, task_manager, args.repeats)
        stage("wrapped", f"(i) erank_<name> of a generation task and a group, best of {args.repeats}")
        report["wrapped"] = time_wrapped(hf_lm, erank_lm, task_manager, args.repeats)
        stage("twin", f"(d) building M0 vs loading M1, best of {args.repeats}")
        report["twin"] = time_twin_build(erank_lm, model_dir, args)
        stage("auto_batch", "(e) batch_size=auto")
        report["auto_batch"] = check_auto_batch(model_dir, args, erank_lm, task_manager)
        stage("m0_cache", "(f) M0's results cache: off, empty, full")
        report["m0_cache"] = time_m0_cache(erank_lm, token_ids, args.batch_size, tmp / "m0_cache")
        stage("m0_swap", "(g) memory: both models resident vs m0_swap=true")
        report["m0_swap"] = time_m0_swap(erank_lm, model_dir, args, token_ids)
        if args.twins:
            stage("twins", f"(h) erank_piqa / piqa with 1 and {args.twins} twins, best of {args.repeats}")
            report["twins"] = time_twins(hf_lm, erank_lm, model_dir, args, task_manager)
    stage("end", "done")
    report["verdicts"] = verdicts(report)
    report["targets"] = TARGETS
    report["script_wall_s"] = time.perf_counter() - started
    print()
    print_table(report)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
