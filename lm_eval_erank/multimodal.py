"""eRank-based alignment scores of multi-modal LLMs (the paper's section 5): the public Python
front of ``core.alignment``, where they are defined.

    from lm_eval_erank.multimodal import alignment_eranks
    result = alignment_eranks(model, processor, images, texts)
    result.scores["image_reduction_ratio"], result.scores["image_text_alignment"]
"""

from .core.alignment import *  # noqa: F403
from .core.alignment import __all__  # noqa: F401
