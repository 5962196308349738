"""Sections that run lm-eval's ``simple_evaluate``: (c) each standard task vs its erank
counterpart, (e) ``batch_size=auto``, (h) K twins, (i) ``erank_<name>`` of a user's tasks."""

from __future__ import annotations

import argparse
import gc
from pathlib import Path

from .clock import now, timed_attributes
from .models import TASK_PREFIX, TASKS, make_lm

# Lower bound of the erank/standard time ratio: the standard task's forwards (one per choice)
# plus the two forwards (M1, M0) of the gold text.
HARNESS_FLOOR = {"piqa": 2.0, "openbookqa": 1.5, "winogrande": 2.0}
WRAPPED = {"generation": f"{TASK_PREFIX}_gen", "group": f"{TASK_PREFIX}_group"}


def evaluate(lm, task: str, task_manager, limit: int | None = None) -> tuple[float, dict, dict]:
    """``simple_evaluate`` of one task with an already-built LM instance (no model loading).

    Returns the time taken (on the chosen clock), the task's metrics and the time spent inside
    each request type (and, for erank requests, inside the spectra and losses)."""
    import lm_eval

    from lm_eval_erank.core import representations

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


def interleaved_runs(jobs: dict, task_manager, repeats: int) -> dict[object, list[tuple[float, dict, dict]]]:
    """``evaluate`` of every job ``{key: (lm, task)}``: a warm-up of each on 4 docs (dataset
    caches, first-call overheads), then ``repeats`` rounds of all jobs in turn. {key: [runs]}."""
    for lm, task in jobs.values():
        evaluate(lm, task, task_manager, limit=4)
    runs = {key: [] for key in jobs}
    for _ in range(repeats):
        for key, (lm, task) in jobs.items():
            runs[key].append(evaluate(lm, task, task_manager))
    return runs


def fastest(runs: list[tuple[float, dict, dict]]) -> tuple[float, dict, dict]:
    """The run that took the least time."""
    return min(runs, key=lambda run: run[0])


# ---- (c) the harness ----------------------------------------------------------------------------

def time_harness(hf_lm, erank_lm, task_manager, repeats: int) -> dict:
    """Time of each standard local task (``hf``) and its erank counterpart (``hf-erank``),
    interleaved, best of ``repeats``, after a warm-up of both on 4 docs (dataset caches,
    first-call overheads)."""
    jobs = {}
    for name in TASKS:
        jobs[name, "standard"] = (hf_lm, f"{TASK_PREFIX}_{name}")
        jobs[name, "erank"] = (erank_lm, f"{TASK_PREFIX}_erank_{name}")
    runs = interleaved_runs(jobs, task_manager, repeats)
    rows = {}
    for name in TASKS:
        std_s, std_metrics, std_req = fastest(runs[name, "standard"])
        er_s, er_metrics, er_req = fastest(runs[name, "erank"])
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


# ---- (h) K random twins ----------------------------------------------------------------------------

def time_twins(hf_lm, erank_lm, model_dir: Path, args: argparse.Namespace, task_manager) -> dict:
    """(h) erank_piqa / piqa harness time with one twin and with ``args.twins`` twins (M0 cache off),
    interleaved, best of ``args.repeats`` after a warm-up on 4 docs."""
    twins_lm = make_lm("hf-erank", model_dir, args, args.batch_size, m0_twins=args.twins)
    lms = {"standard": (hf_lm, f"{TASK_PREFIX}_piqa"), "twins_1": (erank_lm, f"{TASK_PREFIX}_erank_piqa"),
           f"twins_{args.twins}": (twins_lm, f"{TASK_PREFIX}_erank_piqa")}
    runs = interleaved_runs(lms, task_manager, args.repeats)
    best = {name: min(run[0] for run in runs[name]) for name in lms}
    metrics = {name: fastest(runs[name])[1] for name in lms}
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
    jobs = {}
    for kind, base in WRAPPED.items():
        jobs[kind, "standard"] = (hf_lm, base)
        jobs[kind, "erank"] = (erank_lm, f"erank_{base}")
    runs = interleaved_runs(jobs, task_manager, repeats)
    rows = {}
    for kind, base in WRAPPED.items():
        std_s, std_metrics, std_req = fastest(runs[kind, "standard"])
        er_s, er_metrics, er_req = fastest(runs[kind, "erank"])
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
