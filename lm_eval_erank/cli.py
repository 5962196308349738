"""``lm-eval-erank`` / ``python -m lm_eval_erank``: lm-eval's own CLI with the plugin loaded.

Adds to lm-eval's help the ``hf-erank`` model arguments, and ``--task-dir``, which prints the
directory of the shipped ``erank_*`` task YAMLs (for a local task's ``include:``).
"""

from __future__ import annotations

import inspect
import sys

TASK_DIR_FLAG = "--task-dir"


def model_arguments_help() -> str:
    """The ``hf-erank`` section of the help: its own model arguments, from ErankHFLM's docstring."""
    from .model import ErankHFLM

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
        from .plugin import task_dir

        print(task_dir())
        return
    from .lm_eval_internals import harness_cli
    from .plugin import register

    register()
    cli, help_parsers = harness_cli()  # as lm_eval's own entry point, with our section in the help
    extra = model_arguments_help()
    for help_parser in help_parsers:
        help_parser.epilog = f"{help_parser.epilog or ''}\n{extra}"
    cli.execute(cli.parse_args())
