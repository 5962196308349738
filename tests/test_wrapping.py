"""``erank_<name>`` for any task, group or tag (``lm_eval_erank.wrapping``), from local files
through ``--include_path`` and from lm-eval's catalogue (configs only, no data downloaded)."""

from __future__ import annotations

import logging
import math
import re

import pytest
import yaml
from lm_eval.tasks import TaskManager

from lm_eval_erank.harness.lm_eval_internals import TaskIndex, task_index
from lm_eval_erank.harness.activation import register
from lm_eval_erank.tasks import ERANK_REQUEST, LM_EVAL_TASKS_DIR, ErankTask, GoldTextError
from lm_eval_erank.harness.wrapping import UnknownTaskError, WrapError, wrap
from lm_eval_erank.testing import tiny

from .conftest import model_args, run_cli

GEN_DOCS = tiny.PIQA_DOCS[:5]
ROLLING_TEXTS = tiny.gold_texts()[:6]
# The user's own tasks (standard lm-eval configs on local files) and their erank_ names.
BASES = ["wrap_piqa", "wrap_group", "wrap_rolling", "wrap_gen"]


def _local(path) -> dict:
    return {"dataset_path": "json", "dataset_name": None, "test_split": "test",
            "dataset_kwargs": {"data_files": {"test": str(path)}}}


@pytest.fixture(scope="module")
def wrap_dir(tmp_path_factory):
    """wrap_piqa/openbookqa/winogrande (standard multiple-choice tasks on the example docs),
    wrap_erank_piqa (the shipped erank_piqa on the same file), a group, a rolling-loglikelihood
    task without a metric_list (lm-eval's defaults) and a generation task with a regex filter."""
    directory = tmp_path_factory.mktemp("wrap_tasks")
    tiny.write_local_tasks(directory, prefix="wrap")
    group = {"group": "wrap_group", "task": ["wrap_openbookqa", "wrap_winogrande"],
             "aggregate_metric_list": [{"metric": "acc", "weight_by_size": True}], "metadata": {"version": 1.0}}
    rolling = {"task": "wrap_rolling", "output_type": "loglikelihood_rolling", "doc_to_text": "",
               "doc_to_target": "{{text}}",
               **_local(tiny.write_jsonl(directory / "data" / "rolling.jsonl", [{"text": t} for t in ROLLING_TEXTS]))}
    gen_rows = [{"question": g, "answer": (a, b)[y]} for g, a, b, y in GEN_DOCS]
    gen = {"task": "wrap_gen", "output_type": "generate_until", "doc_to_text": "Question: {{question}}\nAnswer:",
           "doc_to_target": "{{answer}}", "generation_kwargs": {"until": ["\n"], "max_gen_toks": 4, "do_sample": False},
           "filter_list": [{"name": "first_word", "filter": [{"function": "regex", "regex_pattern": r"(\w+)"},
                                                             {"function": "take_first"}]}],
           "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
           **_local(tiny.write_jsonl(directory / "data" / "gen.jsonl", gen_rows))}
    for config in (group, rolling, gen):
        name = config.get("task") if "group" not in config else config["group"]
        (directory / f"{name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return directory


@pytest.fixture(scope="module")
def runs(tiny_models, wrap_dir, tmp_path_factory):
    """One hf-erank CLI run of the erank_ names (and the shipped-style wrap_erank_piqa), one hf run of the bases."""
    common = ["--device", "cpu", "--include_path", str(wrap_dir), "--batch_size", "4", "--log_samples"]
    model = tiny_models["gpt2"]
    erank = run_cli(["--model", "hf-erank", "--model_args", model_args(model),
                     "--tasks", ",".join(["wrap_erank_piqa", *(f"erank_{b}" for b in BASES)]), *common],
                    tmp_path_factory.mktemp("wrap_erank"))
    standard = run_cli(["--model", "hf", "--model_args", model_args(model, standard=True),
                        "--tasks", ",".join(BASES), *common], tmp_path_factory.mktemp("wrap_hf"))
    return erank, standard


def _by_doc(samples: list[dict]) -> list[dict]:
    return sorted(samples, key=lambda s: s["doc_id"])


def _expected_texts() -> dict[str, list[str]]:
    """erank texts written out independently from the fixture rows."""
    piqa = [f"Question: {g}\nAnswer: {(a, b)[y]}" for g, a, b, y in tiny.PIQA_DOCS]
    obqa = [f"{r['question_stem']} {r['choices']['text'][r['choices']['label'].index(r['answerKey'])]}"
            for r in tiny.openbookqa_rows()]
    wino = [r["sentence"].replace("_", r["option" + r["answer"]]) for r in tiny.winogrande_rows()]
    gen = [f"Question: {g}\nAnswer: {(a, b)[y]}" for g, a, b, y in GEN_DOCS]
    return {"erank_wrap_piqa": piqa, "erank_wrap_openbookqa": obqa, "erank_wrap_winogrande": wino,
            "erank_wrap_rolling": ROLLING_TEXTS, "erank_wrap_gen": gen}


def test_base_metrics_are_those_of_hf_with_erank_beside(runs):
    (_, erank, erank_samples), (_, standard, standard_samples) = runs
    pairs = {"wrap_piqa": "erank_wrap_piqa", "wrap_openbookqa": "erank_wrap_openbookqa",
             "wrap_winogrande": "erank_wrap_winogrande", "wrap_group": "erank_wrap_group",
             "wrap_rolling": "erank_wrap_rolling", "wrap_gen": "erank_wrap_gen"}
    assert set(standard["results"]) == set(pairs)
    for base, wrapped in pairs.items():
        base_row, row = standard["results"][base], erank["results"][wrapped]
        metrics = {k: v for k, v in base_row.items() if "," in k}
        assert metrics, base
        assert {k: row[k] for k in metrics} == metrics, base  # identical, every filter and stderr
        for key in [k for k in metrics if "_stderr" not in k]:
            filt = key.split(",")[1]
            assert math.isfinite(row[f"diff_erank,{filt}"]) and math.isfinite(row[f"reduced_loss,{filt}"]), key
    assert "exact_match,first_word" in standard["results"]["wrap_gen"]
    assert "word_perplexity,none" in standard["results"]["wrap_rolling"]  # lm-eval's defaults, kept
    for base, wrapped in pairs.items():
        if base == "wrap_group":
            continue
        for ours, theirs in zip(_by_doc(erank_samples[wrapped]), _by_doc(standard_samples[base]), strict=True):
            assert ours["doc_id"] == theirs["doc_id"]
            # the same requests (prompts, few-shot, generation arguments), the erank request last
            assert list(ours["arguments"].values())[:-1] == list(theirs["arguments"].values())
            assert ours["filtered_resps"][:-1] == theirs["filtered_resps"]  # the same (filtered) responses


def test_erank_text_per_output_type(runs):
    (_, _, samples), _ = runs
    for task, texts in _expected_texts().items():
        fed = [list(s["arguments"].values())[-1]["arg_0"] for s in _by_doc(samples[task])]
        assert fed == texts, task


def test_wrapping_equals_the_shipped_erank_task(runs):
    (_, results, _), _ = runs
    shipped, wrapped = results["results"]["wrap_erank_piqa"], results["results"]["erank_wrap_piqa"]
    shipped = {k: v for k, v in shipped.items() if "," in k}
    assert set(shipped) == {k for k in wrapped if "," in k} and "diff_erank,none" in shipped
    # The same texts in one erank call: equal up to batch composition (float32 forwards, 1e-6).
    assert {k: wrapped[k] for k in shipped} == pytest.approx(shipped, rel=1e-6, abs=1e-9)
    assert wrapped["acc,none"] == shipped["acc,none"] and wrapped["acc_norm,none"] == shipped["acc_norm,none"]


def test_group_mirrors_the_tree_and_weights_erank_by_documents(runs):
    (_, results, _), _ = runs
    assert sorted(results["group_subtasks"]["erank_wrap_group"]) == ["erank_wrap_openbookqa", "erank_wrap_winogrande"]
    rows = results["results"]
    members = ["erank_wrap_openbookqa", "erank_wrap_winogrande"]
    sizes = [results["n-samples"][m]["effective"] for m in members]
    for metric in ("diff_erank", "erank_m1", "reduced_loss", "acc"):
        expected = sum(n * rows[m][f"{metric},none"] for n, m in zip(sizes, members)) / sum(sizes)
        assert rows["erank_wrap_group"][f"{metric},none"] == pytest.approx(expected, rel=1e-12), metric


# ---- in process: resolution, precedence, errors (no model) -----------------------------------

@pytest.fixture(scope="module")
def catalogue():
    """lm-eval's own YAMLs of arc, hellaswag, mmlu (default) and the leaderboard's mmlu_pro."""
    register()
    dirs = [LM_EVAL_TASKS_DIR / d for d in ("arc", "hellaswag", "mmlu/default", "leaderboard/mmlu_pro")]
    return TaskManager(include_path=[str(d) for d in dirs], include_defaults=False)


def test_catalogue_names_resolve_to_their_configs(catalogue):
    index = task_index(catalogue)
    names = ["erank_arc_easy", "erank_hellaswag", "erank_mmlu", "erank_leaderboard_mmlu_pro"]
    assert catalogue.match_tasks(names) == sorted(names)
    arcs = catalogue.match_tasks(["erank_arc_*"])  # a pattern: every name it matches, wrapped
    assert {"erank_arc_easy", "erank_arc_challenge"} <= set(arcs)
    assert arcs == sorted("erank_" + n for n in catalogue.all_tasks if n.startswith("arc_"))
    for name in ("erank_arc_easy", "erank_hellaswag", "erank_leaderboard_mmlu_pro"):
        cfg, base_cfg = index.config(name), index.config(name[len("erank_"):])
        assert cfg["class"] is ErankTask and cfg["task"] == name and cfg["output_type"] == "multiple_choice"
        for key in ("dataset_path", "doc_to_target", "test_split", "num_fewshot"):
            assert cfg.get(key) == base_cfg.get(key), (name, key)
        assert set(cfg.get("fewshot_config") or {}) == set(base_cfg.get("fewshot_config") or {}), name
        assert "tag" not in cfg and cfg["metadata"]["erank_wraps"] == name[len("erank_"):]
    # mmlu: the group, its four categories, the 57 subjects, with acc and the eRank metrics aggregated
    top = index.config("erank_mmlu")
    assert top["task"] == ["erank_mmlu_stem", "erank_mmlu_other", "erank_mmlu_social_sciences", "erank_mmlu_humanities"]
    subjects = set()
    for category in top["task"]:
        cfg = index.config(category)
        assert [a["metric"] for a in cfg["aggregate_metric_list"]][:2] == ["acc", "diff_erank"]
        (tag,) = cfg["task"]
        assert index.kind(tag) == "tag"
        subjects |= set(index.members(tag))
    assert len(subjects) == 57 and all(index.config(s)["class"] is ErankTask for s in subjects)
    anatomy = index.config("erank_mmlu_anatomy")
    assert anatomy["output_type"] == "multiple_choice" and anatomy["dataset_name"] == "anatomy"
    # nothing generated is listed
    listed = set(re.findall(r"[\w\-]+", catalogue.list_all_tasks()))
    assert "arc_easy" in listed and not [t for t in listed if t.startswith("erank_") and t[6:] in listed]


def test_catalogue_gold_text_on_a_local_doc(catalogue, tmp_path):
    doc = {"id": "x", "question": "Which is a liquid?", "answerKey": "C",
           "choices": {"text": ["rock", "ice", "water"], "label": ["A", "B", "C"]}}
    path = tiny.write_jsonl(tmp_path / "arc.jsonl", [doc])
    catalogue.match_tasks(["erank_arc_easy"])
    cfg = {**task_index(catalogue).config("erank_arc_easy"), **_local(path), "training_split": None,
           "validation_split": None}
    task = cfg.pop("class")(config=cfg)
    assert task.erank_text(doc) == "Question: Which is a liquid?\nAnswer: water"


def test_precedence_and_double_wrapping(wrap_dir, tmp_path):
    register()
    own = tmp_path / "own"
    own.mkdir()
    (own / "erank_mine.yaml").write_text(yaml.safe_dump(
        {"task": "erank_wrap_piqa", "include": str(wrap_dir / "wrap_piqa.yaml"), "num_fewshot": 3}), encoding="utf-8")
    manager = TaskManager(include_path=[str(wrap_dir), str(own)], include_defaults=False)
    index = task_index(manager)
    assert index.yaml_path("erank_wrap_piqa") == own / "erank_mine.yaml"  # the user's own wins
    assert index.yaml_path("erank_piqa").name == "erank_piqa.yaml"  # the shipped YAML wins
    with pytest.raises(WrapError, match="erank_piqa' already reports Diff-eRank"):
        manager.match_tasks(["erank_erank_piqa"])
    with pytest.raises(WrapError, match="already reports Diff-eRank"):
        manager.load_task_or_group(["erank_wrap_erank"])  # a group of erank tasks
    with pytest.raises(UnknownTaskError, match="erank_<name> runs any task, group or tag lm-eval knows"):
        manager.match_tasks(["erank_no_such_task"])  # lm-eval's CLI would say only "Tasks not found"


class _OneTaskIndex(TaskIndex):
    """A task index holding one Python-class task ``x`` (no lm-eval manager)."""

    def __init__(self, cls):
        self.configs = {"x": {"task": "x", "class": cls}}

    def __contains__(self, name):
        return name in self.configs

    def kind(self, name):
        return "python_task" if name in self.configs else None

    def config(self, name):
        return dict(self.configs[name])

    def add_task(self, name, config):
        self.configs[name] = config


def test_python_task_classes_are_refused():
    class Custom:  # a Python task class other than ConfigurableTask
        pass

    index = _OneTaskIndex(Custom)
    with pytest.raises(WrapError, match="Python task class"):
        wrap(index, "x")
    assert "erank_x" not in index


def _task(tmp_path, rows, **config) -> ErankTask:
    register()
    return ErankTask(config={"task": "t", **_local(tiny.write_jsonl(tmp_path / "d.jsonl", rows)), **config})


def test_documents_without_gold_text_fail_fast(tmp_path):
    rows = [{"q": "one", "a": 0}, {"q": "two", "a": 5}]
    mc = _task(tmp_path, rows, output_type="multiple_choice", doc_to_text="q", doc_to_choice=["x", "y"], doc_to_target="a")
    with pytest.raises(GoldTextError, match=r"task t, document 1: gold index 5 outside the 2 choices"):
        mc.build_all_requests()
    ll = _task(tmp_path, [{"q": "one", "a": ""}], output_type="loglikelihood", doc_to_text="q", doc_to_target="a")
    with pytest.raises(GoldTextError, match=r"task t, document 0: no gold continuation"):
        ll.build_all_requests()
    rolling = _task(tmp_path, [{"text": " "}], output_type="loglikelihood_rolling", doc_to_text="", doc_to_target="text")
    with pytest.raises(GoldTextError, match=r"document 0: the gold text is empty"):
        rolling.build_all_requests()


def test_generation_without_gold_target_feeds_the_prompt_and_warns_once(tmp_path, caplog):
    task = _task(tmp_path, [{"q": "first"}, {"q": "second"}], output_type="generate_until",
                 doc_to_text="Say {{q}}:", doc_to_target=0, generation_kwargs={"until": ["\n"], "max_gen_toks": 2})
    with caplog.at_level(logging.WARNING, logger="lm_eval.erank.tasks"):
        task.build_all_requests()
    erank = [i for i in task.instances if i.request_type == ERANK_REQUEST]
    assert [i.args[0] for i in erank] == ["Say first:", "Say second:"]
    assert all(i.repeats == 1 for i in erank)
    warnings = [r for r in caplog.records if "no gold target" in r.getMessage()]
    assert len(warnings) == 1 and "task t " in warnings[0].getMessage()
