"""Interactive plotly figures that work in JupyterLab, Colab and on the book's static website.

Every figure here is a plain ``plotly.graph_objects.Figure``. Interactivity that must survive on
the static website (choosing a layer or a head) uses plotly's own sliders and dropdown menus,
which run in the browser without a kernel.

Where the rest lives (each name is also importable from here):

- ``use_book_renderer``, ``is_static``, ``STATIC_RENDERER``, ``TEMPLATE``
  (``llmbook_utils.render``): the website's renderer, set up by an explicit
  ``use_book_renderer()`` call in every chapter's first cell, never by an import;
- ``plot_token_probs``, ``sampling_keep_mask`` (``llmbook_utils.token_probs``): what
  temperature, top-k and top-p do to a next-token distribution;
- ``AttentionExplorer`` (``llmbook_utils.explorer``) and ``LiveLossPlot``
  (``llmbook_utils.live``): the live-kernel tools. They import this module, so this module
  loads them only when one of the two names is asked for (no import cycle).

Unlike the core modules, this module imports plotly at the top: figures are its job.

Shape legend: L layers, H heads, Tq query positions, Tk key positions.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import plotly.graph_objects as go

from llmbook_utils.render import (
    STATIC_RENDERER,
    TEMPLATE,
    as_numpy,
    is_static,
    styled,
    tick_labels,
    token_label,
    use_book_renderer,
)
from llmbook_utils.token_probs import plot_token_probs, sampling_keep_mask

__all__ = [
    "STATIC_RENDERER",
    "TEMPLATE",
    "attention_heatmap",
    "is_static",
    "pca_2d",
    "plot_confusion_matrix",
    "plot_embeddings",
    "plot_lr_schedule",
    "plot_positional_encoding",
    "plot_token_probs",
    "sampling_keep_mask",
    "use_book_renderer",
]

# Names defined in modules that import this one: loaded on first use (PEP 562), and left out
# of __all__ so that ``from llmbook_utils.viz import *`` does not load them.
_LAZY = {"AttentionExplorer": "llmbook_utils.explorer", "LiveLossPlot": "llmbook_utils.live"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------------------------
# Attention
# ---------------------------------------------------------------------------------------------


def attention_heatmap(
    weights: Any,
    tokens_q: Sequence[str],
    tokens_k: Sequence[str] | None = None,
    title: str = "Attention weights",
) -> go.Figure:
    """Heat map of attention weights with a layer menu and a head slider that work offline.

    The figure holds one heatmap trace. The head slider's steps restyle its ``z`` to head ``h``
    of the selected layer; each entry of the layer menu restyles ``z`` to head 1 of its layer and
    replaces the slider's steps with those of its layer (``relayout`` of ``sliders[0].steps``), so
    both controls always agree and everything runs in the browser, without a kernel.

    Args:
        weights: attention probabilities, shape (Tq, Tk), (H, Tq, Tk) or (L, H, Tq, Tk); numpy or
            torch. Row ``i`` is how query ``i`` distributes its attention over the keys.
        tokens_q: the Tq query tokens (y axis, first token at the top).
        tokens_k: the Tk key tokens (x axis); defaults to ``tokens_q`` (self-attention).
        title: the figure title.

    Returns:
        A figure with a layer dropdown when L > 1 and a head slider when H > 1.

    Raises:
        ValueError: if ``weights`` has another rank or does not match the token lists.
    """
    w = as_numpy(weights)
    if w.ndim not in (2, 3, 4):
        raise ValueError(
            f"weights must have shape (Tq, Tk), (H, Tq, Tk) or (L, H, Tq, Tk), got {w.shape}"
        )
    w = w.reshape((1,) * (4 - w.ndim) + w.shape)  # (..., Tq, Tk) -> (L, H, Tq, Tk)
    n_layers, n_heads, t_q, t_k = w.shape
    tokens_k = tokens_q if tokens_k is None else tokens_k
    if len(tokens_q) != t_q or len(tokens_k) != t_k:
        raise ValueError(
            f"weights of shape {tuple(as_numpy(weights).shape)} need Tq={t_q} query and Tk={t_k} "
            f"key tokens, got len(tokens_q)={len(tokens_q)} and len(tokens_k)={len(tokens_k)}"
        )
    z = np.round(w, 4).tolist()  # 4 decimals keep the page small; the colour bar can't show more
    labels_q = [token_label(t) for t in tokens_q]
    labels_k = [token_label(t) for t in tokens_k]
    hover = [
        [f"query {i}: {labels_q[i]}<br>key {j}: {labels_k[j]}" for j in range(t_k)]
        for i in range(t_q)
    ]

    fig = go.Figure(
        go.Heatmap(
            z=z[0][0], x=list(range(t_k)), y=list(range(t_q)), zmin=0.0, zmax=1.0, xgap=1, ygap=1,
            text=hover, hovertemplate="%{text}<br>weight: %{z:.3f}<extra></extra>",
            colorscale="Blues", colorbar={"title": {"text": "weight"}},
        )
    )  # fmt: skip
    longest = max(len(t) for t in labels_k)
    tick_angle = -60 if t_k * (7 * longest + 8) > 720 else 0  # fixed, so the slider fits below
    fig.update_xaxes(
        title_text="key position (token)", tickangle=tick_angle, **tick_labels(labels_k)
    )
    fig.update_yaxes(
        title_text="query position (token)", autorange="reversed", **tick_labels(labels_q)
    )
    fig.update_layout(xaxis_showgrid=False, yaxis_showgrid=False)

    def head_steps(layer: int) -> list[dict]:
        return [
            {"method": "restyle", "label": str(h + 1), "args": [{"z": [z[layer][h]]}, [0]]}
            for h in range(n_heads)
        ]

    margin = {"t": 80}
    if n_heads > 1:
        # Room below the plot for the key labels (drawn rotated when they crowd) and axis title.
        label_room = 55 + (6 * min(longest, 15) if tick_angle else 0)
        fig.update_layout(sliders=[{
            "steps": head_steps(0), "active": 0, "currentvalue": {"prefix": "head "},
            "y": 0.0, "yanchor": "top", "pad": {"t": label_room},
        }])  # fmt: skip
        margin["b"] = label_room + 80
    if n_layers > 1:
        buttons = []
        for layer in range(n_layers):
            if n_heads > 1:
                args = [
                    {"z": [z[layer][0]]},
                    {"sliders[0].steps": head_steps(layer), "sliders[0].active": 0},
                ]
                method = "update"
            else:
                args, method = [{"z": [z[layer][0]]}, [0]], "restyle"
            buttons.append({"method": method, "label": f"layer {layer + 1}", "args": args})
        fig.update_layout(updatemenus=[{
            "type": "dropdown", "buttons": buttons, "active": 0,
            "x": 0.0, "xanchor": "left", "y": 1.02, "yanchor": "bottom",
        }])  # fmt: skip
        margin["t"] = 110
    fig.update_layout(margin=margin)
    height = max(520 if n_heads > 1 or n_layers > 1 else 450, min(900, 300 + 16 * t_q))
    return styled(fig, title, height=height)


# ---------------------------------------------------------------------------------------------
# Positional encodings and learning-rate schedules
# ---------------------------------------------------------------------------------------------


def plot_positional_encoding(pe: Any, title: str = "Positional encoding") -> go.Figure:
    """Heat map of a positional-encoding matrix, position by dimension.

    Args:
        pe: shape (max_len, d_model), numpy or torch, e.g. ``positional.sinusoidal_encoding``.
        title: the figure title.

    Returns:
        A heat map with position 0 at the top and a diverging colour scale centred on 0.
    """
    values = as_numpy(pe)
    if values.ndim == 3 and values.shape[0] == 1:
        values = values[0]  # (1, max_len, d_model) -> (max_len, d_model)
    if values.ndim != 2:
        raise ValueError(f"pe must have shape (max_len, d_model), got {values.shape}")
    fig = go.Figure(
        go.Heatmap(
            z=values, colorscale="RdBu", zmid=0.0, colorbar={"title": {"text": "value"}},
            hovertemplate="position %{y}<br>dimension %{x}<br>value %{z:.3f}<extra></extra>",
        )
    )  # fmt: skip
    fig.update_xaxes(title_text="embedding dimension i")
    fig.update_yaxes(title_text="position pos (token index)", autorange="reversed")
    return styled(fig, title)


class ScheduleConfig(Protocol):
    """Anything shaped like ``train.TrainConfig``: ``get_lr(step, cfg)`` reads the rest."""

    max_steps: int


def plot_lr_schedule(
    schedule: ScheduleConfig | Callable[[int], float] | Sequence[float],
    steps: int | Sequence[int] | None = None,
    get_lr: Callable[[int, Any], float] | None = None,
    title: str = "Learning-rate schedule",
) -> go.Figure:
    """Plot the learning rate against the optimiser step.

    Three ways to call it::

        plot_lr_schedule(cfg)                        # a TrainConfig: uses train.get_lr(step, cfg)
        plot_lr_schedule(lambda s: ..., steps=1000)  # any function of the step
        plot_lr_schedule(lrs)                        # recorded values, steps 0, 1, ...

    Args:
        schedule: a config with ``max_steps`` (and whatever ``get_lr`` reads), a function
            ``step -> lr``, or a sequence of learning rates.
        steps: the steps to plot: an int ``n`` means ``0 .. n-1``. Defaults to
            ``0 .. cfg.max_steps`` for a config and ``0 .. len(lrs)-1`` for a sequence; required
            for a function.
        get_lr: with a config, the schedule ``get_lr(step, cfg)``; defaults to
            ``llmbook_utils.schedule.get_lr`` (also ``train.get_lr``).
        title: the figure title.

    Returns:
        A line plot; with a config that has ``warmup_steps``, a dashed line marks the end of warmup.
    """
    step_list = list(range(steps)) if isinstance(steps, int) else steps
    warmup = None
    if hasattr(schedule, "max_steps"):
        if get_lr is None:
            from llmbook_utils.schedule import get_lr
        step_list = list(range(schedule.max_steps + 1)) if step_list is None else step_list
        lrs = [get_lr(s, schedule) for s in step_list]
        warmup = getattr(schedule, "warmup_steps", None)
    elif callable(schedule):
        if step_list is None:
            raise ValueError("plot_lr_schedule(function) needs steps=, e.g. steps=1000")
        lrs = [schedule(s) for s in step_list]
    else:
        lrs = [float(v) for v in schedule]
        step_list = list(range(len(lrs))) if step_list is None else step_list
    if len(step_list) != len(lrs):
        raise ValueError(f"got {len(step_list)} steps but {len(lrs)} learning rates")
    fig = go.Figure(go.Scatter(x=list(step_list), y=lrs, mode="lines", name="learning rate"))
    if warmup:
        fig.add_vline(x=warmup, line_dash="dash", annotation_text=f"end of warmup (step {warmup})")
    fig.update_xaxes(title_text="step (optimiser updates)")
    fig.update_yaxes(title_text="learning rate", exponentformat="e", rangemode="tozero")
    return styled(fig, title, height=400)


# ---------------------------------------------------------------------------------------------
# Embeddings and classification
# ---------------------------------------------------------------------------------------------


def pca_2d(vectors: Any) -> tuple[np.ndarray, np.ndarray]:
    """Project row vectors onto their first two principal components.

    Args:
        vectors: shape (N, d) with N >= 2 and d >= 2.

    Returns:
        ``(coords, explained)``: coords (N, 2), and the fraction of the variance each of the two
        components explains, shape (2,).
    """
    x = as_numpy(vectors)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2:
        raise ValueError(f"vectors must have shape (N, d) with N >= 2 and d >= 2, got {x.shape}")
    centred = x - x.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)  # rows of vt: principal axes
    variance = singular**2
    explained = variance[:2] / variance.sum() if variance.sum() > 0 else np.zeros(2)
    return centred @ vt[:2].T, explained  # (N, d) @ (d, 2) -> (N, 2)


def plot_embeddings(
    vectors: Any,
    labels: Sequence[str],
    colors: Sequence[Any] | None = None,
    title: str = "Embeddings (PCA to 2-D)",
) -> go.Figure:
    """Scatter plot of embedding vectors projected to 2-D with PCA, each point labelled.

    Args:
        vectors: shape (N, d), numpy or torch.
        labels: N texts written next to the points and shown on hover.
        colors: optional N group names (e.g. a class or a part of speech); one legend entry each.
        title: the figure title.

    Returns:
        One scatter trace per group (a single one without ``colors``).
    """
    coords, explained = pca_2d(vectors)
    if len(labels) != len(coords):
        raise ValueError(f"got {len(coords)} vectors but {len(labels)} labels")
    if colors is not None and len(colors) != len(coords):
        raise ValueError(f"got {len(coords)} vectors but {len(colors)} colors")
    groups = [None] if colors is None else list(dict.fromkeys(colors))  # first-appearance order
    fig = go.Figure()
    for group in groups:
        idx = [i for i in range(len(coords)) if colors is None or colors[i] == group]
        fig.add_trace(
            go.Scatter(
                x=coords[idx, 0],
                y=coords[idx, 1],
                mode="markers+text",
                textposition="top center",
                text=[token_label(labels[i]) for i in idx],
                showlegend=group is not None,
                name="points" if group is None else str(group),
                hovertemplate="%{text}<br>PC1 %{x:.3f}<br>PC2 %{y:.3f}<extra></extra>",
            )  # fmt: skip
        )
    fig.update_xaxes(title_text=f"PC1 ({explained[0]:.0%} of variance)")
    fig.update_yaxes(title_text=f"PC2 ({explained[1]:.0%} of variance)")
    return styled(fig, title, height=500)


def plot_confusion_matrix(
    cm: Any,
    labels: Sequence[str],
    normalize: str | None = None,
    title: str = "Confusion matrix",
) -> go.Figure:
    """Annotated heat map of a confusion matrix (rows: true class, columns: predicted class).

    Args:
        cm: counts, shape (C, C), e.g. ``sklearn.metrics.confusion_matrix(y_true, y_pred)``.
        labels: the C class names.
        normalize: as in scikit-learn: ``None`` (counts), ``"true"`` (each row sums to 1, the
            diagonal is the recall), ``"pred"`` (each column sums to 1, the diagonal is the
            precision) or ``"all"``.
        title: the figure title.

    Returns:
        A heat map whose cells show the (normalised) values; hovering shows the counts.
    """
    counts = as_numpy(cm)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or len(labels) != counts.shape[0]:
        raise ValueError(
            f"cm must have shape (C, C) with C=len(labels)={len(labels)}, got {counts.shape}"
        )
    with np.errstate(invalid="ignore", divide="ignore"):
        if normalize == "true":
            values = counts / counts.sum(axis=1, keepdims=True)
        elif normalize == "pred":
            values = counts / counts.sum(axis=0, keepdims=True)
        elif normalize == "all":
            values = counts / counts.sum()
        elif normalize is None:
            values = counts
        else:
            raise ValueError(f"normalize={normalize!r} must be None, 'true', 'pred' or 'all'")
    values = np.nan_to_num(values)  # a class with no examples gives 0/0
    names = [token_label(name) for name in labels]
    cells = [[f"{v:.0f}" if normalize is None else f"{v:.2f}" for v in row] for row in values]
    hover = [[f"true: {names[i]}<br>predicted: {names[j]}<br>count: {counts[i, j]:.0f}"
              for j in range(len(names))] for i in range(len(names))]  # fmt: skip
    colorbar = {None: "count", "true": "fraction of true class", "all": "fraction of all",
                "pred": "fraction of predicted class"}[normalize]  # fmt: skip
    ticks = list(range(len(names)))
    fig = go.Figure(
        go.Heatmap(
            z=values, x=ticks, y=ticks, xgap=1, ygap=1, text=cells, texttemplate="%{text}",
            hovertext=hover, hovertemplate="%{hovertext}<extra></extra>",
            colorscale="Blues", colorbar={"title": {"text": colorbar}},
        )
    )  # fmt: skip
    fig.update_xaxes(title_text="predicted label", **tick_labels(names))
    fig.update_yaxes(title_text="true label", autorange="reversed", **tick_labels(names))
    return styled(fig, title, height=max(400, min(700, 60 * len(names) + 200)))
