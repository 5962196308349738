"""The ``erank_mm_*`` tasks: one ``erank_multimodal`` request per (image, text) document.

A task YAML::

    task: my_mm_task
    class: !function lm_eval_erank.multimodal_tasks.MultimodalErankTask
    dataset_path: json
    dataset_kwargs: {data_files: {test: /data/pairs.jsonl}}
    test_split: test
    mm_image: image            # a column (PIL image, {"bytes","path"} dict, bytes or a path) or a !function
    mm_text: "{{instruction}}\\n{{response}}"   # a column, a Jinja template or a !function
    mm_image_root: /data/images  # joined to relative image paths; $VARS are expanded (optional)
    mm_rotate: 0               # rotate every image clockwise (multiple of 90; added to the model's rotate=)

Metrics (per document, then aggregated over documents):

| metric | per-doc value | aggregation (stderr: seeded bootstrap over documents) |
|---|---|---|
| erank1 .. erank5 | exp(H_k) | exp(mean_i H_k,i) |
| image_reduction_ratio | (eRank1, eRank2) | (G1 - G2) / G1, G = exp-mean over the documents |
| image_text_alignment | (eRank3, eRank4, eRank5) | mean(G3, G4, G5) / max(G3, G4, G5) |
| mm_excluded | 1 if some eRank of the doc is undefined | sum |

The module also holds the ``!function`` helpers of the shipped tasks (dotted paths only).
"""

from __future__ import annotations

import os
from typing import Any

from lm_eval.api.instance import Instance
from lm_eval.api.task import ConfigurableTask

from ..core import alignment as mm
from ..core.alignment import MULTIMODAL_METRICS
from ..core.checks import check_rotation
from ..core.errors import ErankValueError
from ..core.metrics import metric_list_entries
from . import lm_eval_internals as internals
from .request_types import MULTIMODAL_REQUEST

_OWN_KEYS = ("class", "mm_image", "mm_text", "mm_rotate", "mm_image_root")


class MultimodalErankTask(ConfigurableTask):
    """A representation-only task: each document sends one ``erank_multimodal`` request
    (text, image source, options) and reports eRank1..5 and the two alignment scores."""

    ERANK_REQUEST_TYPE = MULTIMODAL_REQUEST

    def __init__(self, config: dict[str, Any] | None = None, **kwargs) -> None:
        config = dict(internals.with_task_manager_metadata(config or {}))
        self._image_source = config.get("mm_image", "image")
        self._text_source = config.get("mm_text", "text")
        self.image_root = config.get("mm_image_root")
        self.rotate = check_rotation(config.get("mm_rotate", 0) or 0)
        config.setdefault("output_type", "loglikelihood_rolling")
        config.setdefault("doc_to_text", "")
        config.setdefault("doc_to_target", "")
        config["metric_list"] = metric_list_entries(MULTIMODAL_METRICS)
        self.reports_erank_metrics = True
        super().__init__(config={k: v for k, v in config.items() if k not in _OWN_KEYS}, **kwargs)

    def mm_text(self, doc: dict) -> str:
        source = self._text_source
        if callable(source):
            return str(source(doc))
        return str(doc[source]) if source in doc else internals.apply_template(source, doc)

    def mm_image(self, doc: dict):
        source = self._image_source
        return source(doc) if callable(source) else doc[source]

    def _root(self) -> str | None:
        if not self.image_root:
            return None
        root = os.path.expandvars(str(self.image_root))
        if "$" in root:
            raise ErankValueError(
                f"task {self.config.task}: mm_image_root {self.image_root!r} names an environment variable "
                "that is not set; set it to the directory holding the images"
            )
        return root

    def construct_requests(self, doc: dict, ctx, **kwargs) -> list[Instance]:
        kwargs.pop("apply_chat_template", None)
        kwargs.pop("chat_template", None)
        options = {"rotate": self.rotate, "image_root": self._root()}
        return [
            Instance(
                request_type=MULTIMODAL_REQUEST,
                doc=doc,
                arguments=(self.mm_text(doc), self.mm_image(doc), options),
                idx=0,
                **kwargs,
            )
        ]

    def override_metric(self, metric_name: str) -> None:
        """The task reports ``metric_name`` alone (``--predict_only``: ``bypass``); the entropies
        stay in each logged sample's response."""
        super().override_metric(metric_name)
        self.reports_erank_metrics = False

    def process_results(self, doc: dict, results: list) -> dict:
        return mm.per_sample_values(results[-1]) if self.reports_erank_metrics else {}


# ---- helpers of the shipped tasks ------------------------------------------------------------

IMAGE_PLACEHOLDER = "<image>"


def llava_instruct_text(doc: dict) -> str:
    """LLaVA-Instruct record -> instruction + "\\n" + response: the first human turn (its
    ``<image>`` placeholder and surrounding whitespace removed) and the first gpt turn."""
    turns = doc["conversations"]
    human = next(t["value"] for t in turns if t["from"] == "human")
    gpt = next(t["value"] for t in turns if t["from"] == "gpt")
    instruction = human.replace(IMAGE_PLACEHOLDER, "").strip()
    return f"{instruction}\n{gpt.strip()}"


# MiniGPT-4's second-stage data (cc_sbu_align) are image descriptions answering a "describe the
# image" instruction; the instruction below is the first of MiniGPT-4's alignment prompts
# (prompts/alignment.txt, "<Img><ImageHere></Img> Describe this image in detail.").
CC_SBU_INSTRUCTION = "Describe this image in detail."
CC_SBU_REPO = "Vision-CAIR/cc_sbu_align"


def cc_sbu_text(doc: dict) -> str:
    return f"{CC_SBU_INSTRUCTION}\n{doc['caption'].strip()}"


def cc_sbu_image(doc: dict) -> str:
    """Path of ``image/<image_id>.jpg``: under $LM_EVAL_ERANK_CC_SBU_DIR when set (a local copy of
    the data set repository), else fetched from (or found in the cache of) the hub repository."""
    relative = f"image/{doc['image_id']}.jpg"
    local = os.environ.get("LM_EVAL_ERANK_CC_SBU_DIR")
    if local:
        return os.path.join(local, relative)
    from huggingface_hub import hf_hub_download

    return hf_hub_download(CC_SBU_REPO, relative, repo_type="dataset")
