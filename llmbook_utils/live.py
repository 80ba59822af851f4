"""A training callback that draws the loss curves while ``train`` runs.

``train(model, data, cfg, callbacks=[LiveLossPlot()])``: in JupyterLab and Colab one figure
(train and validation loss, and the learning rate) is redrawn in place while training runs.
When the notebook is executed for the website (``LLMBOOK_STATIC=1``) nobody can watch, so only
the final figure is shown, once, at the end of training.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from llmbook_utils.callbacks import Callback
from llmbook_utils.render import TEMPLATE, is_static

if TYPE_CHECKING:
    import plotly.graph_objects as go


def _in_ipython() -> bool:
    """True inside an IPython kernel or shell, where ``display`` reaches a front end."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


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
        self._handle: Any = None  # the ipywidgets.Output drawn while training runs
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

        records = getattr(history, "records", None)
        if records:  # the whole run, also the steps before a resumed checkpoint
            self.train_records = [dict(r) for r in records if "train_loss" in r]
            self.val_records = [dict(r) for r in records if "val_loss" in r]
        if is_static():
            display(self.figure())
        elif _in_ipython():
            self._show_final()

    def figure(self) -> go.Figure:
        """The figure with everything recorded so far."""
        import plotly.graph_objects as go

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
        if is_static() or not _in_ipython():
            return
        now = time.monotonic()
        if not force and now - self._last_draw < self.min_interval_s:
            return
        self._last_draw = now
        # A figure's output cannot be updated in place: JupyterLab's plotly renderer ignores an
        # update of a figure it has drawn. So the figure lives in an ipywidgets Output, whose
        # list of outputs is replaced at each redraw (JupyterLab, Colab and VS Code draw it).
        bundle = self.figure()._repr_mimebundle_()
        outputs = ({"output_type": "display_data", "data": bundle, "metadata": {}},)
        if self._handle is None:
            import ipywidgets
            from IPython.display import display

            self._handle = ipywidgets.Output()
            display(self._handle)
        self._handle.outputs = outputs

    def _show_final(self) -> None:
        """Replace the live widget by an ordinary output, which the saved notebook keeps."""
        from IPython.display import display

        if self._handle is not None:
            self._handle.close()  # its view goes with it
            self._handle = None
        display(self.figure()._repr_mimebundle_(), raw=True)
