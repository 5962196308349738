"""scripts/bench.py and scripts/dtype_drift.py run end to end (correctness only, no timings asserted:
the speed requirements are measured by running the scripts, see README "Performance")."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(args, timeout=600):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-4000:]
    return done


def test_bench_runs_every_comparison_and_writes_a_complete_report(tmp_path):
    out = tmp_path / "bench.json"
    done = _run(["scripts/bench.py", "--docs", "5", "--repeats", "1", "--auto-docs", "2", "--ref-texts", "6",
                 "--gen-toks", "4", "--out", str(out)])
    report = json.loads(out.read_text())
    for section in ("ours_all_texts", "reference", "harness", "twin", "auto_batch", "m0_cache", "m0_swap", "wrapped",
                    "machine", "verdicts"):
        assert section in report, section
    assert set(report["harness"]) >= {"piqa", "openbookqa", "winogrande"}
    # The re-implemented reference agrees with our entropies (float32 SVD vs float64 Gram).
    assert report["reference"]["agreement"]["max_abs_entropy_diff"] < 1e-3
    assert report["twin"]["reproducible"] and report["twin"]["built_on_device"]
    assert report["auto_batch"]["works"] and report["auto_batch"]["max_abs_metric_diff_vs_fixed"] < 1e-6
    assert report["m0_cache"]["warm_equals_cold"] and report["m0_cache"]["max_abs_diff_cached_vs_fresh"] < 1e-6
    assert report["m0_swap"]["same_results"] and report["reference"]["lean_entropies_equal"]
    assert report["m0_swap"]["both_peak_bytes"] >= report["m0_swap"]["m1_weight_bytes"]
    assert report["ours_all_texts"]["losses_s"] > 0 and report["reference"]["ours_same_texts_without_losses"]["losses_s"] == 0
    assert all(isinstance(v, bool) for v in report["verdicts"].values())
    # erank_<name> of a generation task and a group: their own metrics unchanged, Diff-eRank beside
    assert set(report["wrapped"]) == {"generation", "group"}
    assert all(r["same_base_metrics"] and math.isfinite(r["diff_erank"]) for r in report["wrapped"].values())
    assert math.isfinite(report["ours_all_texts"]["spectra_share"]) and "verdicts:" in done.stdout


def test_dtype_drift_runs():
    done = _run(["scripts/dtype_drift.py", "--hidden", "32", "--layers", "1", "--texts", "12"])
    rows = [line.split() for line in done.stdout.splitlines() if line.startswith(("M1 ", "M0 "))]
    assert [(r[0], r[1]) for r in rows] == [(m, d) for m in ("M1", "M0") for d in ("float32", "bfloat16", "float16")]
    assert all(float(r[3]) < 0.05 for r in rows)  # max |dH| vs float32, in nats


def test_gpu_check_script_rehearses_on_cpu(tmp_path):
    """scripts/gpu_check.sh (the one-command GPU run) installs the package into a temporary
    directory and runs bench.py and dtype_drift.py; here on the CPU at the small shape."""
    env = dict(os.environ, DEVICE="cpu", SHAPE="small", DOCS="3", PYTHON=sys.executable, OUT=str(tmp_path), WHEELS="")
    done = subprocess.run(["bash", "scripts/gpu_check.sh"], capture_output=True, text=True, timeout=600, env=env,
                          cwd=ROOT)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["machine"]["device"] == "cpu" and "verdicts:" in done.stdout
    assert "lm_eval_erank" in (tmp_path / "machine.txt").read_text()
    assert "M0    float16" in (tmp_path / "dtype_drift.log").read_text()
