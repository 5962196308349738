"""The path task YAMLs name: ``class: !function lm_eval_erank.tasks.ErankTask`` (defined in
``harness.tasks``)."""

from .harness.request_types import ERANK_REQUEST
from .harness.tasks import LM_EVAL_TASKS_DIR, ErankTask, GoldTextError, load_base_config, merged_config

__all__ = ["ERANK_REQUEST", "ErankTask", "GoldTextError", "LM_EVAL_TASKS_DIR", "load_base_config", "merged_config"]
