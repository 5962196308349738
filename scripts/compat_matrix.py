"""Run the end-to-end subset against each supported lm-eval release; print the README's matrix.

For each release it builds (once, cached under ``--venv-root``: the package's cache root's
``compat/``, i.e. ``$LM_EVAL_ERANK_CACHE/compat``, else ``~/.cache/lm_eval_erank/compat``) a virtual
environment from the registry: torch 2.13.0 (the CPU build), then this checkout in editable mode
with its test extras and that lm-eval, so pip resolves everything else against our declared ranges:
the newest versions they allow, except for the oldest release, which takes ``scripts/oldest-constraints.txt``
(every lower bound we declare, test extras included). It then runs the subset with
pytest and prints one markdown row per release: versions, passed/failed counts, wall times. Exits
non-zero when any release fails (``scripts/test_oldest.sh`` is this script for the oldest release).

    python scripts/compat_matrix.py                       # 0.4.10 .. 0.4.13 (a few minutes each on 2 cores)
    python scripts/compat_matrix.py --releases 0.4.12 --venv 0.4.12=/path/to/venv
    python scripts/compat_matrix.py --releases 0.4.10 -- -x -k piqa   # after --: extra pytest arguments
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from studies import environment

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's package (cache_root is stdlib only), whichever python runs this
from lm_eval_erank.core.cache_root import cache_root  # noqa: E402

RELEASES = ("0.4.10", "0.4.11", "0.4.12", "0.4.13")
OLDEST_CONSTRAINTS = ROOT / "scripts" / "oldest-constraints.txt"
SUBSET = (
    "tests/test_lm_eval_internals.py",
    "tests/test_cli_end_to_end.py",
    "tests/test_wrapping.py",
    "tests/test_first_run.py",  # refusals before the model loads, --output_path and its fallback, two-line errors
    "tests/test_flags.py",  # every run flag beside --model hf (Trackio's: 0.4.12+, skipped on older releases)
    "tests/test_guarantees.py::test_interrupts_are_deferred_until_a_write_finishes",  # the Ctrl-C-safe writes
    "tests/test_guarantees.py::test_ctrl_c_during_a_run_leaves_no_partial_output",
    "tests/test_scripts.py::test_layer_curves_and_null_metrics",  # matplotlib (a test extra) at its floor
)
VERSIONS_OF = ("lm-eval", "transformers", "datasets", "accelerate", "torch", "tokenizers", "pytest", "pytest-xdist",
               "hypothesis", "matplotlib")


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, text=True, **kwargs)


def recipe(release: str) -> list[str]:
    """pip arguments that install this checkout (editable, test extras) with ``release``."""
    pins = ["-c", str(OLDEST_CONSTRAINTS)] if release == RELEASES[0] else []
    return [*pins, "-e", f"{ROOT}[test]", f"lm-eval=={release}"]


def build(release: str, venv: Path) -> Path:
    """The environment's python; (re)built unless ``venv`` was built by the same recipe."""
    python = venv / "bin" / "python"
    spec = recipe(release)
    stamp = " ".join(spec) + "\n" + (OLDEST_CONSTRAINTS.read_text() if "-c" in spec else "")
    key = hashlib.sha256(stamp.encode()).hexdigest()[:16]
    complete = venv / ".complete"
    if python.exists() and complete.is_file() and complete.read_text().strip() == key:
        run([str(python), "-m", "pip", "install", "-q", "--no-deps", "-e", str(ROOT)])  # this checkout's metadata
        return python
    run([sys.executable, "-m", "venv", "--clear", str(venv)])
    run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"])
    run([str(python), "-m", "pip", "install", "-q", "torch==2.13.0"])  # the CPU build, before anything pulls CUDA
    run([str(python), "-m", "pip", "install", "-q", *spec])
    run([str(python), "-m", "pip", "check"], stdout=subprocess.DEVNULL)
    complete.write_text(key + "\n")
    return python


def versions(python: Path) -> str:
    code = ("import importlib.metadata as m; print(', '.join(f'{p} {m.version(p)}' for p in "
            f"{VERSIONS_OF!r}))")
    return run([str(python), "-c", code], capture_output=True).stdout.strip()


def run_subset(python: Path, tests: list[str], pytest_args: list[str]) -> tuple[int, str]:
    """Run pytest in the environment, streaming its output; return (exit code, output)."""
    env = environment.offline_env()
    env["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '')}"  # its console scripts, as when activated
    env.pop("VIRTUAL_ENV", None)
    cmd = [str(python), "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider", "-n", "2", "--dist", "loadfile",
           "--no-loadscope-reorder", *tests,
           *pytest_args]
    lines = []
    with subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            print(line, end="", flush=True)
            lines.append(line)
    return proc.returncode, "".join(lines)


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """(this script's arguments, with ``places``: {release: environment folder}; pytest's, after ``--``)."""
    pytest_args = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--releases", nargs="+", default=list(RELEASES), choices=RELEASES)
    parser.add_argument("--venv-root", type=Path, default=cache_root() / "compat")
    parser.add_argument("--venv", action="append", default=[],
                        help="RELEASE=PATH: the environment's place (built there unless already built by this recipe)")
    parser.add_argument("--tests", nargs="+", default=list(SUBSET))
    args = parser.parse_args(argv)
    args.places = {release: args.venv_root / release for release in args.releases}
    args.places.update({release: Path(path) for release, path in (item.split("=", 1) for item in args.venv)})
    return args, pytest_args


def main(argv: list[str] | None = None) -> int:
    args, pytest_args = parse_args(list(sys.argv[1:] if argv is None else argv))
    places = args.places
    rows = ["| lm-eval | environment | subset | build + tests |", "|---|---|---|---|"]
    failed_releases = []
    for release in args.releases:
        start = time.perf_counter()
        python = build(release, places[release])
        built = time.perf_counter() - start
        print(f"lm-eval {release}: {versions(python)}", flush=True)
        start = time.perf_counter()
        code, output = run_subset(python, args.tests, pytest_args)
        tested = time.perf_counter() - start
        summary = (output.strip().splitlines() or ["(no output)"])[-1]
        counts = ", ".join(re.findall(r"\d+ (?:passed|failed|errors?|skipped|deselected)", summary)) or summary
        counts += "".join(f"; {name.split('::')[-1]}" for name in re.findall(r"^(?:FAILED|ERROR) (\S+)", output, re.M))
        if code != 0:
            failed_releases.append(release)
        rows.append(f"| {release} | {versions(python)} | {counts} | {built:.0f} s + {tested:.0f} s |")
    print("\n".join(rows))
    if failed_releases:
        print(f"FAILED on lm-eval {', '.join(failed_releases)}", file=sys.stderr)
    return 1 if failed_releases else 0


if __name__ == "__main__":
    raise SystemExit(main())
