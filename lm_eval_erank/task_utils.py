"""The path task YAMLs name: ``!function lm_eval_erank.task_utils.NAME`` (defined in
``harness.task_utils``)."""

from .harness.task_utils import *  # noqa: F403
from .harness.task_utils import __all__  # noqa: F401
