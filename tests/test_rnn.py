"""RNN, LSTM and GRU from scratch against nn.RNN/nn.LSTM/nn.GRU and their cells."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from llmbook_utils.rnn import (
    GRU,
    LSTM,
    RNN,
    CharLSTM,
    CharLSTMConfig,
    GRUCell,
    LSTMCell,
    RNNCell,
    cell_state_dict,
)

TOL = {"rtol": 1e-6, "atol": 1e-6}


@pytest.mark.parametrize(
    ("ours_cls", "ref_cls", "kwargs"),
    [
        (RNNCell, nn.RNNCell, {}),
        (RNNCell, nn.RNNCell, {"nonlinearity": "relu"}),
        (RNNCell, nn.RNNCell, {"bias": False}),
        (LSTMCell, nn.LSTMCell, {}),
        (LSTMCell, nn.LSTMCell, {"bias": False}),
        (GRUCell, nn.GRUCell, {}),
        (GRUCell, nn.GRUCell, {"bias": False}),
    ],
)
def test_cells_equal_torch(ours_cls, ref_cls, kwargs):
    torch.manual_seed(0)
    ref = ref_cls(5, 7, **kwargs)
    ours = ours_cls(5, 7, **kwargs)
    assert set(ours.state_dict()) == set(ref.state_dict())
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(3, 5)
    if ours_cls is LSTMCell:
        state = (torch.randn(3, 7), torch.randn(3, 7))
        for a, b in zip(ours(x, state), ref(x, state), strict=True):
            torch.testing.assert_close(a, b, **TOL)
        for a, b in zip(ours(x), ref(x), strict=True):  # zero state by default
            torch.testing.assert_close(a, b, **TOL)
    else:
        h = torch.randn(3, 7)
        torch.testing.assert_close(ours(x, h), ref(x, h), **TOL)
        torch.testing.assert_close(ours(x), ref(x), **TOL)


@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(
    ("ours_cls", "ref_cls", "kwargs"),
    [
        (RNN, nn.RNN, {}),
        (RNN, nn.RNN, {"nonlinearity": "relu"}),
        (LSTM, nn.LSTM, {}),
        (GRU, nn.GRU, {}),
    ],  # fmt: skip
)
def test_layers_equal_torch_with_copied_weights(ours_cls, ref_cls, kwargs, num_layers, bias):
    torch.manual_seed(0)
    ref = ref_cls(4, 6, num_layers=num_layers, bias=bias, batch_first=True, **kwargs)
    ours = ours_cls(4, 6, num_layers=num_layers, bias=bias, **kwargs)
    assert set(ours.state_dict()) == set(ref.state_dict())
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 9, 4, requires_grad=True)
    if ours_cls is LSTM:
        state = (torch.randn(num_layers, 2, 6), torch.randn(num_layers, 2, 6))
        out, (h, c) = ours(x, state)
        ref_out, (ref_h, ref_c) = ref(x, state)
        torch.testing.assert_close(c, ref_c, **TOL)
    else:
        h0 = torch.randn(num_layers, 2, 6)
        out, h = ours(x, h0)
        ref_out, ref_h = ref(x, h0)
    torch.testing.assert_close(out, ref_out, **TOL)
    torch.testing.assert_close(h, ref_h, **TOL)
    # Gradients with respect to the input and to every weight agree as well.
    (g_ours,) = torch.autograd.grad(out.square().sum(), x)
    (g_ref,) = torch.autograd.grad(ref_out.square().sum(), x)
    torch.testing.assert_close(g_ours, g_ref, **TOL)


def test_weights_copy_back_to_torch():
    torch.manual_seed(1)
    ours = LSTM(3, 5, num_layers=2)
    ref = nn.LSTM(3, 5, num_layers=2, batch_first=True)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(4, 6, 3)
    torch.testing.assert_close(ours(x)[0], ref(x)[0], **TOL)


def test_cell_state_dict_moves_a_layer_into_a_cell():
    torch.manual_seed(2)
    layer = nn.GRU(3, 4, num_layers=2, batch_first=True)
    cell = nn.GRUCell(4, 4)
    cell.load_state_dict(cell_state_dict(layer.state_dict(), 1))
    ours = GRUCell(4, 4)
    ours.load_state_dict(cell_state_dict(layer.state_dict(), 1))
    x, h = torch.randn(2, 4), torch.randn(2, 4)
    torch.testing.assert_close(ours(x, h), cell(x, h), **TOL)
    with pytest.raises(ValueError, match="layer 2"):
        cell_state_dict(layer.state_dict(), 2)


def test_char_lstm_matches_an_unrolled_from_scratch_lstm():
    torch.manual_seed(3)
    model = CharLSTM(CharLSTMConfig(vocab_size=11, d_embed=6, hidden_size=8))
    idx = torch.randint(0, 11, (2, 7))
    logits, loss = model(idx, idx)
    assert logits.shape == (2, 7, 11)
    ours = LSTM(6, 8)
    ours.load_state_dict(model.lstm.state_dict())
    out, _ = ours(model.tok_emb(idx))
    torch.testing.assert_close(logits, model.lm_head(out), **TOL)
    ref = torch.nn.functional.cross_entropy(logits.flatten(0, 1), idx.flatten())
    torch.testing.assert_close(loss, ref)
    # Generation with a carried state equals re-reading the whole text at every step.
    g = torch.Generator().manual_seed(0)
    text = model.generate(idx[:1, :3], 5, generator=g)
    assert text.shape == (1, 8)
    g = torch.Generator().manual_seed(0)
    slow = idx[:1, :3]
    for _ in range(5):
        probs = torch.softmax(model(slow)[0][:, -1], dim=-1)
        slow = torch.cat([slow, torch.multinomial(probs, 1, generator=g)], dim=1)
    assert torch.equal(text, slow)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="hidden_size=0"):
        LSTM(3, 0)
    with pytest.raises(ValueError, match="nonlinearity"):
        RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match=r"I=3"):
        GRU(3, 4)(torch.zeros(2, 5, 4))
    with pytest.raises(ValueError, match="initial state"):
        RNN(3, 4, num_layers=2)(torch.zeros(2, 5, 3), torch.zeros(1, 2, 4))
    with pytest.raises(ValueError, match="vocab_size"):
        CharLSTMConfig(vocab_size=0)
