"""Run the end-to-end subset against each supported lm-eval release; print the README's matrix.

For each release it builds (once, cached under ``--venv-root``) a virtual environment with
torch 2.13.0, that lm-eval and the newest transformers / datasets / accelerate (the oldest
release instead takes ``scripts/oldest-constraints.txt``: every declared lower bound), installs
this checkout without dependencies, and runs the subset with pytest. Prints one markdown row per
release: versions, passed/failed counts, wall time.

    python scripts/compat_matrix.py                       # 0.4.10 .. 0.4.13 (about 10 min each on 2 cores)
    python scripts/compat_matrix.py --releases 0.4.12 --venv 0.4.12=/path/to/venv
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RELEASES = ("0.4.10", "0.4.11", "0.4.12", "0.4.13")
SUBSET = ("tests/test_lm_eval_internals.py", "tests/test_cli_end_to_end.py", "tests/test_wrapping.py")
OLDEST_CONSTRAINTS = ROOT / "scripts" / "oldest-constraints.txt"


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, text=True, **kwargs)


def build(release: str, venv: Path) -> Path:
    python = venv / "bin" / "python"
    if (venv / ".complete").is_file():
        return python
    run([sys.executable, "-m", "venv", "--clear", str(venv)])
    run([str(python), "-m", "pip", "install", "-q", "torch==2.13.0"])
    pins = ["-c", str(OLDEST_CONSTRAINTS)] if release == RELEASES[0] else []
    run([str(python), "-m", "pip", "install", "-q", *pins, f"lm-eval=={release}", "transformers", "datasets",
         "accelerate", "pytest>=8", "hypothesis>=6.100", "tokenizers>=0.19"])
    (venv / ".complete").touch()
    return python


def versions(python: Path) -> str:
    code = ("import importlib.metadata as m; print(', '.join(f'{p} {m.version(p)}' for p in "
            "('lm-eval', 'transformers', 'datasets', 'accelerate', 'torch')))")
    return run([str(python), "-c", code], capture_output=True).stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--releases", nargs="+", default=list(RELEASES))
    parser.add_argument("--venv-root", type=Path, default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                        / "lm-eval-erank" / "compat")
    parser.add_argument("--venv", action="append", default=[], help="RELEASE=PATH: use an existing environment")
    parser.add_argument("--tests", nargs="+", default=list(SUBSET))
    args = parser.parse_args(argv)
    given = dict(item.split("=", 1) for item in args.venv)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    rows = ["| lm-eval | environment | subset | wall |", "|---|---|---|---|"]
    for release in args.releases:
        python = Path(given[release]) / "bin" / "python" if release in given else build(release, args.venv_root / release)
        run([str(python), "-m", "pip", "install", "-q", "--no-deps", "-e", str(ROOT)])
        start = time.perf_counter()
        env["PATH"] = f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}"  # its console scripts, as when activated
        done = subprocess.run([str(python), "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider", *args.tests],
                              cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        summary = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
        counts = ", ".join(re.findall(r"\d+ (?:passed|failed|errors?|skipped)", summary)) or summary
        failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", done.stdout, flags=re.M)
        counts += "".join(f"; {name.split('::')[-1]}" for name in failed)
        rows.append(f"| {release} | {versions(python)} | {counts} | {wall:.0f} s |")
        print(rows[-1], flush=True)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
