"""``lm-eval-erank compare PATH... --out DIR`` (also ``python -m lm_eval_erank compare``).

This module's imports are light (the standard library and ``runs``), so the command's entry (and
``--help``) starts without numpy, lm-eval or torch; the comparison loads numpy when it runs.
"""

from __future__ import annotations

import argparse
import sys

from .runs import CompareError

COMMAND = "compare"
DESCRIPTION = """Compare models: many lm-eval runs -> one leaderboard, with the statistics to read it.

Each PATH is an lm-eval --output_path directory (searched for results_*.json) or a results JSON;
one model per results file (several files of one model: the newest, and a note says so). Prints
the table and writes DIR/comparison.md, comparison.csv, comparison.json and the figures.
Tasks are matched across runs by the standard task's name: a plain --model hf run of piqa sits
beside erank_piqa runs. Correlations (Spearman, Kendall tau-b; exact permutation p up to 9
models) need 3 models; paired tests (exact McNemar, paired bootstrap) need --log_samples runs on
the same documents. docs/comparing.md explains comparison.json and the warnings."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lm-eval-erank compare", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", metavar="PATH", help="--output_path directories or results JSONs")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for comparison.md/.csv/.json and the figures")
    p.add_argument("--tasks", help="comma-separated tasks to compare (standard or erank names; default: every task)")
    p.add_argument("--labels", help="comma-separated model labels, one per model in the order the table lists them "
                                    "without this option (default: the GGUF file's or pretrained='s last name)")
    p.add_argument("--x", default="parameters", metavar="NAME",
                   help="the size axis: 'parameters' (config.model_num_parameters, default) or a name of your own, "
                        "whose values --x-values gives")
    p.add_argument("--x-values", metavar="LABEL=NUMBER,...",
                   help="the size axis per model label: fills in (or overrides) the parameter count; all values of an "
                        "axis of your own")
    p.add_argument("--pairs", default="auto", choices=("auto", "all", "consecutive", "none"),
                   help="paired tests between: every pair (all), neighbours along the size axis (consecutive); auto: "
                        "all up to 6 models, else consecutive")
    p.add_argument("--seed", type=int, default=1234, help="seed of the paired bootstrap and of sampled permutations")
    p.add_argument("--resamples", type=int, default=2000, help="paired bootstrap resamples (default 2000)")
    p.add_argument("--no-figures", action="store_true", help="write no figures (no matplotlib needed)")
    return p


def _split(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _x_values(text: str | None) -> dict[str, float]:
    values = {}
    for item in _split(text) or []:
        label, sep, number = item.rpartition("=")
        try:
            values[label.strip()] = float(number)
        except ValueError:
            sep = ""
        if not sep or not label.strip():
            raise ValueError(f"--x-values: {item!r} is not LABEL=NUMBER")
    return values


def main(argv: list[str] | None = None) -> int:
    """Run the command; 0 on success, 2 with one line on stderr for bad input."""
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    from .report import compare, report_lines  # numpy: only once the arguments are read

    try:
        comparison = compare(args.paths, args.out, labels=_split(args.labels), tasks=_split(args.tasks), x=args.x,
                             x_values=_x_values(args.x_values), pairs=args.pairs, seed=args.seed,
                             resamples=args.resamples, figures=not args.no_figures)
    except (CompareError, ValueError) as exc:
        print(f"lm-eval-erank compare: error: {exc}", file=sys.stderr)
        return 2
    for line in report_lines(comparison):
        print(line)
    for note in comparison.notes:
        print(f"note: {note}", file=sys.stderr)
    for warning in comparison.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def run_if_compare(argv: list[str]) -> int | None:
    """The exit code of ``compare ...`` when ``argv`` (the command line after the program) is that
    command, else None (another ``lm-eval-erank`` form, for lm-eval's CLI)."""
    return main(argv[1:]) if argv[:1] == [COMMAND] else None
