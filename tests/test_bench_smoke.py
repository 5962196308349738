"""scripts/gpu_check.sh (the one-command GPU run: scripts/bench.py and scripts/dtype_drift.py)
rehearsed on the CPU at the small shape; correctness only, no timings asserted: the speed
requirements are measured by running the scripts, see docs/performance.md."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

from .conftest import ROOT, copy_sources


def test_gpu_check_rehearses_bench_and_dtype_drift_on_cpu(tmp_path):
    """gpu_check.sh installs the package into a temporary directory (here from a copy of the
    sources) and runs every comparison of bench.py, then dtype_drift.py."""
    src, out = copy_sources(tmp_path / "src"), tmp_path / "out"
    env = dict(os.environ, DEVICE="cpu", SHAPE="small", DOCS="5", PYTHON=sys.executable, OUT=str(out), WHEELS="",
               BENCH_ARGS="--repeats 1 --auto-docs 2 --ref-texts 6 --gen-toks 4", HF_HUB_OFFLINE="1",
               HF_DATASETS_OFFLINE="1")
    data = ROOT.parent / "shared" / "data"  # what bench.py finds beside this checkout, found from the copy too
    if data.is_dir() and "LM_EVAL_ERANK_BENCH_DATA" not in env:
        env["LM_EVAL_ERANK_BENCH_DATA"] = str(data)
    done = subprocess.run(["bash", str(src / "scripts" / "gpu_check.sh")], capture_output=True, text=True,
                          timeout=900, env=env, cwd=tmp_path)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    assert "lm_eval_erank" in (out / "machine.txt").read_text() and "verdicts:" in done.stdout

    report = json.loads((out / "bench.json").read_text())
    assert report["machine"]["device"] == "cpu"
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
    assert math.isfinite(report["ours_all_texts"]["spectra_share"])

    drift = (out / "dtype_drift.log").read_text().splitlines()
    rows = [line.split() for line in drift if line.startswith(("M1 ", "M0 "))]
    assert [(r[0], r[1]) for r in rows] == [(m, d) for m in ("M1", "M0") for d in ("float32", "bfloat16", "float16")]
    assert all(float(r[3]) < 0.05 for r in rows)  # max |dH| vs float32, in nats
