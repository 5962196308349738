"""The README and docs/ stay true: links resolve, the names they give exist, the quick start shows
what the example prints today, and a figure a study wrote is quoted from that study's output.

Everything here reads files (no model, no lm-eval) except the quick-start test, which runs the
offline example at its real size.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path

import pytest

from . import docs_text
from .test_scripts import study_module

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOC_PAGES = sorted((ROOT / "docs").rglob("*.md"))
DOCS = [README, *DOC_PAGES]
README_MAX_LINES = 300

LINK = re.compile(r"!?\[(?:[^\]]|\][^(])*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def text_of(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lstrip("#").strip().lower())
    return text.replace(" ", "-")


@cache
def anchors(path: Path) -> set[str]:
    prose = FENCE.sub("", text_of(path))
    return {anchor(line) for line in prose.splitlines() if line.startswith("#")}


def links(path: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", text_of(path)))


def test_the_readme_is_short_and_leads_with_what_a_researcher_needs():
    lines = text_of(README).splitlines()
    assert len(lines) < README_MAX_LINES, f"README.md has {len(lines)} lines"
    headings = [line for line in lines if line.startswith("## ")]
    assert headings[:4] == ["## What Diff-eRank is", "## Install", "## Quick start (offline, a fresh machine)",
                            "## Evaluating a real model"]
    assert {"## Reading the output", "## Comparing models", "## Real models", "## Citation",
            "## Documentation"} <= set(headings)


@pytest.mark.parametrize("page", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_image_resolves(page):
    broken = []
    for target in links(page):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, fragment = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no {resolved}")
        elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
            broken.append(f"{target}: no heading #{fragment} in {resolved.relative_to(ROOT)}")
    assert not broken, "\n".join(broken)


def test_every_docs_page_is_reachable_from_the_readme():
    reached, todo = set(), [README]
    while todo:
        page = todo.pop()
        for target in links(page):
            path = target.partition("#")[0]
            if path.endswith(".md") and not re.match(r"[a-z]+:", path):
                found = (page.parent / path).resolve()
                if found.is_file() and found not in reached:
                    reached.add(found)
                    todo.append(found)
    hand_written = {p.resolve() for p in DOC_PAGES if p.parent == ROOT / "docs"}
    assert hand_written - reached == set()


# ---- names ------------------------------------------------------------------------------------------


def module_file(dotted: str) -> Path | None:
    base = ROOT.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    if dotted == "lm_eval_erank.task_configs":
        return ROOT / "task_configs" / "__init__.py"
    return None


def absolute_module(path: Path, node: ast.ImportFrom) -> str:
    """The dotted module an ``import from`` in the file ``path`` names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    package = list(path.relative_to(ROOT).with_suffix("").parts)
    package = package[:-1] if package[-1] != "__init__" else package[:-1]
    base = package[:len(package) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


@cache
def top_level_names(path: Path) -> set[str]:
    tree = ast.parse(text_of(path))
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
            if isinstance(node, ast.ImportFrom) and [a.name for a in node.names] == ["*"]:
                star = module_file(absolute_module(path, node))
                names |= top_level_names(star) if star else set()
    if path.name == "__init__.py":
        names |= {p.stem for p in path.parent.glob("*.py")} | {p.name for p in path.parent.iterdir() if p.is_dir()}
        lazy = re.search(r"_LAZY = \{(.*?)\}", text_of(path), re.S)
        names |= set(re.findall(r'"(\w+)":', lazy.group(1))) if lazy else set()
    return names


def dotted_name_exists(dotted: str) -> bool:
    """``lm_eval_erank.a.b.attr``: the longest prefix that is a module, then an attribute it defines
    (a class attribute one level further is accepted when the class exists)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        path = module_file(".".join(parts[:cut]))
        if path is not None:
            rest = parts[cut:]
            return not rest or rest[0] in top_level_names(path)
    return False


NAMED_MODULE = re.compile(r"\blm_eval_erank(?:\.\w+)+")
# a path in the repository (not one inside another path, e.g. ~/.cache/lm_eval_erank/m0)
NAMED_FILE = re.compile(r"(?<![\w./~$-])((?:lm_eval_erank|scripts|tests|task_configs|docs)/[\w./-]*\w)")


@pytest.mark.parametrize("page", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_and_file_named_exists(page):
    text = text_of(page)
    missing = [name for name in sorted(set(NAMED_MODULE.findall(text))) if not dotted_name_exists(name)]
    for name in sorted(set(NAMED_FILE.findall(text))):
        if any(ch in name for ch in "<>*{}") or name.startswith("docs/") and page.parent == ROOT / "docs":
            continue
        if not (ROOT / name).exists() and not (ROOT / name.replace("lm_eval_erank/task_configs", "task_configs")).exists():
            missing.append(name)
    assert not missing, f"{page.name} names what does not exist: {missing}"


def test_every_docs_path_the_code_names_exists():
    """Error messages and docstrings point users at docs pages: those pages exist."""
    named = set()
    for path in [*ROOT.joinpath("lm_eval_erank").rglob("*.py"), *ROOT.joinpath("scripts").rglob("*.py")]:
        named |= {(path, m) for m in re.findall(r"docs/[\w./-]*\.md", text_of(path))}
    assert named and not [f"{p.relative_to(ROOT)}: {m}" for p, m in named if not (ROOT / m).is_file()]


CONSOLE = re.compile(r"^\s*(?:\$ )?(lm-eval-erank|lm_eval|lm-eval|python -m [\w.]+|python scripts/[\w/]+\.py|"
                     r"bash scripts/[\w/]+\.sh)(?:\s+(\S+))?", re.M)


def console_commands() -> list[tuple[str, str, str | None]]:
    found = []
    for page in DOCS:
        for block in re.findall(r"^```[^\n]*\n(.*?)^```", text_of(page), re.S | re.M):
            found += [(page.name, *m) for m in CONSOLE.findall(block)]
    return found


def test_every_console_command_shown_exists():
    scripts = tomllib.loads(text_of(ROOT / "pyproject.toml"))["project"]["scripts"]
    wrong = []
    for page, command, first in console_commands():
        if command == "lm-eval-erank":
            ok = command in scripts and (not first or first.startswith("-") or first in ("compare", "run", "ls",
                                                                                             "validate"))
        elif command.startswith("python -m "):
            module = command.split()[-1]
            ok = module in ("lm_eval", "pip", "venv") or module_file(module) is not None
        elif command.startswith(("python scripts/", "bash scripts/")):
            ok = (ROOT / command.split()[-1]).is_file()
        else:
            ok = True  # lm-eval's own command
        if not ok:
            wrong.append(f"{page}: {command} {first or ''}")
    assert console_commands() and not wrong, wrong


def model_arguments_shown() -> set[str]:
    keys = set()
    for page in DOCS:
        for value in re.findall(r"--model_args[ =]+(\S+)", text_of(page)):
            keys |= {part.split("=", 1)[0] for part in value.strip("\"'`\\").split(",") if "=" in part}
    return keys


def test_every_model_argument_named_is_one_hf_erank_takes():
    import inspect

    from lm_eval_erank.harness.model import ErankHFLM
    from lm_eval_erank.harness.multimodal_model import ErankMultimodalLM

    multimodal = set(inspect.signature(ErankMultimodalLM.__init__).parameters) - {"self", "kwargs"}
    accepted = set(ErankHFLM.OWN_ARGUMENTS) | set(ErankHFLM.HF_ARGUMENTS) | multimodal | {"gguf_file"}  # from_pretrained's
    shown = model_arguments_shown()
    assert {"pretrained", "m0_twins", "gguf_file"} <= shown
    assert shown <= accepted, shown - accepted
    table = text_of(ROOT / "docs" / "model-options.md").split("| option | default | meaning |", 1)[1].split("\n\n")[0]
    options = {m for row in table.splitlines()[2:] for m in re.findall(r"^\| `(\w+)`(?:, `(\w+)`)?", row)[0] if m}
    assert options == set(ErankHFLM.OWN_ARGUMENTS)


# ---- the quick start ----------------------------------------------------------------------------------


def test_the_quick_start_shows_what_the_example_prints_today(tmp_path):
    """README's quick-start block is the last table ``python -m lm_eval_erank.example`` prints (what
    scripts/run_example.sh runs after the setup), at its real size."""
    block = text_of(README).split("## Quick start", 1)[1].split("```", 4)[3].strip("\n").splitlines()
    env = dict(os.environ, LM_EVAL_ERANK_CACHE=str(tmp_path / "cache"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false")
    done = subprocess.run([sys.executable, "-m", "lm_eval_erank.example", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = [line.rstrip() for line in done.stdout.splitlines()]
    start = printed.index(block[0])
    assert printed[start:start + len(block)] == block
    assert "python -m lm_eval_erank.example --out" in text_of(ROOT / "scripts" / "run_example.sh")


# ---- what the studies wrote, quoted from their outputs ---------------------------------------------


def generated_section(path: Path, heading: str) -> str:
    """The body of ``## heading`` in a file a study wrote, up to the next ``## ``."""
    match = re.search(rf"^## {re.escape(heading)}\n\n(.*?)(?=^## |\Z)", text_of(path), re.S | re.M)
    assert match, f"no section '{heading}' in {path}"
    return match.group(1).strip()


def flat(text: str) -> str:
    return " ".join(text.split())


TWIN_COLLAPSE = ROOT / "docs" / "twin_collapse"
COPIED = [
    ("negative-diff-erank.md", TWIN_COLLAPSE / "table.md", "M1 at the LM head's input"),
    ("negative-diff-erank.md", TWIN_COLLAPSE / "table.md", "Twins at published shapes, piqa"),
    ("negative-diff-erank.md", TWIN_COLLAPSE / "table.md", "What each change does to the twin's eRank L, piqa"),
    ("negative-diff-erank.md", TWIN_COLLAPSE / "table.md", "Which block-1 measurement orders the collapse, piqa"),
    ("negative-diff-erank.md", TWIN_COLLAPSE / "local_m1.md", "At the last layer"),
    ("negative-diff-erank.md", TWIN_COLLAPSE / "qwen" / "table.md", "Twins at published shapes, piqa"),
    ("negative-diff-erank.md", TWIN_COLLAPSE / "qwen" / "table.md", "What each change does to the twin's eRank L, piqa"),
]


@pytest.mark.parametrize("page, source, heading", COPIED,
                         ids=[f"{c[1].relative_to(TWIN_COLLAPSE).parent}/{c[2]}" for c in COPIED])
def test_a_table_a_study_wrote_is_copied_verbatim(page, source, heading):
    assert generated_section(source, heading) in text_of(ROOT / "docs" / page)


def test_the_twin_collapse_page_quotes_its_study():
    """Every number in negative-diff-erank.md's prose comes from the study's summary.json."""
    summary = json.loads(text_of(TWIN_COLLAPSE / "summary.json"))
    findings = summary["findings"]
    piqa, prose = findings["by_dataset"]["piqa"], findings["by_dataset"]["prose"]
    scale, positions = findings["attention_logit_scale_d_init_std_squared"], piqa["positions"]
    page = flat(text_of(ROOT / "docs" / "negative-diff-erank.md"))
    quoted = [
        f"({summary['wall_seconds'] / 60:.1f} min on this project's 2 CPU cores",
        f"{scale['smollm2-135m-gguf']:.2f} for SmolLM2 at 0.02, {scale['gpt2-small']:.2f} for GPT-2/OPT/Pythia, "
        f"{scale['qwen2.5-0.5b']:.2f} for Qwen2.5-0.5B, {scale['smollm2-135m']:.2f} for SmolLM2 at 1/24, "
        f"{scale['llama-3.2-1b']:.2f} for Llama-3.2-1B",
        f"seed sd of at most {piqa['twins_erank_last']['largest_seed_sd']:.2f} on PIQA "
        f"({prose['twins_erank_last']['largest_seed_sd']:.1f} on prose)",
        f"from {piqa['twins_erank_last']['lowest']['erank']:.1f} ({piqa['twins_erank_last']['lowest']['twin']}) to "
        f"{piqa['twins_erank_last']['highest']['erank']:.1f} ({piqa['twins_erank_last']['highest']['twin']}) on PIQA",
        f"falls to about {positions['erank_m1_at_lowest']:.1f} (block {positions['lowest_layer']})",
        f"up to {positions['first_norm_ratio_at_lowest']:.0f} times longer",
        f"({positions['delim_norm_ratio_at_lowest']:.1f}x the median)",
        f"({positions['erank_m1_at_lowest_first_left_out']:.1f} at block {positions['lowest_layer']})",
        f"({positions['erank_m1_last']:.1f} -> {positions['erank_m1_last_first_left_out']:.1f})",
        f"at {len(positions['layers_more_than_doubled'])} of the {positions['hidden_state_indices']} hidden-state",
        f"by at most {100 * positions['twins_largest_relative_change']:.0f}% anywhere",
    ]
    assert not [q for q in quoted if flat(q) not in page]


def test_the_family_page_copies_its_study():
    """trained-family.md: the data, machine, tables and verdict blocks of docs/family/summary.md, verbatim."""
    summary = text_of(ROOT / "docs" / "family" / "summary.md")
    page = text_of(ROOT / "docs" / "trained-family.md")
    blocks = [b for b in summary.split("\n\n") if b.startswith(("Data:", "Machine:", "| model | task |",
                                                                   "| Spearman rho"))]
    verdict = summary.split("Verdict (the paper's trends at this scale):\n\n", 1)[1].strip()
    assert len(blocks) == 4 and all(b in page for b in blocks) and verdict in page
    assert_no_figure_outside(page, [*blocks, verdict])


def assert_no_figure_outside(text: str, copied: list[str]) -> None:
    """No d.dd figure in ``text``'s prose once the ``copied`` blocks (and code blocks) are taken out;
    0.02, the published init std, is a config value, not a result."""
    prose = FENCE.sub("", text)
    for block in copied:
        prose = prose.replace(block, "")
    assert not re.findall(r"\d+\.\d\d", prose.replace("0.02", "")), "a retyped figure outside the copied blocks"


REAL = ROOT / "docs" / "real"


def test_every_copied_block_is_its_source_verbatim():
    """Every ``<!-- copied from SOURCE -->`` block of the README and docs/ holds SOURCE as it is now
    (scripts/real_models.py fills them; a rerun of the study without the copy fails here)."""
    copied_blocks = study_module("formatting").copied_blocks
    blocks = [(page, source, body) for page in DOCS for source, body in copied_blocks(text_of(page))]
    assert {(page.name, source) for page, source, _ in blocks} >= {
        ("README.md", "docs/real/verdict_summary.md"), ("real-models.md", "docs/real/study.md"),
        ("real-models.md", "docs/real/verdict.md"), ("comparing.md", "docs/real/table.md")}
    assert not [(page.name, source) for page, source, body in blocks if body != text_of(ROOT / source).strip()]


def test_the_real_model_study_is_not_retyped():
    """Outside the blocks copied from docs/real/, README's "Real models" and docs/real-models.md have
    no d.dd figure."""
    study, verdict = text_of(REAL / "study.md").strip(), text_of(REAL / "verdict.md").strip()
    summary = text_of(REAL / "verdict_summary.md").strip()
    page, readme = text_of(ROOT / "docs" / "real-models.md"), docs_text.section("Real models", "README.md")
    assert_no_figure_outside(readme, [summary])
    assert_no_figure_outside(page, [study, verdict, text_of(ROOT / "docs" / "real_smollm2" / "table.md").strip()])


QWEN_SMALL, QWEN_LARGE, SMOLLM2 = "Qwen2.5-Coder-0.5B-Instruct", "Qwen2.5-Coder-1.5B-Instruct", "SmolLM2-135M-Instruct"


def test_what_the_readme_says_of_the_real_models_holds_in_the_comparison():
    """README "Real models" and docs/real-models.md, in words: within Qwen2.5, on every data set, the
    larger model's Diff-eRank, reduced loss and eRank(M1) are larger and its eRank ratio smaller
    (paired intervals clear of 0); its accuracy larger at McNemar p < 0.05 on PIQA and WinoGrande, not
    on OpenBookQA; the smaller's Diff-eRank negative, the larger's positive; across the three models
    SmolLM2 has the largest Diff-eRank on every data set and the lowest accuracy on PIQA and WinoGrande,
    and Diff-eRank and accuracy order the models differently on every benchmark."""
    comparison = json.loads(text_of(REAL / "comparison.json"))
    small, large = QWEN_SMALL, QWEN_LARGE
    rows = {(r["label"], r["task"]): r for r in comparison["rows"]}
    pairs = {p["task"]: p for p in comparison["pairs"] if {p["a"], p["b"]} == {small, large} and p["n_docs"]}
    assert set(pairs) == {"real_piqa", "real_openbookqa", "real_winogrande", "real_hh_rlhf"}
    for task, pair in pairs.items():
        sign = 1 if pair["a"] == large else -1  # larger minus smaller
        low = {m: min(sign * pair[f"{m}_ci"][0], sign * pair[f"{m}_ci"][1]) for m in PAIRED_SIGNS}
        high = {m: max(sign * pair[f"{m}_ci"][0], sign * pair[f"{m}_ci"][1]) for m in PAIRED_SIGNS}
        assert low["diff_erank"] > 0 and low["reduced_loss"] > 0 and low["erank_m1"] > 0, task
        assert high["erank_ratio"] < 0, task
        if task != "real_hh_rlhf":
            assert sign * pair["acc_diff"] > 0, task
            assert (pair["mcnemar_p"] < 0.05) == (task != "real_openbookqa"), task
        assert rows[(small, task)]["diff_erank"]["value"] < 0 < rows[(large, task)]["diff_erank"]["value"]
    for task in pairs:
        values = {m: rows[(m, task)] for m in (small, large, SMOLLM2)}
        assert max(values, key=lambda m: values[m]["diff_erank"]["value"]) == SMOLLM2, task
        if task != "real_hh_rlhf":
            by = {k: sorted(values, key=lambda m: values[m][k]["value"]) for k in ("diff_erank", "acc")}
            assert by["diff_erank"] != by["acc"], task
            assert (by["acc"][0] == SMOLLM2) == (task in ("real_piqa", "real_winogrande")), task


def test_the_study_takes_more_than_three_hours_of_its_machine_as_the_page_says():
    """real-models.md: more than three hours of CPU per core; most of it the 1.5B model, hh-rlhf above all."""
    study = json.loads(text_of(REAL / "study.json"))
    assert study["complete"] and study["runs_cpu_s"] / study["machine"]["cpu_count"] > 3 * 3600
    large = [run for run in study["runs"] if run["label"] == QWEN_LARGE]
    assert sum(run["cpu_s"] for run in large) > study["runs_cpu_s"] / 2
    assert max(study["runs"], key=lambda run: run["cpu_s"]) == next(r for r in large if r["task"] == "real_erank_hh_rlhf")
    page = flat(text_of(ROOT / "docs" / "real-models.md"))
    assert "does not fit in three hours" in page and "Most of it is the 1.5B model, and hh-rlhf's long" in page


def test_the_qwen_counts_are_the_published_ones_and_an_untied_head():
    """comparing.md: lm-eval's count of a Qwen2.5 GGUF load is the published (tied) count, 0.49B and
    1.54B, plus the output matrix (vocabulary x d) that the file stores apart."""
    from lm_eval_erank.testing.real_models import REAL_MODELS

    counts = {m["label"]: m["num_parameters"] for m in json.loads(text_of(REAL / "comparison.json"))["models"]}
    page = flat(text_of(ROOT / "docs" / "comparing.md"))
    for key, label in (("qwen2.5-coder-0.5b-instruct", QWEN_SMALL), ("qwen2.5-coder-1.5b-instruct", QWEN_LARGE)):
        architecture = REAL_MODELS[key].architecture
        d, vocabulary = (int(re.search(pattern, architecture)[1].replace(",", ""))
                         for pattern in (r"\bd (\d+)", r"vocabulary ([\d,]+)"))
        published = f"{(counts[label] - vocabulary * d) / 1e9:.2f}B"
        assert published in page, (label, published)
    assert "the published, tied counts are 0.49B and 1.54B" in page


def test_what_the_pages_say_of_the_two_qwen_sizes_per_layer_holds_in_the_verdict():
    """README and docs/real-models.md, per layer (verdict.md's table, larger minus smaller, paired): at the
    embeddings the larger model's Diff-eRank is smaller; in the middle blocks (depths 1/4 to 3/4) it is
    larger and the larger model's eRank(M1) smaller, and on the benchmarks both eRank(M1)s are under 4;
    a twin's eRank (Diff-eRank + eRank(M1)) from the embeddings to the head falls by 30% or more for the
    smaller model and by at most 5% for the larger."""
    cells = [line.strip("| ").split(" | ") for line in text_of(REAL / "verdict.md").splitlines()
             if line.startswith("| real_") and "/24, " in line]
    table = {(c[0], c[1]): c for c in cells}
    assert {task for task, _ in table} == {"real_piqa", "real_openbookqa", "real_winogrande", "real_hh_rlhf"}

    def value(cell):
        return float(cell.split(" ±")[0])

    for task in {task for task, _ in table}:
        assert table[(task, "0.00")][5].endswith("smaller"), task
        for depth in ("0.25", "0.50", "0.75"):
            row = table[(task, depth)]
            assert row[5].endswith("larger") and row[8].endswith("smaller"), (task, depth)
            assert task == "real_hh_rlhf" or max(value(row[6]), value(row[7])) < 4, (task, depth)
        twin = {size: [value(table[(task, depth)][3 + k]) + value(table[(task, depth)][6 + k]) for depth in ("0.00", "1.00")]
                for k, size in enumerate(("small", "large"))}
        assert twin["small"][1] / twin["small"][0] <= 0.7 and twin["large"][1] / twin["large"][0] >= 0.95, task


PAIRED_SIGNS = ("diff_erank", "reduced_loss", "erank_m1", "erank_ratio")


def test_what_the_pages_say_of_qwens_twin_holds_in_the_twin_collapse_study():
    """negative-diff-erank.md: Qwen2.5-0.5B's twin at 0.02 loses rank with depth (eRank L below eRank 0,
    less than SmolLM2's twin at 0.02, unlike SmolLM2's at 1/24), and q, k alone at 1/24 lift it above eRank 0 as the whole
    init std at 1/24 does."""
    def ratio(row):  # the study's eRank L / eRank 0 (collapse_ratio in scripts/studies/twin_collapse/report.py)
        erank = row["datasets"]["piqa"]["erank"]["mean"]
        return erank[-1] / erank[0]

    qwen = json.loads(text_of(TWIN_COLLAPSE / "qwen" / "summary.json"))
    smollm2 = json.loads(text_of(TWIN_COLLAPSE / "summary.json"))["architectures"]
    assert ratio(smollm2["smollm2-135m-gguf"]) < ratio(qwen["architectures"]["qwen2.5-0.5b"]) < 1 < ratio(
        smollm2["smollm2-135m"])
    for change in ("qwen: q, k std 1/24", "qwen: init std 1/24"):
        assert ratio(qwen["ablations"][change]) > 1, change
