"""Bad input is handled or loud; results are invariant and reproducible; nothing is lost."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, T5Config, T5ForConditionalGeneration

from lm_eval_erank.harness.model import ErankHFLM
from lm_eval_erank.harness.activation import register
from lm_eval_erank.harness.writers import interrupts_deferred
from lm_eval_erank.core.twin import TwinOutOfMemoryError
from lm_eval_erank.testing import tiny

from .conftest import model_args, run_cli

PER_TEXT = ("erank_m1", "erank_m0", "loss_m1", "loss_m0", "reduced_loss", "erank_tokens")


def _write_task(directory: Path, name: str, base: str, rows: list[dict], extra: str = "") -> None:
    """A local copy of erank_<base> named ``name`` on ``rows``, with extra YAML lines."""
    data = tiny.write_jsonl(directory / f"{name}.jsonl", rows)
    (directory / f"{name}.yaml").write_text(
        f"include: {directory}/local_erank_{base}.yaml\ntask: {name}\n"
        f"dataset_kwargs:\n  data_files:\n    validation: {data}\n{extra}",
        encoding="utf-8",
    )


@pytest.fixture(scope="module")
def odd_tasks(local_tasks, tmp_path_factory):
    """Tasks with texts of 0/1 tokens, whitespace and over-long texts (erank_text = goal)."""
    directory = tmp_path_factory.mktemp("odd")
    for f in local_tasks.glob("local_*.yaml"):
        (directory / f.name).write_text(f.read_text(), encoding="utf-8")
    good = tiny.piqa_rows()
    short = [dict(r, goal=g) for r, g in zip(good, ["", "a", "", "b"])]
    mixed = [dict(r, goal=g) for r, g in zip(good, ["", "   ", "\n", "a"])] + good[4:]
    mixed[5]["goal"] = " ".join(tiny.gold_texts())  # longer than max_length=64 below
    _write_task(directory, "all_excluded", "piqa", short, 'erank_text: "{{goal}}"\n')
    _write_task(directory, "odd_texts", "piqa", mixed, 'erank_text: "{{goal}}"\n')
    (directory / "odd_group.yaml").write_text(
        "group: odd_group\ntask: [all_excluded, local_erank_openbookqa]\n"
        "aggregate_metric_list:\n  - {metric: diff_erank, aggregation: mean, weight_by_size: true}\n"
        "  - {metric: acc, aggregation: mean, weight_by_size: true}\n",
        encoding="utf-8",
    )
    return directory, mixed


@pytest.fixture(scope="module")
def odd_run(tiny_models, odd_tasks, tmp_path_factory):
    directory, _ = odd_tasks
    out = tmp_path_factory.mktemp("odd_run")
    return run_cli(
        ["--model", "hf-erank", "--model_args", model_args(tiny_models["gpt2"], max_length=64), "--device", "cpu",
         "--include_path", str(directory), "--tasks", "odd_group,odd_texts", "--batch_size", "4", "--log_samples"],
        out,
    ) + (out,)


def test_all_excluded_task_reports_none_with_warning_and_keeps_accuracy(odd_run):
    done, results, samples, out = odd_run
    row = results["results"]["all_excluded"]
    for metric in ("diff_erank", "erank_m1", "erank_m0", "erank_m1_b", "diff_erank_b", "reduced_loss", "loss_m1"):
        assert row[f"{metric},none"] is None and row[f"{metric}_stderr,none"] == "N/A"
    assert row["erank_excluded,none"] == 4 and 0.0 <= row["acc,none"] <= 1.0
    # One warning for the task, with the count and the reason (was: one per metric, ten alike).
    assert done.stderr.count("every text was excluded") == 1
    assert "all_excluded: 4 of 4 texts have no eRank" in done.stderr and "4 have fewer than 2 tokens" in done.stderr
    group = results["results"]["odd_group"]
    assert group["diff_erank,none"] == results["results"]["local_erank_openbookqa"]["diff_erank,none"]
    for f in Path(out).rglob("*.json*"):
        assert "NaN" not in f.read_text(), f  # never NaN in any output file
    excluded = samples["all_excluded"]
    assert all(s["erank_excluded"] == 1 and s["erank_m1"] is None and s["diff_erank"] is None for s in excluded)


def test_empty_whitespace_and_long_texts(odd_run, odd_tasks):
    done, results, samples, _ = odd_run
    _, rows = odd_tasks
    by_doc = {s["doc_id"]: s for s in samples["odd_texts"]}
    row = results["results"]["odd_texts"]
    n_excluded = sum(by_doc[i]["erank_excluded"] for i in by_doc)
    assert row["erank_excluded,none"] == n_excluded >= 2  # "" (0 tokens) and "a" (1 token)
    assert by_doc[0]["erank_tokens"] == 0 and by_doc[0]["erank_excluded"] == 1
    assert done.stderr.count("texts have no eRank") == 2  # one per task with exclusions: all_excluded, odd_texts
    assert f"odd_texts: {n_excluded} of 12 texts have no eRank" in done.stderr
    assert by_doc[1]["erank_tokens"] >= 2 and by_doc[1]["erank_excluded"] == 0  # "   " tokenises to >= 2 tokens here
    assert by_doc[5]["erank_truncated"] == 1 and by_doc[5]["erank_tokens"] == 64
    assert row["erank_truncated,none"] == 1
    assert "odd_texts: 1 of 12 texts were longer than max_length=64 and were truncated" in done.stderr
    present = [s["erank_m1"] for s in by_doc.values() if s["erank_m1"] is not None]
    assert row["erank_m1,none"] == pytest.approx(math.exp(sum(map(math.log, present)) / len(present)), rel=1e-12)


def test_non_finite_states_fail_loudly_naming_text_model_and_fix(tiny_models, local_tasks, tmp_path):
    broken = tmp_path / "broken"
    model = AutoModelForCausalLM.from_pretrained(tiny_models["llama"])
    with torch.no_grad():
        model.model.norm.weight[3] = float("inf")
    model.save_pretrained(broken)
    (broken / "tokenizer.json").write_bytes((tiny_models["llama"] / "tokenizer.json").read_bytes())
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        if (tiny_models["llama"] / name).exists():
            (broken / name).write_bytes((tiny_models["llama"] / name).read_bytes())
    done, results, _ = run_cli(
        ["--model", "hf-erank", "--model_args", model_args(broken), "--device", "cpu",
         "--include_path", str(local_tasks), "--tasks", "local_erank_piqa"],
        tmp_path / "out", check=False,
    )
    assert done.returncode != 0 and results is None
    assert "M1 produced non-finite hidden states" in done.stderr
    assert "task local_erank_piqa, doc " in done.stderr and "dtype=bfloat16" in done.stderr


def test_encoder_decoder_refused_at_construction(tmp_path, tiny_models):
    register()
    t5 = T5ForConditionalGeneration(T5Config(vocab_size=400, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=2))
    t5.save_pretrained(tmp_path)
    (tmp_path / "tokenizer.json").write_bytes((tiny_models["gpt2"] / "tokenizer.json").read_bytes())
    (tmp_path / "tokenizer_config.json").write_bytes((tiny_models["gpt2"] / "tokenizer_config.json").read_bytes())
    with pytest.raises(ValueError, match="decoder-only"):
        ErankHFLM(pretrained=str(tmp_path), device="cpu")


def test_twin_that_cannot_be_rebuilt_is_a_clear_error(tiny_models, monkeypatch):
    register()
    from transformers import OPTForCausalLM

    def refuse(*args, **kwargs):
        raise TypeError("remote config cannot be re-instantiated")

    monkeypatch.setattr(OPTForCausalLM, "_from_config", classmethod(lambda cls, *a, **k: refuse()))
    with pytest.raises(ValueError, match="cannot build the random twin M0 of OPTForCausalLM"):
        ErankHFLM(pretrained=str(tiny_models["opt"]), device="cpu")


def test_twin_out_of_memory_names_m0_device(tiny_models, monkeypatch):
    register()
    from transformers import GPT2LMHeadModel

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(GPT2LMHeadModel, "_from_config", classmethod(lambda cls, *a, **k: oom()))
    with pytest.raises(TwinOutOfMemoryError, match="m0_device=<device>.*m0_swap=true"):
        ErankHFLM(pretrained=str(tiny_models["gpt2"]), device="cpu")


def test_unknown_model_argument_is_named(tiny_models):
    register()
    with pytest.raises(ValueError, match=r"unexpected keyword argument 'foo'.*m0_seed, m0_device"):
        ErankHFLM(pretrained=str(tiny_models["gpt2"]), device="cpu", foo=1)


def test_m0_device_option(tiny_models):
    register()
    lm = ErankHFLM(pretrained=str(tiny_models["gpt2"]), device="cpu", m0_device="cpu", m0_seed=4)
    default = ErankHFLM(pretrained=str(tiny_models["gpt2"]), device="cpu", m0_seed=4)
    assert lm.get_model_info()["erank_m0_device"] == "cpu"
    assert lm.m0_checksum == default.m0_checksum


# ---- invariants through the harness -------------------------------------------------------


def _per_text(samples, task):
    return {s["doc_id"]: {k: s[k] for k in PER_TEXT} for s in samples[task]}


def _assert_close(a: dict, b: dict, tol: float = 1e-6):
    assert a.keys() == b.keys()
    for doc in a:
        for key in PER_TEXT:
            assert a[doc][key] == pytest.approx(b[doc][key], abs=tol, rel=tol), (doc, key)


def _numbers(results):
    """Every float/int in the results' metrics (paths -> values)."""
    return {
        (task, key): value
        for task, row in results["results"].items()
        for key, value in row.items()
        if isinstance(value, (int, float))
    }


@pytest.fixture(scope="module")
def invariance_runs(tiny_models, local_tasks, tmp_path_factory):
    common = ["--model", "hf-erank", "--device", "cpu", "--include_path", str(local_tasks), "--log_samples",
              "--model_args", model_args(tiny_models["opt"])]
    piqa16 = ["--tasks", "local_erank_piqa", "--batch_size", "16"]
    variants = {
        "alone_bs1": ["--tasks", "local_erank_piqa", "--batch_size", "1"],
        "with_others_auto": ["--tasks", "local_erank_winogrande,local_erank_piqa", "--batch_size", "auto"],
        "alone_bs16": piqa16,
        "alone_bs16_again": piqa16,
    }  # --use_cache reruns: tests/test_flags.py::test_use_cache_rerun_equals_the_first_run
    return {name: run_cli(common + extra, tmp_path_factory.mktemp(name)) for name, extra in variants.items()}


def test_per_text_values_independent_of_batch_size_order_and_other_tasks(invariance_runs):
    base = _per_text(invariance_runs["alone_bs1"][2], "local_erank_piqa")
    _assert_close(base, _per_text(invariance_runs["with_others_auto"][2], "local_erank_piqa"))
    _assert_close(base, _per_text(invariance_runs["alone_bs16"][2], "local_erank_piqa"))


def test_same_seed_same_results_twice(invariance_runs):
    a, b = invariance_runs["alone_bs16"][1], invariance_runs["alone_bs16_again"][1]
    assert _numbers(a) == _numbers(b)
    assert a["config"]["erank_m0_checksum"] == b["config"]["erank_m0_checksum"]


@pytest.mark.parametrize("extra", [{}, {"m0_swap": "true"}], ids=["both_resident", "m0_swap"])
def test_two_process_data_parallel_equals_one_process(tiny_models, local_tasks, tmp_path, invariance_runs, extra):
    """CPU ranks via ``torchrun -m lm_eval`` (accelerate's MULTI_CPU; the plugin activates itself in
    every rank); M0 is checked identical on every rank (with m0_swap, after each rank built it in
    its erank pass)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "lm_eval",
           "--model", "hf-erank", "--model_args", model_args(tiny_models["opt"], **extra), "--device", "cpu",
           "--include_path", str(local_tasks), "--tasks", "local_erank_piqa", "--batch_size", "16",
           "--log_samples", "--output_path", str(tmp_path)]
    env = dict(os.environ, ACCELERATE_USE_CPU="true", OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "data parallel over 2 CPU processes (rank 1)" in done.stderr
    (results_file,) = tmp_path.rglob("results_*.json")
    parallel = json.loads(results_file.read_text())
    single = invariance_runs["alone_bs16"][1]
    assert parallel["config"]["erank_m0_checksum"] == single["config"]["erank_m0_checksum"]
    p, s = _numbers(parallel), _numbers(single)
    assert p.keys() == s.keys()
    for key in s:
        assert p[key] == pytest.approx(s[key], rel=1e-6, abs=1e-9), key
    (samples_file,) = tmp_path.rglob("samples_*.jsonl")
    assert len(samples_file.read_text().splitlines()) == len(tiny.PIQA_DOCS)


# ---- nothing lost on Ctrl-C ----------------------------------------------------------------


def test_interrupts_are_deferred_until_a_write_finishes(tmp_path):
    target = tmp_path / "out.json"

    def write():
        with interrupts_deferred():
            target.write_text("{")
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            target.write_text('{"complete": true}')

    with pytest.raises(KeyboardInterrupt):
        write()
    assert json.loads(target.read_text()) == {"complete": True}
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_during_a_run_leaves_no_partial_output(tiny_models, local_tasks, tmp_path):
    cmd = [sys.executable, "-m", "lm_eval_erank", "--model", "hf-erank", "--model_args", model_args(tiny_models["gpt2"]),
           "--device", "cpu", "--include_path", str(local_tasks), "--tasks", "local_erank",
           "--batch_size", "1", "--log_samples", "--output_path", str(tmp_path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        if "Running erank requests" in line or "Running loglikelihood requests" in line:
            proc.send_signal(signal.SIGINT)
            break
    proc.communicate(timeout=300)
    assert proc.returncode != 0
    for f in tmp_path.rglob("*.json"):
        json.loads(f.read_text())
    for f in tmp_path.rglob("*.jsonl"):
        for line in f.read_text().splitlines():
            json.loads(line)


# ---- security -------------------------------------------------------------------------------


def test_package_never_unpickles_or_trusts_remote_code_itself():
    source = "\n".join(p.read_text() for p in (Path(__file__).resolve().parents[1] / "lm_eval_erank").glob("*.py"))
    for forbidden in ("import pickle", "torch.load(", "trust_remote_code=True", "weights_only=False"):
        assert forbidden not in source
