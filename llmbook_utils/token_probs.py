"""What temperature, top-k and top-p sampling do to a next-token distribution, as a figure.

``sampling_keep_mask`` and the bars of ``plot_token_probs`` come from the very function that
``GPT.generate`` samples from, ``llmbook_utils.decoding.next_token_distribution`` (re-exported
by ``llmbook_utils.gpt``): a token counts as kept exactly when that distribution gives it a
non-zero probability. So there is one rule, ties included: top-k keeps every token whose logit
equals the k-th largest (as ``transformers``' ``TopKLogitsWarper`` does), and top-p keeps a
token while the probability of the tokens ranked before it is below ``top_p``.

``llmbook_utils.viz`` re-exports both functions.

Shape legend: V vocabulary size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from llmbook_utils.render import as_numpy, styled, tick_labels, token_label

KEPT_COLOR = "#1f77b4"  # bars the sampling cut-offs keep
REMOVED_COLOR = "#c7c7c7"  # bars they remove


def filtered_distribution(
    probs: Any,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
) -> np.ndarray:
    """The distribution ``GPT.generate`` samples from, given the model's probabilities.

    Args:
        probs: the next-token probabilities (softmax of the logits), shape (V,).
        temperature: ``softmax(log(probs) / temperature)``; 0 is greedy; None means 1.
        top_k: keep the ``top_k`` most likely tokens (ties with the k-th included).
        top_p: then keep the smallest set of most likely tokens whose (renormalised)
            probability reaches ``top_p`` (nucleus sampling, Holtzman et al. 2019,
            https://arxiv.org/abs/1904.09751).

    Returns:
        float64 probabilities, shape (V,), summing to 1.
    """
    import torch

    from llmbook_utils.decoding import next_token_distribution

    p = as_numpy(probs)
    if p.ndim != 1:
        raise ValueError(f"probs must have shape (V,), got {p.shape}")
    with np.errstate(divide="ignore"):
        logits = torch.from_numpy(np.log(p))[None]  # (1, V); probability 0 -> logit -inf
    temperature = 1.0 if temperature is None else temperature
    return next_token_distribution(logits, temperature, top_k, top_p)[0].numpy()


def sampling_keep_mask(
    probs: Any,
    top_k: int | None = None,
    top_p: float | None = None,
    temperature: float | None = None,
) -> np.ndarray:
    """Which tokens top-k and then top-p sampling keep (the order ``transformers`` uses).

    Args:
        probs: a next-token distribution, shape (V,).
        top_k: keep the ``top_k`` most likely tokens (ties with the k-th included).
        top_p: then keep the smallest set of most likely tokens whose (renormalised)
            probability reaches ``top_p``.
        temperature: rescale first (see ``filtered_distribution``); None means 1.

    Returns:
        A boolean mask of shape (V,), True where ``next_token_distribution`` leaves the token a
        non-zero probability, i.e. where it may be sampled.
    """
    return filtered_distribution(probs, temperature, top_k, top_p) > 0


def plot_token_probs(
    probs: Any,
    tokens: Sequence[str],
    top_k: int | None = None,
    top_p: float | None = None,
    temperature: float | None = None,
    title: str = "Next-token probabilities",
    max_bars: int = 30,
) -> go.Figure:
    """Bar chart of a next-token distribution showing what temperature, top-k and top-p do.

    Bars are sorted by probability; those the cut-offs keep are coloured, the removed ones grey,
    a dashed line marks each cut-off, and a line on the right axis shows the cumulative
    probability.

    Args:
        probs: the model's next-token probabilities (softmax of the logits), shape (V,).
        tokens: the V token strings, ``tokens[i]`` for id ``i``.
        top_k: keep only the ``top_k`` most likely tokens (and any tied with the k-th).
        top_p: then keep the smallest set of tokens whose probability reaches ``top_p``.
        temperature: first rescale to ``softmax(log(probs) / temperature)`` (0: greedy); the
            bars show the rescaled distribution.
        title: the figure title; a subtitle lists the settings and how many tokens are kept.
        max_bars: how many of the most likely tokens to draw.

    Returns:
        Bar traces ``"kept"`` and ``"removed"`` (token ids in ``customdata``) and a
        ``"cumulative probability"`` line on the second y axis.
    """
    p = as_numpy(probs)
    if p.ndim != 1 or len(tokens) != len(p):
        raise ValueError(
            f"probs must have shape (V,) with V=len(tokens)={len(tokens)}, got {p.shape}"
        )
    if p.min() < 0 or abs(p.sum() - 1.0) > 1e-3:
        raise ValueError(
            f"probs must be non-negative and sum to 1 (got sum {p.sum():.4f}, min {p.min():.3g}); "
            "pass softmax(logits), not the logits"
        )
    settings = []
    if temperature is not None:
        if temperature < 0:
            raise ValueError(f"temperature={temperature} must be >= 0")
        settings.append(f"temperature {temperature:g}")
    keep = sampling_keep_mask(p, top_k, top_p, temperature)
    in_top_k = np.ones(len(p), dtype=bool)
    if top_k is not None:
        in_top_k = sampling_keep_mask(p, top_k, None, temperature)  # what top-k alone keeps
    p = filtered_distribution(p, temperature)  # the bars: after temperature, before cut-offs
    n_kept, n_top_k = int(keep.sum()), int(in_top_k.sum())
    # Most likely first; among equal probabilities, kept tokens before removed ones.
    order = np.lexsort((-p, ~in_top_k, ~keep))
    shown = order[: min(len(p), max_bars)]
    positions = np.arange(len(shown))
    # The cumulative probability top-p looks at: that of the top-k tokens, renormalised.
    cumulative = np.full(len(shown), np.nan)
    within_k = np.cumsum(p[order][:n_top_k]) / p[order][:n_top_k].sum()
    cumulative[: min(n_top_k, len(shown))] = within_k[: len(shown)]
    fig = go.Figure()
    for name, mask, color in (("kept", keep[shown], KEPT_COLOR),
                              ("removed", ~keep[shown], REMOVED_COLOR)):  # fmt: skip
        fig.add_trace(
            go.Bar(
                x=positions[mask], y=p[shown][mask], name=name, marker_color=color,
                customdata=shown[mask], text=[token_label(tokens[i]) for i in shown[mask]],
                textposition="none",
                hovertemplate="%{text} (id %{customdata})<br>p = %{y:.4f}<extra></extra>",
            )
        )  # fmt: skip
    cumulative_name = "cumulative probability" + (" (within top-k)" if top_k else "")
    fig.add_trace(
        go.Scatter(
            x=positions, y=cumulative, yaxis="y2", mode="lines+markers", name=cumulative_name,
            line={"color": "#ff7f0e", "width": 1.5}, marker={"size": 4},
        )
    )  # fmt: skip
    if top_k is not None:
        settings.append(f"top-k {top_k}")
        if n_top_k < len(shown):
            fig.add_vline(x=n_top_k - 0.5, line_dash="dash", annotation_text=f"top-k = {top_k}")
    if top_p is not None:
        settings.append(f"top-p {top_p:g}")
        fig.add_shape(
            type="line", xref="paper", x0=0, x1=1, yref="y2", y0=top_p, y1=top_p,
            line={"dash": "dot", "color": "#ff7f0e", "width": 1},
        )  # fmt: skip
        if n_kept < min(n_top_k, len(shown)):
            label = f"top-p = {top_p:g}"
            fig.add_vline(x=n_kept - 0.5, line_dash="dot", annotation_text=label,
                          annotation_position="top left")  # fmt: skip
    settings.append(f"{n_kept} of {len(p)} tokens kept")
    fig.update_layout(
        barmode="overlay", bargap=0.15,
        yaxis2={"title": {"text": "cumulative probability"}, "overlaying": "y", "side": "right",
                "range": [0, 1.05], "tickvals": [0, 0.25, 0.5, 0.75, 1], "showgrid": False},
        legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 1.0, "xanchor": "right"},
    )  # fmt: skip
    fig.update_xaxes(
        title_text="token (sorted by probability)",
        **tick_labels([token_label(tokens[i]) for i in shown]),
    )
    fig.update_yaxes(title_text="probability", rangemode="tozero", selector={"side": "left"})
    styled(fig, title, height=450)
    fig.update_layout(title_subtitle_text=", ".join(settings), margin={"t": 110})
    return fig
