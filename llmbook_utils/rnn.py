"""Recurrent networks from scratch: the RNN, LSTM and GRU cells and multi-layer layers.

Papers: Elman, "Finding Structure in Time", 1990 (the RNN); Hochreiter and Schmidhuber, "Long
Short-Term Memory", 1997, with the forget gate of Gers, Schmidhuber and Cummins, 2000 (the
LSTM); Cho et al., "Learning Phrase Representations using RNN Encoder-Decoder for Statistical
Machine Translation", 2014, https://arxiv.org/abs/1406.1078 (the GRU).

Everything follows PyTorch's conventions exactly, so weights copy in both directions with
``load_state_dict``: the gates are stacked in PyTorch's order (LSTM: input, forget, cell
candidate, output; GRU: reset, update, new), the matrices are stored as ``(gates * H, in)``
and applied as ``x @ W.T``, there are two bias vectors (``bias_ih`` and ``bias_hh``), the cells
use the names of ``nn.RNNCell``/``nn.LSTMCell``/``nn.GRUCell`` (``weight_ih``, ...) and the
layers those of ``nn.RNN``/``nn.LSTM``/``nn.GRU`` (``weight_ih_l0``, ...). Layers are always
batch-first. ``CharLSTM`` is a character language model on top of ``nn.LSTM``, returning
``(logits, loss)`` like the book's other models.

Shape legend: B batch, T time, I input size, H hidden size, L layers, V vocabulary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NONLINEARITIES = ("tanh", "relu")

# --------------------------------------------------------------------------------------------
# One time step, as pure functions of the input, the state and the weights
# --------------------------------------------------------------------------------------------


def rnn_step(
    x: Tensor, h: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None,
    nonlinearity: str = "tanh",
) -> Tensor:  # fmt: skip
    """Elman RNN: ``h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)``.

    Args:
        x: (B, I) input at this step.
        h: (B, H) previous hidden state.
        w_ih, w_hh: (H, I) and (H, H) weights; b_ih, b_hh: (H,) biases or None.
        nonlinearity: ``"tanh"`` or ``"relu"``.

    Returns:
        (B, H) the new hidden state.
    """
    pre = F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)  # (B, H)
    return torch.tanh(pre) if nonlinearity == "tanh" else torch.relu(pre)


def lstm_step(
    x: Tensor, state: tuple[Tensor, Tensor], w_ih: Tensor, w_hh: Tensor,
    b_ih: Tensor | None, b_hh: Tensor | None,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """LSTM with a forget gate; PyTorch's gate order i, f, g (cell candidate), o.

    ``c' = f * c + i * g`` and ``h' = o * tanh(c')``, with sigmoid gates i, f, o and
    ``g = tanh(...)``.

    Args:
        x: (B, I) input at this step.
        state: (h, c), each (B, H).
        w_ih, w_hh: (4H, I) and (4H, H) weights; b_ih, b_hh: (4H,) biases or None.

    Returns:
        (h', c'), each (B, H).
    """
    h, c = state
    gates = F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)  # (B, 4H)
    i, f, g, o = gates.chunk(4, dim=-1)  # 4 x (B, H)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    return h, c


def gru_step(
    x: Tensor, h: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None
) -> Tensor:
    """GRU; PyTorch's gate order r (reset), z (update), n (new).

    ``n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn))`` (the reset gate multiplies the
    recurrent term *after* its matrix product, as in PyTorch and cuDNN) and
    ``h' = (1 - z) * n + z * h``.

    Args:
        x: (B, I) input at this step.
        h: (B, H) previous hidden state.
        w_ih, w_hh: (3H, I) and (3H, H) weights; b_ih, b_hh: (3H,) biases or None.

    Returns:
        (B, H) the new hidden state.
    """
    x_r, x_z, x_n = F.linear(x, w_ih, b_ih).chunk(3, dim=-1)  # 3 x (B, H)
    h_r, h_z, h_n = F.linear(h, w_hh, b_hh).chunk(3, dim=-1)  # 3 x (B, H)
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return (1.0 - z) * n + z * h


GATES = {"rnn": 1, "lstm": 4, "gru": 3}  # weight rows per hidden unit


def _check_sizes(input_size: int, hidden_size: int, num_layers: int = 1) -> None:
    if input_size < 1 or hidden_size < 1 or num_layers < 1:
        raise ValueError(
            f"input_size={input_size}, hidden_size={hidden_size} and num_layers={num_layers} "
            "must be >= 1"
        )


def _uniform_(params: list[nn.Parameter], hidden_size: int) -> None:
    """PyTorch's initialisation of every recurrent weight and bias: U(-1/sqrt(H), 1/sqrt(H))."""
    bound = 1.0 / math.sqrt(hidden_size)
    with torch.no_grad():
        for p in params:
            p.uniform_(-bound, bound)


def _check_input(x: Tensor, input_size: int, dims: int) -> None:
    if x.dim() != dims or x.size(-1) != input_size:
        want = "(B, T, I)" if dims == 3 else "(B, I)"
        raise ValueError(
            f"input of shape {tuple(x.shape)} does not match {want} with I={input_size}"
        )


# --------------------------------------------------------------------------------------------
# Cells: one step, parameters named as in nn.RNNCell / nn.LSTMCell / nn.GRUCell
# --------------------------------------------------------------------------------------------


class _Cell(nn.Module):
    kind = "rnn"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        _check_sizes(input_size, hidden_size)
        rows = GATES[self.kind] * hidden_size
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size))
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(rows)) if bias else None
        self.bias_hh = nn.Parameter(torch.empty(rows)) if bias else None
        _uniform_(list(self.parameters()), hidden_size)

    def _zeros(self, x: Tensor) -> Tensor:
        return x.new_zeros(x.size(0), self.hidden_size)  # (B, H)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias_ih is not None}"


class RNNCell(_Cell):
    """One step of an Elman RNN; equals ``nn.RNNCell`` with the same weights.

    Args:
        input_size: I. hidden_size: H. bias: with ``bias_ih`` and ``bias_hh``.
        nonlinearity: ``"tanh"`` (default) or ``"relu"``.
    """

    kind = "rnn"

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh"
    ) -> None:
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"nonlinearity={nonlinearity!r} is not one of {NONLINEARITIES}")
        super().__init__(input_size, hidden_size, bias)
        self.nonlinearity = nonlinearity

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        """(B, I) input and (B, H) state (zeros if None) -> (B, H) new state."""
        _check_input(x, self.input_size, 2)
        h = self._zeros(x) if h is None else h
        return rnn_step(
            x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh, self.nonlinearity
        )


class LSTMCell(_Cell):
    """One step of an LSTM; equals ``nn.LSTMCell`` with the same weights."""

    kind = "lstm"

    def forward(
        self, x: Tensor, state: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        """(B, I) input and (h, c), each (B, H) (zeros if None) -> new (h, c)."""
        _check_input(x, self.input_size, 2)
        state = (self._zeros(x), self._zeros(x)) if state is None else state
        return lstm_step(x, state, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)


class GRUCell(_Cell):
    """One step of a GRU; equals ``nn.GRUCell`` with the same weights."""

    kind = "gru"

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        """(B, I) input and (B, H) state (zeros if None) -> (B, H) new state."""
        _check_input(x, self.input_size, 2)
        h = self._zeros(x) if h is None else h
        return gru_step(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)


# --------------------------------------------------------------------------------------------
# Layers: a stack of cells unrolled over time, parameters named as in nn.RNN / nn.LSTM / nn.GRU
# --------------------------------------------------------------------------------------------


class _Recurrent(nn.Module):
    kind = "rnn"

    def __init__(
        self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True
    ) -> None:
        super().__init__()
        _check_sizes(input_size, hidden_size, num_layers)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias = bias
        rows = GATES[self.kind] * hidden_size
        for k in range(num_layers):
            fan_in = input_size if k == 0 else hidden_size
            self.register_parameter(f"weight_ih_l{k}", nn.Parameter(torch.empty(rows, fan_in)))
            self.register_parameter(f"weight_hh_l{k}", nn.Parameter(torch.empty(rows, hidden_size)))
            if bias:
                self.register_parameter(f"bias_ih_l{k}", nn.Parameter(torch.empty(rows)))
                self.register_parameter(f"bias_hh_l{k}", nn.Parameter(torch.empty(rows)))
        _uniform_(list(self.parameters()), hidden_size)

    def layer_weights(self, k: int) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        """The weights of layer ``k``: (w_ih, w_hh, b_ih, b_hh)."""
        if not 0 <= k < self.num_layers:
            raise ValueError(f"layer {k} does not exist in a {self.num_layers}-layer network")
        get = lambda name: getattr(self, f"{name}_l{k}", None)  # noqa: E731
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")

    def _initial(self, x: Tensor, given: Tensor | None) -> Tensor:
        if given is None:
            return x.new_zeros(self.num_layers, x.size(0), self.hidden_size)  # (L, B, H)
        want = (self.num_layers, x.size(0), self.hidden_size)
        if tuple(given.shape) != want:
            raise ValueError(f"initial state of shape {tuple(given.shape)}, expected {want}")
        return given

    def extra_repr(self) -> str:
        return (
            f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
            f"bias={self.bias}, batch_first=True"
        )


class RNN(_Recurrent):
    """A multi-layer Elman RNN; equals ``nn.RNN(..., batch_first=True)`` with the same weights.

    Args:
        input_size: I. hidden_size: H. num_layers: L stacked layers, each reading the hidden
            states of the one below. bias: with biases. nonlinearity: ``"tanh"`` or ``"relu"``.
    """

    kind = "rnn"

    def __init__(
        self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
        nonlinearity: str = "tanh",
    ) -> None:  # fmt: skip
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"nonlinearity={nonlinearity!r} is not one of {NONLINEARITIES}")
        super().__init__(input_size, hidden_size, num_layers, bias)
        self.nonlinearity = nonlinearity

    def forward(self, x: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Run over a sequence.

        Args:
            x: (B, T, I) inputs.
            h0: (L, B, H) initial states, zeros if None.

        Returns:
            (output, h_n): the last layer's state at every step, (B, T, H), and every layer's
            final state, (L, B, H).
        """
        _check_input(x, self.input_size, 3)
        h0 = self._initial(x, h0)
        finals = []
        for k in range(self.num_layers):
            h, steps = h0[k], []
            for t in range(x.size(1)):
                h = rnn_step(x[:, t], h, *self.layer_weights(k), self.nonlinearity)
                steps.append(h)
            x = torch.stack(steps, dim=1)  # (B, T, H): the input of the next layer
            finals.append(h)
        return x, torch.stack(finals)


class LSTM(_Recurrent):
    """A multi-layer LSTM; equals ``nn.LSTM(..., batch_first=True)`` with the same weights."""

    kind = "lstm"

    def forward(
        self, x: Tensor, state: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Run over a sequence.

        Args:
            x: (B, T, I) inputs.
            state: (h0, c0), each (L, B, H); zeros if None.

        Returns:
            (output, (h_n, c_n)): the last layer's hidden state at every step, (B, T, H), and
            every layer's final hidden and cell states, each (L, B, H).
        """
        _check_input(x, self.input_size, 3)
        h0 = self._initial(x, None if state is None else state[0])
        c0 = self._initial(x, None if state is None else state[1])
        final_h, final_c = [], []
        for k in range(self.num_layers):
            h, c, steps = h0[k], c0[k], []
            for t in range(x.size(1)):
                h, c = lstm_step(x[:, t], (h, c), *self.layer_weights(k))
                steps.append(h)
            x = torch.stack(steps, dim=1)  # (B, T, H)
            final_h.append(h)
            final_c.append(c)
        return x, (torch.stack(final_h), torch.stack(final_c))


class GRU(_Recurrent):
    """A multi-layer GRU; equals ``nn.GRU(..., batch_first=True)`` with the same weights."""

    kind = "gru"

    def forward(self, x: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(B, T, I) inputs and (L, B, H) initial states -> ((B, T, H) output, (L, B, H) h_n)."""
        _check_input(x, self.input_size, 3)
        h0 = self._initial(x, h0)
        finals = []
        for k in range(self.num_layers):
            h, steps = h0[k], []
            for t in range(x.size(1)):
                h = gru_step(x[:, t], h, *self.layer_weights(k))
                steps.append(h)
            x = torch.stack(steps, dim=1)  # (B, T, H)
            finals.append(h)
        return x, torch.stack(finals)


def cell_state_dict(layer_state: dict[str, Tensor], k: int = 0) -> dict[str, Tensor]:
    """The weights of layer ``k`` of an ``nn.RNN``/``nn.LSTM``/``nn.GRU`` (or of ours), renamed
    for the matching cell: ``weight_ih_l0`` -> ``weight_ih``, and so on."""
    suffix = f"_l{k}"
    out = {n[: -len(suffix)]: w for n, w in layer_state.items() if n.endswith(suffix)}
    if not out:
        raise ValueError(f"no weights of layer {k} among {sorted(layer_state)}")
    return out


# --------------------------------------------------------------------------------------------
# A character language model
# --------------------------------------------------------------------------------------------


@dataclass
class CharLSTMConfig:
    """Hyperparameters of ``CharLSTM``."""

    vocab_size: int  # V, number of token ids
    d_embed: int = 96  # size of each token's embedding vector
    hidden_size: int = 256  # H, LSTM state size
    num_layers: int = 1  # stacked LSTM layers
    dropout: float = 0.0  # between stacked layers and before the output layer

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_embed", "hidden_size", "num_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout={self.dropout} must be in [0, 1)")


class CharLSTM(nn.Module):
    """Embedding, ``nn.LSTM`` (PyTorch's fused kernel, equal to ``LSTM`` above) and a linear
    output layer: a next-token model with the interface of ``llmbook_utils.gpt.GPT``."""

    def __init__(self, config: CharLSTMConfig) -> None:
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_embed)
        self.lstm = nn.LSTM(
            config.d_embed, config.hidden_size, num_layers=config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0, batch_first=True,
        )  # fmt: skip
        self.drop = nn.Dropout(config.dropout)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size)

    def num_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def forward(
        self,
        idx: Tensor,
        targets: Tensor | None = None,
        state: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Logits for every position, and the mean cross-entropy when targets are given.

        Args:
            idx: (B, T) token ids.
            targets: (B, T) next-token ids, or None.
            state: an (h, c) state to continue from, each (L, B, H); zeros if None.

        Returns:
            (logits (B, T, V), loss or None).
        """
        if idx.dim() != 2:
            raise ValueError(f"idx must be (B, T), got shape {tuple(idx.shape)}")
        out, _ = self.lstm(self.tok_emb(idx), state)  # (B, T, H)
        logits = self.lm_head(self.drop(out))  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss

    @torch.no_grad()
    def generate(
        self, idx: Tensor, max_new_tokens: int, temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:  # fmt: skip
        """Append ``max_new_tokens`` sampled tokens to ``idx`` (B, T), carrying the state: each
        new token costs one LSTM step, whatever the length of the text so far."""
        if temperature <= 0:
            raise ValueError(f"temperature={temperature} must be > 0")
        was_training = self.training
        self.eval()
        out, state = self.lstm(self.tok_emb(idx))  # (B, T, H), read the prompt once
        logits = self.lm_head(out[:, -1])  # (B, V)
        for _ in range(max_new_tokens):
            probs = torch.softmax(logits / temperature, dim=-1)
            nxt = torch.multinomial(probs, 1, generator=generator)  # (B, 1)
            idx = torch.cat([idx, nxt], dim=1)
            out, state = self.lstm(self.tok_emb(nxt), state)  # (B, 1, H): one step
            logits = self.lm_head(out[:, -1])
        self.train(was_training)
        return idx
