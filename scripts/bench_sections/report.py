"""The report: the machine, the CPU load at each stage, the verdicts and the printed table."""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

import torch

TARGETS = {"spectra_share_max": 0.05, "harness_ratio_max": 2.2, "spectra_speedup_min": 100.0,
           "per_text_speedup_min": 3.0, "build_over_load_max": 1.0}


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


# ---- the table ---------------------------------------------------------------------------------------

def header_lines(report: dict) -> list[str]:
    """The machine, the model and the texts, the CPU load."""
    m, ours = report["machine"], report["ours_all_texts"]
    return [
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
    ]


def pipeline_lines(report: dict) -> list[str]:
    """Sections (a) and (b)."""
    ours, ref = report["ours_all_texts"], report["reference"]
    sub, cmp_, lean = ref["ours_same_texts"], ref["agreement"], ref["ours_same_texts_without_losses"]
    return [
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
    ]


def harness_lines(report: dict) -> list[str]:
    """Sections (c) and (i)."""
    lines = [f"(c) harness time (s, {report['clock']})  standard   erank   ratio  floor  ratio/floor | erank req  "
             "spectra  ll(erank)  other(erank/std)"]
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
    for r in report["wrapped"].values():
        lines.append(
            f"    {r['task']:<26} {r['standard_s']:9.2f} {r['erank_s']:7.2f} {r['ratio']:6.2f}x | "
            f"{r['standard_model_s']:8.2f}/{r['erank_model_s']:.2f}       {r['erank_requests_s']:8.2f}   "
            f"{r['same_base_metrics']}"
        )
    lines.append(f"    ({report['gen_toks']} new tokens at most per generation, greedy; the group is piqa + openbookqa + "
                 "winogrande)")
    return lines


def m0_lines(report: dict) -> list[str]:
    """Sections (d) to (h)."""
    twin, auto, cache = report["twin"], report["auto_batch"], report["m0_cache"]
    return [
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
    ]


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
    """Section (h) of the table."""
    k = twins["twins"]
    return (f"(h) erank_piqa / piqa harness time: 1 twin {twins['ratio_twins_1']:.2f}x, {k} twins "
            f"{twins[f'ratio_twins_{k}']:.2f}x (piqa {twins['seconds']['standard']:.2f} s)")


def print_table(report: dict) -> None:
    """The figures as a readable plain-text table."""
    lines = [*header_lines(report), "", *pipeline_lines(report), "", *harness_lines(report), "", *m0_lines(report),
             "",
             "verdicts: " + ", ".join(f"{k} {'PASS' if v else 'MISS'}" for k, v in report["verdicts"].items()),
             f"script wall time: {report['script_wall_s']:.1f} s"]
    print("\n".join(lines))
