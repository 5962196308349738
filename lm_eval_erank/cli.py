"""``lm-eval-erank`` / ``python -m lm_eval_erank``: lm-eval's own CLI with the plugin loaded."""

from __future__ import annotations


def main() -> None:
    from lm_eval.__main__ import cli_evaluate

    from .plugin import register

    register()
    cli_evaluate()
