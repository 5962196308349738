"""The comparison's figures (matplotlib, imported inside the functions that draw; Agg backend).

Per task: ``<task>.png``, Diff-eRank, the eRank ratio, the reduced loss and accuracy against the
size axis; ``<task>_diff_erank_vs_acc.png``, Diff-eRank against accuracy (error bars both ways);
``<task>_layers.png`` for runs with ``layers=``, Diff-eRank and the two eRanks per hidden-state
index. Across tasks: ``diff_erank_vs_size.png``. Error bars are the runs' stderrs; the twins'
spread (± the sd over the K twins) is a band where ``m0_twins`` > 1, and single-twin points of the
metrics involving M0 are open markers (their bars cover the texts only). Points are joined only
along the size axis, and only where their x values are distinct; labels are placed so that they
do not overlap (:func:`place_labels`).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..core import aggregation, metrics
from .analysis import SizeAxis
from .runs import CompareError

AXIS_TITLES = {
    "diff_erank": "Diff-eRank = eRank(M0) - eRank(M1) (effective dimensions)",
    "erank_ratio": "eRank ratio M1/M0 (dimensionless)",
    "reduced_loss": "reduced loss L(M0) - L(M1) (nats per token)",
    "acc": "accuracy (fraction of documents correct)",
    "acc_norm": "acc_norm (fraction of documents correct)",
}
SIZE_PANELS = ("diff_erank", "erank_ratio", "reduced_loss", "acc")
INVOLVES_M0 = {"diff_erank", "erank_ratio", "reduced_loss", "erank_m0"}
LAYER_AXIS = "hidden-state index (0 = embeddings, L = the LM head's input)"
DPI = 110
# label placement: offsets (points) tried around each point, ring by ring, in this order of directions
DIRECTIONS = ((1, 1), (-1, 1), (1, -1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1))
RINGS = 14
OVERVIEW_LABELS = 24  # up to this many points the overview labels each one, above only each model's highest


def pyplot():
    """matplotlib's pyplot on the Agg backend (an error naming the fix when matplotlib is missing)."""
    try:
        import matplotlib
    except ImportError:
        raise CompareError("the figures need matplotlib: pip install matplotlib (or pass --no-figures)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


# ---- label placement ----------------------------------------------------------------------------

def _overlap(a, b) -> float:
    width = min(a.x1, b.x1) - max(a.x0, b.x0)
    height = min(a.y1, b.y1) - max(a.y0, b.y0)
    return width * height if width > 0 and height > 0 else 0.0


def place_labels(ax, points, texts, *, avoid=(), fontsize: float = 8) -> list:
    """Label ``points`` [(x, y) in data coordinates] with ``texts`` so that no two labels overlap
    and no label covers a point: each label takes, in a fixed order of points (by x, then y), the
    first offset of rings of growing radius (8 directions each) whose text box is inside the axes
    and meets no box placed before it nor a marker of ``points`` or ``avoid``; if none is free, the
    offset of least overlap. A label far from its point gets a thin leader line. Deterministic;
    call it after the axes' limits and the figure's layout are final. Returns the annotations.

    >>> plt = pyplot()
    >>> fig, ax = plt.subplots()
    >>> labels = place_labels(ax, [(0.5, 0.5), (0.5, 0.5)], ["a", "b"])
    >>> a, b = label_boxes(labels, fig.canvas.get_renderer())
    >>> bool(a.overlaps(b))
    False
    """
    from matplotlib.text import Text
    from matplotlib.transforms import Bbox

    if len(points) != len(texts):
        raise ValueError(f"{len(points)} points for {len(texts)} labels")
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    px_per_pt = fig.dpi / 72
    frame = ax.get_window_extent(renderer)
    markers = []
    for x, y in [*points, *avoid]:
        px, py = ax.transData.transform((x, y))
        markers.append(Bbox.from_extents(px - 4, py - 4, px + 4, py + 4))
    placed_boxes = []
    annotations = [None] * len(points)
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1], texts[i]))
    for i in order:
        probe = Text(0, 0, texts[i], fontsize=fontsize, figure=fig)
        px, py = ax.transData.transform(points[i])
        best = None
        for ring in range(1, RINGS + 1):
            radius = 3 + 6 * ring
            for dx, dy in DIRECTIONS:
                offset = (dx * radius, dy * radius * 0.7)
                ha = "left" if dx > 0 else "right" if dx < 0 else "center"
                va = "bottom" if dy > 0 else "top" if dy < 0 else "center"
                probe.set_horizontalalignment(ha)
                probe.set_verticalalignment(va)
                probe.set_position((px + offset[0] * px_per_pt, py + offset[1] * px_per_pt))
                box = probe.get_window_extent(renderer).padded(1.5)  # a bare Text is placed in pixels
                outside = (max(frame.x0 - box.x0, 0) + max(box.x1 - frame.x1, 0)
                           + max(frame.y0 - box.y0, 0) + max(box.y1 - frame.y1, 0)) * 100
                cost = outside + sum(_overlap(box, other) for other in (*placed_boxes, *markers))
                if best is None or cost < best[0]:
                    best = (cost, offset, ha, va, box, ring)
                if cost == 0:
                    break
            if best[0] == 0:
                break
        _, offset, ha, va, box, ring = best
        placed_boxes.append(box)
        arrow = {"arrowstyle": "-", "color": "0.5", "lw": 0.6, "shrinkA": 0, "shrinkB": 3} if ring > 2 else None
        annotations[i] = ax.annotate(texts[i], points[i], xytext=offset, textcoords="offset points", ha=ha, va=va,
                                     fontsize=fontsize, arrowprops=arrow, annotation_clip=False)
    return annotations


# ---- the values drawn --------------------------------------------------------------------------------

def _point(run, task, metric, axis):
    """(x, value, stderr, run) of one run on one task, None without a value or an x."""
    result = run.tasks.get(task)
    x = axis.values.get(run.label)
    if result is None or x is None or result.value(metric) is None:
        return None
    return x, result.value(metric), result.stderr(metric), run


def _twin_sd(run, task) -> float | None:
    """The sd over twins of Diff-eRank (= of eRank(M0), M1 being shared), where ``m0_twins`` > 1."""
    if not run.twins or run.twins < 2:
        return None
    return run.tasks[task].value("erank_m0_twin_sd")


def _limits(ax, values, errors, log: bool, axis: str) -> None:
    lows = [v - (e or 0) for v, e in zip(values, errors)]
    highs = [v + (e or 0) for v, e in zip(values, errors)]
    low, high = min(lows), max(highs)
    setter = ax.set_xlim if axis == "x" else ax.set_ylim
    if log:
        setter(min(values) / 1.8, max(values) * 1.8)
        return
    span = high - low or max(abs(high) * 0.1, 1e-3)
    setter(low - 0.18 * span, high + 0.22 * span)


def human_count(x: float) -> str:
    """4240896 -> '4.2M', 370432 -> '370k', 1.3e9 -> '1.3B'.

    >>> human_count(4240896), human_count(370432), human_count(1.3e9)
    ('4.2M', '370k', '1.3B')
    """
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.2g}{suffix}" if x / scale < 100 else f"{x / scale:.0f}{suffix}"
    return f"{x:g}"


def _size_axis(plt, ax, axis, xs) -> None:
    if axis.log:
        ax.set_xscale("log")
        ticks = sorted(set(xs))
        ax.set_xticks(ticks, [human_count(t) for t in ticks], fontsize=8)
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
    label = "parameters (count" if axis.name == "parameters" else f"{axis.name} (as given"
    ax.set_xlabel(label + (", log scale)" if axis.log else ")"))


def _draw_series(ax, points, color, metric, axis, label=None, legend_extras=True) -> None:
    """Error bars, open markers for single-twin M0 metrics, the twins' band, a line only along
    distinct x values (``legend_extras``: name the open markers and the band in the legend)."""
    xs = [p[0] for p in points]
    joined = len(set(xs)) == len(xs) and len(xs) > 1
    ax.errorbar(xs, [p[1] for p in points], yerr=[p[2] or 0.0 for p in points], fmt="o-" if joined else "o",
                color=color, ecolor=color, capsize=3, ms=5, lw=1.2, label=label)
    if metric in INVOLVES_M0:
        single = [p for p in points if p[3].twins == 1]
        if single:
            ax.plot([p[0] for p in single], [p[1] for p in single], "o", mfc="white", mec=color, ms=5, zorder=3,
                    label="one twin: bar = texts only" if legend_extras else None)
    if metric == "diff_erank":
        band = [(p[0], p[1], _twin_sd(p[3], p[4])) for p in points if _twin_sd(p[3], p[4]) is not None]
        if band:
            ax.vlines([b[0] for b in band], [b[1] - b[2] for b in band], [b[1] + b[2] for b in band], lw=9,
                      color=color, alpha=0.22, label="twins' spread (± sd over the twins)" if legend_extras else None)


def plot_task_by_size(plt, comparison, task, path: Path) -> Path | None:
    """Diff-eRank, the eRank ratio, the reduced loss and accuracy of every model against the size axis."""
    axis = comparison.axis
    panels = []
    for metric in SIZE_PANELS:
        points = [(*p, task) for r in comparison.runs if (p := _point(r, task, metric, axis))]
        if points:
            panels.append((metric, sorted(points, key=lambda p: p[0])))
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels), 4.2), squeeze=False)
    for ax, (metric, points) in zip(axes[0], panels):
        _draw_series(ax, points, "tab:blue", metric, axis)
        _size_axis(plt, ax, axis, [p[0] for p in points])
        _limits(ax, [p[0] for p in points], [0] * len(points), axis.log, "x")
        _limits(ax, [p[1] for p in points], [p[2] for p in points], False, "y")
        ax.set_ylabel(AXIS_TITLES[metric], fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(f"{task}: against the model's {axis.name} (bars: stderr)", fontsize=10)
    fig.tight_layout()
    for ax, (_, points) in zip(axes[0], panels):
        place_labels(ax, [(p[0], p[1]) for p in points], [p[3].label for p in points])
        if len(ax.get_legend_handles_labels()[0]):
            ax.legend(fontsize=7, loc="best")
    return _save(plt, fig, path)


def plot_diff_erank_vs_acc(plt, comparison, task, path: Path, accuracy: str = "acc") -> Path | None:
    """Diff-eRank against accuracy, one labelled point per model, stderr bars both ways."""
    points = []
    for run in comparison.runs:
        result = run.tasks.get(task)
        if result and result.value("diff_erank") is not None and result.value(accuracy) is not None:
            points.append((result.value(accuracy), result.value("diff_erank"), result.stderr(accuracy),
                           result.stderr("diff_erank"), run))
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for x, y, xerr, yerr, run in points:
        open_marker = run.twins == 1
        ax.errorbar([x], [y], xerr=[xerr or 0.0], yerr=[yerr or 0.0], fmt="o", color="tab:blue", capsize=3, ms=5,
                    mfc="white" if open_marker else "tab:blue")
        sd = _twin_sd(run, task)
        if sd is not None:
            ax.vlines([x], [y - sd], [y + sd], lw=9, color="tab:blue", alpha=0.22)
    _limits(ax, [p[0] for p in points], [p[2] for p in points], False, "x")
    _limits(ax, [p[1] for p in points], [p[3] for p in points], False, "y")
    ax.set_xlabel(AXIS_TITLES[accuracy])
    ax.set_ylabel(AXIS_TITLES["diff_erank"], fontsize=9)
    ax.set_title(f"{task}: Diff-eRank against {accuracy} (bars: stderr; band: twins' spread; "
                 "open: one twin)", fontsize=9)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    place_labels(ax, [(p[0], p[1]) for p in points], [p[4].label for p in points])
    return _save(plt, fig, path)


def layer_series(run, task: str, kind: str) -> list[tuple[int, float, float | None]]:
    """Sorted (hidden-state index, value, stderr) of ``{kind}_layer{i}``, ending at the LM head's input
    (the unsuffixed metric, index ``config.erank_last_layer``)."""
    result = run.tasks.get(task)
    if result is None:
        return []
    series = []
    for name, (value, stderr) in result.metrics.items():
        match = metrics.LAYER_METRIC.match(name)
        if match and match.group(1) == kind and value is not None:
            series.append((int(match.group(2)), value, stderr))
    last = run.config.get("erank_last_layer")
    if series and isinstance(last, int) and all(i != last for i, _, _ in series) and result.value(kind) is not None:
        series.append((last, result.value(kind), result.stderr(kind)))
    return sorted(series)


def _layer_twin_sd(comparison, run, task: str, layers: list[int]) -> dict[int, float]:
    """{layer: sd over twins of Diff-eRank at that layer}, from the samples (m0_twins > 1 only)."""
    if not run.twins or run.twins < 2 or run.samples_path(run.tasks[task].name) is None:
        return {}
    samples = comparison.task_samples(run, task)
    last = run.config.get("erank_last_layer")
    spread = {}
    for layer in layers:
        items = samples.items(metrics.layer_metric("diff_erank", layer, last))
        if items is not None:
            sd = aggregation.twin_sd(items, "difference")
            if sd is not None:
                spread[layer] = sd
    return spread


def plot_layers(plt, comparison, task, path: Path) -> Path | None:
    """Diff-eRank per hidden-state index (band: the twins' spread), and eRank(M1) / eRank(M0) beside it."""
    runs = [r for r in comparison.runs if layer_series(r, task, "diff_erank")]
    if not runs:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(11.5, 4.4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, run in enumerate(runs):
        color = colors[k % len(colors)]
        series = layer_series(run, task, "diff_erank")
        layers = [s[0] for s in series]
        values = [s[1] for s in series]
        left.errorbar(layers, values, yerr=[s[2] or 0.0 for s in series], fmt="o-", capsize=3, color=color, ms=4,
                      mfc="white" if run.twins == 1 else color,
                      label=run.label + (" (one twin: bars = texts only)" if run.twins == 1 else ""))
        spread = _layer_twin_sd(comparison, run, task, layers)
        if spread:
            band = [(i, v) for i, v in zip(layers, values) if i in spread]
            left.fill_between([b[0] for b in band], [b[1] - spread[b[0]] for b in band],
                              [b[1] + spread[b[0]] for b in band], color=color, alpha=0.2, lw=0,
                              label=f"{run.label}: twins' spread (± sd, {run.twins} twins)")
        for kind, style in (("erank_m1", "o-"), ("erank_m0", "s--")):
            s = layer_series(run, task, kind)
            if s:
                right.plot([p[0] for p in s], [p[1] for p in s], style, color=color, ms=4,
                           label=f"{run.label} {'M1' if kind == 'erank_m1' else 'M0'}")
    left.set_ylabel(AXIS_TITLES["diff_erank"], fontsize=9)
    left.set_title(f"{task}: Diff-eRank per layer", fontsize=10)
    right.set_ylabel("eRank (effective dimensions)")
    right.set_title("eRank per layer: trained M1 (solid), random twin M0 (dashed)", fontsize=10)
    for ax in (left, right):
        ax.set_xlabel(LAYER_AXIS, fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(plt, fig, path)


def plot_overview(plt, comparison, path: Path) -> Path | None:
    """Diff-eRank against the size axis, one series per task, each model labelled once."""
    axis = comparison.axis
    series = []
    for task in comparison.tasks:
        points = sorted([(*p, task) for r in comparison.runs if (p := _point(r, task, "diff_erank", axis))],
                        key=lambda p: p[0])
        if points:
            series.append((task, points))
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(7.2, 4.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (task, points) in enumerate(series):
        _draw_series(ax, points, colors[k % len(colors)], "diff_erank", axis, label=task, legend_extras=k == 0)
    every = [p for _, points in series for p in points]
    _size_axis(plt, ax, axis, [p[0] for p in every])
    _limits(ax, [p[0] for p in every], [0] * len(every), axis.log, "x")
    _limits(ax, [p[1] for p in every], [p[2] for p in every], False, "y")
    ax.set_ylabel(AXIS_TITLES["diff_erank"], fontsize=9)
    ax.set_title(f"Diff-eRank against the model's {axis.name}, per task (bars: stderr)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    if len(every) <= OVERVIEW_LABELS:
        place_labels(ax, [(p[0], p[1]) for p in every], [p[3].label for p in every])
    else:  # one label per model, at its highest point
        top = {}
        for p in every:
            if p[3].label not in top or p[1] > top[p[3].label][1]:
                top[p[3].label] = p
        place_labels(ax, [(p[0], p[1]) for p in top.values()], list(top), avoid=[(p[0], p[1]) for p in every])
    return _save(plt, fig, path)


def plot_metrics(runs, tasks, panels, path: Path, *, x, xlabel: str, title: str, xscale: str = "log",
                 extra=None) -> Path | None:
    """A figure for a study script: one panel per (metric, axis title) of ``panels``, one series per
    task (either task name), stderr bars, against ``x`` ({run label: x}); ``xscale`` ``log``,
    ``linear`` or ``symlog`` (0 allowed); ``extra(ax, metric)`` may draw more on a panel (e.g. a
    training curve). Points join along distinct x only; single-twin points of the metrics involving
    M0 are open markers."""
    plt = pyplot()
    axis = SizeAxis("x", x)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    drawn = False
    for ax, (metric, ylabel) in zip(axes[0], panels):
        xs = []
        for k, task in enumerate(tasks):
            points = []
            for run in runs:
                value, stderr = run.value(task, metric)
                if value is not None and run.label in x:
                    points.append((x[run.label], value, stderr, run, run.task(task).key))
            if points:
                drawn = True
                _draw_series(ax, sorted(points, key=lambda p: p[0]), colors[k % len(colors)], metric, axis,
                             label=task, legend_extras=k == 0)
                xs += [p[0] for p in points]
        if extra is not None:
            extra(ax, metric)
        if xscale == "symlog":
            positive = [v for v in xs if v > 0]
            ax.set_xscale("symlog", linthresh=min(positive) if positive else 1)
        else:
            ax.set_xscale(xscale)
        if xscale == "log" and xs:
            ax.set_xlim(min(xs) / 1.6, max(xs) * 1.6)
            ticks = sorted(set(xs))  # one labelled tick per model size (log-axis minor labels overlap)
            ax.set_xticks(ticks, [human_count(t) for t in ticks], fontsize=8)
            ax.xaxis.set_minor_formatter(plt.NullFormatter())
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    if not drawn:
        plt.close(fig)
        return None
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(plt, fig, path)


def _save(plt, fig, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return Path(path)


def write_figures(comparison, out: Path) -> list[Path]:
    """Every figure the comparison supports, into ``out``; the paths written."""
    plt = pyplot()
    written = []
    has_axis = bool(comparison.axis.values)
    for task in comparison.tasks:
        name = safe_name(task)
        if has_axis:
            written.append(plot_task_by_size(plt, comparison, task, out / f"{name}.png"))
        written.append(plot_diff_erank_vs_acc(plt, comparison, task, out / f"{name}_diff_erank_vs_acc.png"))
        written.append(plot_layers(plt, comparison, task, out / f"{name}_layers.png"))
    if has_axis:
        written.append(plot_overview(plt, comparison, out / "diff_erank_vs_size.png"))
    return [p for p in written if p is not None]


def label_boxes(annotations, renderer) -> list:
    """The text boxes (display coordinates) of placed labels, without their leader lines."""
    from matplotlib.text import Text

    boxes = []
    for annotation in annotations:
        annotation.update_positions(renderer)
        boxes.append(Text.get_window_extent(annotation, renderer))
    return boxes
