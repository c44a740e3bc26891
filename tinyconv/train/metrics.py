"""Per-epoch metrics: the CSV log, the error-curve plots (as the ResNet paper's Figure 6), the summary.

A run's history is a list of dicts, one per epoch, with the keys of :data:`COLUMNS`; a value is None
where it was not measured (no validation split, or an epoch without a test evaluation). Errors are
percentages. ``test_*`` is the whole test set in use; ``test1k_*`` is its rows 0-999 -- for CIFAR-10
the exact images, the headline number (rows 1000-9999 of the shared copy are JPEG-decoded, see
the data README).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import secrets
import warnings

COLUMNS = ("epoch", "iteration", "lr", "train_loss", "train_error_pct", "test_loss", "test_error_pct",
           "test1k_loss", "test1k_error_pct", "val_loss", "val_error_pct", "images_per_s",
           "epoch_time_s", "wall_time_s")
_INT_COLUMNS = ("epoch", "iteration")


def write_atomic(path, data) -> None:
    """Write ``data`` (str or bytes) to ``path`` through a temporary file renamed into place."""
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    # A unique name in the same folder (so the rename is atomic), opened with "xb" rather than
    # mkstemp so the file gets the usual permissions, not owner-only.
    tmp = os.path.join(folder, f".{name}.{secrets.token_hex(6)}.tmp")
    try:
        with open(tmp, "xb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


# --------------------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------------------
def _cell(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def write_csv(history: list[dict], path) -> None:
    """Rewrite ``path`` with one row per epoch of ``history`` (blank cells for None), atomically.

    The whole file is rewritten from the history each time, so after a resume it matches the
    checkpoint exactly even if the run was killed between writing a CSV row and its checkpoint.
    """
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for row in history:
        w.writerow([_cell(row.get(c)) for c in COLUMNS])
    write_atomic(path, buf.getvalue())


def read_csv(path) -> list[dict]:
    """Read a ``metrics.csv`` back into a history (numbers as int/float, blank cells as None)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        out.append({c: (None if r.get(c, "") == "" else (int(r[c]) if c in _INT_COLUMNS else float(r[c])))
                    for c in COLUMNS})
    return out


# --------------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------------
def _figure(ncols: int):
    """A matplotlib Figure drawn with the Agg canvas (no pyplot, no global backend change), or None."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        warnings.warn("matplotlib is not installed: skipping the plot (pip install matplotlib)",
                      RuntimeWarning, stacklevel=3)
        return None
    fig = Figure(figsize=(5.5 * ncols, 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _series(history, key):
    """(iterations, values) of the epochs where ``key`` was measured."""
    pts = [(r["iteration"], r[key]) for r in history if r.get(key) is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def _save(fig, path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    write_atomic(path, buf.getvalue())


def plot_curves(history: list[dict], path, title: str = "") -> bool:
    """Error (%) against iterations, as the paper's Figure 6: train dashed, test solid.

    Draws the train error, the test error on rows 0-999 (the headline), the whole test set (thin;
    JPEG-affected for CIFAR-10 rows 1000-9999) and the validation error when there is one.
    Returns False (with a warning) when matplotlib is missing.
    """
    fig = _figure(1)
    if fig is None:
        return False
    ax = fig.add_subplot()
    lines = (("train_error_pct", "train", dict(ls="--", color="tab:blue")),
             ("test1k_error_pct", "test, rows 0-999", dict(ls="-", color="tab:red", lw=2)),
             ("test_error_pct", "test, all rows", dict(ls="-", color="tab:red", lw=0.8, alpha=0.5)),
             ("val_error_pct", "validation", dict(ls=":", color="tab:green", lw=1.5)))
    headline = _series(history, "test1k_error_pct")
    for key, label, style in lines:
        xs, ys = _series(history, key)
        if key == "test_error_pct" and (xs, ys) == headline:
            continue  # a test set of at most 1000 rows: the same curve twice
        if xs:
            ax.plot(xs, ys, label=label, marker="." if len(xs) < 30 else None, **style)
    _style_axes(ax, title)
    _save(fig, path)
    return True


def plot_comparison(panels: dict, path, title: str = "") -> bool:
    """Several runs side by side, Figure 6 style: ``panels`` is {panel title: {run label: history}}.

    Each run gets one colour: its train error dashed, its test error (rows 0-999) solid. Returns
    False (with a warning) when matplotlib is missing.
    """
    fig = _figure(len(panels))
    if fig is None:
        return False
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (panel, runs) in zip(axes, panels.items()):
        for i, (label, history) in enumerate(runs.items()):
            color = f"C{i}"
            xs, ys = _series(history, "train_error_pct")
            marker = "." if len(xs) < 30 else None  # short runs: a point per epoch stays visible
            ax.plot(xs, ys, ls="--", lw=1, color=color, marker=marker)
            xs, ys = _series(history, "test1k_error_pct")
            ax.plot(xs, ys, ls="-", lw=2, color=color, label=label, marker=marker)
        _style_axes(ax, panel)
    if title:
        fig.suptitle(title)
    _save(fig, path)
    return True


def _style_axes(ax, title):
    ax.set_xlabel("iterations")
    ax.set_ylabel("error (%)")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    if ax.lines:
        ax.legend()
    if title:
        ax.set_title(title)


# --------------------------------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------------------------------
def write_summary(summary: dict, path) -> None:
    """Write ``summary`` as indented JSON, atomically."""
    write_atomic(path, json.dumps(summary, indent=2) + "\n")
