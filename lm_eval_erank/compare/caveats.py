"""What makes a comparison misleading, said in the report: one sentence per finding, silent on a
clean comparison (same twin init and architecture, dtype, documents and versions; every task in
every run; twin draws covered by the stderrs)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .runs import Run

NEGATIVE = "docs/negative-diff-erank.md"
TWIN_DRAW = "docs/twins.md"


def _grouped(runs: Sequence[Run], value: Callable[[Run], object]) -> dict[object, list[str]]:
    groups: dict[object, list[str]] = {}
    for run in runs:
        groups.setdefault(value(run), []).append(run.label)
    return groups


def _listing(groups: dict[object, list[str]]) -> str:
    return "; ".join(f"{', '.join(labels)}: {key}" for key, labels in groups.items())


def _differing(runs: Sequence[Run], value: Callable[[Run], object]) -> dict[object, list[str]] | None:
    groups = _grouped([r for r in runs if value(r) is not None], value)
    return groups if len(groups) > 1 else None


def twin_caveats(runs: Sequence[Run]) -> list[str]:
    """Twins of different inits or architectures; twin inits not recorded; single twins of different M0s."""
    erank = [r for r in runs if r.erank]
    found = []
    for what, value in (("init std", lambda r: r.init_std), ("architecture", lambda r: r.model_type)):
        groups = _differing(erank, value)
        if groups:
            found.append(f"the random twins differ in {what} ({_listing(groups)}): Diff-eRank then compares the "
                         "twins' initialisations as much as the trained models; read eRank(M1) and the eRank ratio "
                         f"beside it ({NEGATIVE})")
    unknown = [r.label for r in erank if r.init_std is None]
    if unknown and len(unknown) < len(erank):
        found.append(f"the twins' init std is not recorded for {', '.join(unknown)} (results written before "
                     "erank_m0_init_std existed): they may differ from the others' twins")
    single = [r for r in erank if r.twins == 1]
    distinct_m0 = {r.m0_checksums for r in erank}
    if single and len(distinct_m0) > 1:
        found.append(f"{', '.join(r.label for r in single)}: one random twin (m0_twins=1) and a twin of its own, so its "
                     "stderrs cover the texts only, not the twin draw, which moves Diff-eRank across models; "
                     f"use m0_twins=5 or more ({TWIN_DRAW})")
    return found


def run_caveats(runs: Sequence[Run]) -> list[str]:
    """Different dtypes, --limit, lm-eval or plugin versions."""
    found = []
    groups = _differing(runs, lambda r: r.dtype)
    if groups:
        found.append(f"different dtypes ({_listing(groups)}): a bfloat16 forward moves dataset eRanks by about 0.03% "
                     'and accuracy a little; compare models at one dtype (docs/guarantees.md)')
    limited = [f"{r.label} (--limit {r.config['limit']})" for r in runs if r.config.get("limit") is not None]
    if limited:
        found.append(f"{', '.join(limited)}: a subset of each task's documents, not the whole task")
    groups = _differing(runs, lambda r: r.data.get("lm_eval_version"))
    if groups:
        found.append(f"different lm-eval versions ({_listing(groups)})")
    groups = _differing([r for r in runs if r.erank], lambda r: r.config.get("lm_eval_erank_version"))
    if groups:
        found.append(f"different lm-eval-erank versions ({_listing(groups)})")
    return found


def task_caveats(runs: Sequence[Run], tasks: Sequence[str]) -> list[str]:
    """A task missing from some runs; different numbers of documents for one task."""
    found = []
    for task in tasks:
        having = [r for r in runs if task in r.tasks]
        if len(having) < len(runs):
            missing = [r.label for r in runs if task not in r.tasks]
            found.append(f"task {task} is in {', '.join(r.label for r in having)} only (not in {', '.join(missing)})")
        groups = _differing(having, lambda r: r.tasks[task].n_docs)
        if groups:
            found.append(f"task {task}: different numbers of documents ({_listing(groups)})")
    return found


def comparison_caveats(runs: Sequence[Run], tasks: Sequence[str]) -> list[str]:
    """Every finding, in a fixed order (twins, runs, tasks)."""
    return [*twin_caveats(runs), *run_caveats(runs), *task_caveats(runs, tasks)]
