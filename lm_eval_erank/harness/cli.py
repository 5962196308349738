"""``lm-eval-erank`` / ``python -m lm_eval_erank``: lm-eval's own CLI with the plugin loaded.

Adds to lm-eval's help the ``hf-erank`` model arguments, and ``--task-dir``, which prints the
directory of the shipped ``erank_*`` task YAMLs (for a local task's ``include:``).
"""

from __future__ import annotations

import inspect
import sys

from .activation import register
from .lm_eval_internals import harness_cli
from .task_dirs import task_dir

TASK_DIR_FLAG = "--task-dir"


def model_arguments_help() -> str:
    """The ``hf-erank`` section of the help: its own model arguments, from ErankHFLM's docstring."""
    from .model import ErankHFLM  # torch: only when the help is shown

    doc = inspect.getdoc(ErankHFLM)
    section = doc.split("Extra model arguments:", 1)[1].split("\n\n", 1)[0]
    return (
        "hf-erank (--model hf-erank, alias erank): every --model hf argument, plus these\n"
        "model arguments (--model_args KEY=VALUE,KEY=VALUE):\n"
        f"{section}\n\n"
        f"{TASK_DIR_FLAG}: print the directory of the erank_* task YAMLs (for a local task's include:)\n"
    )


def main() -> None:
    if TASK_DIR_FLAG in sys.argv[1:]:
        print(task_dir())
        return
    register()
    cli = harness_cli(extra_help=model_arguments_help())  # as lm_eval's own entry point
    cli.execute(cli.parse_args())
