"""lm-eval's ``run`` flags with erank tasks, each beside the same flags on the standard task
under ``--model hf`` (docs/flags.md is the matrix these tests prove).

The runs are lm-eval's own CLI entry (``lm_eval.__main__.cli_evaluate``, argv as on the command
line) called in this process, on one task index per include path: lm-eval indexes its ~14,700
task YAMLs again for every run otherwise (about 4 s each). One real ``lm_eval`` process checks
a refusal through the start-up hook.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import io
import json
import logging
import math
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from lm_eval_erank.harness.flags import UnsupportedFlagError
from lm_eval_erank.testing import tiny

from .conftest import console_script, lm_eval_logging_restored, model_args, share_task_index
from .test_multimodal import local_mm_task, tiny_llava  # noqa: F401  (fixtures: the tiny LLaVA and its task)

PIQA = ("flag_piqa", "flag_erank_piqa")  # (standard task under hf, erank task under hf-erank)
GEN = ("flag_gen", "erank_flag_gen")  # a user's generation task and its erank_ wrapping
SCORED = (PIQA, GEN)
# Every erank kind (shipped-style YAMLs, erank_<task>, erank_<group>, the groups) beside its standard task.
PREDICT_PAIRS = [(f"flag_{n}", f"{prefix}{n}") for n in ("piqa", "openbookqa", "winogrande")
                 for prefix in ("flag_erank_", "erank_flag_")] + [GEN, ("flag_std", "flag_erank"), ("flag_std", "erank_flag_std")]
CHAT_TEMPLATE = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}assistant:{% endif %}")
REMOTE_CODE = {
    "configuration_flag_tiny.py": "from transformers import GPT2Config\n\n\nclass FlagTinyConfig(GPT2Config):\n"
                                  "    model_type = 'flag_tiny'\n",
    "modeling_flag_tiny.py": "from transformers import GPT2LMHeadModel\n\nfrom .configuration_flag_tiny import "
                             "FlagTinyConfig\n\n\nclass FlagTinyForCausalLM(GPT2LMHeadModel):\n"
                             "    config_class = FlagTinyConfig\n",
}
HUB_OFFLINE = ("hub_results_org=flag-org,details_repo_name=flag-details,results_repo_name=flag-results,"
               "push_results_to_hub=False,push_samples_to_hub=False,public_repo=False,point_of_contact=nobody,gated=False")


# ---- fixtures: tasks, models, the in-process runner ------------------------------------------


@pytest.fixture(scope="module")
def flag_tasks(tmp_path_factory):
    """The example tasks (``flag_<name>``, ``flag_erank_<name>``, group ``flag_erank``), the
    representation-only ``flag_erank_wikitext``, a standard group ``flag_std``, a generation task
    ``flag_gen`` (regex filter) and its unsafe-code twin."""
    directory = tmp_path_factory.mktemp("flag_tasks")
    tiny.write_local_tasks(directory, prefix="flag")
    tiny.write_local_lm_tasks(directory, {"wikitext": ([{"page": t} for t in tiny.gold_texts()[:6]], "test")},
                              prefix="flag")
    rows = [{"question": g, "answer": (a, b)[y]} for g, a, b, y in tiny.PIQA_DOCS[:5]]
    data = tiny.write_jsonl(directory / "data" / "gen.jsonl", rows)
    gen = {"task": "flag_gen", "output_type": "generate_until", "doc_to_text": "Question: {{question}}\nAnswer:",
           "doc_to_target": "{{answer}}", "generation_kwargs": {"until": ["\n"], "max_gen_toks": 4, "do_sample": False},
           "filter_list": [{"name": "first_word", "filter": [{"function": "regex", "regex_pattern": r"(\w+)"},
                                                             {"function": "take_first"}]}],
           "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
           "dataset_path": "json", "dataset_name": None, "test_split": "test",
           "dataset_kwargs": {"data_files": {"test": str(data)}}}
    configs = {
        "flag_gen": gen,
        "flag_unsafe": {**gen, "task": "flag_unsafe", "unsafe_code": True},
        "flag_std": {"group": "flag_std", "task": [f"flag_{n}" for n in ("piqa", "openbookqa", "winogrande")],
                     "aggregate_metric_list": [{"metric": "acc", "weight_by_size": True}], "metadata": {"version": 1.0}},
    }
    for name, config in configs.items():
        (directory / f"{name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return directory


@pytest.fixture(scope="module")
def flag_model(tiny_models, tmp_path_factory):
    """The tiny GPT-2-shaped model, its tokenizer given a chat template (for --apply_chat_template)."""
    from transformers import AutoTokenizer

    directory = tmp_path_factory.mktemp("flag_model") / "model"
    shutil.copytree(tiny_models["gpt2"], directory)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def remote_code_model(flag_model, tmp_path_factory):
    """The same weights behind a model class of its own (``auto_map``): loads only with trust_remote_code."""
    directory = tmp_path_factory.mktemp("remote_code") / "model"
    shutil.copytree(flag_model, directory)
    for name, code in REMOTE_CODE.items():
        (directory / name).write_text(code, encoding="utf-8")
    config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    config.update(model_type="flag_tiny", architectures=["FlagTinyForCausalLM"],
                  auto_map={"AutoConfig": "configuration_flag_tiny.FlagTinyConfig",
                            "AutoModelForCausalLM": "modeling_flag_tiny.FlagTinyForCausalLM"})
    (directory / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return directory


@dataclass
class Run:
    results: dict | None
    samples: dict[str, list[dict]]  # as written (samples_*.jsonl)
    raw_samples: dict[str, list[dict]]  # as lm-eval's sample writer and loggers receive them
    stdout: str
    log: list[str]  # lm-eval's log messages

    def logged(self, text: str) -> bool:
        return any(text in message for message in self.log)


def _read_outputs(output_dir: Path) -> tuple[dict | None, dict[str, list[dict]]]:
    results = sorted(output_dir.rglob("results_*.json"))
    samples = {f.name[len("samples_"):].rsplit("_", 1)[0]: [json.loads(line) for line in f.read_text().splitlines()]
               for f in output_dir.rglob("samples_*.jsonl")}
    return (json.loads(results[-1].read_text()) if results else None), samples


@pytest.fixture(scope="module")
def lm_eval_cli(tmp_path_factory):
    """``run(argv) -> Run``: ``lm_eval <argv> --output_path <new dir>`` in this process."""
    from lm_eval.__main__ import cli_evaluate
    from lm_eval.loggers.evaluation_tracker import EvaluationTracker

    with pytest.MonkeyPatch.context() as mp, lm_eval_logging_restored():
        share_task_index(mp)
        raw: dict[str, list[dict]] = {}
        save = EvaluationTracker.save_results_samples

        def keeping_raw(self, task_name, samples, *args, **kwargs):
            raw[task_name] = copy.deepcopy(samples)  # the writer stringifies them in place
            return save(self, task_name, samples, *args, **kwargs)

        mp.setattr(EvaluationTracker, "save_results_samples", keeping_raw)

        def run(argv: list[str]) -> Run:
            out, stdout, log = tmp_path_factory.mktemp("run"), io.StringIO(), []
            handler = logging.Handler()
            handler.emit = lambda record: log.append(record.getMessage())
            raw.clear()
            logging.getLogger("lm_eval").addHandler(handler)
            mp.setattr(sys, "argv", ["lm_eval", *argv, "--output_path", str(out)])
            try:
                with contextlib.redirect_stdout(stdout):
                    cli_evaluate()
            finally:
                logging.getLogger("lm_eval").removeHandler(handler)
            return Run(*_read_outputs(out), dict(raw), stdout.getvalue(), log)

        yield run


def _argv(flags: dict) -> list[str]:
    """``{"--flag": value}`` -> argv: True is a bare flag, None leaves the flag out."""
    argv = []
    for flag, value in flags.items():
        if value is not None:
            argv += [flag] if value is True else [flag, str(value)]
    return argv


@pytest.fixture(scope="module")
def run_model(lm_eval_cli, flag_tasks, flag_model):
    """``run_model(kind, tasks, flags=None, model=flag_model)``: ``--model kind`` (``hf`` or
    ``hf-erank``) on ``tasks`` with ``flags`` over the common ones."""

    def run(kind: str, tasks: str, flags: dict | None = None, model: Path | None = None) -> Run:
        common = {"--include_path": flag_tasks, "--device": "cpu", "--batch_size": 4, "--log_samples": True}
        return lm_eval_cli(["--model", kind, "--model_args", model_args(model or flag_model, standard=kind == "hf"),
                            "--tasks", tasks, *_argv({**common, **(flags or {})})])

    return run


@pytest.fixture(scope="module")
def pair(run_model):
    """``pair(name, flags=None, scored=SCORED, model=None)`` -> (hf run of the standard tasks,
    hf-erank run of the erank tasks), both with ``flags``; made once per name."""
    made = {}

    def make(name: str, flags: dict | None = None, scored=SCORED, model: Path | None = None):
        if name not in made:
            made[name] = tuple(run_model(kind, ",".join(t[i] for t in scored), flags, model)
                               for i, kind in enumerate(("hf", "hf-erank")))
        return made[name]

    return make


# ---- comparisons ------------------------------------------------------------------------------


def _metrics(row: dict) -> dict:
    return {key: value for key, value in row.items() if "," in key}


def _by_doc(samples: list[dict]) -> dict[int, dict]:
    return {sample["doc_id"]: sample for sample in samples}


def _prompts(sample: dict) -> list:
    """A sample's requests as logged, the erank request (the last, in an erank task) included."""
    return list(sample["arguments"].values())


def assert_as_under_hf(hf: Run, erank: Run, pairs=SCORED) -> None:
    """Each erank task reports its standard task's metrics exactly (every filter, every stderr),
    over the same documents, with the same requests, responses and per-doc values."""
    for standard, ours in pairs:
        theirs = _metrics(hf.results["results"][standard])
        assert {key: _metrics(erank.results["results"][ours]).get(key) for key in theirs} == theirs, ours
        assert erank.results["n-samples"].get(ours) == hf.results["n-samples"].get(standard), ours
        if standard not in hf.samples:
            continue  # a group
        assert _by_doc(erank.samples[ours]).keys() == _by_doc(hf.samples[standard]).keys(), ours
        for doc_id, sample in _by_doc(hf.samples[standard]).items():
            mine = _by_doc(erank.samples[ours])[doc_id]
            assert _prompts(mine)[:-1] == _prompts(sample), (ours, doc_id)
            assert mine["resps"][:-1] == sample["resps"] and mine["filtered_resps"][:-1] == sample["filtered_resps"]
            assert {k: mine[k] for k in ("target", "doc_hash", "prompt_hash", "target_hash")} == \
                   {k: sample[k] for k in ("target", "doc_hash", "prompt_hash", "target_hash")}
            assert {m: mine[m] for m in sample["metrics"]} == {m: sample[m] for m in sample["metrics"]}


def erank_values(run: Run, task: str) -> dict[int, tuple[str, dict]]:
    """doc_id -> (the erank text, its erank response) of every sample of ``task``."""
    return {s["doc_id"]: (_prompts(s)[-1]["arg_0"], s["erank_response"]) for s in run.samples[task]}


def assert_same_erank(run: Run, reference: Run, task: str, reference_task: str | None = None,
                      keys=("entropy_m1", "entropy_m0", "loss_m1", "loss_m0")) -> None:
    """The same erank texts and values (to float32 round-off: other batch compositions) for every doc ``run`` has."""
    ours, theirs = erank_values(run, task), erank_values(reference, reference_task or task)
    assert ours and ours.keys() <= theirs.keys()
    for doc_id, (text, response) in ours.items():
        assert text == theirs[doc_id][0], doc_id
        for key in keys:
            assert response[key] == pytest.approx(theirs[doc_id][1][key], rel=1e-6, abs=1e-7), (doc_id, key)


def assert_same_metrics(run: Run, reference: Run, task: str) -> None:
    """Every metric and stderr of ``task`` as in ``reference``, floats to the per-text tolerance of
    ``assert_same_erank`` (the erank requests of another run can share batches with other tasks' texts,
    which moves hidden states at float32 round-off; lm-eval 0.4.10's stderr showed a 1.3e-9 relative change)."""
    ours, theirs = _metrics(run.results["results"][task]), _metrics(reference.results["results"][task])
    assert ours.keys() == theirs.keys()
    for key, value in theirs.items():
        assert ours[key] == (pytest.approx(value, rel=1e-6, abs=1e-9) if isinstance(value, float) else value), key


def assert_erank_reported(run: Run, task: str, filter_name: str = "none") -> None:
    row = run.results["results"][task]
    assert math.isfinite(row[f"diff_erank,{filter_name}"]) and math.isfinite(row[f"diff_erank_stderr,{filter_name}"])


# ---- --predict_only -------------------------------------------------------------------------


def test_predict_only_writes_every_sample_with_its_erank_response(run_model):
    """Shipped-style erank tasks, erank_<task>, erank_<group>, a user's generation task and a
    representation-only task: the results are the standard tasks' (no metrics), every sample is
    written with its erank response."""
    flags, lm_only = {"--predict_only": True}, "flag_erank_wikitext"
    hf = run_model("hf", "flag_std,flag_gen", flags)
    erank = run_model("hf-erank", f"flag_erank,erank_flag_std,erank_flag_gen,{lm_only}", flags)
    plain = run_model("hf-erank", f"flag_erank,erank_flag_gen,{lm_only}")
    for standard, ours in PREDICT_PAIRS:
        row, theirs = erank.results["results"][ours], hf.results["results"][standard]
        assert {k: v for k, v in row.items() if k not in ("name", "alias")} == \
               {k: v for k, v in theirs.items() if k not in ("name", "alias")}, ours  # no eRank metrics
    assert_as_under_hf(hf, erank, PREDICT_PAIRS)
    for standard, ours in PREDICT_PAIRS:
        if standard in hf.samples:  # a task: the plain run has it, or its shipped-style twin (the same texts)
            assert len(erank.samples[ours]) == erank.results["n-samples"][ours]["original"], ours
            assert_same_erank(erank, plain, ours, reference_task=ours if ours in plain.samples else
                              ours.replace("erank_flag_", "flag_erank_", 1))
    assert erank.samples[GEN[1]][0]["metrics"] == ["bypass"]  # as the generation task's under hf
    assert not _metrics(erank.results["results"][lm_only]) and _metrics(plain.results["results"][lm_only])
    assert len(erank.samples[lm_only]) == 6
    assert_same_erank(erank, plain, lm_only)


def test_predict_only_multimodal_writes_the_samples(lm_eval_cli, tiny_llava, local_mm_task):  # noqa: F811
    common = ["--model", "hf-multimodal-erank", "--model_args", f"pretrained={tiny_llava},dtype=float32",
              "--tasks", "local_mm", "--include_path", str(local_mm_task), "--batch_size", "2", "--log_samples"]
    plain, predicted = lm_eval_cli(common), lm_eval_cli([*common, "--predict_only"])
    assert _metrics(plain.results["results"]["local_mm"]) and not _metrics(predicted.results["results"]["local_mm"])
    reference = {s["doc_id"]: ast.literal_eval(s["resps"][0][0]) for s in plain.samples["local_mm"]}
    assert len(predicted.samples["local_mm"]) == len(reference) == 5
    for sample in predicted.samples["local_mm"]:
        assert sample["erank_response"] == pytest.approx(reference[sample["doc_id"]]), sample["doc_id"]


# ---- flags that change which documents, prompts or requests run ------------------------------


def test_limit_count_and_fraction(pair):
    _, plain = pair("plain")
    for name, limit, counts in (("limit_count", 5, (5, 5)), ("limit_fraction", 0.5, (6, 3))):
        hf, erank = pair(name, {"--limit": limit})
        assert_as_under_hf(hf, erank)
        for (_, ours), count in zip(SCORED, counts):
            assert sorted(_by_doc(erank.samples[ours])) == list(range(count)), name
            assert_same_erank(erank, plain, ours)
        assert_erank_reported(erank, PIQA[1])


def test_samples_selects_the_same_documents(pair, run_model):
    """``--samples`` names tasks, so each model gets its own task names."""
    _, plain = pair("plain")
    hf, erank = (run_model(kind, task, {"--samples": json.dumps({task: [1, 3, 4]})}) for kind, task in
                 (("hf", PIQA[0]), ("hf-erank", PIQA[1])))
    assert_as_under_hf(hf, erank, pairs=[PIQA])
    assert sorted(_by_doc(erank.samples[PIQA[1]])) == [1, 3, 4]
    assert_same_erank(erank, plain, PIQA[1])


def test_num_fewshot_and_seed(pair):
    """Few-shot prompts as under hf, drawn with the fewshot seed; the erank text stays zero-shot;
    the torch seed is M0's seed (M1's values do not move, M0's do)."""
    _, plain = pair("plain")
    hf, fewshot = pair("fewshot", {"--num_fewshot": 2})
    assert_as_under_hf(hf, fewshot)
    assert all(_prompts(s)[:-1] != _prompts(_by_doc(plain.samples[PIQA[1]])[s["doc_id"]])[:-1]
               for s in fewshot.samples[PIQA[1]])  # the few-shot context is there
    assert_same_erank(fewshot, plain, PIQA[1])
    hf_seeded, seeded = pair("seed", {"--num_fewshot": 2, "--seed": "5,6,7,8"})
    assert_as_under_hf(hf_seeded, seeded)
    config = seeded.results["config"]
    assert (config["random_seed"], config["numpy_seed"], config["torch_seed"], config["fewshot_seed"]) == (5, 6, 7, 8)
    assert config["erank_m0_seed"] == 7 and plain.results["config"]["erank_m0_seed"] == 1234
    assert [_prompts(s) for s in seeded.samples[PIQA[1]]] != [_prompts(s) for s in fewshot.samples[PIQA[1]]]
    assert_same_erank(seeded, plain, PIQA[1], keys=("entropy_m1", "loss_m1"))
    new, old = erank_values(seeded, PIQA[1]), erank_values(plain, PIQA[1])
    assert all(new[d][1]["entropy_m0"] != pytest.approx(old[d][1]["entropy_m0"], rel=1e-6) for d in new)


def test_chat_template_with_fewshot_as_multiturn_and_system_instruction(pair):
    _, plain = pair("plain")
    hf, erank = pair("chat", {"--apply_chat_template": True, "--fewshot_as_multiturn": True,
                              "--system_instruction": "Answer briefly.", "--num_fewshot": 1})
    assert_as_under_hf(hf, erank)
    prompt = _prompts(erank.samples[PIQA[1]][0])[0]["arg_0"]
    assert prompt.startswith("system: Answer briefly.\nuser: ") and prompt.count("user: ") == 2, prompt
    for task in (PIQA[1], GEN[1]):
        assert_same_erank(erank, plain, task)


def test_gen_kwargs(pair):
    _, plain = pair("plain")
    hf, erank = pair("gen_kwargs", {"--gen_kwargs": "max_gen_toks=1"})
    assert_as_under_hf(hf, erank)
    for run, task in ((hf, GEN[0]), (erank, GEN[1])):
        assert run.results["configs"][task]["generation_kwargs"]["max_gen_toks"] == 1
    assert [s["resps"][:-1] for s in erank.samples[GEN[1]]] != [s["resps"][:-1] for s in plain.samples[GEN[1]]]
    assert_same_erank(erank, plain, GEN[1])


# ---- batching and device ----------------------------------------------------------------------


@pytest.mark.parametrize("flags, expected", [
    ({"--batch_size": "auto", "--max_batch_size": 16}, {"erank_auto_batch_size": 16}),  # CPU memory allows the most
    ({"--batch_size": "auto:2", "--max_batch_size": 8}, {"erank_auto_batch_size": 8}),
    ({"--device": None}, {"device": "cuda:0", "erank_m0_device": "cpu"}),  # lm-eval's default; HFLM falls back
], ids=["auto", "auto_n", "default_device"])
def test_batch_size_and_device(pair, flags, expected):
    _, plain = pair("plain")
    hf, erank = pair(f"batching_{sorted(flags.items())}", flags, scored=[PIQA])
    assert_as_under_hf(hf, erank, pairs=[PIQA])
    assert_same_erank(erank, plain, PIQA[1])
    config = erank.results["config"]
    assert config["batch_sizes"] == hf.results["config"]["batch_sizes"]
    assert {key: config[key] for key in expected} == expected


# ---- caches ---------------------------------------------------------------------------------


def test_use_cache_rerun_equals_the_first_run(pair, run_model, tmp_path):
    """Each model its own cache (lm-eval's keys carry no model identity): the rerun reads every
    loglikelihood from it and gives the first run's numbers; the erank requests are recomputed."""
    plain = pair("plain")
    for kind, task, reference in (("hf", PIQA[0], plain[0]), ("hf-erank", PIQA[1], plain[1])):
        cache = {"--use_cache": tmp_path / kind}
        first, again = run_model(kind, task, cache), run_model(kind, task, cache)
        assert _metrics(again.results["results"][task]) == _metrics(first.results["results"][task]), kind
        assert_same_metrics(first, reference, task)
        for run in (first, again):
            assert run.results["config"]["use_cache"] == str(tmp_path / kind)
        assert first.logged("Cached requests: 0, Requests remaining: 24")
        assert again.logged("Cached requests: 24, Requests remaining: 0"), kind
        assert (tmp_path / f"{kind}_rank0.db").is_file()


def _cli_rejects_cache_requests_values() -> bool:
    """lm-eval 0.4.10/0.4.11's parser checks ``--cache_requests``' choices after its type has
    turned the value into a dict, so it rejects every value (under hf too)."""
    from lm_eval._cli import HarnessCLI

    run = HarnessCLI()._subparsers.choices["run"]
    return next(a for a in run._actions if "--cache_requests" in a.option_strings).choices is not None


def test_cache_requests_true_refresh_delete(pair, run_model, tmp_path, monkeypatch):
    """lm-eval's request cache (``lm_eval.caching.cache.PATH``, read at import) in a fresh directory."""
    import lm_eval.caching.cache as request_cache

    monkeypatch.setattr(request_cache, "PATH", str(tmp_path))
    if _cli_rejects_cache_requests_values():
        for kind, task in zip(("hf", "hf-erank"), PIQA):
            with pytest.raises(SystemExit) as rejected:
                run_model(kind, task, {"--cache_requests": "true"})
            assert rejected.value.code == 2, kind  # argparse's usage error, before anything runs
        return
    _, plain = pair("plain")
    for step, built, kept in (("true", True, True), ("true", False, True), ("refresh", True, True),
                              ("delete", True, False)):
        runs = pair(f"cache_requests_{step}_{built}", {"--cache_requests": step}, scored=[PIQA])
        assert_as_under_hf(*runs, pairs=[PIQA])
        assert_same_metrics(runs[1], plain, PIQA[1])
        assert [run.logged("Building contexts for") for run in runs] == [built, built], step
        cached = sorted(path.name.split("-rank")[0] for path in tmp_path.iterdir())
        assert cached == (["requests-flag_erank_piqa-0shot", "requests-flag_piqa-0shot"] if kept else []), step


# ---- outputs: --show_config, --write_out, --metadata, --hf_hub_log_args, --config --------------


def test_output_flags(pair):
    """One run with the flags that only add output, each checked on its own output."""
    _, plain = pair("plain")
    hf, erank = pair("outputs", {"--show_config": True, "--write_out": True, "--metadata": '{"flag_note": "x"}',
                                 "--hf_hub_log_args": HUB_OFFLINE}, scored=[PIQA])
    assert_as_under_hf(hf, erank, pairs=[PIQA])
    assert_same_metrics(erank, plain, PIQA[1])
    for run, task in ((hf, PIQA[0]), (erank, PIQA[1])):
        shown = json.JSONDecoder().raw_decode(run.stdout[run.stdout.index("{"):])[0]
        assert shown["results"] == run.results["results"] and shown["configs"] == run.results["configs"]
        assert run.results["configs"][task]["metadata"]["flag_note"] == "x"
    theirs = [m.replace(PIQA[0], "TASK") for m in _writeout(hf)]
    mine = [m.replace(PIQA[1], "TASK") for m in _writeout(erank)]
    assert theirs and mine[:len(theirs)] == theirs  # the standard task's prompts, as under hf ...
    ours = mine[len(theirs):]  # ... then the erank request's
    assert len(ours) == 2 and "Answer: Store it in a sealed bag" in ours[0] and "request_type='erank'" in ours[1]


def _writeout(run: Run) -> list[str]:
    """The ``--write_out`` messages: document 0's prompts and requests (0.4.13: the first of each
    part of the task's requests; 0.4.10: all)."""
    return [m for m in run.log if "; document 0; context prompt" in m or m.startswith("Request: Instance(")]


def test_config_file_equals_the_command_line(pair, lm_eval_cli, flag_tasks, flag_model, tmp_path):
    for kind, reference in zip(("hf", "hf-erank"), pair("plain")):
        config = {"model": kind, "model_args": model_args(flag_model, standard=kind == "hf"),
                  "tasks": [t[kind != "hf"] for t in SCORED], "include_path": str(flag_tasks),
                  "device": "cpu", "batch_size": 4, "log_samples": True}
        path = tmp_path / f"{kind}.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        run = lm_eval_cli(["--config", str(path)])
        assert {t: _metrics(r) for t, r in run.results["results"].items()} == \
               {t: _metrics(r) for t, r in reference.results["results"].items()}, kind
        assert run.samples == reference.samples, kind


# ---- W&B and Trackio: their sample tables and traces ------------------------------------------


def test_wandb_sample_table_is_the_standard_tasks_plus_erank_columns(pair):
    """lm-eval's W&B logger builds each task's table with ``_generate_dataset`` (wandb itself is
    not needed for that part); ``--wandb_args`` end to end is a manual check (docs/flags.md)."""
    from lm_eval.loggers.wandb_logger import WandbLogger

    hf, erank = pair("plain")
    logger = WandbLogger.__new__(WandbLogger)  # its table builder only: no W&B run
    for standard, ours in SCORED:
        theirs = logger._generate_dataset(hf.raw_samples[standard], hf.results["configs"][standard])
        table = logger._generate_dataset(erank.raw_samples[ours], erank.results["configs"][ours])
        assert table[list(theirs.columns)].equals(theirs), ours
        assert {"diff_erank", "erank_m1", "reduced_loss"} <= set(table.columns) - set(theirs.columns)
        assert "erank_m0_twin_sd" not in table.columns  # m0_twins=1: no sample carries it


def test_trackio_traces_are_the_standard_tasks(pair):
    trackio_logger = pytest.importorskip("lm_eval.loggers.trackio_logger", reason="--trackio_args: lm-eval 0.4.12+")

    class FakeTrackio:  # the one thing a trace needs of trackio
        Trace = staticmethod(lambda messages, metadata: {"messages": messages, "metadata": metadata})

    hf, erank = pair("plain")
    for standard, ours in SCORED:
        output_type = hf.results["configs"][standard]["output_type"]
        for theirs, mine in zip(hf.raw_samples[standard], erank.raw_samples[ours], strict=True):
            expected = trackio_logger._sample_to_trace(FakeTrackio, theirs, standard, output_type)
            trace = trackio_logger._sample_to_trace(FakeTrackio, mine, standard, output_type)
            assert trace["messages"] == expected["messages"], ours
            assert math.isfinite(trace["metadata"]["reduced_loss"])


# ---- flags that need something of the model or the task ---------------------------------------


def test_trust_remote_code(pair, run_model, remote_code_model, monkeypatch, tmp_path):
    """A model class of its own loads only with --trust_remote_code, under hf and hf-erank alike."""
    import datasets
    import transformers.dynamic_module_utils as dynamic

    trusted = getattr(datasets.config, "HF_DATASETS_TRUST_REMOTE_CODE", None)  # lm-eval sets it (datasets 2.x reads it)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_TRUST_REMOTE_CODE", trusted, raising=False)
    monkeypatch.setattr(dynamic, "HF_MODULES_CACHE", str(tmp_path / "modules"))  # not the user's cache
    monkeypatch.setattr(sys, "path", list(sys.path))
    for kind, task in (("hf", PIQA[0]), ("hf-erank", PIQA[1])):
        with pytest.raises(ValueError, match="trust_remote_code"):
            run_model(kind, task, model=remote_code_model)
    _, plain = pair("plain")
    hf, erank = pair("trust_remote_code", {"--trust_remote_code": True}, scored=[PIQA], model=remote_code_model)
    assert_as_under_hf(hf, erank, pairs=[PIQA])
    assert_same_erank(erank, plain, PIQA[1])  # the same weights; M0 drawn as for GPT-2


def test_confirm_run_unsafe_code(pair, run_model):
    unsafe = ("flag_unsafe", "erank_flag_unsafe")
    for kind, task in zip(("hf", "hf-erank"), unsafe):
        with pytest.raises(ValueError, match="marked as unsafe"):
            run_model(kind, task)
    hf, erank = pair("unsafe", {"--confirm_run_unsafe_code": True}, scored=[unsafe])
    assert_as_under_hf(hf, erank, pairs=[unsafe])
    assert_erank_reported(erank, unsafe[1], "first_word")


# ---- refused before any model loads ----------------------------------------------------------


def test_check_integrity_is_refused_before_the_model_loads(run_model, lm_eval_cli, flag_tasks, tmp_path):
    """Under hf, lm-eval fails once the model has loaded (its integrity tests are gone); hf-erank
    refuses at once: the model path does not even exist. In-process, then through lm_eval itself."""
    with pytest.raises(FileNotFoundError, match="Unable to find package root"):
        run_model("hf", PIQA[0], {"--check_integrity": True})
    absent = f"pretrained={tmp_path / 'absent'}"
    refused = ["--model", "hf-erank", "--model_args", absent, "--tasks", PIQA[1], "--include_path", str(flag_tasks),
               "--check_integrity"]
    with pytest.raises(UnsupportedFlagError, match="--check_integrity"):
        lm_eval_cli(refused)
    done = subprocess.run([console_script("lm_eval"), *refused], capture_output=True, text=True, timeout=600)
    assert done.returncode != 0 and "UnsupportedFlagError: --check_integrity" in done.stderr, done.stderr[-3000:]
    assert "Initializing hf-erank model" not in done.stderr


def test_multimodal_batch_size_auto_is_refused_before_the_model_loads(lm_eval_cli, local_mm_task, tmp_path):  # noqa: F811
    with pytest.raises(UnsupportedFlagError, match="--batch_size auto"):
        lm_eval_cli(["--model", "hf-multimodal-erank", "--model_args", f"pretrained={tmp_path / 'absent'}",
                     "--tasks", "local_mm", "--include_path", str(local_mm_task), "--batch_size", "auto"])


def test_hub_push_without_token_fails_before_the_model_loads_as_under_hf(lm_eval_cli, flag_tasks, tmp_path,
                                                                       monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    for kind, task in (("hf", PIQA[0]), ("hf-erank", PIQA[1])):
        with pytest.raises(ValueError, match="Hugging Face token is not defined"):
            lm_eval_cli(["--model", kind, "--model_args", f"pretrained={tmp_path / 'absent'}", "--tasks", task,
                         "--include_path", str(flag_tasks), "--hf_hub_log_args", "push_results_to_hub=True"])
