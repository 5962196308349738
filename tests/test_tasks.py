"""The erank tasks: standard definitions reused, gold texts, request layout, few-shot."""

from __future__ import annotations

import pytest
from lm_eval.tasks import TaskManager

from lm_eval_erank.harness.activation import register
from lm_eval_erank.harness.task_dirs import task_dir
from lm_eval_erank.tasks import ERANK_REQUEST, ErankTask
from lm_eval_erank.testing import tiny


@pytest.fixture(scope="module")
def tasks(local_tasks):
    register()
    manager = TaskManager(include_path=str(local_tasks))
    loaded = manager.load(["local_erank_piqa", "local_erank_openbookqa", "local_erank_winogrande", "local_piqa"])
    return loaded["tasks"]


def _expected_gold_texts():
    """Gold sequences written out independently from the fixture rows."""
    piqa = [f"Question: {r['goal']}\nAnswer: {(r['sol1'], r['sol2'])[r['label']]}" for r in tiny.piqa_rows()]
    obqa = [
        f"{r['question_stem']} {r['choices']['text'][r['choices']['label'].index(r['answerKey'])]}"
        for r in tiny.openbookqa_rows()
    ]
    wino = [r["sentence"].replace("_", r["option" + r["answer"]]) for r in tiny.winogrande_rows()]
    return {"local_erank_piqa": piqa, "local_erank_openbookqa": obqa, "local_erank_winogrande": wino}


def test_shipped_task_configs_are_found_without_include_path():
    register()
    manager = TaskManager()
    for name in ("erank", "erank_piqa", "erank_openbookqa", "erank_winogrande"):
        assert name in manager.all_tasks
    assert (task_dir() / "erank_piqa.yaml").is_file()


@pytest.mark.parametrize("name", ["local_erank_piqa", "local_erank_openbookqa", "local_erank_winogrande"])
def test_erank_text_is_the_gold_sequence(tasks, name):
    task = tasks[name]
    docs = list(task.eval_docs)
    assert [task.erank_text(d) for d in docs] == _expected_gold_texts()[name]


def test_standard_definition_is_reused(tasks):
    erank, standard = tasks["local_erank_piqa"], tasks["local_piqa"]
    for key in ("doc_to_text", "doc_to_choice", "doc_to_target", "target_delimiter", "output_type"):
        assert erank.config[key] == standard.config[key], key
    metrics = [m["metric"] for m in erank.config.metric_list]
    assert metrics[:2] == ["acc", "acc_norm"] and "diff_erank" in metrics


def test_requests_layout(tasks):
    task = tasks["local_erank_openbookqa"]
    task.build_all_requests(limit=3)
    by_doc = {}
    for inst in task.instances:
        by_doc.setdefault(inst.doc_id, []).append(inst)
    for doc_id, instances in by_doc.items():
        types = [i.request_type for i in instances]
        # erank listed first (so it runs first), but with the last idx (processed last).
        assert types[0] == ERANK_REQUEST and types[1:] == ["loglikelihood"] * 4
        assert instances[0].idx == 4 and [i.idx for i in instances[1:]] == [0, 1, 2, 3]


def test_few_shot_keeps_zero_shot_erank_text(local_tasks):
    register()
    manager = TaskManager(include_path=str(local_tasks))
    task = manager.load(["local_erank_piqa"])["tasks"]["local_erank_piqa"]
    task.set_config("num_fewshot", 2)
    task.set_fewshot_seed(1234)
    task.build_all_requests(limit=2)
    expected = _expected_gold_texts()["local_erank_piqa"]
    for inst in task.instances:
        if inst.request_type == ERANK_REQUEST:
            assert inst.args[0] == expected[inst.doc_id]
        else:
            context = inst.args[0]
            assert context.count("Question:") == 3  # two shots + the question


def test_task_without_choices_feeds_its_scored_sequence_unless_erank_text_is_given(tmp_path):
    data = tiny.write_jsonl(tmp_path / "d.jsonl", [{"text": "a b c", "last": " d"}])
    config = {
        "task": "no_choices", "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(data)}},
        "test_split": "test", "output_type": "loglikelihood", "doc_to_text": "text", "doc_to_target": "last",
    }
    register()
    assert ErankTask(config=dict(config)).erank_text({"text": "a b c", "last": " d"}) == "a b c d"
    task = ErankTask(config={**config, "erank_text": lambda doc: doc["text"].upper()})
    assert task.erank_text({"text": "a b"}) == "A B"


def test_chat_template_keeps_zero_shot_erank_text(local_tasks):
    register()
    manager = TaskManager(include_path=str(local_tasks))
    task = manager.load(["local_erank_winogrande"])["tasks"]["local_erank_winogrande"]

    def chat_template(messages, *args, **kwargs):
        return "".join(f"<|{m['role']}|>{m['content']}" for m in messages) + "<|assistant|>"

    task.build_all_requests(limit=3, apply_chat_template=True, chat_template=chat_template)
    expected = _expected_gold_texts()["local_erank_winogrande"]
    erank = [i for i in task.instances if i.request_type == ERANK_REQUEST]
    assert [i.args[0] for i in erank] == expected[:3]
    contexts = [i.args[0] for i in task.instances if i.request_type != ERANK_REQUEST]
    assert contexts and all(c.startswith("<|user|>") for c in contexts)


def test_representation_only_task(tmp_path):
    register()
    data = tiny.write_jsonl(tmp_path / "d.jsonl", [{"text": "first text here"}, {"text": "second one"}])
    task = ErankTask(config={
        "task": "texts_only", "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(data)}},
        "test_split": "test", "erank_only": True, "erank_text": "text",
    })
    task.build_all_requests()
    assert [(i.request_type, i.idx, i.args[0]) for i in task.instances] == [
        (ERANK_REQUEST, 0, "first text here"), (ERANK_REQUEST, 0, "second one")]
    response = {"entropy_m1": 1.0, "entropy_m0": 2.0, "loss_m1": 3.0, "loss_m0": 4.0, "n_tokens": 3, "truncated": False}
    metrics = task.process_results({"text": "x"}, [response])
    assert "acc" not in metrics and metrics["reduced_loss"] == 1.0
    assert [m["metric"] for m in task.config.metric_list][0] == "diff_erank"
    with pytest.raises(ValueError, match="erank_text"):
        ErankTask(config={"task": "t", "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(data)}},
                          "test_split": "test", "erank_only": True})
