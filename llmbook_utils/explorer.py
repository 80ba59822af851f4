"""The attention explorer: type a text, pick a layer and a head, see where every token attends.

It adapts to where the notebook runs. In JupyterLab or Colab it is an ipywidgets form that
recomputes the attention maps as you type. When the notebook is executed for the website
(``LLMBOOK_STATIC=1``) nobody can type, so it shows the equivalent plotly figure, whose layer
menu and head slider work in the browser without a kernel (``viz.attention_heatmap``).

The live loss plot for training is ``llmbook_utils.live.LiveLossPlot``.

Shape legend: B batch, L layers, H heads, T time (tokens).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from llmbook_utils.render import is_static
from llmbook_utils.viz import attention_heatmap

if TYPE_CHECKING:
    import plotly.graph_objects as go

DEFAULT_TEXT = "The cat sat on the mat because it was tired."


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
        text = self.text if text is None else text
        weights, tokens = self.attention(text)
        shown = text if len(text) <= 60 else text[:57] + "..."
        return attention_heatmap(weights, tokens, title=f"Attention: {shown!r}")

    def widget(self) -> Any:
        """The live ipywidgets form: a text box, layer and head sliders and the heat map."""
        import ipywidgets as widgets
        from IPython.display import display

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

        display(self.figure() if is_static() else self.widget())

    def _ipython_display_(self) -> None:
        self.show()
