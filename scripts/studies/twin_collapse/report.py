"""The twin-collapse study's report: what it found, from its measurements (``findings``, stored in
summary.json), the tables (table.md; local_m1.md for ``--local-m1``) and the figures
(erank_by_depth.png, ablations.png). Everything here reads only the summary dicts, so
``--report-only`` rewrites the report from a stored summary.json without measuring again.

The study writes no prose about its numbers: a docs page links these files, and a number quoted
there is read from summary.json by a test.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from lm_eval_erank.compare.figures import pyplot
from lm_eval_erank.core.statistics import spearman
from studies.formatting import cell, dump_json, markdown_table

COLLAPSE_RATIO = 0.5  # "collapses": eRank at the LM head's input below half the embeddings'
EFFECTS = {"crosses": "crosses the collapse threshold", "moves": "moves eRank(L) by 20% or more",
           "does_not": "moves eRank(L) by under 20%"}


# ---- what one twin shows ----------------------------------------------------------------------------


def collapse_ratio(row: dict, ds: str) -> float | None:
    erank = row["datasets"][ds]["erank"]["mean"]
    return None if erank[0] is None or erank[-1] is None else erank[-1] / erank[0]


def headline(row: dict, ds: str) -> dict:
    """The figures the summary tables quote for one twin on one dataset."""
    stats, depth = row["datasets"][ds], row["layers"]
    erank = stats["erank"]["mean"]
    first_block = min(1, depth)
    get = lambda key, layer: stats.get(key, {}).get("mean", [None] * (depth + 1))[layer]  # noqa: E731
    return {"erank_embeddings": erank[0], "erank_middle": erank[depth // 2], "erank_last": erank[-1],
            "erank_last_sd": stats["erank"]["sd"][-1], "erank_min": min(e for e in erank if e is not None),
            "last_over_embeddings": collapse_ratio(row, ds),
            "collapses": (collapse_ratio(row, ds) or 1.0) < COLLAPSE_RATIO,
            "erank_last_skip1": get("erank_skip1", -1),
            "attn_over_embed_block1": get("attn_over_embed", first_block),
            "mlp_over_embed_block1": get("mlp_over_embed", first_block),
            "attn_erank_block1": get("attn_erank", first_block), "mlp_erank_block1": get("mlp_erank", first_block),
            "added_over_embed_before_last": get("added_over_embed", max(depth - 1, 0))}


def erank_at(rows: dict, name: str, ds: str, layer: int = -1) -> float | None:
    row = rows.get(name)
    return None if row is None else row["datasets"][ds]["erank"]["mean"][layer]


# ---- findings -----------------------------------------------------------------------------------------


def ablation_effects(rows: dict, ablation_rows: dict, ds: str) -> list[dict]:
    """Each one-property change by its effect on the twin's eRank(L): crossing the collapse threshold
    (eRank(L) / eRank(0) = COLLAPSE_RATIO) either way, moving eRank(L) by 20% or more, or less."""
    effects = []
    for name, row in ablation_rows.items():
        before, after = erank_at(rows, row["base"], ds), erank_at(ablation_rows, name, ds)
        collapsed = headline(rows[row["base"]], ds)["collapses"], headline(row, ds)["collapses"]
        key = "crosses" if collapsed[0] != collapsed[1] else "moves" if abs(after - before) >= 0.2 * before else "does_not"
        effects.append({"ablation": name, "base": row["base"], "change": row["change"], "erank_last_base": before,
                        "erank_last": after, "last_over_embeddings": headline(row, ds)["last_over_embeddings"],
                        "effect": key})
    return effects


def collapse_predictors(all_rows: dict, ds: str) -> list[dict]:
    """Spearman's rho, over every twin (published configs and changes), of eRank(L)/eRank(0) with
    block-1 measurements (rho None where undefined: a constant side); empty where block 1's
    additions were not measured (texts longer than ``--detail-max-tokens``)."""
    candidates = {
        "eRank of the MLP's add at block 1 / eRank(0)": lambda h: h["mlp_erank_block1"] / h["erank_embeddings"],
        "eRank of attention's add at block 1 / eRank(0)": lambda h: h["attn_erank_block1"] / h["erank_embeddings"],
        "attention's add / embeddings (norms, block 1)": lambda h: h["attn_over_embed_block1"],
        "MLP's add / embeddings (norms, block 1)": lambda h: h["mlp_over_embed_block1"],
        "MLP's add / attention's add (norms, block 1)": lambda h: h["mlp_over_embed_block1"] / h["attn_over_embed_block1"],
        "depth L": None,
    }
    heads = {name: headline(row, ds) for name, row in all_rows.items()}
    heads = {n: h for n, h in heads.items() if h["attn_erank_block1"] is not None and h["last_over_embeddings"]}
    if not heads:
        return []
    target = [h["last_over_embeddings"] for h in heads.values()]
    out = []
    for what, get in candidates.items():
        values = [all_rows[n]["layers"] if get is None else get(h) for n, h in heads.items()]
        out.append({"measured_at_block_1": what, "rho": spearman(values, target), "twins": len(values)})
    low_rank = {n: h for n, h in heads.items() if h["attn_erank_block1"] < 0.5 * h["erank_embeddings"]}
    if len(low_rank) > 2:
        out.append({"measured_at_block_1": "attention's add / embeddings (norms), among the twins whose attention's "
                                           "add has eRank below half eRank(0)",
                    "rho": spearman([h["attn_over_embed_block1"] for h in low_rank.values()],
                                    [h["last_over_embeddings"] for h in low_rank.values()]),
                    "twins": len(low_rank)})
    return out


def positions_finding(m1_stats: dict, twin_stats: dict) -> dict:
    """Leaving out the first position, in numbers: M1's lowest layer with and without it, the
    layers where leaving it out more than doubles M1's eRank, and the largest change for the twins."""
    k0, k1 = m1_stats["erank"]["mean"], m1_stats["erank_skip1"]["mean"]
    first, delims = m1_stats["first_norm_ratio"]["mean"], m1_stats["delim_norm_ratio"]["mean"]
    low = int(np.argmin(k0))
    dominated = [i for i in range(len(k0)) if k0[i] < 0.5 * k1[i]]
    m0_change = max(abs(a - b) / a for a, b in zip(twin_stats["erank"]["mean"], twin_stats["erank_skip1"]["mean"]))
    return {"hidden_state_indices": len(k0), "lowest_layer": low, "erank_m1_at_lowest": k0[low],
            "erank_m1_at_lowest_first_left_out": k1[low], "first_norm_ratio_at_lowest": first[low],
            "delim_norm_ratio_at_lowest": delims[low], "layers_more_than_doubled": dominated,
            "first_norm_ratio_over_those_layers": [min(first[i] for i in dominated), max(first[i] for i in dominated)]
            if dominated else None,
            "erank_m1_last": k0[-1], "erank_m1_last_first_left_out": k1[-1],
            "twins_largest_relative_change": m0_change}


def rounded(obj):
    """``obj`` with every float rounded to 6 decimals, as the measurements are stored."""
    if isinstance(obj, float):
        return round(obj, 6)
    if isinstance(obj, dict):
        return {key: rounded(value) for key, value in obj.items()}
    if isinstance(obj, list):
        return [rounded(value) for value in obj]
    return obj


def findings(summary: dict) -> dict:
    """What the run found, from its measurements: per data set the twins' range of eRank(L), the
    one-property changes' effects, the collapse predictors and (with M1) the first position's part."""
    rows, ablation_rows, m1 = summary["architectures"], summary["ablations"], summary.get("m1")
    twin = rows.get("smollm2-135m-gguf")
    by_dataset = {}
    for ds in summary["texts"]:
        last = {n: erank_at(rows, n, ds) for n in rows}
        low, high = min(last, key=last.get), max(last, key=last.get)
        by_dataset[ds] = {
            "twins_erank_last": {"lowest": {"twin": low, "erank": last[low]}, "highest": {"twin": high, "erank": last[high]},
                                 "largest_seed_sd": max(r["datasets"][ds]["erank"]["sd"][-1] or 0.0 for r in rows.values())},
            "ablation_effects": ablation_effects(rows, ablation_rows, ds),
            "collapse_predictors": collapse_predictors({**rows, **ablation_rows}, ds),
        }
        if m1 is not None and twin is not None:
            by_dataset[ds]["positions"] = positions_finding(m1["datasets"][ds]["m1_statistics"], twin["datasets"][ds])
    logits = {n: r["hidden_size"] * r["initializer_range"] ** 2 for n, r in {**rows, **ablation_rows}.items()
              if r["initializer_range"] is not None}
    return rounded({"collapse_ratio_threshold": COLLAPSE_RATIO, "attention_logit_scale_d_init_std_squared": logits,
                    "by_dataset": by_dataset})


def local_m1_findings(local_m1: dict, datasets: list[str]) -> dict:
    """Per data set and model family (the name before the first '-'): the range of Diff-eRank at the
    last layer and of the twins' eRank(L)/eRank(0); the models whose Diff-eRank is negative."""
    out = {}
    for ds in datasets:
        families: dict[str, list] = {}
        for name, row in local_m1.items():
            values = row["datasets"][ds]
            families.setdefault(name.split("-")[0], []).append(
                (values["diff_erank"][-1], values["erank_m0"][-1] / values["erank_m0"][0]))
        out[ds] = {"families": {family: {"diff_erank": [min(d for d, _ in v), max(d for d, _ in v)],
                                         "twin_last_over_embeddings": [min(r for _, r in v), max(r for _, r in v)]}
                                for family, v in families.items()},
                   "negative": [name for name, row in local_m1.items() if row["datasets"][ds]["diff_erank"][-1] < 0]}
    return rounded(out)


# ---- tables ---------------------------------------------------------------------------------------------


def twin_summary_table(rows: dict[str, dict], ds: str, with_change: bool = False) -> list[str]:
    header = ["twin", *(["change"] if with_change else []), "L", "d", "init std", "eRank emb. (0)", "eRank L/2",
              "eRank L (± seed sd)", "eRank L / eRank 0", "eRank L, 1st position left out", "attn/emb. at block 1",
              "MLP/emb. at block 1", "eRank of attn's add (block 1)", "eRank of MLP's add (block 1)"]
    body = []
    for name, row in rows.items():
        h = headline(row, ds)
        body.append([name, *([row.get("change") or "baseline"] if with_change else []), str(row["layers"]),
                     str(row["hidden_size"]), cell(row["initializer_range"], 4), cell(h["erank_embeddings"]),
                     cell(h["erank_middle"]), f"{cell(h['erank_last'])} ± {cell(h['erank_last_sd'])}",
                     cell(h["last_over_embeddings"], 2), cell(h["erank_last_skip1"]),
                     cell(h["attn_over_embed_block1"], 2), cell(h["mlp_over_embed_block1"], 2),
                     cell(h["attn_erank_block1"]), cell(h["mlp_erank_block1"])])
    return markdown_table(header, body, left=len(header))


def per_layer_table(row: dict) -> list[str]:
    datasets = list(row["datasets"])
    first = row["datasets"][datasets[0]]
    header = ["layer", "l/L", *(f"{ds} {what}" for ds in datasets for what in ("eRank ± sd", "1st left out")),
              f"token norm ({datasets[0]})", "added/emb.", "attn/emb.", "MLP/emb.", "attn's add eRank", "MLP's add eRank"]
    get = lambda key, layer, d=2: cell(first[key]["mean"][layer], d) if key in first else "-"  # noqa: E731
    body = []
    for layer in range(row["layers"] + 1):
        per_ds = [value for ds in datasets for value in (
            cell(row["datasets"][ds]["erank"]["mean"][layer], spread=row["datasets"][ds]["erank"]["sd"][layer]),
            cell(row["datasets"][ds]["erank_skip1"]["mean"][layer]))]
        body.append([str(layer), f"{layer / max(row['layers'], 1):.2f}", *per_ds, get("token_norm", layer),
                     get("added_over_embed", layer), get("attn_over_embed", layer), get("mlp_over_embed", layer),
                     get("attn_erank", layer, 1), get("mlp_erank", layer, 1)])
    return markdown_table(header, body, left=0)


def m1_table(m1: dict, ds: str) -> list[str]:
    built, published = m1["datasets"][ds]["twin_as_built"], m1["datasets"][ds]["twin_published_init"]
    header = ["layer", "eRank M1", f"eRank M0, init {built['initializer_range']} (as built) ± twin sd", "Diff-eRank",
              "eRank M0, init 1/24 ± twin sd", "Diff-eRank (init 1/24)"]
    body = [[str(layer), cell(built["erank_m1"][layer]),
             f"{cell(built['erank_m0'][layer])} ± {cell(built['erank_m0_twin_sd'][layer])}", cell(built["diff_erank"][layer], 2),
             f"{cell(published['erank_m0'][layer])} ± {cell(published['erank_m0_twin_sd'][layer])}",
             cell(published["diff_erank"][layer], 2)] for layer in range(len(built["erank_m1"]))]
    return markdown_table(header, body, left=0)


def m1_last_layer_table(m1: dict, datasets: list[str]) -> list[str]:
    """M1 at the LM head's input, with the twin as the product builds it and at the published init std."""
    init = m1["datasets"][datasets[0]]["twin_as_built"]["initializer_range"]
    header = ["data", "eRank M1 at L", f"eRank M0 (init {init}, as built)", "Diff-eRank", "ratio M1/M0",
              "eRank M0 (init 1/24, published)", "Diff-eRank", "ratio M1/M0"]
    body = []
    for ds in datasets:
        built, published = m1["datasets"][ds]["twin_as_built"], m1["datasets"][ds]["twin_published_init"]
        body.append([ds, cell(built["erank_m1"][-1]), cell(built["erank_m0"][-1], spread=built["erank_m0_twin_sd"][-1]),
                     cell(built["diff_erank"][-1], 2), cell(built["erank_ratio"][-1], 2),
                     cell(published["erank_m0"][-1], spread=published["erank_m0_twin_sd"][-1]),
                     cell(published["diff_erank"][-1], 2), cell(published["erank_ratio"][-1], 2)])
    return markdown_table(header, body)


def effects_table(effects: list[dict]) -> list[str]:
    header = ["change", "from", "what changed", "effect", "eRank L: base -> changed", "eRank L / eRank 0"]
    return markdown_table(header, [[e["ablation"], e["base"], e["change"], EFFECTS[e["effect"]],
                                    f"{cell(e['erank_last_base'])} -> {cell(e['erank_last'])}",
                                    cell(e["last_over_embeddings"], 2)] for e in effects], left=4)


def predictors_table(predictors: list[dict]) -> list[str]:
    return markdown_table(["measured at block 1", "Spearman's rho with eRank L / eRank 0", "twins"],
                          [[p["measured_at_block_1"], cell(p["rho"], 2, sign=True, missing="undefined"), str(p["twins"])]
                           for p in predictors])


def checks_lines(summary: dict) -> list[str]:
    checks, rows = summary["checks"], {**summary["architectures"], **summary["ablations"]}
    remap, cross = checks["tokenizer_remap"], checks["product_crosscheck"]
    lines = [f"- Token ids: the largest id used is {max(r['vocabulary']['max_token_id'] for r in rows.values())}, inside "
             f"every vocabulary (smallest {min(r['vocabulary']['vocab_size'] for r in rows.values())}); no text uses a "
             "padding row.",
             f"- Ids remapped injectively into {remap['architecture']}'s vocabulary: the twin's eRank moves by at most "
             + ", ".join(f"{remap[ds]['max_abs_change']:.2f} (at most {cell(remap[ds]['change_over_seed_sd_at_worst'], 2)} "
                         f"of the seed sd at any layer) on {ds}" for ds in summary["texts"]) + ".",
             f"- The product's `diff_erank(layers=\"all\")` with {cross['architecture']}'s seed-0 twin as M1 and "
             "m0_seed=0 gives this script's eRank (stored to 6 decimals) at every layer within "
             + ", ".join(f"{max(cross[ds]['max_abs_diff_m1'], cross[ds]['max_abs_diff_m0']):.1e} on {ds}"
                         for ds in summary["texts"]) + "."]
    if "m1_twins_equal_script_twins" in checks:
        m1_check = checks["m1_twins_equal_script_twins"]
        lines.append("- The product's twins of SmolLM2-135M-Instruct (seeds "
                     f"{m1_check[next(iter(m1_check))]['seeds_compared']}) equal this script's smollm2-135m-gguf twins "
                     "within " + ", ".join(f"{m1_check[ds]['max_abs_diff']:.1e} on {ds}" for ds in m1_check) + ".")
    return lines


def positions_table(m1_stats: dict, twin_stats: dict, layers) -> list[str]:
    """eRank with the first k positions left out, and position norms, for M1 and its twin (mean over seeds)."""
    keys = [k for k in ("erank", "erank_skip1", "erank_skip2", "erank_skip4", "erank_skip_first_and_delims")
            if k in m1_stats]
    names = {"erank": "k=0", "erank_skip1": "k=1", "erank_skip2": "k=2", "erank_skip4": "k=4",
             "erank_skip_first_and_delims": "1st + delimiters out"}
    header = ["layer", *(f"M1 {names[k]}" for k in keys), "M1 1st-token norm / median", "M1 delimiter norm / median",
              "M1 largest other / median", *(f"M0 {names[k]}" for k in keys), "M0 1st-token norm / median"]
    body = [[str(layer), *(cell(m1_stats[k]["mean"][layer]) for k in keys),
             *(cell(m1_stats[k]["mean"][layer]) for k in ("first_norm_ratio", "delim_norm_ratio", "max_rest_norm_ratio")),
             *(cell(twin_stats[k]["mean"][layer]) for k in keys), cell(twin_stats["first_norm_ratio"]["mean"][layer])]
            for layer in layers]
    return markdown_table(header, body, left=0)


def write_table(summary: dict, path: Path) -> None:
    rows, ablation_rows, m1 = summary["architectures"], summary["ablations"], summary.get("m1")
    datasets, found = list(summary["texts"]), summary["findings"]["by_dataset"]
    lines = ["# The random twin's eRank per layer (scripts/twin_collapse.py)", "",
             f"Command: `{summary['command']}`; wall time {summary['wall_seconds']:.0f} s on {summary['machine']['summary']}.",
             "Texts: " + "; ".join(f"{ds}: {t['n']} texts, {t['mean_tokens']:.1f} tokens on average (max {t['max_tokens']})"
                                    for ds, t in summary["texts"].items()) + ".",
             f"eRank = exp(mean over texts of H) per hidden-state index; ± = sd over seeds {rows[next(iter(rows))]['seeds']}; "
             "'1st left out' = the first position left out of the statistics; attn/emb. and MLP/emb. = mean token norm "
             "of what the block's attention / MLP adds over the embeddings' mean token norm.", ""]
    for ds in datasets:
        lines += [f"## Twins at published shapes, {ds}", "", *twin_summary_table(rows, ds), ""]
    if ablation_rows:
        for ds in datasets:
            lines += [f"## One property changed, {ds}", "", *twin_summary_table(ablation_rows, ds, with_change=True), ""]
        for ds in datasets:
            lines += [f"## What each change does to the twin's eRank L, {ds}", "",
                      *effects_table(found[ds]["ablation_effects"]), ""]
    for ds in datasets:
        if found[ds]["collapse_predictors"]:
            lines += [f"## Which block-1 measurement orders the collapse, {ds}", "",
                      *predictors_table(found[ds]["collapse_predictors"]), ""]
    if m1 is not None:
        for ds in datasets:
            lines += [f"## M1 = SmolLM2-135M-Instruct next to its twins (product's diff_erank, {len(m1['m0_seeds'])} "
                      f"twins), {ds}", "", *m1_table(m1, ds), ""]
        lines += ["## M1 at the LM head's input", "", *m1_last_layer_table(m1, datasets), ""]
        twin = rows.get("smollm2-135m-gguf")
        if twin is not None:
            for ds in datasets:
                layers = range(m1["layers"] + 1)
                lines += [f"## Positions: M1 and its twin (smollm2-135m-gguf), {ds}", "",
                          *positions_table(m1["datasets"][ds]["m1_statistics"], twin["datasets"][ds], layers), ""]
    lines += ["## Checks", "", *checks_lines(summary), ""]
    for name, row in {**rows, **ablation_rows}.items():
        lines += [f"## {name} (per layer)", "", f"{row['model_class']}, {row['parameters']:,} parameters; "
                  f"{row.get('change') or row['source']}", "", *per_layer_table(row), ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def local_m1_table(row: dict, ds: str) -> list[str]:
    values = row["datasets"][ds]
    return markdown_table(["layer", "eRank M1", "eRank M0 ± twin sd", "Diff-eRank", "ratio M1/M0"], [
        [str(layer), cell(values["erank_m1"][layer]),
         f"{cell(values['erank_m0'][layer])} ± {cell(values['erank_m0_twin_sd'][layer])}",
         cell(values["diff_erank"][layer], 2), cell(values["erank_ratio"][layer], 2)]
        for layer in range(len(values["erank_m1"]))], left=0)


def local_m1_last_layer_table(local_m1: dict, datasets: list[str]) -> list[str]:
    """Every saved model at its last layer: its twins' eRank at the embeddings and at L, eRank(M1), Diff-eRank."""
    header = ["model", "layers", "d", *(f"{ds}: {what}" for ds in datasets
                                        for what in ("eRank M0 at 0 -> L", "eRank M1", "Diff-eRank"))]
    body = [[name, str(row["layers"]), str(row["hidden_size"]),
             *(value for ds in datasets for value in (
                 f"{cell(row['datasets'][ds]['erank_m0'][0])} -> {cell(row['datasets'][ds]['erank_m0'][-1])}",
                 cell(row["datasets"][ds]["erank_m1"][-1]), cell(row["datasets"][ds]["diff_erank"][-1], 2)))]
            for name, row in local_m1.items()]
    return markdown_table(header, body)


def write_local_m1(summary: dict, out: Path) -> None:
    """local_m1.json (with its findings) and local_m1.md: the saved models against their twins."""
    rows, datasets = summary["local_m1"], list(summary["texts"])
    summary["findings"] = local_m1_findings(rows, datasets)
    (out / "local_m1.json").write_text(dump_json(summary), encoding="utf-8")
    lines = ["# Models trained here against their twins, per layer (scripts/twin_collapse.py --local-m1)", "",
             f"Command: `{summary['command']}`; {summary['wall_seconds']:.0f} s on {summary['machine']['summary']}.", "",
             "## At the last layer", "", *local_m1_last_layer_table(rows, datasets), ""]
    for name, row in rows.items():
        for ds in datasets:
            lines += [f"## {name} ({row['model_class']}, {row['parameters']:,} parameters, {row['layers']} layers, "
                      f"d {row['hidden_size']}, init std {row['initializer_range']}), {ds}", "", *local_m1_table(row, ds), ""]
    (out / "local_m1.md").write_text("\n".join(lines), encoding="utf-8")


# ---- figures ---------------------------------------------------------------------------------------------


def plot_depth(rows: dict, m1: dict | None, path: Path) -> None:
    """eRank of each twin against relative depth l/L (mean ± seed sd), one panel per dataset; M1 dashed."""
    plt = pyplot()
    datasets = list(next(iter(rows.values()))["datasets"])
    fig, axes = plt.subplots(1, len(datasets), figsize=(6.2 * len(datasets), 4.6), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        for name, row in rows.items():
            stat = row["datasets"][ds]["erank"]
            x = np.arange(row["layers"] + 1) / max(row["layers"], 1)
            mean = np.asarray(stat["mean"], dtype=float)
            sd = np.asarray([s or 0.0 for s in stat["sd"]], dtype=float)
            line, = ax.plot(x, mean, marker=".", label=f"{name} (L={row['layers']})")
            ax.fill_between(x, mean - sd, mean + sd, color=line.get_color(), alpha=0.2)
        if m1 is not None and ds in m1["datasets"]:
            values = m1["datasets"][ds]["twin_as_built"]["erank_m1"]
            ax.plot(np.arange(len(values)) / (len(values) - 1), values, "k--", label="SmolLM2-135M-Instruct (M1)")
        ax.set(title=f"random twins, {ds}", xlabel="relative depth l / L (0 = embeddings, 1 = LM head input)",
               ylabel="dataset eRank exp(mean H)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_ablations(rows: dict, ablation_rows: dict, ds: str, path: Path) -> None:
    """One panel per base twin: the base and each one-property change, eRank per layer."""
    plt = pyplot()
    bases = list(dict.fromkeys(row["base"] for row in ablation_rows.values()))
    columns = min(2, len(bases))
    fig, axes = plt.subplots(math.ceil(len(bases) / columns), columns, figsize=(6.4 * columns, 4.6 * math.ceil(
        len(bases) / columns)), squeeze=False)
    for ax, base in zip(axes.flat, bases):
        curves = {f"{base} (baseline)": rows[base], **{n: r for n, r in ablation_rows.items() if r["base"] == base}}
        for index, (name, row) in enumerate(curves.items()):
            mean = row["datasets"][ds]["erank"]["mean"]
            ax.plot(range(len(mean)), mean, marker=".", linewidth=2.5 if index == 0 else 1.2,
                    color="k" if index == 0 else None, label=name)
        ax.set(title=f"one property changed from the {base} twin ({ds})", xlabel="hidden-state index l",
               ylabel="dataset eRank exp(mean H)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(bases):]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(summary: dict, out: Path) -> None:
    """summary.json (with its findings), table.md and the figures; local_m1.md again when OUT has local_m1.json."""
    summary["findings"] = findings(summary)
    (out / "summary.json").write_text(dump_json(summary), encoding="utf-8")
    write_table(summary, out / "table.md")
    plot_depth(summary["architectures"], summary["m1"], out / "erank_by_depth.png")
    if summary["ablations"]:
        plot_ablations(summary["architectures"], summary["ablations"], next(iter(summary["texts"])), out / "ablations.png")
    local = out / "local_m1.json"
    if local.is_file():
        write_local_m1(json.loads(local.read_text(encoding="utf-8")), out)
