"""Shared fixtures: tiny local models and tokenizers, local task data, a CLI runner.

Everything is built at run time from configs (no hub access); models are saved to temp
dirs and loaded through ``pretrained=<dir>`` exactly as a user would.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tests never write to the user's cache: one fresh M0 results cache per test session.
os.environ["LM_EVAL_ERANK_CACHE"] = tempfile.mkdtemp(prefix="erank-m0-cache-")

from lm_eval_erank.testing import tiny  # noqa: E402

# pytest-xdist's workers ignore SIGINT (the controller handles Ctrl-C), and an ignored signal is
# inherited by child processes: give tests the handler a user's interpreter has, so the Ctrl-C
# tests see Python's default and the lm_eval processes they start can be interrupted.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

ARCHS = ("gpt2", "llama", "opt")
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
# The slowest test files first (seconds under `-n 2`, measured with --durations=0): pytest-xdist
# (`--dist loadfile --no-loadscope-reorder`) hands out files in this order, so that the two
# workers finish together instead of one running a long file alone at the end.
SLOWEST_FIRST = ("test_real_model_qwen2.py", "test_guarantees.py", "test_cli_end_to_end.py", "test_flags.py",
                 "test_real_model.py", "test_compare.py", "test_real_models_script.py",
                 "test_api.py", "test_lm_tasks.py", "test_bench_smoke.py", "test_activation.py", "test_wrapping.py",
                 "test_first_run.py", "test_rough_edges.py", "test_training.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: file order kept otherwise


def built_once(tmp_path_factory, name: str, build) -> Path:
    """Directory ``name``, filled by ``build(directory)`` once per test run: pytest-xdist's
    workers share it (the first builds it under a lock, the others wait and reuse it)."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's directory, above each worker's own
    target = base / f"shared-{name}"
    with FileLock(f"{target}.lock"):
        if not (target / ".complete").is_file():
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            build(target)
            (target / ".complete").touch()
    return target


@pytest.fixture(scope="session")
def tokenizers_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tokenizers")


@pytest.fixture(scope="session")
def make_tokenizer(tokenizers_dir):
    cache = {}

    def make(add_bos: bool):
        if add_bos not in cache:
            cache[add_bos] = tiny.train_tokenizer(
                tiny.gold_texts(), tokenizers_dir / ("bos" if add_bos else "plain"), add_bos=add_bos
            )
        return cache[add_bos]

    return make


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory, make_tokenizer):
    """{arch: directory} of tiny models briefly trained on the fixture texts.

    GPT-2-shaped uses a tokenizer that adds no special tokens; Llama- and OPT-shaped use one
    that prepends BOS, as their real tokenizers do.
    """

    def build(root: Path) -> None:
        for arch in ARCHS:
            tok = make_tokenizer(add_bos=arch != "gpt2")
            tiny.build_tiny_model(arch, tok, root / arch, seed=0, train_texts=tiny.gold_texts(), steps=40)

    root = built_once(tmp_path_factory, "models", build)
    return {arch: root / arch for arch in ARCHS}


@pytest.fixture(scope="session")
def local_tasks(tmp_path_factory):
    """Directory with local-data erank tasks (``local_erank_*``), standard tasks (``local_*``)
    and the group ``local_erank``, on the example docs."""
    directory = tmp_path_factory.mktemp("tasks")
    tiny.write_local_tasks(directory, prefix="local")
    return directory


LOCAL_ERANK_TASKS = ["local_erank_piqa", "local_erank_openbookqa", "local_erank_winogrande"]


def console_script(name: str) -> str:
    """Path of a console script installed in the test environment (``lm_eval``, ``lm-eval``...)."""
    path = Path(sys.executable).parent / name
    assert path.exists(), f"console script {name} is not installed next to {sys.executable}"
    return str(path)


ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "setup.py", "README.md", "lm_eval_erank_autoload.py", "lm_eval_erank", "task_configs",
           "scripts")


def copy_sources(dest: Path) -> Path:
    """Copy what a build needs (and scripts/) to ``dest``: tests that build or install the
    package do it from a private copy, since setuptools writes build/ inside the source tree
    and two builds of one tree at once (tests run in parallel) would race."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in SOURCES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    return dest


class FakeTrainer:
    """What DiffErankCallback uses of a transformers Trainer: its tokenizer and ``log``, which
    keeps every logged dict in ``logged``."""

    def __init__(self, tokenizer):
        self.processing_class = tokenizer
        self.logged: list[dict] = []

    def log(self, logs: dict) -> None:
        self.logged.append(logs)


class FakeTrainerState:
    """The TrainerState fields the callback reads, at step 0 on the main process."""

    global_step, is_world_process_zero = 0, True


def run_cli(args: list[str], output_dir: Path, module: str = "lm_eval_erank", check: bool = True,
            command: list[str] | None = None):
    """Run ``python -m <module> <args> --output_path output_dir`` (or ``<command> <args> ...``);
    return (completed, results, samples).

    results: the parsed results JSON (None if absent); samples: {task: [sample dicts]}.
    """
    cmd = [*(command or [sys.executable, "-m", module]), *args, "--output_path", str(output_dir)]
    env = dict(os.environ, PYTHONHASHSEED="0")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if check and done.returncode != 0:
        raise AssertionError(f"CLI failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}")
    results_files = sorted(Path(output_dir).rglob("results_*.json"))
    results = json.loads(results_files[-1].read_text()) if results_files else None
    samples = {}
    for f in Path(output_dir).rglob("samples_*.jsonl"):
        task = f.name[len("samples_") :].rsplit("_", 1)[0]
        samples[task] = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return done, results, samples


def model_args(model_dir: Path, standard: bool = False, **extra) -> str:
    """--model_args for a local model. For hf-erank (``standard=False``) M0's results cache is
    off unless a test turns it on, so every run really computes M0; ``standard=True`` gives
    plain ``hf`` arguments."""
    extra = extra if standard else {"m0_cache": "off", **extra}
    parts = [f"pretrained={model_dir}", "dtype=float32"] + [f"{k}={v}" for k, v in extra.items()]
    return ",".join(parts)


def share_task_index(mp: pytest.MonkeyPatch) -> None:
    """Index each task directory once for all runs (0.4.12+: ``TaskIndex.build(paths)``, built
    path by path and merged in order, later paths winning as in lm-eval; 0.4.10/0.4.11:
    ``TaskManager._get_task_and_group(self, directory)``): a run with one more ``--include_path``
    indexes only that folder. Every TaskManager gets its own copy of the entries."""
    memo = {}

    def copied(key, build):
        if key not in memo:
            memo[key] = build()
        return {entry: copy.copy(value) for entry, value in memo[key].items()}

    try:
        from lm_eval.tasks._index import TaskIndex
    except ImportError:
        from lm_eval.tasks import TaskManager

        built = TaskManager._get_task_and_group

        def shared(self, directory, **kwargs):
            return copied((str(directory), tuple(sorted(kwargs.items()))), lambda: built(self, directory, **kwargs))

        mp.setattr(TaskManager, "_get_task_and_group", shared)
        return
    built = TaskIndex.build

    def shared_by_path(paths, **kwargs):
        index = {}
        for path in paths:
            index.update(copied((str(path), tuple(sorted(kwargs.items()))), lambda: built([path], **kwargs)))
        return index

    mp.setattr(TaskIndex, "build", staticmethod(shared_by_path))


@contextlib.contextmanager
def lm_eval_logging_restored():
    """lm-eval's CLI sets up its logger (no propagation to the root, so caplog would miss its
    records in later tests): put it back as it was."""
    import lm_eval.utils

    logger = logging.getLogger("lm_eval")
    saved = (logger.level, logger.propagate, list(logger.handlers), getattr(lm_eval.utils, "_LOGGING_CONFIGURED", None))
    try:
        yield
    finally:
        logger.setLevel(saved[0])
        logger.propagate, logger.handlers[:] = saved[1], saved[2]
        if saved[3] is not None:
            lm_eval.utils._LOGGING_CONFIGURED = saved[3]
