"""Optional: the erank tasks on real PIQA / OpenBookQA / WinoGrande docs (hub schemas).

Uses ../shared/data (present on the developers' machines and in CI, not on users'
machines); skipped when absent.
"""

from __future__ import annotations

import json

import pytest

from lm_eval_erank.testing import tiny

from .conftest import SHARED_DATA, model_args, run_cli

FILES = {
    "piqa": "piqa_validation.jsonl",
    "openbookqa": "openbookqa_test.jsonl",
    "winogrande": "winogrande_validation.jsonl",
}
N_DOCS = 40

pytestmark = pytest.mark.skipif(
    not (SHARED_DATA / "hf_schema").is_dir(), reason="../shared/data (real evaluation data) is not on this machine"
)


def _rows(name):
    lines = (SHARED_DATA / "hf_schema" / FILES[name]).read_text(encoding="utf-8").splitlines()[:N_DOCS]
    return [json.loads(line) for line in lines]


def test_real_docs_accuracy_matches_standard_and_texts_are_gold(tiny_models, tmp_path):
    rows = {name: _rows(name) for name in FILES}
    tiny.write_local_tasks(tmp_path / "tasks", prefix="real", rows_override=rows)
    common = ["--device", "cpu", "--include_path", str(tmp_path / "tasks"), "--batch_size", "8"]
    _, erank, samples = run_cli(["--model", "hf-erank", "--model_args", model_args(tiny_models["llama"]), *common,
                                 "--tasks", "real_erank", "--log_samples"], tmp_path / "e")
    _, standard, _ = run_cli(["--model", "hf", "--model_args", model_args(tiny_models["llama"], standard=True), *common,
                              "--tasks", "real_piqa,real_openbookqa,real_winogrande"], tmp_path / "s")
    for name in FILES:
        for metric in ("acc", "acc_norm") if name != "winogrande" else ("acc",):
            assert erank["results"][f"real_erank_{name}"][f"{metric},none"] == standard["results"][f"real_{name}"][f"{metric},none"]
        assert erank["results"][f"real_erank_{name}"]["erank_excluded,none"] == 0
    texts = {name: [list(s["arguments"].values())[-1]["arg_0"] for s in sorted(samples[f"real_erank_{name}"], key=lambda s: s["doc_id"])]
             for name in FILES}
    piqa0, obqa0, wino0 = rows["piqa"][0], rows["openbookqa"][0], rows["winogrande"][0]
    assert texts["piqa"][0] == f"Question: {piqa0['goal']}\nAnswer: {(piqa0['sol1'], piqa0['sol2'])[piqa0['label']]}"
    gold = obqa0["choices"]["text"][obqa0["choices"]["label"].index(obqa0["answerKey"])]
    assert texts["openbookqa"][0] == f"{obqa0['question_stem']} {gold}"
    assert texts["winogrande"][0] == wino0["sentence"].replace("_", wino0["option" + wino0["answer"]])
