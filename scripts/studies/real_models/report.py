"""The real-model study's report (scripts/real_models.py): the verdict within a family (the larger
model minus the smaller, paired, in a table and in words; per layer at the same relative depths),
whether Diff-eRank and accuracy order the models alike, what was run (study.md), and the pages that
copy them."""

from __future__ import annotations

from pathlib import Path

from studies.formatting import fill_copied_blocks


PAGES = ("README.md", "docs/real-models.md", "docs/comparing.md")


def fill_pages(root: Path, pages=PAGES) -> list[Path]:
    """Copy the report into the pages that show it: every ``<!-- copied from docs/real/... -->`` block
    of ``pages`` (under ``root``, the project) gets that file's text (tests/test_docs.py checks that
    the blocks equal their sources)."""
    changed = []
    for page in (root / name for name in pages):
        text = page.read_text(encoding="utf-8")
        filled = fill_copied_blocks(text, lambda source: (root / source).read_text(encoding="utf-8"))
        if filled != text:
            page.write_text(filled, encoding="utf-8")
            changed.append(page)
    return changed


def not_run_yet(missing: list[dict]) -> str:
    return ", ".join(f"{m['label']} / {m['task']}" for m in missing)


PAIRED = (("diff_erank", "Diff-eRank"), ("erank_ratio", "ratio M1/M0"), ("erank_m1", "eRank(M1)"),
          ("reduced_loss", "reduced loss"))


def separation(interval, sign: int) -> str:
    """``larger`` / ``smaller`` when the 95% interval of ``sign`` x the difference excludes 0, else ``not separated``."""
    low, high = sorted((sign * interval[0], sign * interval[1]))
    return "larger" if low > 0 else "smaller" if high < 0 else "not separated"


def difference(value, interval, sign: int) -> str:
    """``+1.234 [+0.500, +2.000] larger``: larger / smaller when the 95% interval excludes 0."""
    if value is None:
        return "-"
    low, high = sorted((sign * interval[0], sign * interval[1]))
    return f"{sign * value:+.3f} [{low:+.3f}, {high:+.3f}] {separation(interval, sign)}"


def in_words(pairs: list[tuple[dict, int]]) -> list[str]:
    """The pair table read out per metric: on which tasks the larger model's value is larger, smaller
    or not separated (the 95% interval), and its accuracy larger or smaller at McNemar p < 0.05 or not
    significant; ``pairs``: (pair, sign) with sign x the difference = larger minus smaller."""
    lines = []
    for metric, title in (*PAIRED, ("acc", "acc")):
        groups: dict[str, list[str]] = {}
        for pair, sign in pairs:
            if metric == "acc":
                if pair["acc_diff"] is None:
                    continue
                word = ("not significant (McNemar p >= 0.05)" if pair["mcnemar_p"] >= 0.05 else
                        "larger (McNemar p < 0.05)" if sign * pair["acc_diff"] > 0 else "smaller (McNemar p < 0.05)")
            elif pair[f"{metric}_diff"] is None:
                continue
            else:
                word = separation(pair[f"{metric}_ci"], sign)
            groups.setdefault(word, []).append(pair["task"])
        if groups:
            lines.append(f"- {title}: " + "; ".join(f"{word} on {', '.join(tasks)}" for word, tasks in groups.items()))
    return lines


DEPTHS = (0.0, 0.25, 0.5, 0.75, 1.0)


def layer_table(comparison, small: str, large: str) -> list[str]:
    """Diff-eRank and eRank(M1) of two models at the same relative depths (hidden-state index
    round(f * L) of L: 0 the embeddings, L the LM head's input): each model's value ± stderr, and the
    larger minus the smaller with its paired 95% bootstrap interval over the same documents (the
    comparison's resamples and seed)."""
    from lm_eval_erank.compare.analysis import difference_interval
    from lm_eval_erank.compare.figures import layer_series
    from lm_eval_erank.core.metrics import layer_metric

    runs = {run.label: run for run in comparison.runs}

    def at(series, depth):
        """(index, L, value, stderr) at ``depth`` of a layer series, None where it has no such index."""
        if not series:
            return None
        last = series[-1][0]
        return next(((i, last, v, e) for i, v, e in series if i == round(depth * last)), None)

    def cell(point):
        return "-" if point is None else f"{point[2]:.2f} ± {point[3] or 0:.2f}"

    def paired(samples, kind, points):
        if None in samples:
            return "-"
        (i, last_i), (j, last_j) = (point[:2] for point in points)
        interval = difference_interval(samples[1], samples[0], layer_metric(kind, j, last_j),
                                       comparison.settings["resamples"], comparison.settings["seed"],
                                       metric_b=layer_metric(kind, i, last_i))
        return "-" if interval is None else difference(interval.estimate, (interval.low, interval.high), 1)

    lines = [f"**Per layer, {large} and {small}** (at the same relative depth, i/L of the smaller model; index i "
             "of L hidden states, 0 the embeddings, L the LM head's input; each value ± stderr, and the larger "
             "minus the smaller paired over the same documents with its 95% bootstrap interval):", "",
             f"| task | depth | index ({small}, {large}) | Diff-eRank {small} | Diff-eRank {large} | "
             f"Diff-eRank larger minus smaller | eRank(M1) {small} | eRank(M1) {large} | eRank(M1) larger minus smaller |",
             "|---|---:|---|---:|---:|---|---:|---:|---|"]
    tasks = sorted({p["task"] for p in comparison.pairs if {p["a"], p["b"]} == {small, large}})
    for task in tasks:
        series = {kind: [layer_series(runs[label], task, kind) for label in (small, large)]
                  for kind in ("diff_erank", "erank_m1")}
        samples = [comparison.task_samples(runs[label], task) for label in (small, large)]
        shown = set()
        for depth in DEPTHS:
            d = [at(s, depth) for s in series["diff_erank"]]
            m1 = [at(s, depth) for s in series["erank_m1"]]
            if None in d or None in m1 or (d[0][0], d[1][0]) in shown:  # a shallow model: two depths, one index
                continue
            shown.add((d[0][0], d[1][0]))
            lines.append(f"| {task} | {d[0][0] / d[0][1]:.2f} | {d[0][0]}/{d[0][1]}, {d[1][0]}/{d[1][1]} | {cell(d[0])} | "
                         f"{cell(d[1])} | {paired(samples, 'diff_erank', d)} | {cell(m1[0])} | {cell(m1[1])} | "
                         f"{paired(samples, 'erank_m1', m1)} |")
    return lines + [""] if len(lines) > 4 else []


def verdict_markdown(comparison, families: dict[str, str], layers: bool = True) -> str:
    """Within each family, the larger model minus the smaller on every task, each difference with its
    paired 95% interval (and the accuracy's McNemar p), with ``layers`` the two per layer; then, per task,
    whether Diff-eRank and accuracy order all the models alike, with the rank correlation across them and
    the smallest p it could reach."""
    params = {run.label: run.num_parameters for run in comparison.runs}
    lines = []
    for family in sorted(set(families.values())):
        members = sorted((label for label, f in families.items() if f == family and params.get(label)),
                         key=params.get)
        for small, large in zip(members, members[1:]):
            lines += [f"**{large} minus {small}** (paired over the same documents; 95% bootstrap interval):", "",
                      "| task | n | " + " | ".join(title for _, title in PAIRED) + " | acc (McNemar p) |",
                      "|---|---:|" + "---|" * (len(PAIRED) + 1)]
            signed = [(pair, 1 if pair["a"] == large else -1) for pair in comparison.pairs
                      if {pair["a"], pair["b"]} == {small, large} and pair["n_docs"] is not None]
            for pair, sign in signed:
                acc = "-" if pair["acc_diff"] is None else f"{sign * pair['acc_diff']:+.4f} (p = {pair['mcnemar_p']:.3g})"
                cells = [difference(pair[f"{m}_diff"], pair[f"{m}_ci"], sign) for m, _ in PAIRED]
                lines.append(f"| {pair['task']} | {pair['n_docs']} | " + " | ".join(cells) + f" | {acc} |")
            lines += ["", f"In words, {large} against {small}:", "", *in_words(signed), ""]
            lines += layer_table(comparison, small, large) if layers else []
    lines += ["**Do Diff-eRank and accuracy order the models alike?** (Spearman rho across the models, from 3 "
              "models on; with n models the smallest two-sided p any ordering reaches is min p)", "",
              "| task | models by Diff-eRank (low to high) | models by acc (low to high) | same order | rho | p | min p |",
              "|---|---|---|---|---:|---:|---:|"]
    values = {(row["label"], row["task"]): row for row in comparison.rows}
    found = {e["task"]: e for e in comparison.correlations if (e["x"], e["y"]) == ("diff_erank", "acc")}
    for task in dict.fromkeys(row["task"] for row in comparison.rows):
        models = [label for (label, t), row in values.items() if t == task
                  and all((row.get(m) or {}).get("value") is not None for m in ("diff_erank", "acc"))]
        if len(models) < 2:
            continue
        by = {m: sorted(models, key=lambda label: values[(label, task)][m]["value"]) for m in ("diff_erank", "acc")}
        entry = found.get(task) or {}  # compare correlates 3 models or more
        cells = [("-" if entry.get(k) is None else fmt.format(entry[k]))
                 for k, fmt in (("spearman", "{:+.2f}"), ("spearman_p", "{:.3g}"), ("min_p", "{:.3g}"))]
        lines.append(f"| {task} | {' < '.join(by['diff_erank'])} | {' < '.join(by['acc'])} | "
                     f"{'yes' if by['diff_erank'] == by['acc'] else 'no'} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def study_markdown(study: dict) -> str:
    """What was run, from ``study.json``: the documents, then every (model, data set) run's time and
    memory, the totals, and what is missing."""
    lines = ["| data set | task | documents | of | sample seed |", "|---|---|---:|---:|---:|"]
    for key, chosen in study["documents"].items():
        lines.append(f"| {key} | {study['tasks'][key]} | {chosen['sampled']} | {chosen['of']} | {chosen['seed']} |")
    lines += ["", "| model | data set | docs | wall (min) | CPU (min) | peak RSS (GiB) | load average at the end |",
              "|---|---|---:|---:|---:|---:|---:|"]
    for run in study["runs"]:
        load = run.get("load_average_end")
        lines.append(f"| {run['label']} | {run['task']} | {run['docs']} | {run['wall_s'] / 60:.1f} | "
                     f"{run['cpu_s'] / 60:.1f} | {run['peak_rss_gib']:.1f} | {'-' if load is None else f'{load[0]:.1f}'} |")
    settings = study["settings"]
    cores = study["machine"]["cpu_count"]
    lines += ["", f"Runs: {study['runs_wall_s'] / 60:.0f} min wall, {study['runs_cpu_s'] / 60:.0f} min CPU (at least "
              f"{study['runs_cpu_s'] / 60 / cores:.0f} min of {cores} cores alone), plus "
              f"{study['loads_wall_s'] / 60:.0f} min loading the models; {settings['twins']} twins, layers "
              f"{settings['layers']}, {settings['dtype']}, batch {settings['batch_size']}, {settings['device']}, "
              f"{cores} CPU cores. "
              + ("Every (model, data set) run is done." if study["complete"] else
                 f"Not run yet: {not_run_yet(study['missing'])}.")]
    return "\n".join(lines) + "\n"
