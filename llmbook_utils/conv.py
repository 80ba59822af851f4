"""2-D convolution from scratch: ``unfold`` (im2col) followed by one matrix product.

Paper: LeCun et al., "Gradient-Based Learning Applied to Document Recognition", 1998 (LeNet-5).

A convolution slides a small kernel over an image and takes a dot product at every position.
``unfold`` copies every kernel-sized patch of the (padded) input into a column, so that all the
dot products of all the output channels become a single matrix product with the flattened
kernels. The result equals ``torch.nn.functional.conv2d`` (deep-learning libraries compute a
cross-correlation and call it a convolution: the kernel is not flipped).

Shape legend: B batch, C_in / C_out input and output channels, H / W image height and width,
kH / kW kernel height and width, P number of patches (output positions).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _pair(value: int | tuple[int, int], name: str, minimum: int) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or any(v < minimum for v in pair):
        raise ValueError(f"{name}={value} must be an int or a pair of ints >= {minimum}")
    return pair


def conv_output_size(size: int, kernel: int, padding: int = 0, stride: int = 1) -> int:
    """Output length along one axis: ``floor((size + 2 * padding - kernel) / stride) + 1``."""
    return (size + 2 * padding - kernel) // stride + 1


def conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
) -> Tensor:
    """2-D convolution (cross-correlation) computed as unfold + matrix product.

    Args:
        x: (B, C_in, H, W) input images.
        weight: (C_out, C_in, kH, kW) kernels.
        bias: (C_out,) or None.
        stride: step between kernel positions, one int or (along H, along W).
        padding: zeros added on each side, one int or (along H, along W).

    Returns:
        (B, C_out, H_out, W_out) with ``H_out = floor((H + 2 pad - kH) / stride) + 1`` (same
        for W); equal to ``F.conv2d(x, weight, bias, stride, padding)``.
    """
    stride, padding = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    if x.dim() != 4 or weight.dim() != 4 or x.size(1) != weight.size(1):
        raise ValueError(
            f"input {tuple(x.shape)} must be (B, C_in, H, W) and weight {tuple(weight.shape)} "
            "(C_out, C_in, kH, kW) with the same C_in"
        )
    batch, _, height, width = x.shape
    c_out, _, k_h, k_w = weight.shape
    h_out = conv_output_size(height, k_h, padding[0], stride[0])
    w_out = conv_output_size(width, k_w, padding[1], stride[1])
    if h_out < 1 or w_out < 1:
        raise ValueError(
            f"kernel {k_h}x{k_w} does not fit an input of {height}x{width} with padding={padding}"
        )
    cols = F.unfold(x, (k_h, k_w), padding=padding, stride=stride)  # (B, C_in*kH*kW, P)
    out = weight.reshape(c_out, -1) @ cols  # (C_out, C_in*kH*kW) @ (B, ., P) -> (B, C_out, P)
    if bias is not None:
        out = out + bias[:, None]
    return out.reshape(batch, c_out, h_out, w_out)  # (B, C_out, H_out, W_out)


class Conv2d(nn.Module):
    """A convolution layer with learned kernels; parameters named and initialised as in
    ``nn.Conv2d``, so ``load_state_dict`` copies weights in both directions.

    Args:
        in_channels: C_in. out_channels: C_out. kernel_size: kH = kW, or (kH, kW).
        stride, padding: as in ``conv2d``. bias: learn a bias per output channel.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0, bias: bool = True,
    ) -> None:  # fmt: skip
        super().__init__()
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"in_channels={in_channels}, out_channels={out_channels} must be >= 1")
        k_h, k_w = _pair(kernel_size, "kernel_size", 1)
        self.stride, self.padding = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, k_h, k_w))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        # nn.Conv2d's default: Kaiming-uniform with a = sqrt(5), i.e. U(-1/sqrt(fan_in), ...).
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(in_channels * k_h * k_w)
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) -> (B, C_out, H_out, W_out)."""
        return conv2d(x, self.weight, self.bias, self.stride, self.padding)

    def extra_repr(self) -> str:
        c_out, c_in, k_h, k_w = self.weight.shape
        return f"{c_in}, {c_out}, kernel_size=({k_h}, {k_w}), stride={self.stride}, " + (
            f"padding={self.padding}, bias={self.bias is not None}"
        )
