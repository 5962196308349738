"""The representation-only tasks of the ``erank_lm`` group (dolly, hh-rlhf, wikipedia,
openwebtext2, wikitext), offline: local files in the hub schemas, the real CLI, the sampling."""

from __future__ import annotations

import gzip
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from lm_eval.tasks import TaskManager
from lm_eval.tasks._yaml_loader import load_yaml

from lm_eval_erank import task_utils
from lm_eval_erank.testing.tiny import write_local_lm_tasks
from lm_eval_erank.core.metrics import METRIC_NAMES
from lm_eval_erank.harness.activation import register
from lm_eval_erank.harness.task_dirs import task_dir
from lm_eval_erank.tasks import ERANK_REQUEST, LM_EVAL_TASKS_DIR

from .conftest import SHARED_DATA, model_args, run_cli

LM_TASKS = ("dolly", "hh_rlhf", "wikipedia", "openwebtext2", "wikitext")
GROUP_METRICS = ("diff_erank", "erank_m1", "erank_m0", "erank_ratio", "reduced_loss", "loss_m1", "loss_m0")
MAX_LENGTH = 64  # model argument of the CLI run: the long wikitext page must be cut there

# ---- fixture rows, in the schemas of the hub data sets ---------------------------------------

DOLLY_ROWS = [  # databricks/databricks-dolly-15k: instruction, context, response, category
    {"instruction": "When was the bridge opened?", "category": "closed_qa", "response": "In 1932.",
     "context": "The Sydney Harbour Bridge is a steel arch bridge. It was opened in March 1932 after eight years of work."},
    {"instruction": "Give me three ideas for a picnic.", "context": "", "category": "brainstorming",
     "response": "Sandwiches, fruit and lemonade."},
    {"instruction": "Summarise the passage.", "category": "summarization", "response": "Otters use tools.",
     "context": "Sea otters are known to use rocks to break open shellfish, one of the few mammals to use tools."},
    {"instruction": "What is the capital of France?", "context": "", "category": "open_qa", "response": "Paris."},
    {"instruction": "List the colours named.", "category": "information_extraction", "response": "Red, blue.",
     "context": "The flag has a red stripe at the top\nand a blue stripe at the bottom [3]."},
    {"instruction": "Write a haiku about rain.", "context": "", "category": "creative_writing",
     "response": "Soft rain on the roof"},
]

HH_RLHF_ROWS = [  # Anthropic/hh-rlhf: chosen, rejected (whole transcripts)
    {"chosen": "\n\nHuman: How do I boil an egg?\n\nAssistant: Put it in boiling water for about eight minutes.",
     "rejected": "\n\nHuman: How do I boil an egg?\n\nAssistant: I don't know."},
    {"chosen": "\n\nHuman: What is a good name for a cat?\n\nAssistant: Many people like Luna or Milo.",
     "rejected": "\n\nHuman: What is a good name for a cat?\n\nAssistant: Cat."},
    {"chosen": "\n\nHuman: Can you help me study?\n\nAssistant: Of course. Which subject?\n\nHuman: Maths.\n\nAssistant: Let us start with fractions.",
     "rejected": "\n\nHuman: Can you help me study?\n\nAssistant: No."},
]


def wikipedia_rows(n: int = 12) -> list[dict]:  # wikimedia/wikipedia 20231101.en: id, url, title, text
    return [
        {"id": str(100 + i), "url": f"https://en.wikipedia.org/wiki?curid={100 + i}", "title": f"Article {i}",
         "text": f"Article {i} is a short page.\n\nIt describes topic number {i} in a few plain words."}
        for i in range(n)
    ]


def openwebtext2_rows(n: int = 11) -> list[dict]:  # suolyer/pile_openwebtext2: text (+ the Pile's meta)
    return [
        {"text": f"Web page {i}: here is some text that someone linked to, about item {i}.",
         "meta": {"pile_set_name": "OpenWebText2"}}
        for i in range(n)
    ]


LONG_PAGE = " = Long Page = \n" + " ".join(f"Sentence {i} @-@ long , with a clause ." for i in range(40)) + " \n"
WIKITEXT_ROWS = [  # EleutherAI/wikitext_document_level wikitext-2-raw-v1: page
    {"page": " = Robert Boulter = \n Robert Boulter is an English film , television and theatre actor . He had a "
             "guest @-@ starring role on the television series The Bill in 2000 . \n"},
    {"page": " = Valkyria Chronicles III = \n The game began development in 2010 , carrying over a large "
             "portion of the work done on Valkyria Chronicles II . It cost 1 @,@ 000 yen . \n"},
    {"page": LONG_PAGE},
]

# name -> (rows, the split the shipped task scores, expected texts in doc order)
FIXTURES = {
    "dolly": (DOLLY_ROWS, "train", [r["context"] for r in DOLLY_ROWS if r["context"]]),
    "hh_rlhf": (HH_RLHF_ROWS, "test", [r["chosen"] for r in HH_RLHF_ROWS]),
    "wikipedia": (wikipedia_rows(), "train",
                  [wikipedia_rows()[i]["text"] for i in random.Random(123).sample(range(12), 12)]),
    "openwebtext2": (openwebtext2_rows(), "validation",
                     [openwebtext2_rows()[i]["text"] for i in random.Random(123).sample(range(11), 11)]),
    "wikitext": (WIKITEXT_ROWS, "test", None),  # lm-eval's detokenised page, computed in the test
}


def _expected_texts(name: str) -> list[str]:
    rows, _, texts = FIXTURES[name]
    if name == "wikitext":
        from lm_eval.tasks.wikitext.preprocess_wikitext import wikitext_detokenizer

        return [wikitext_detokenizer(r) for r in rows]
    return texts


@pytest.fixture(scope="module")
def lm_tasks_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("lm_tasks")
    write_local_lm_tasks(directory, {name: (rows, split) for name, (rows, split, _) in FIXTURES.items()})
    return directory


HH_FILES = [SHARED_DATA / "hh-rlhf" / sub / "test.jsonl.gz" for sub in ("harmless-base", "helpful-base")]
HAVE_HH_FILES = all(f.is_file() for f in HH_FILES)
BIG_ROWS = [{"text": f"document {i}"} for i in range(10_500)]


@pytest.fixture(scope="module")
def manager(lm_tasks_dir, tmp_path_factory):
    """One TaskManager (indexing takes seconds) over the local tasks, a 10,500-doc
    openwebtext2 copy (``big_erank_openwebtext2``) and, where present, the real hh-rlhf files."""
    register()
    extra = tmp_path_factory.mktemp("lm_tasks_extra")
    write_local_lm_tasks(extra, {"openwebtext2": (BIG_ROWS, "validation")}, prefix="big")
    if HAVE_HH_FILES:
        write_local_lm_tasks(extra, {"hh_rlhf": (HH_FILES, "test")}, prefix="real")
    return TaskManager(include_path=[str(lm_tasks_dir), str(extra)])


@pytest.fixture(scope="module")
def lm_run(tiny_models, lm_tasks_dir, tmp_path_factory):
    """One CLI run of the local group (all five tasks), OPT-shaped model, max_length=64."""
    return run_cli(
        ["--model", "hf-erank", "--model_args", model_args(tiny_models["opt"], max_length=MAX_LENGTH),
         "--device", "cpu", "--include_path", str(lm_tasks_dir), "--tasks", "local_erank_lm",
         "--batch_size", "4", "--log_samples"],
        tmp_path_factory.mktemp("lm_run"),
    )


# ---- the CLI run -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", LM_TASKS)
def test_every_eRank_metric_with_numeric_stderr_and_no_accuracy(lm_run, name):
    _, results, _ = lm_run
    task = f"local_erank_{name}"
    row = results["results"][task]
    for metric in METRIC_NAMES:
        value, stderr = row[f"{metric},none"], row[f"{metric}_stderr,none"]
        assert isinstance(value, (int, float)) and math.isfinite(value), (task, metric, value)
        assert isinstance(stderr, (int, float)) and math.isfinite(stderr), (task, metric, stderr)
    assert not any(key.startswith(("acc", "word_perplexity", "byte_perplexity", "bits_per_byte")) for key in row), row
    assert row["erank_excluded,none"] == 0
    assert results["n-samples"][task]["effective"] == len(_expected_texts(name))
    assert results["configs"][task]["output_type"] == "loglikelihood_rolling"


@pytest.mark.parametrize("name", LM_TASKS)
def test_each_doc_feeds_exactly_the_expected_text(lm_run, name):
    _, _, samples = lm_run
    docs = sorted(samples[f"local_erank_{name}"], key=lambda d: d["doc_id"])
    fed = []
    for doc in docs:
        arguments = list(doc["arguments"].values())
        assert len(arguments) == 1  # the erank request only
        fed.append(arguments[-1]["arg_0"])
    assert fed == _expected_texts(name)


def test_dolly_drops_empty_contexts(lm_run):
    _, _, samples = lm_run
    fed = {list(d["arguments"].values())[-1]["arg_0"] for d in samples["local_erank_dolly"]}
    assert "" not in fed and len(fed) == 3 == sum(1 for r in DOLLY_ROWS if r["context"])


def test_long_texts_are_cut_at_max_length(lm_run):
    _, results, samples = lm_run
    wikitext = {list(d["arguments"].values())[-1]["arg_0"]: d for d in samples["local_erank_wikitext"]}
    assert all(d["erank_tokens"] <= MAX_LENGTH for d in wikitext.values())
    long_doc = next(d for text, d in wikitext.items() if text.startswith(" = Long Page ="))
    assert long_doc["erank_tokens"] == MAX_LENGTH and long_doc["erank_truncated"] == 1
    assert results["results"]["local_erank_wikitext"]["erank_truncated,none"] >= 1


def test_group_reports_size_weighted_eRank_metrics(lm_run):
    _, results, _ = lm_run
    group = results["results"]["local_erank_lm"]
    for metric in GROUP_METRICS:
        assert math.isfinite(group[f"{metric},none"]) and math.isfinite(group[f"{metric}_stderr,none"])
    assert "acc,none" not in group
    assert set(results["group_subtasks"]["local_erank_lm"]) == {f"local_erank_{n}" for n in LM_TASKS}
    sizes = {n: results["n-samples"][f"local_erank_{n}"]["effective"] for n in LM_TASKS}
    expected = sum(results["results"][f"local_erank_{n}"]["reduced_loss,none"] * sizes[n] for n in LM_TASKS)
    assert group["reduced_loss,none"] == pytest.approx(expected / sum(sizes.values()), rel=1e-9)


# ---- the shipped configs and the group ---------------------------------------------------------

SHIPPED = {  # name -> (dataset_path, dataset_name, scored split, erank_text, process_docs)
    "dolly": ("databricks/databricks-dolly-15k", None, "train", "context", task_utils.dolly_docs),
    "hh_rlhf": ("Anthropic/hh-rlhf", None, "test", "chosen", None),
    "wikipedia": ("wikimedia/wikipedia", "20231101.en", "train", "text", task_utils.paper_sample),
    "openwebtext2": ("suolyer/pile_openwebtext2", None, "validation", "text", task_utils.paper_sample),
}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_name_the_hub_data_sets(name):
    config = load_yaml(task_dir() / f"erank_{name}.yaml", resolve_func=True)
    path, subset, split, field, process_docs = SHIPPED[name]
    assert config["task"] == f"erank_{name}" and config["erank_only"] is True
    assert (config["dataset_path"], config.get("dataset_name"), config["test_split"]) == (path, subset, split)
    assert config["erank_text"] == field and config.get("process_docs") is process_docs
    assert "erank_base" not in config and config["metadata"]["version"] == 1.0


def test_shipped_wikitext_config_is_lm_evals_wikitext():
    config = load_yaml(task_dir() / "erank_wikitext.yaml", resolve_func=True)
    assert config["erank_base"] == "wikitext/wikitext.yaml" and config["erank_only"] is True
    assert config["erank_text"] is task_utils.wikitext_text
    base = load_yaml(LM_EVAL_TASKS_DIR / "wikitext" / "wikitext.yaml")
    assert (base["dataset_path"], base["dataset_name"], base["test_split"]) == (
        "EleutherAI/wikitext_document_level", "wikitext-2-raw-v1", "test")


def test_group_erank_lm_is_found_and_lists_the_five_tasks(manager):
    assert "erank_lm" in manager.all_groups
    for name in LM_TASKS:
        assert f"erank_{name}" in manager.all_tasks
    group = yaml.safe_load((task_dir() / "erank_lm.yaml").read_text(encoding="utf-8"))
    assert group["task"] == [f"erank_{n}" for n in LM_TASKS]
    assert [m["metric"] for m in group["aggregate_metric_list"]] == list(GROUP_METRICS)


# ---- process_docs ------------------------------------------------------------------------------

def test_sample_is_the_reference_codes_sample():
    """random.seed(123); random.sample(range(n), 10000), as waltonfuture/Diff-eRank draws it."""
    n = 33_400
    state = random.getstate()
    try:
        random.seed(123)
        reference = random.sample(range(n), 10_000)
    finally:
        random.setstate(state)
    assert task_utils.sample_indices(n) == reference
    assert (task_utils.SAMPLE_SIZE, task_utils.SAMPLE_SEED) == (10_000, 123)


def test_sample_size_order_and_determinism():
    import datasets

    big = datasets.Dataset.from_dict({"text": [f"t{i}" for i in range(25_000)]})
    first = task_utils.paper_sample(big)
    assert len(first) == 10_000 and len(set(first["text"])) == 10_000
    assert first["text"] == task_utils.paper_sample(big)["text"]
    assert first["text"] == [f"t{i}" for i in random.Random(123).sample(range(25_000), 10_000)]
    assert task_utils.sample_docs(big, seed=124)["text"] != first["text"]

    small = datasets.Dataset.from_dict({"text": [f"s{i}" for i in range(37)]})
    sampled = task_utils.paper_sample(small)["text"]
    assert sorted(sampled) == sorted(small["text"]) and len(sampled) == 37  # all of them, no error
    assert task_utils.paper_sample(small.select([]))["text"] == []
    assert task_utils.sample_docs(list(range(5)), size=3) == task_utils.sample_docs(list(range(5)), size=3)


def test_sample_depends_on_nothing_else():
    expected = task_utils.sample_indices(20_000)
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    before = random.getstate()
    assert task_utils.sample_indices(20_000) == expected
    assert random.getstate() == before  # the global generator is neither used nor advanced


def test_lm_eval_applies_the_sample_to_the_scored_split(manager):
    """Through the TaskManager: 10,000 of 10,500 local docs, the seeded ones, as erank requests."""
    task = manager.load(["big_erank_openwebtext2"])["tasks"]["big_erank_openwebtext2"]
    docs = list(task.eval_docs)
    assert [d["text"] for d in docs] == [BIG_ROWS[i]["text"] for i in random.Random(123).sample(range(10_500), 10_000)]
    task.build_all_requests(limit=5)
    assert [(i.request_type, i.args[0]) for i in task.instances] == [(ERANK_REQUEST, d["text"]) for d in docs[:5]]


def test_dolly_docs_keeps_exactly_the_non_empty_contexts():
    import datasets

    dataset = datasets.Dataset.from_list(DOLLY_ROWS)
    kept = task_utils.dolly_docs(dataset)
    assert kept["context"] == [r["context"] for r in DOLLY_ROWS if r["context"]]
    assert kept.column_names == dataset.column_names
    assert task_utils.dolly_docs([{"context": None}, {"context": " "}, {"context": "x"}]) == [{"context": " "}, {"context": "x"}]


# ---- real hh-rlhf test files (only where ../shared/data exists) ----------------------------------

@pytest.mark.skipif(not HAVE_HH_FILES, reason="needs ../shared/data/hh-rlhf")
def test_real_hh_rlhf_test_files_feed_their_chosen_texts(manager):
    task = manager.load(["real_erank_hh_rlhf"])["tasks"]["real_erank_hh_rlhf"]
    chosen = []
    for path in HH_FILES:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            chosen += [json.loads(line)["chosen"] for line in f if line.strip()]
    assert len(chosen) == 2312 + 2354
    docs = list(task.eval_docs)
    assert [task.erank_text(d) for d in docs] == chosen
    assert all(text.startswith("\n\nHuman:") for text in chosen)
