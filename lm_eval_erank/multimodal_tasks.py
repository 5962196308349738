"""The path task YAMLs name: ``class: !function lm_eval_erank.multimodal_tasks.MultimodalErankTask``
and its ``!function`` helpers (defined in ``harness.multimodal_tasks``)."""

from .core.alignment import MULTIMODAL_METRICS
from .harness.multimodal_tasks import (CC_SBU_INSTRUCTION, CC_SBU_REPO, IMAGE_PLACEHOLDER, MultimodalErankTask,
                                       cc_sbu_image, cc_sbu_text, llava_instruct_text)
from .harness.request_types import MULTIMODAL_REQUEST

__all__ = ["CC_SBU_INSTRUCTION", "CC_SBU_REPO", "IMAGE_PLACEHOLDER", "MULTIMODAL_METRICS", "MULTIMODAL_REQUEST",
           "MultimodalErankTask", "cc_sbu_image", "cc_sbu_text", "llava_instruct_text"]
