"""Sections on the random twin M0: (d) building it vs loading M1, (f) its results cache,
(g) memory with both models resident vs ``m0_swap=true``."""

from __future__ import annotations

import argparse
import contextlib
import gc
from pathlib import Path

import torch

from .clock import now, sync
from .models import M0_SEED, make_lm, pad_id

# ---- (d) building M0 vs loading M1 ---------------------------------------------------------------


def time_twin_build(erank_lm, model_dir: Path, args: argparse.Namespace) -> dict:
    """Best of ``args.repeats`` builds of M0 (``build_random_twin``) and of loads of M1
    (``AutoModelForCausalLM.from_pretrained(dir)`` onto the device, after one warm-up load, so
    the files are in the page cache; also with every weight page read); also checks that two builds with one seed are identical,
    equal the harness's M0 and land on the model's device."""
    from transformers import AutoModelForCausalLM

    from lm_eval_erank.core.twin import build_random_twin

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


# ---- (f) M0's results cache --------------------------------------------------------------------------

def time_m0_cache(erank_lm, token_ids: list[list[int]], batch_size: int, directory: Path) -> dict:
    """M1 + M0 over ``token_ids`` (``api.pair_statistics``) without the cache, with an empty
    cache (computes and writes M0) and with a full one (reads M0): the saving a checkpoint sweep
    of one architecture gets from the second checkpoint on. M0 is passed in (its build is not timed)."""
    from lm_eval_erank.api import TwinProvider, pair_statistics

    device = erank_lm.model.device
    pad = pad_id(erank_lm)
    truncated = [False] * len(token_ids)

    def run(cache_dir):
        twin = TwinProvider(erank_lm.model, M0_SEED, m0=erank_lm.m0, cache_dir=cache_dir)
        sync(device)
        start = now()
        result = pair_statistics(erank_lm.model, twin, token_ids, truncated, batch_size, pad)
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


def weight_bytes(model) -> int:
    """Bytes of the model's weights and buffers."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def measure_peak(run, resident_bytes: int, device: torch.device):
    """(seconds, peak bytes or None, result) of ``run()``: the peak is ``resident_bytes`` plus
    the growth of the device's (CUDA: the allocator's; else the process's resident) peak."""
    cuda = device.type == "cuda"
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
    pad = pad_id(erank_lm)
    truncated = [False] * len(token_ids)
    swap_lm = make_lm("hf-erank", model_dir, args, args.batch_size, m0_swap=True)
    m1_bytes, m0_bytes = weight_bytes(erank_lm.model), weight_bytes(erank_lm.m0)
    both_s, both_peak, both = measure_peak(lambda: pair_statistics(
        erank_lm.model, erank_lm.twin, token_ids, truncated, args.batch_size, pad), m1_bytes + m0_bytes, device)
    swap_s, swap_peak, swapped = measure_peak(lambda: pair_statistics(
        swap_lm.model, swap_lm.twin, token_ids, truncated, args.batch_size, pad), m1_bytes, device)
    last = both.last_layer
    report = {"both_resident_s": both_s, "m0_swap_s": swap_s, "swap_over_both": swap_s / both_s,
              "swap_extra_s": swap_s - both_s, "m1_weight_bytes": m1_bytes, "m0_weight_bytes": m0_bytes,
              "both_peak_bytes": both_peak, "swap_peak_bytes": swap_peak,
              "memory": "cuda allocator" if device.type == "cuda" else "process resident set",
              "both_peak_over_weights": both_peak / (m1_bytes + m0_bytes) if both_peak else None,
              "swap_peak_over_weights": swap_peak / (m1_bytes + m0_bytes) if swap_peak else None,
              "same_results": bool(torch.equal(both.entropy_m0[last], swapped.entropy_m0[last])
                                   and torch.equal(both.entropy_m1[last], swapped.entropy_m1[last]))}
    return report  # swap_lm (a second M1) is freed with this frame
