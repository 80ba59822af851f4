"""Live-kernel tools: an attention explorer and a live loss plot for training.

Both adapt to where the notebook runs. In JupyterLab or Colab they are interactive: the
explorer is an ipywidgets form that recomputes the attention maps as you type, and the loss plot
redraws itself in place while ``train.train`` runs. When the notebook is executed for the
website (``LLMBOOK_STATIC=1``), nobody can type or watch, so the explorer shows the equivalent
plotly figure (with its own layer and head controls) and the loss plot shows its final figure
once, at the end of training. Import them from ``llmbook_utils.viz``.

Shape legend: B batch, L layers, H heads, T time (tokens).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from llmbook_utils.train import Callback

if TYPE_CHECKING:
    import plotly.graph_objects as go

logger = logging.getLogger(__name__)

DEFAULT_TEXT = "The cat sat on the mat because it was tired."


def _in_ipython() -> bool:
    """True inside an IPython kernel or shell, where ``display`` reaches a front end."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


class AttentionExplorer:
    """Type a text, pick a layer and a head, see where every token attends.

    Works with our ``GPT`` and ``Bert`` (``model.attention_maps(input_ids)``) and with Hugging
    Face models that accept ``output_attentions=True``. Display it as the last expression of a
    cell, or call ``.show()``.

    Args:
        model: a model with ``attention_maps(input_ids) -> (B, L, H, T, T)``, or a Hugging Face
            model (its attentions are requested with ``output_attentions=True``).
        tokenizer: one of ours (``encode``/``decode``) or a Hugging Face tokenizer (called with
            ``return_tensors="pt"``; token strings from ``convert_ids_to_tokens``).
        text: the text shown first.
    """

    def __init__(self, model: Any, tokenizer: Any, text: str | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.text = DEFAULT_TEXT if text is None else text

    def tokenize(self, text: str) -> tuple[dict[str, Any], list[str]]:
        """Return the model inputs (``input_ids`` of shape (1, T), plus the tokenizer's other
        tensors for a Hugging Face tokenizer) and the T token strings."""
        import torch

        if callable(self.tokenizer) and hasattr(self.tokenizer, "convert_ids_to_tokens"):  # HF
            inputs = dict(self.tokenizer(text, return_tensors="pt"))
            ids = inputs["input_ids"][0].tolist()
            return inputs, list(self.tokenizer.convert_ids_to_tokens(ids))
        ids = self.tokenizer.encode(text)
        tokens = [self.tokenizer.decode([i]) for i in ids]
        return {"input_ids": torch.tensor([ids], dtype=torch.long)}, tokens  # (1, T)

    def attention(self, text: str) -> tuple[np.ndarray, list[str]]:
        """Attention weights for ``text``: shape (L, H, T, T), and the T token strings."""
        import torch

        inputs, tokens = self.tokenize(text)
        if not tokens:
            raise ValueError("the text has no tokens; type something")
        if isinstance(self.model, torch.nn.Module):
            device = next(self.model.parameters()).device
            inputs = {name: tensor.to(device) for name, tensor in inputs.items()}
        with torch.no_grad():
            if hasattr(self.model, "attention_maps"):
                maps = self.model.attention_maps(inputs["input_ids"])  # (B, L, H, T, T)
            else:
                maps = self._hf_attention(inputs)
        return maps[0].detach().float().cpu().numpy(), tokens

    def _hf_attention(self, inputs: dict[str, Any]) -> Any:
        """(B, L, H, T, T) from a Hugging Face model. Fused attention kernels never form the
        weights, so the model runs with its plain ("eager") implementation for this call."""
        import torch

        model = self.model
        config = getattr(model, "config", None)
        original = getattr(config, "_attn_implementation", None)
        switch = original not in (None, "eager") and hasattr(model, "set_attn_implementation")
        was_training = model.training
        model.eval()
        try:
            if switch:
                model.set_attn_implementation("eager")
            attentions = model(**inputs, output_attentions=True).attentions
        finally:
            if switch:
                model.set_attn_implementation(original)
            model.train(was_training)
        if not attentions:
            raise ValueError(f"{type(model).__name__} returned no attention weights")
        return torch.stack(attentions, dim=1)  # L x (B, H, T, T) -> (B, L, H, T, T)

    def figure(self, text: str | None = None) -> go.Figure:
        """The plotly figure for ``text`` (default: the explorer's text), with a layer menu
        and a head slider that work without a kernel."""
        from llmbook_utils.viz import attention_heatmap

        text = self.text if text is None else text
        weights, tokens = self.attention(text)
        shown = text if len(text) <= 60 else text[:57] + "..."
        return attention_heatmap(weights, tokens, title=f"Attention: {shown!r}")

    def widget(self) -> Any:
        """The live ipywidgets form: a text box, layer and head sliders and the heat map."""
        import ipywidgets as widgets
        from IPython.display import display

        from llmbook_utils.viz import attention_heatmap

        text_box = widgets.Text(
            value=self.text,
            description="text",
            continuous_update=False,
            layout=widgets.Layout(width="95%"),
        )
        layer = widgets.IntSlider(value=1, min=1, max=1, description="layer")
        head = widgets.IntSlider(value=1, min=1, max=1, description="head")
        output = widgets.Output()
        state: dict[str, Any] = {}

        def redraw(_: Any = None) -> None:
            with output:
                output.clear_output(wait=True)
                if "error" in state:
                    display(widgets.HTML(f"<b>{state['error']}</b>"))
                    return
                weights = state["weights"][layer.value - 1, head.value - 1]  # (T, T)
                title = f"Attention, layer {layer.value}, head {head.value}"
                display(attention_heatmap(weights, state["tokens"], title=title))

        def recompute(_: Any = None) -> None:
            self.text = text_box.value
            try:
                state["weights"], state["tokens"] = self.attention(self.text)
                state.pop("error", None)
            except ValueError as err:  # e.g. empty text or longer than the context
                state["error"] = str(err)
            else:
                n_layers, n_heads = state["weights"].shape[:2]
                layer.max, head.max = n_layers, n_heads
            redraw()

        text_box.observe(recompute, names="value")
        layer.observe(redraw, names="value")
        head.observe(redraw, names="value")
        recompute()
        return widgets.VBox([text_box, widgets.HBox([layer, head]), output])

    def show(self) -> None:
        """Display the live widgets, or in static mode (``LLMBOOK_STATIC=1``) the figure."""
        from IPython.display import display

        from llmbook_utils.viz import is_static

        display(self.figure() if is_static() else self.widget())

    def _ipython_display_(self) -> None:
        self.show()


class LiveLossPlot(Callback):
    """Training callback: train and validation loss, and the learning rate, redrawn while you train.

    Pass it to ``train.train(..., callbacks=[LiveLossPlot()])``. In JupyterLab and Colab one
    figure is updated in place at most every ``min_interval_s`` seconds; when the notebook is
    executed for the website (``LLMBOOK_STATIC=1``) only the final figure is shown, once.

    Args:
        title: the figure title.
        log_lr: draw the learning-rate axis on a log scale.
        min_interval_s: the least wall time between two redraws; redrawing costs time too.
        loss_label: the title of the loss axis.
    """

    def __init__(
        self,
        title: str = "Training progress",
        log_lr: bool = True,
        min_interval_s: float = 0.75,
        loss_label: str = "loss (cross-entropy, nats)",
    ) -> None:
        self.title = title
        self.loss_label = loss_label
        self.log_lr = log_lr
        self.min_interval_s = min_interval_s
        self.train_records: list[dict] = []  # on_log records: step, train_loss, lr, ...
        self.val_records: list[dict] = []  # on_eval records: step, val_loss, ...
        self.max_steps: int | None = None
        self._handle: Any = None
        self._last_draw = float("-inf")

    def on_train_begin(self, cfg: Any) -> None:
        self.train_records, self.val_records = [], []
        self.max_steps = getattr(cfg, "max_steps", None)
        self._handle, self._last_draw = None, float("-inf")

    def on_log(self, record: dict) -> None:
        self.train_records.append(dict(record))
        self._redraw()

    def on_eval(self, record: dict) -> None:
        self.val_records.append(dict(record))
        self._redraw()

    def on_train_end(self, history: Any) -> None:
        from IPython.display import display

        from llmbook_utils.viz import is_static

        records = getattr(history, "records", None)
        if records:  # the whole run, also the steps before a resumed checkpoint
            self.train_records = [dict(r) for r in records if "train_loss" in r]
            self.val_records = [dict(r) for r in records if "val_loss" in r]
        if is_static():
            display(self.figure())
        else:
            self._redraw(force=True)

    def figure(self) -> go.Figure:
        """The figure with everything recorded so far."""
        import plotly.graph_objects as go

        from llmbook_utils.viz import TEMPLATE

        def column(records: list[dict], key: str) -> tuple[list, list]:
            rows = [r for r in records if r.get(key) is not None]
            return [r["step"] for r in rows], [float(r[key]) for r in rows]

        fig = go.Figure()
        steps, loss = column(self.train_records, "train_loss")
        fig.add_trace(go.Scatter(x=steps, y=loss, mode="lines", name="train loss"))
        steps, loss = column(self.val_records, "val_loss")
        fig.add_trace(go.Scatter(x=steps, y=loss, mode="lines+markers", name="validation loss"))
        steps, lrs = column(self.train_records, "lr")
        fig.add_trace(
            go.Scatter(
                x=steps,
                y=lrs,
                mode="lines",
                name="learning rate",
                yaxis="y2",
                line={"dash": "dot", "color": "grey"},
            )
        )
        fig.update_layout(
            title={"text": self.title, "x": 0.5},
            template=TEMPLATE,
            height=450,
            xaxis={"title": {"text": "step (optimiser updates)"}},
            yaxis={"title": {"text": self.loss_label}},
            yaxis2={
                "title": {"text": "learning rate"},
                "overlaying": "y",
                "side": "right",
                "type": "log" if self.log_lr else "linear",
                "showgrid": False,
                "tickformat": ".0e",
            },
            legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0.0},
        )
        if self.max_steps:  # a fixed x range: the curve grows instead of the axis rescaling
            fig.update_xaxes(range=[0, self.max_steps])
        return fig

    def _redraw(self, force: bool = False) -> None:
        from llmbook_utils.viz import is_static

        if is_static() or not _in_ipython():
            return
        now = time.monotonic()
        if not force and now - self._last_draw < self.min_interval_s:
            return
        self._last_draw = now
        from IPython.display import display

        # A plotly figure displays itself through _ipython_display_, which would drop the
        # display id; displaying its mime bundle keeps one output that update() replaces.
        bundle = self.figure()._repr_mimebundle_()
        if self._handle is None:
            self._handle = display(bundle, raw=True, display_id=True)
        else:
            self._handle.update(bundle, raw=True)
