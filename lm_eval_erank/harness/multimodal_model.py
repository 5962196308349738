"""The ``hf-multimodal-erank`` model: lm-eval's HFMultimodalLM plus the ``erank_multimodal`` request.

lm-eval 0.4.13's HFMultimodalLM accepts images only in ``generate_until``; the
``erank_multimodal`` request therefore runs its own forward (processor + the model's base
module, with hooks on ``multi_modal_projector``), see :mod:`lm_eval_erank.core.alignment`.
Importing this module registers the model; ``activation.register()`` registers the metrics and
the clear error for models that do not serve the request.
"""

from __future__ import annotations

import logging

from lm_eval.api.instance import Instance
from lm_eval.api.registry import register_model
from lm_eval.models.hf_vlms import HFMultimodalLM
from tqdm import tqdm

from .._version import __version__
from ..core import alignment as mm
from ..core.checks import check_rotation
from ..core.exclusions import warn_excluded

logger = logging.getLogger("lm_eval.erank.multimodal")


@register_model("hf-multimodal-erank")
class ErankMultimodalLM(HFMultimodalLM):
    """HFMultimodalLM (every ``hf-multimodal`` model argument works) serving ``erank_multimodal``.

    Extra model arguments:
        rotate: turn every image this many degrees clockwise (a multiple of 90; default 0), the
            paper's rotation ablation; added to a task's own ``mm_rotate``.
        pair_template: how the image-text input is written (default ``"{image}\\n{text}"``,
            ``{image}`` = the processor's image placeholder).

    ``batch_size`` is the number of documents per forward (each document is 3 rows).
    """

    def __init__(self, pretrained, rotate: int | str = 0, pair_template: str | None = None, **kwargs) -> None:
        self.rotate = check_rotation(rotate)
        self.pair_template = pair_template or mm.PAIR_TEMPLATE
        super().__init__(pretrained, **kwargs)
        mm.check_supported(self.model)
        self.model.eval()

    def erank_multimodal(self, requests: list[Instance], disable_tqdm: bool = False) -> list[dict]:
        """Per request (text, image source, {rotate, image_root}): the entropies of eRank1..5
        (nats, None if undefined) and token counts, as plain floats/ints."""
        if not requests:
            return []
        batch = max(1, int(self.batch_size))
        results: list[dict] = []
        with tqdm(total=len(requests), desc="Running erank_multimodal requests",
                  disable=disable_tqdm or self.rank != 0) as bar:
            for start in range(0, len(requests), batch):
                chunk = requests[start: start + batch]
                texts, images = [], []
                for req in chunk:
                    text, source, options = req.args
                    image = mm.load_image(source, options.get("image_root"))
                    images.append(mm.rotate_image(image, (self.rotate + int(options.get("rotate", 0))) % 360))
                    texts.append(text)
                results += mm.sample_entropies(self.model, self.processor, images, texts, rotate=0,
                                               pair_template=self.pair_template)
                bar.update(len(chunk))
        warn_excluded([r.task_name for r in requests], [mm.excluded_reason(row) for row in results], "mm_excluded")
        return results

    def get_model_info(self) -> dict:
        info = super().get_model_info()
        info.update({
            "erank_rotate": self.rotate,
            "erank_pair_template": self.pair_template,
            "erank_dtype": str(self.model.dtype),
            "lm_eval_erank_version": __version__,
        })
        return info
