"""Memory and compute arithmetic of training: what fits, and how long it takes.

Four estimates, each a few lines of arithmetic that a reader can redo by hand:

- **Parameters** of a GPT-2-style or Llama-style decoder from its configuration
  (``gpt_parameter_count``, ``llama_parameter_count``).
- **Model states** in bytes per parameter: weights, gradients and AdamW's two moments, in
  float32 or in mixed precision (``model_state_bytes``), and what ZeRO's three stages of
  sharding leave on each of ``N_d`` data-parallel devices (Rajbhandari et al., 2020,
  https://arxiv.org/abs/1910.02054). Mixed-precision AdamW needs 2 + 2 + K bytes with K = 12
  (an fp32 master copy and two fp32 moments): 16 bytes per parameter.
- **Activations** of one Transformer layer, after Korthikanti et al., 2022,
  https://arxiv.org/abs/2205.05198: ``s b h (34 + 5 a s / h)`` bytes in 16-bit precision with
  dropout, ``2 s b h`` per layer with full activation checkpointing (only the layer's input is
  kept; Chen et al., 2016, https://arxiv.org/abs/1604.06174) (``activation_bytes``).
- **Compute**: ``6 N D`` FLOPs to train N parameters on D tokens (Kaplan et al., 2020,
  https://arxiv.org/abs/2001.08361), and the wall-clock time on ``n`` accelerators at a model
  FLOPs utilisation (MFU) (``training_flops``, ``training_seconds``, ``mfu``).

Symbols: N parameters, D training tokens, s sequence length, b micro-batch size, h hidden size
(d_model), a attention heads, L layers, N_d data-parallel devices.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmbook_utils.gpt import GPTConfig
from llmbook_utils.history import training_days, training_flops_6nd
from llmbook_utils.llama import LlamaConfig

ZERO_STAGES = (0, 1, 2, 3)
PRECISIONS = ("fp32", "mixed")


def gpt_parameter_count(config: GPTConfig) -> int:
    """Parameters of ``llmbook_utils.gpt.GPT`` (and of Hugging Face's ``GPT2LMHeadModel``).

    Per block: attention ``4 h^2 + 4 h`` (the fused q/k/v projection and the output
    projection, with biases), feed-forward ``2 h F + F + h``, two LayerNorms ``4 h``; plus the
    token table ``V h``, the position table ``T h``, the final LayerNorm ``2 h`` and, when the
    output layer is not tied to the token table, another ``V h``. Without biases the bias and
    LayerNorm-shift terms drop out.

    Args:
        config: the model's configuration.

    Returns:
        The number of distinct parameters (124,439,808 for ``GPTConfig.from_name("gpt2")``).
    """
    h, f, b = config.d_model, config.ff_width, int(config.bias)
    attention = 3 * h * h + 3 * h * b + h * h + h * b
    feed_forward = h * f + f * b + f * h + h * b
    norms = 2 * (h + h * b)
    per_block = attention + feed_forward + norms
    embeddings = config.vocab_size * h + config.context_length * h
    head = 0 if config.tie_weights else config.vocab_size * h
    return config.n_layers * per_block + embeddings + (h + h * b) + head


def llama_parameter_count(config: LlamaConfig) -> int:
    """Parameters of a Llama-style decoder (RMSNorm, grouped-query attention, SwiGLU, no biases).

    Per block: queries and output ``2 h^2``, keys and values ``2 h (G h / H)``, SwiGLU ``3 h F``,
    two RMSNorm gains ``2 h``; plus the token table ``V h``, the final RMSNorm ``h`` and an
    untied output layer ``V h``. Llama 2 7B: 6,738,415,616.
    """
    h = config.d_model
    kv_width = config.n_kv_heads * (h // config.n_heads)
    per_block = 2 * h * h + 2 * h * kv_width + 3 * h * config.d_ff + 2 * h
    head = 0 if config.tie_weights else config.vocab_size * h
    return config.n_layers * per_block + config.vocab_size * h + h + head


@dataclass(frozen=True)
class StateBytes:
    """Bytes per parameter of the model states (activations excluded).

    Attributes:
        weights: the copy the forward pass reads (fp32: 4; mixed precision: the 16-bit copy, 2).
        gradients: one gradient per weight, in the weights' precision.
        optimizer: the optimiser's states; AdamW keeps two moments (8 bytes in fp32) and, in
            mixed precision, an fp32 master copy of the weights (4 more): K = 12.
    """

    weights: float
    gradients: float
    optimizer: float

    @property
    def total(self) -> float:
        """Bytes per parameter of all three."""
        return self.weights + self.gradients + self.optimizer


def model_state_bytes(
    precision: str = "mixed", optimizer: str = "adamw", zero_stage: int = 0, n_devices: int = 1
) -> StateBytes:
    """Bytes per parameter held by *one* device for the weights, gradients and optimiser.

    ZeRO (Rajbhandari et al., 2020) shards across the ``n_devices`` data-parallel workers:
    stage 1 the optimiser states, stage 2 also the gradients, stage 3 also the weights. FSDP's
    ``fully_shard`` is stage 3.

    Args:
        precision: ``"fp32"`` (weights, gradients, moments in float32) or ``"mixed"`` (16-bit
            weights and gradients, fp32 master weights and moments: the ZeRO paper's setting).
        optimizer: ``"adamw"`` (two moments) or ``"sgd"`` (plain SGD, no state; in mixed
            precision it still keeps the fp32 master copy).
        zero_stage: 0 (plain data parallelism: everything replicated), 1, 2 or 3.
        n_devices: data-parallel devices N_d sharing the states.

    Returns:
        A ``StateBytes``; mixed-precision AdamW without sharding totals 16 bytes.

    Raises:
        ValueError: for an unknown precision, optimiser or stage, or ``n_devices < 1``.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not one of {PRECISIONS}")
    if optimizer not in ("adamw", "sgd"):
        raise ValueError(f"optimizer={optimizer!r} is not 'adamw' or 'sgd'")
    if zero_stage not in ZERO_STAGES:
        raise ValueError(f"zero_stage={zero_stage} is not one of {ZERO_STAGES}")
    if n_devices < 1:
        raise ValueError(f"n_devices={n_devices} must be >= 1")
    width = 4 if precision == "fp32" else 2
    moments = 8 if optimizer == "adamw" else 0
    master = 4 if precision == "mixed" else 0
    weights, gradients, states = float(width), float(width), float(moments + master)
    if zero_stage >= 1:
        states /= n_devices
    if zero_stage >= 2:
        gradients /= n_devices
    if zero_stage >= 3:
        weights /= n_devices
    return StateBytes(weights, gradients, states)


def activation_bytes(
    seq_len: int,
    batch_size: int,
    d_model: int,
    n_heads: int,
    n_layers: int,
    *,
    bytes_per_value: int = 2,
    dropout: bool = True,
    flash_attention: bool = False,
    checkpointing: bool = False,
) -> int:
    """Activations kept for the backward pass by a stack of Transformer layers.

    Per layer (Korthikanti et al., 2022, table 2, for 16-bit values and 1-byte dropout masks):
    ``s b h (34 + 5 a s / h)``: attention ``11 s b h + 5 a s^2 b``, feed-forward ``19 s b h``,
    the two LayerNorms ``4 s b h``. Without dropout the three ``s b h`` masks and the
    attention-dropout terms (``3 a s^2 b``) go; a fused attention kernel (FlashAttention, or
    PyTorch's ``scaled_dot_product_attention``) stores no ``s x s`` matrix at all. With full
    activation checkpointing only each layer's input (``s b h`` values) is kept, and one layer's
    activations are recomputed at a time during the backward pass.

    Args:
        seq_len: s. batch_size: b. d_model: h. n_heads: a. n_layers: L.
        bytes_per_value: 2 for bf16/fp16 activations, 4 for float32 (masks stay 1 byte).
        dropout: whether dropout masks are stored.
        flash_attention: whether attention is fused (no ``s x s`` scores or probabilities kept).
        checkpointing: full activation checkpointing of every layer.

    Returns:
        Bytes for all L layers (the embeddings and the output layer's logits are not included).
    """
    for name, value in (("seq_len", seq_len), ("batch_size", batch_size), ("d_model", d_model),
                        ("n_heads", n_heads), ("n_layers", n_layers)):  # fmt: skip
        if value < 1:
            raise ValueError(f"{name}={value} must be >= 1")
    s, b, h, a, w = seq_len, batch_size, d_model, n_heads, bytes_per_value
    if checkpointing:
        return n_layers * w * s * b * h
    # Values of s b h size, each w bytes: attention 5 (input, q, k, v, output-proj input),
    # feed-forward 9 (input, 4h before and 4h after GELU), LayerNorms 2; masks: 2 of 1 byte.
    per_layer = w * 16 * s * b * h + (2 * s * b * h if dropout else 0)
    if not flash_attention:
        per_layer += w * a * s * s * b  # softmax probabilities
        if dropout:
            per_layer += (1 + w) * a * s * s * b  # attention-dropout mask and its output
    return n_layers * per_layer


def training_flops(n_params: float, n_tokens: float) -> float:
    """``6 N D``: 2 FLOPs per parameter per token forward, 4 backward (Kaplan et al., 2020);
    chapter 1's ``history.training_flops_6nd``.

    Attention's own ``s^2`` term (``12 L s h`` per token) is left out, as in the published
    estimates; it matters only when s is comparable to 6 h.
    """
    return training_flops_6nd(n_params, n_tokens)


def training_seconds(
    flops: float, n_devices: int, peak_flops_per_device: float, mfu: float = 0.4
) -> float:
    """Wall-clock seconds to do ``flops`` on ``n_devices`` at a model FLOPs utilisation
    (chapter 1's ``history.training_days``, in seconds).

    MFU is the share of the peak that the model's own FLOPs (6ND) reach: 0.3 to 0.55 for large
    well-tuned runs (PaLM: 0.462).

    Raises:
        ValueError: for non-positive inputs or ``mfu`` outside (0, 1].
    """
    return training_days(flops, n_devices, peak_flops_per_device, mfu) * 86_400


def mfu(
    n_params: float, tokens_per_second: float, peak_flops: float, attention_flops: float = 0.0
) -> float:
    """Model FLOPs utilisation of a measured run: ``(6 N + attention) * tokens/s / peak``.

    Args:
        n_params: N.
        tokens_per_second: measured training throughput (all devices together).
        peak_flops: the peak FLOP/s of the same devices together.
        attention_flops: extra FLOPs per token of attention (``12 L s h`` for training).
    """
    if peak_flops <= 0:
        raise ValueError(f"peak_flops={peak_flops} must be > 0")
    return (6.0 * n_params + attention_flops) * tokens_per_second / peak_flops
