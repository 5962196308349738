"""The real CLI (lm-eval's own ``lm_eval`` / ``lm-eval run`` / ``python -m lm_eval``, and the
``lm-eval-erank`` alias) on tiny local models and data."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lm_eval_erank import __version__
from lm_eval_erank.core.metrics import METRIC_NAMES
from lm_eval_erank.core.twin import build_random_twin

from .conftest import ARCHS, LOCAL_ERANK_TASKS, console_script, model_args, run_cli

TASK_ACCURACY = {
    "local_erank_piqa": ("acc", "acc_norm"),
    "local_erank_openbookqa": ("acc", "acc_norm"),
    "local_erank_winogrande": ("acc",),
}
GROUP_METRICS = ("acc", "diff_erank", "erank_m1", "erank_m0", "reduced_loss", "loss_m1", "loss_m0")


# Each architecture runs through another form of lm-eval's own command (the plugin activates
# itself at start-up; nothing of ours is named on the command line).
LM_EVAL_FORMS = {
    "gpt2": lambda: [console_script("lm_eval")],
    "llama": lambda: [console_script("lm-eval"), "run"],
    "opt": lambda: [sys.executable, "-m", "lm_eval"],
}


def erank_args(tiny_models, local_tasks, arch):
    return ["--model", "hf-erank", "--model_args", model_args(tiny_models[arch]), "--device", "cpu",
            "--include_path", str(local_tasks), "--tasks", "local_erank", "--batch_size", "4", "--log_samples"]


@pytest.fixture(scope="module")
def erank_runs(tiny_models, local_tasks, tmp_path_factory):
    """One CLI run per architecture of the group ``local_erank`` (all three tasks)."""
    return {
        arch: run_cli(erank_args(tiny_models, local_tasks, arch), tmp_path_factory.mktemp(f"run_{arch}"),
                      command=LM_EVAL_FORMS[arch]())
        for arch in ARCHS
    }


def _values(results, samples):
    numbers = {(task, key): value for task, row in results["results"].items() for key, value in row.items()
               if isinstance(value, (int, float))}
    per_doc = {task: [(d["doc_id"], d["diff_erank"], d["reduced_loss"], d["acc"]) for d in docs]
               for task, docs in samples.items()}
    return numbers, per_doc


def test_plain_lm_eval_gives_exactly_the_numbers_of_lm_eval_erank(erank_runs, tiny_models, local_tasks, tmp_path):
    """``lm_eval ...`` (the gpt2 run) and the ``lm-eval-erank`` alias with the same arguments."""
    _, alias_results, alias_samples = run_cli(erank_args(tiny_models, local_tasks, "gpt2"), tmp_path,
                                              command=[console_script("lm-eval-erank")])
    _, results, samples = erank_runs["gpt2"]
    assert _values(results, samples) == _values(alias_results, alias_samples)
    assert results["versions"] == alias_results["versions"] and results["n-samples"] == alias_results["n-samples"]


@pytest.mark.parametrize("arch", ARCHS)
def test_every_task_reports_every_metric_with_numeric_stderr(erank_runs, arch):
    _, results, _ = erank_runs[arch]
    for task, accuracy in TASK_ACCURACY.items():
        row = results["results"][task]
        for metric in (*accuracy, *METRIC_NAMES):
            value, stderr = row[f"{metric},none"], row[f"{metric}_stderr,none"]
            assert isinstance(value, float) and math.isfinite(value), (task, metric, value)
            assert isinstance(stderr, float) and math.isfinite(stderr), (task, metric, stderr)
        assert row["erank_excluded,none"] == 0
        # A model trained on these texts loses noise and loss relative to its random twin.
        assert row["diff_erank,none"] > 0 and row["reduced_loss,none"] > 0
    group = results["results"]["local_erank"]
    for metric in GROUP_METRICS:
        assert math.isfinite(group[f"{metric},none"]) and math.isfinite(group[f"{metric}_stderr,none"])
    assert set(results["group_subtasks"]["local_erank"]) == set(LOCAL_ERANK_TASKS)


@pytest.mark.parametrize("arch", ARCHS)
def test_results_record_seed_dtype_and_version(erank_runs, arch):
    _, results, _ = erank_runs[arch]
    config = results["config"]
    assert config["erank_m0_seed"] == 1234  # lm-eval's default torch seed
    assert config["erank_dtype"] == "torch.float32"
    assert config["lm_eval_erank_version"] == __version__


@pytest.mark.parametrize("arch", ARCHS)
def test_samples_carry_per_text_values_and_aggregates_recompute(erank_runs, arch):
    _, results, samples = erank_runs[arch]
    for task in LOCAL_ERANK_TASKS:
        docs = samples[task]
        assert len(docs) == results["n-samples"][task]["effective"]
        pairs = np.array([d["diff_erank"] for d in docs], dtype=float)
        for d in docs:
            assert all(isinstance(d[m], (int, float)) for m in METRIC_NAMES if m not in ("diff_erank", "erank_ratio"))
            assert d["erank_ratio"] == d["diff_erank"]  # both carry [eRank(M0), eRank(M1)]
            assert d["erank_tokens"] >= 2
        row = results["results"][task]
        expected = math.exp(np.log(pairs[:, 0]).mean()) - math.exp(np.log(pairs[:, 1]).mean())
        assert row["diff_erank,none"] == pytest.approx(expected, rel=1e-12)
        assert row["erank_m1,none"] == pytest.approx(math.exp(np.log(pairs[:, 1]).mean()), rel=1e-12)
        assert row["erank_m0_b,none"] == pytest.approx(pairs[:, 0].mean(), rel=1e-12)
        losses = np.array([d["reduced_loss"] for d in docs])
        assert row["reduced_loss,none"] == pytest.approx(losses.mean(), rel=1e-12)


def _reference_entropy(states: np.ndarray) -> float:
    """Independent d x d float64 definition: centre, normalise rows, covariance, SVD."""
    z = states - states.mean(axis=0)
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    sigma = z.T @ z / len(z)
    lam = np.linalg.svd(sigma / np.trace(sigma), compute_uv=False)
    lam = lam[lam > 0]
    return float(-(lam * np.log(lam)).sum())


@pytest.mark.parametrize("arch", ARCHS)
def test_per_text_eranks_equal_direct_recomputation_from_hidden_states(erank_runs, tiny_models, arch):
    """The harness's per-text eRanks equal exp(H) computed here from output_hidden_states[-1]."""
    _, _, samples = erank_runs[arch]
    tokenizer = AutoTokenizer.from_pretrained(tiny_models[arch])
    m1 = AutoModelForCausalLM.from_pretrained(tiny_models[arch], dtype=torch.float32).eval()
    m0 = build_random_twin(m1, 1234)
    for doc in samples["local_erank_winogrande"][:4] + samples["local_erank_piqa"][:4]:
        text = list(doc["arguments"].values())[-1]["arg_0"]  # the erank request has the last idx
        ids = torch.tensor([tokenizer(text)["input_ids"]])
        assert ids.shape[1] == doc["erank_tokens"]
        for model, key in ((m1, 1), (m0, 0)):
            with torch.no_grad():
                states = model(ids, output_hidden_states=True).hidden_states[-1][0].double().numpy()
            assert doc["diff_erank"][key] == pytest.approx(math.exp(_reference_entropy(states)), rel=1e-6)


def test_accuracy_equals_standard_tasks_under_model_hf(erank_runs, tiny_models, local_tasks, tmp_path):
    _, erank_results, _ = erank_runs["gpt2"]
    _, hf_results, _ = run_cli(
        ["--model", "hf", "--model_args", model_args(tiny_models["gpt2"], standard=True), "--device", "cpu",
         "--include_path", str(local_tasks), "--tasks", "local_piqa,local_openbookqa,local_winogrande",
         "--batch_size", "4"],
        tmp_path,
    )
    for task, accuracy in TASK_ACCURACY.items():
        standard = task.replace("erank_", "")
        for metric in accuracy:
            key = f"{metric},none"
            assert erank_results["results"][task][key] == hf_results["results"][standard][key], (task, metric)
            assert erank_results["results"][task][f"{metric}_stderr,none"] == hf_results["results"][standard][f"{metric}_stderr,none"]


def test_console_script_and_model_alias(tiny_models, local_tasks, tmp_path):
    """The installed ``lm-eval-erank`` script works, and ``--model erank`` is an alias."""
    script = shutil.which("lm-eval-erank")
    assert script, "console script lm-eval-erank is not installed"
    out = tmp_path / "out"
    done = subprocess.run(
        [script, "--model", "erank", "--model_args", model_args(tiny_models["opt"], m0_seed=7), "--device", "cpu",
         "--include_path", str(local_tasks), "--tasks", "local_erank_openbookqa", "--limit", "4", "--output_path", str(out)],
        capture_output=True, text=True, timeout=600, env=dict(os.environ),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "diff_erank" in done.stdout


def test_standard_model_on_erank_task_fails_naming_hf_erank_before_it_loads(tiny_models, local_tasks, tmp_path):
    """A real ``lm_eval`` process: refused before the model loads, in two lines (no traceback), exit status 1."""
    done, results, _ = run_cli(
        ["--model", "hf", "--model_args", model_args(tiny_models["gpt2"], standard=True), "--device", "cpu",
         "--include_path", str(local_tasks), "--tasks", "local_erank_piqa", "--limit", "2"],
        tmp_path, check=False, command=[console_script("lm_eval")],
    )
    assert done.returncode == 1 and results is None
    assert done.stderr.endswith(
        "RequestNotServedError: the tasks local_erank_piqa send 'erank' requests, which HFLM does not serve. "
        "Run them with --model hf-erank (it accepts every --model hf argument).\n"
        "(an lm-eval-erank error; LM_EVAL_ERANK_TRACEBACK=1 shows its traceback)\n"), done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "Initializing hf model" not in done.stderr


def test_ls_tasks_lists_the_erank_tasks():
    done = subprocess.run([console_script("lm_eval"), "ls", "tasks"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    listed = done.stdout
    for name in ("erank_piqa", "erank_openbookqa", "erank_winogrande"):
        assert f"|{name} " in listed.replace(" |", "|")
