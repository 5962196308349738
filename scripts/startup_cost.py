"""Measure what the start-up hook (lm_eval_erank_autoload, imported by a .pth) costs.

1. ``python -X importtime -c pass``: the hook module's own import time (self and cumulative
   microseconds, median over --runs), and the interpreter's total start-up with and without the
   hook installing anything (LM_EVAL_ERANK_AUTOLOAD=0 still imports the module; the difference
   is what the finder costs on top).
2. Wall time of lm-eval commands with the plugin on and off (median over --cli-runs):
   ``lm_eval validate --tasks erank_piqa`` (off: a "not found" exit, same work) and
   ``python -c 'import lm_eval.evaluator'`` (on: the full registration, torch included).

Run from the project root in the environment that has the package installed:
    python scripts/startup_cost.py [--runs 30] [--cli-runs 3]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from studies import environment

HOOK = "lm_eval_erank_autoload"


def importtime(env: dict) -> tuple[int, int, int]:
    """(hook self us, hook cumulative us, sum of all top-level cumulative us) for ``-c pass``."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "pass"], capture_output=True, text=True, env=env,
                          check=True)
    self_us = cumulative_us = 0
    total = 0
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if not match:
            continue
        own, cumulative, indent, name = int(match[1]), int(match[2]), len(match[3]), match[4]
        if indent == 1:
            total += cumulative
        if name == HOOK:
            self_us, cumulative_us = own, cumulative
    return self_us, cumulative_us, total


def wall(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, capture_output=True, env=env)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--cli-runs", type=int, default=3)
    args = parser.parse_args()
    on = environment.offline_env()
    on.pop("LM_EVAL_ERANK_AUTOLOAD", None)
    off = dict(on, LM_EVAL_ERANK_AUTOLOAD="0")

    print(f"python {sys.version.split()[0]} at {sys.executable}; load average {os.getloadavg()[0]:.2f}")
    for label, env in (("on", on), ("off", off)):
        rows = [importtime(env) for _ in range(args.runs)]
        cumulative = [r[1] for r in rows]
        print(f"-X importtime -c pass, hook {label:3s}: {HOOK} (imports nothing else: self == cumulative "
              f"{all(r[0] == r[1] for r in rows)}) median {statistics.median(cumulative) / 1000:.2f} ms, "
              f"min {min(cumulative) / 1000:.2f} ms; all top-level imports median "
              f"{statistics.median(r[2] for r in rows) / 1000:.1f} ms ({args.runs} runs)")

    lm_eval = str(Path(sys.executable).parent / "lm_eval")
    commands = {
        "lm_eval validate --tasks erank_piqa": [lm_eval, "validate", "--tasks", "erank_piqa"],
        "python -c 'import lm_eval.evaluator'": [sys.executable, "-c", "import lm_eval.evaluator"],
    }
    for label, cmd in commands.items():
        for state, env in (("on", on), ("off", off)):
            times = [wall(cmd, env) for _ in range(args.cli_runs)]
            print(f"{label}, plugin {state:3s}: {statistics.median(times):.2f} s (median of {args.cli_runs})")


if __name__ == "__main__":
    main()
