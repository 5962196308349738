"""The family study's report: the figures and ``table.md`` (``lm_eval_erank.compare``), the callback's
curves, the table of rank correlations and ``summary.md``."""

from __future__ import annotations

from pathlib import Path

from lm_eval_erank.compare import figures as compare_figures, report as compare_report
from studies.formatting import rho

PANELS = (("diff_erank", "Diff-eRank"), ("erank_m1", "eRank(M1)"), ("reduced_loss", "reduced loss (nats)"))



def correlation_table(family_corr, sweep_corr, tasks, sweep_name) -> str:
    def cells(corr, key, p_key=None):
        return [rho(corr[t][key], corr[t].get(p_key) if p_key else None) for t in tasks]

    rows = [
        ("family: Diff-eRank vs parameters", family_corr, "diff_erank_vs_x", "diff_erank_vs_x_p"),
        ("family: Diff-eRank vs reduced loss", family_corr, "diff_erank_vs_reduced_loss",
         "diff_erank_vs_reduced_loss_p"),
        ("family: reduced loss vs parameters", family_corr, "reduced_loss_vs_x", None),
        ("family: eRank(M1) vs parameters", family_corr, "erank_m1_vs_x", None),
        ("family: eRank ratio M1/M0 vs parameters", family_corr, "erank_ratio_vs_x", None),
        (f"checkpoints of {sweep_name}: Diff-eRank vs step", sweep_corr, "diff_erank_vs_x", "diff_erank_vs_x_p"),
        (f"checkpoints of {sweep_name}: Diff-eRank vs reduced loss", sweep_corr, "diff_erank_vs_reduced_loss",
         "diff_erank_vs_reduced_loss_p"),
    ]
    n_family, n_sweep = family_corr[tasks[0]]["n"], sweep_corr[tasks[0]]["n"]
    lines = ["| Spearman rho (exact two-sided permutation p) | n | " + " | ".join(f"`{t}`" for t in tasks) + " |",
             "|---|---:|" + "---:|" * len(tasks)]
    for title, corr, key, p_key in rows:
        n = n_family if corr is family_corr else n_sweep
        lines.append(f"| {title} | {n} | " + " | ".join(cells(corr, key, p_key)) + " |")
    peak = [f"{rho(sweep_corr[t]['from_peak_diff_erank_vs_reduced_loss'], sweep_corr[t]['from_peak_diff_erank_vs_reduced_loss_p'])}"
            f", from step {sweep_corr[t]['peak_x']} (n = {sweep_corr[t]['from_peak_n']})" for t in tasks]
    lines.append(f"| checkpoints from Diff-eRank's maximum on: Diff-eRank vs reduced loss | | " + " | ".join(peak) + " |")
    return "\n".join(lines) + "\n"


def callback_overlay(info: dict):
    """``extra`` of plot_metrics: the model's DiffErankCallback curve, dashed, on each panel."""
    def draw(ax, key):
        points = [(e["step"], e[key]) for e in info["callback"] if e.get(key) is not None]
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], "--", color="gray", lw=1,
                    label="DiffErankCallback (held-out paragraphs)")
    return draw


def plot_callback(plt, trained: list[dict], path: Path) -> Path:
    """The callback's Diff-eRank, eRank(M1) and reduced loss against the step, one line per model."""
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.6 * len(PANELS), 4), squeeze=False)
    for ax, (key, title) in zip(axes[0], PANELS):
        for info in trained:
            points = [(e["step"], e[key]) for e in info["callback"] if e.get(key) is not None]
            ax.plot([p[0] for p in points], [p[1] for p in points], "-", marker=".",
                    label=f"{info['name']} ({info['params'] / 1e6:.2f}M)")
        ax.set_xlabel("training step")
        ax.set_ylabel(title)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("DiffErankCallback during training (held-out paragraphs; M0 values are twin means; no error bars)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_figures(args, figures: Path, family_runs, sweep_runs, tasks, checkpoints, trained, sweep_info) -> tuple[list, str]:
    """The three figures and ``table.md`` (``lm-eval-erank compare``'s table of the final models and the
    checkpoints before the last): (paths written, the table)."""
    plt = compare_figures.pyplot()
    written = [
        compare_figures.plot_metrics(
            family_runs, tasks, PANELS, figures / "family_by_size.png", x={r.label: r.num_parameters for r in family_runs},
            xlabel="parameters (count, log scale)",
            title=f"Final models of the family ({args.steps} steps each), held-out text; bars: stderr over texts "
                  f"and {args.twins} twins"),
        compare_figures.plot_metrics(
            sweep_runs, tasks, PANELS, figures / "checkpoints_by_step.png",
            x={r.label: s for r, s in zip(sweep_runs, checkpoints)}, xscale="symlog", extra=callback_overlay(sweep_info),
            xlabel="training step (symlog)", title=f"Checkpoints of {sweep_info['name']}; bars: stderr over texts "
                                                   f"and {args.twins} twins (shared by the checkpoints)"),
        plot_callback(plt, trained, figures / "callback_by_step.png"),
    ]
    runs = family_runs + sweep_runs[:-1]
    comparison = compare_report.compare([r.path for r in runs], labels=[r.label for r in runs], tasks=tasks,
                                        pairs="none", figures=False)
    table = compare_report.table_markdown(comparison) + "\n" + compare_report.table_legend(comparison) + "\n"
    (figures / "table.md").write_text(table, encoding="utf-8")
    written.append(figures / "table.md")
    return written, table


def run_values(run, tasks, metrics) -> dict:
    """{task: {metric: (value, stderr)}} of one run."""
    return {t: {m: run.value(t, m) for m in metrics} for t in tasks}


def summary_markdown(summary: dict, table: str, rho_table: str) -> str:
    """``summary.md``: the command, the data, the machine and the times, the tables, the verdict."""
    machine, loads = summary["machine"], summary["machine"]["loadavg_1min_samples"]
    train_minutes = sum(t["train_seconds"] for t in summary["models"]) / 60
    md = [f"Command: `{summary['command']}`", "",
          f"Data: {summary['data']}; {summary['train_documents']} training documents ({summary['train_tokens']:,} tokens), "
          f"{summary['heldout_documents']} held-out documents, {summary['heldout_paragraphs']} held-out paragraphs.", "",
          f"Machine: {machine['cpus']} CPU cores, torch {machine['torch']}, {machine['torch_threads']} thread(s); "
          f"1-minute load average {min(loads):.1f}-{max(loads):.1f} (mean {sum(loads) / len(loads):.1f}) over "
          f"{len(loads)} samples (start, after each training and harness run), 15-minute "
          f"{machine['loadavg_end'][2]:.1f} at the end; "
          f"wall time {summary['wall_seconds'] / 60:.1f} min (training {train_minutes:.1f} min, "
          f"harness {sum(summary['harness_seconds'].values()) / 60:.1f} min; the M0 cache held "
          f"{summary['m0_cache_entries_at_start']} entries at the start of the harness runs: "
          f"{len(summary['models']) * summary['settings']['twins']} cover every twin of the family).", "",
          table, rho_table, "Verdict (the paper's trends at this scale):", "", *summary["verdict"], ""]
    return "\n".join(md)
