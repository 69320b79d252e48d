"""Figures for the experiments: training curves, decision boundaries, contour paths, histograms.

matplotlib is an optional extra (``pip install matplotlib``, or ``pip install ".[plot]"`` in a
tapegrad checkout). It is imported only when a
function here is called, and drawn through its Agg canvas: no display is needed, no pyplot state is
touched and the backend of an interactive session is left alone. Without matplotlib every function
raises ImportError saying how to install it; nothing else in tapegrad needs it.

Each drawing function draws on ``ax`` when given (a matplotlib Axes, e.g. from ``figure(ncols=2)``)
and on a new figure otherwise, writes the figure as PNG to ``path`` when given (creating its folder),
and returns the figure:

    fig, (left, right) = vg.plot.figure(ncols=2)
    vg.plot.curves({"train loss": losses}, ax=left)
    vg.plot.decision_boundary(predict, x, y, ax=right)
    vg.plot.save(fig, "figures/run.png")
"""

import os

import numpy as np

INSTALL_HINT = 'pip install matplotlib (in a tapegrad checkout: pip install ".[plot]")'


def _matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError(f"tapegrad.plot needs matplotlib, which is not installed ({e}); install it with "
                          f"{INSTALL_HINT}") from None
    return Figure, FigureCanvasAgg


def _integer_ticks():
    from matplotlib.ticker import MaxNLocator
    return MaxNLocator(integer=True)


def available():
    """True when matplotlib can be imported (and so the functions here work)."""
    try:
        _matplotlib()
    except ImportError:
        return False
    return True


def figure(ncols=1, nrows=1, width=5.0, height=4.0):
    """A new figure of nrows x ncols panels of width x height inches each; returns (fig, [axes])."""
    Figure, Canvas = _matplotlib()
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    Canvas(fig)
    return fig, [fig.add_subplot(nrows, ncols, i + 1) for i in range(nrows * ncols)]


def save(fig, path, dpi=100):
    """Write fig to path (PNG unless the suffix names another format), creating its folder; returns path."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def _axes(ax, **size):
    if ax is None:
        fig, (ax,) = figure(**size)
        return fig, ax
    return ax.figure, ax


def _finish(fig, path):
    if path is not None:
        save(fig, path)
    return fig


def _value(out):
    """A TensorNode's value, or the array itself."""
    return np.asarray(getattr(out, "value", out))


def _series(data, default_label):
    """A dict label -> values from a dict, or one sequence named default_label."""
    if data is None:
        return {}
    if isinstance(data, dict):
        return {str(k): np.asarray(v, dtype=float) for k, v in data.items()}
    return {default_label: np.asarray(data, dtype=float)}


def curves(series, path=None, ax=None, xlabel="epoch", ylabel=None, title=None, logy=False, start=1):
    """Lines on one axes: ``series`` maps a label to its values (one per epoch, counted from
    ``start``), or is a single sequence."""
    fig, ax = _axes(ax)
    for label, values in _series(series, ylabel or "value").items():
        ax.plot(np.arange(start, start + len(values)), values, marker="o" if len(values) <= 30 else None,
                label=label)
    ax.set_xlabel(xlabel)
    ax.xaxis.set_major_locator(_integer_ticks())
    if ylabel:
        ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _finish(fig, path)


def training_curves(losses, accuracies=None, path=None, title=None):
    """Loss (left panel) and accuracy (right panel) per epoch.

    losses / accuracies: a sequence of per-epoch values, or a dict label -> sequence (several runs
    or splits, e.g. {"sigmoid": [...], "relu": [...]}).
    """
    fig, axes = figure(ncols=2 if accuracies is not None else 1)
    curves(_series(losses, "train loss"), ax=axes[0], ylabel="loss")
    if accuracies is not None:
        curves(_series(accuracies, "accuracy"), ax=axes[1], ylabel="accuracy")
    if title:
        fig.suptitle(title)
    return _finish(fig, path)


def decision_boundary(predict, x, y, path=None, ax=None, bounds=(-2.0, 2.0, -2.0, 2.0), resolution=50,
                      title=None):
    """A two-feature classifier's output on a ``resolution`` x ``resolution`` grid, with the data.

    predict: maps points (k, 2) to probabilities of class 1, shape (k,) or (k, 1), or to scores
    (k, C), whose argmax (the predicted class) is drawn; a TensorNode result is read by its value.
    x: points (n, 2); y: labels (n,). bounds: (x1 min, x1 max, x2 min, x2 max). For probabilities
    the 0.5 level, the decision boundary, is drawn in black.
    """
    x, y = np.asarray(x), np.asarray(y).reshape(-1)
    if x.ndim != 2 or x.shape[1] != 2 or len(x) != len(y):
        raise ValueError(f"decision_boundary: need points (n, 2) and labels (n,), got {x.shape} and {y.shape}")
    x1min, x1max, x2min, x2max = bounds
    g1, g2 = np.meshgrid(np.linspace(x1min, x1max, resolution), np.linspace(x2min, x2max, resolution))
    out = _value(predict(np.column_stack([g1.ravel(), g2.ravel()])))
    if out.ndim == 2 and out.shape[1] > 1:
        z, label, probabilities = np.argmax(out, axis=1).astype(float), "predicted class", False
    else:
        z, label, probabilities = out.reshape(-1).astype(float), "P(class 1)", True
    z = z.reshape(g1.shape)
    fig, ax = _axes(ax)
    levels = np.linspace(0, 1, 21) if probabilities else 20
    filled = ax.contourf(g1, g2, z, levels=levels, cmap="RdBu_r", alpha=0.8)
    fig.colorbar(filled, ax=ax, label=label)
    if probabilities and z.min() < 0.5 < z.max():
        ax.contour(g1, g2, z, levels=[0.5], colors="k", linewidths=1.5)
    for cls, marker in zip(np.unique(y), "os^vD*P"):
        pts = x[y == cls]
        ax.scatter(pts[:, 0], pts[:, 1], marker=marker, s=70, edgecolors="k", label=f"class {cls:g}")
    ax.set_xlim(x1min, x1max)
    ax.set_ylim(x2min, x2max)
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.legend(loc="upper right")
    if title:
        ax.set_title(title)
    return _finish(fig, path)


def contour_paths(f, paths, bounds, path=None, ax=None, levels=30, title=None):
    """Contour lines of f with the points visited by an optimiser drawn on them.

    f: takes two grid arrays x1, x2 and returns f's values on them (numpy, element-wise).
    paths: a dict label -> array (k, 2) of iterates. bounds: (x1 min, x1 max, x2 min, x2 max).
    """
    x1min, x1max, x2min, x2max = bounds
    g1, g2 = np.meshgrid(np.linspace(x1min, x1max, 200), np.linspace(x2min, x2max, 200))
    fig, ax = _axes(ax, width=5.5)
    lines = ax.contour(g1, g2, f(g1, g2), levels=levels, cmap="viridis", linewidths=0.8)
    fig.colorbar(lines, ax=ax, label="f(x1, x2)")
    for label, points in paths.items():
        points = np.asarray(points, dtype=float)
        ax.plot(points[:, 0], points[:, 1], marker="o", markersize=4, label=label)
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.legend()
    if title:
        ax.set_title(title)
    return _finish(fig, path)


def histogram(values, path=None, ax=None, bins=30, lines=None, xlabel=None, title=None):
    """A histogram of values, with vertical lines where ``lines`` says: a dict label -> x, or label ->
    (low, high) for an interval (both ends drawn alike)."""
    values = np.asarray(values, dtype=float).reshape(-1)
    fig, ax = _axes(ax)
    ax.hist(values, bins=bins, color="tab:blue", alpha=0.7, edgecolor="white")
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(6))
    for (label, position), style in zip((lines or {}).items(), ["-", "--", ":", "-."] * 4):
        for i, x in enumerate(np.atleast_1d(position)):
            ax.axvline(x, color="k", linestyle=style, label=label if i == 0 else None)
    if xlabel:
        ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    if lines:
        ax.legend()
    if title:
        ax.set_title(title)
    return _finish(fig, path)
