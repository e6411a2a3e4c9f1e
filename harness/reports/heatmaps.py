"""Draw `CaseResult.patterns` as small multiples: expected | yours | difference, one row per head.

matplotlib (Agg backend, no display needed) draws; the figure is embedded in the HTML report as a
base64 PNG, so the page works offline. Colour maps are colour-blind safe (viridis for weights and
values, PuOr for the signed difference), every colour bar states its range, blocked (masked)
cells are hatched, and every figure comes with alt text and a table of its largest differences.
Imported only by the HTML reporter and the dashboard: text and JSON reports never need matplotlib.
"""

from __future__ import annotations

import base64
import io
import math
from typing import Any

import numpy as np

from ..errors import UsageError
from ..patterns import largest_differences


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, or a clear error naming the extra to install."""
    try:
        import matplotlib
    except ImportError:
        raise UsageError("the HTML report needs matplotlib and jinja2: pip install 'attnspec[html]'") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def png_data_uri(fig: Any, dpi: int = 96) -> str:
    """The figure as a data: URI (closed afterwards); metadata stripped so the bytes are reproducible."""
    plt = pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _array(grid: list[list[float | None]]) -> np.ndarray:
    return np.array([[np.nan if v is None else v for v in row] for row in grid], dtype=np.float64)


def _ranges(patterns: dict[str, Any]) -> tuple[float, float, float]:
    """(vmin, vmax) shared by the expected and learner panels, and the difference's half-range."""
    values, diffs = [], []
    for panel in patterns["panels"]:
        e = _array(panel["expected"])
        values.append(e)
        if panel.get("got") is not None:
            g = _array(panel["got"])
            values.append(g)
            diffs.append(g - e)
    finite = np.concatenate([v[np.isfinite(v)].ravel() for v in values]) if values else np.zeros(1)
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if patterns["kind"] == "attention":
        lo, hi = min(0.0, lo), max(1.0, hi)  # weights: the scale always covers [0, 1]
    if hi - lo < 1e-12:
        hi = lo + 1.0
    d = np.concatenate([x[np.isfinite(x)].ravel() for x in diffs]) if diffs else np.zeros(0)
    half = float(np.abs(d).max()) if d.size else 0.0
    return lo, hi, max(half, 1e-6)


def _draw(ax: Any, data: np.ndarray, cmap: Any, vmin: float, vmax: float, blocked: Any, mark: str = "0.85", row_labels: bool = True) -> Any:
    n_rows, n_cols = data.shape
    image = ax.imshow(np.ma.masked_invalid(data), cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest", aspect="equal")
    if blocked is not None:  # one X per blocked cell, drawn as a single collection
        rows, cols = np.nonzero(np.asarray(blocked))
        ax.scatter(cols, rows, marker="x", s=22, c=mark, linewidths=0.9)
        ax.set_xlim(-0.5, n_cols - 0.5)
        ax.set_ylim(n_rows - 0.5, -0.5)
    ax.set_xticks(range(0, n_cols, max(1, math.ceil(n_cols / 8))))
    ax.set_yticks(range(0, n_rows, max(1, math.ceil(n_rows / 8))))
    ax.tick_params(labelsize=6, length=2, pad=1, labelleft=row_labels, labelbottom=row_labels)  # tick labels are most of the drawing time
    return image


def _colorbar(fig: Any, image: Any, box: list[float], lo: float, hi: float, label: str) -> None:
    """A colour bar whose ticks state the range: min, middle, max."""
    bar = fig.colorbar(image, cax=fig.add_axes(box))
    bar.set_ticks([lo, (lo + hi) / 2, hi])
    bar.ax.set_yticklabels([f"min {lo:.3g}", f"{(lo + hi) / 2:.3g}", f"max {hi:.3g}"], fontsize=6)
    bar.ax.set_title(label, fontsize=6, loc="left")


def draw_patterns(patterns: dict[str, Any]) -> dict[str, Any]:
    """{'src': data URI, 'alt': text, 'table': largest differences} for one case's patterns.

    One row per panel (head, batch element or stage), three columns: expected, yours, yours minus
    expected. Expected and yours share one colour scale (and bar), the difference has its own."""
    plt = pyplot()
    panels = patterns["panels"]
    lo, hi, half = _ranges(patterns)
    first = _array(panels[0]["expected"])
    n = len(panels)
    cell = 0.26 if patterns["kind"] == "attention" else 0.16
    size_w, size_h = max(1.3, cell * first.shape[1]), max(1.1, cell * first.shape[0])
    width, height = 3 * (size_w + 0.55) + 1.3, n * (size_h + 0.45) + 0.45
    fig = plt.figure(figsize=(width, height))
    right = 1 - 1.25 / width
    axes = fig.subplots(n, 3, squeeze=False, gridspec_kw={"left": 0.9 / width, "right": right, "bottom": 0.35 / height, "top": 1 - 0.35 / height, "wspace": 0.35, "hspace": 0.45})
    weights, diverging = (plt.get_cmap(name).with_extremes(bad="white") for name in ("viridis", "PuOr"))
    rows, cols = patterns["rows"], patterns["columns"]
    for title, ax in zip(("expected", "yours", "yours \u2212 expected"), axes[0]):
        ax.set_title(title, fontsize=8, fontweight="bold")
    value_image = diff_image = None
    for r, panel in enumerate(panels):
        expected, blocked = _array(panel["expected"]), panel.get("blocked")
        value_image = _draw(axes[r, 0], expected, weights, lo, hi, blocked)
        axes[r, 0].set_ylabel(f"{panel['label']}\n{rows} \u2193", fontsize=6)
        axes[r, 0].set_xlabel(f"{cols} \u2192", fontsize=6, labelpad=1)
        if panel.get("got") is None:
            for ax in axes[r, 1:]:
                ax.axis("off")
            axes[r, 1].text(0.5, 0.5, "your values\ncould not be read", ha="center", va="center", fontsize=7)
            continue
        got = _array(panel["got"])
        _draw(axes[r, 1], got, weights, lo, hi, blocked, row_labels=False)
        diff_image = _draw(axes[r, 2], got - expected, diverging, -half, half, blocked, mark="0.35", row_labels=False)
    top = 1 - 0.35 / height
    bar_h = (top - 0.35 / height) * 0.42
    _colorbar(fig, value_image, [right + 0.25 / width, top - bar_h, 0.12 / width, bar_h], lo, hi, "weights" if patterns["kind"] == "attention" else "values")
    if diff_image is not None:
        _colorbar(fig, diff_image, [right + 0.25 / width, 0.35 / height, 0.12 / width, bar_h], -half, half, "difference")
    table = largest_differences(patterns)
    return {"src": png_data_uri(fig), "alt": alt_text(patterns, table), "table": table}


def plural_noun(word: str) -> str:
    """query -> queries, key -> keys."""
    return word[:-1] + "ies" if word.endswith("y") and word[-2:-1] not in "aeiou" else word + "s"


def alt_text(patterns: dict[str, Any], table: list[dict[str, Any]]) -> str:
    """What the picture shows, in words, for screen readers and text-only readers."""
    what = {"attention": "attention weights", "residual": "residual stream", "output": "outputs"}[patterns["kind"]]
    labels = "; ".join(p["label"] for p in patterns["panels"])
    text = f"Heatmaps of the {what}, expected next to yours and their difference, rows are {plural_noun(patterns['rows'])} and columns {plural_noun(patterns['columns'])} ({labels})."
    if patterns.get("problem"):
        return text + f" Your values could not be read: {patterns['problem']}."
    if not table:
        return text + " Your values equal the expected ones here."
    top = table[0]
    got = "not a number" if top["got"] is None else f"{top['got']:.3g}"
    return text + f" The largest difference is at {patterns['rows']} {top['row']}, {patterns['columns']} {top['column']} ({top['panel']}): expected {top['expected']:.3g}, yours {got}."
