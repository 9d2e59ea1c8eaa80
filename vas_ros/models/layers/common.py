"""Small building blocks with TensorFlow-style SAME padding, shared by the model families.

The evolved architectures come from TensorFlow code that pads SAME: a stride-s layer has
ceil(n / s) output positions, and when the padding is odd the extra row/column goes after
the data. PyTorch layers only pad symmetrically, so the helpers here work out the padding
for a known input size when the model is built (static shapes keep `torch.compile` and
ONNX export simple) and add an explicit pad only when it is asymmetric (even kernels,
some strides).

Gating layers (`SqueezeExcite`, `ContextGating`) pool over the whole clip, not per frame.
They take either `[B, C, T, H, W]` tensors or frames folded into the batch,
`[B*T, C, H, W]`, with `frames=T` given at construction.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _pair(value) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        return int(value[0]), int(value[1])
    return int(value), int(value)


def same_output(size: int, stride: int) -> int:
    """Positions a SAME-padded layer with this stride produces from `size` inputs."""
    return -(-int(size) // int(stride))


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding that makes a layer SAME: ceil(size / stride) outputs."""
    total = max((same_output(size, stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _padding_2d(in_hw, kernel, stride):
    """Symmetric (ph, pw) for the layer itself, or None plus the (l, r, t, b) pad to add."""
    (kh, kw), (sh, sw) = _pair(kernel), _pair(stride)
    if in_hw is None:  # unknown size: exact SAME only for odd kernels, as PyTorch does
        return (kh // 2, kw // 2), None
    h, w = _pair(in_hw)
    top, bottom = same_padding(h, kh, sh)
    left, right = same_padding(w, kw, sw)
    if top == bottom and left == right:
        return (top, left), None
    return (0, 0), (left, right, top, bottom)


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias) + BatchNorm + optional ReLU, SAME-padded for an `in_hw` input.

    Kept as a flat Sequential (optional pad, conv, bn, relu) so that inference code can
    fold the BatchNorm into the convolution.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel=1, stride=1, *, in_hw=None,
                 groups: int = 1, act: bool = True):
        padding, explicit = _padding_2d(in_hw, kernel, stride)
        layers: list[nn.Module] = []
        if explicit is not None:
            layers.append(nn.ZeroPad2d(explicit))
        layers.append(nn.Conv2d(in_ch, out_ch, _pair(kernel), _pair(stride), padding,
                                groups=groups, bias=False))
        layers.append(nn.BatchNorm2d(out_ch))
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class Pool2dSame(nn.Module):
    """Max or average pooling with SAME padding for an `in_hw` input.

    Max pooling pads with -inf; average pooling divides by the number of real (unpadded)
    values in each window, like TensorFlow.
    """

    def __init__(self, kind: str, kernel, stride, in_hw):
        super().__init__()
        if kind not in ('max', 'avg'):
            raise ValueError(f'pool kind must be "max" or "avg", got {kind!r}')
        kernel, stride, in_hw = _pair(kernel), _pair(stride), _pair(in_hw)
        padding, explicit = _padding_2d(in_hw, kernel, stride)
        self.kind = kind
        self.pad = None
        self.register_buffer('scale', None, persistent=False)
        if kind == 'max':
            if explicit is not None:
                self.pad = nn.ConstantPad2d(explicit, float('-inf'))
            self.pool = nn.MaxPool2d(kernel, stride, padding)
        else:
            if explicit is None:
                self.pool = nn.AvgPool2d(kernel, stride, padding, count_include_pad=False)
            else:
                self.pad = nn.ZeroPad2d(explicit)
                self.pool = nn.AvgPool2d(kernel, stride)
                ones = F.pad(torch.ones(1, 1, *in_hw), explicit)
                real_fraction = F.avg_pool2d(ones, kernel, stride)
                self.register_buffer('scale', 1.0 / real_fraction, persistent=False)

    def forward(self, x):
        if self.pad is not None:
            x = self.pad(x)
        x = self.pool(x)
        if self.scale is not None:
            x = x * self.scale
        return x


def clip_mean(x: torch.Tensor, frames: int = 1) -> torch.Tensor:
    """Per-clip channel means [B, C] of `[B, C, T, H, W]` or folded `[B*T, C, H, W]`."""
    if x.dim() == 5:
        return x.mean(dim=(2, 3, 4))
    n, c, h, w = x.shape
    return x.reshape(n // frames, frames, c, h, w).mean(dim=(1, 3, 4))


def apply_channel_gate(x: torch.Tensor, gate: torch.Tensor, frames: int = 1) -> torch.Tensor:
    """Multiply every position of each clip by its per-channel gate [B, C]."""
    if x.dim() == 5:
        return x * gate[:, :, None, None, None]
    n, c, h, w = x.shape
    clip = x.reshape(n // frames, frames, c, h, w) * gate[:, None, :, None, None]
    return clip.reshape(n, c, h, w)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation over a whole clip: mean -> FC down -> ReLU -> FC up -> sigmoid."""

    def __init__(self, channels: int, reduced: int, frames: int = 1):
        super().__init__()
        self.frames = int(frames)
        self.down = nn.Linear(channels, reduced)
        self.up = nn.Linear(reduced, channels)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """Per-clip channel weights in (0, 1), shape [B, C]."""
        return torch.sigmoid(self.up(torch.relu(self.down(clip_mean(x, self.frames)))))

    def forward(self, x):
        return apply_channel_gate(x, self.gate(x), self.frames)


class ContextGating(nn.Module):
    """Context gating (Miech et al.): mean over the clip -> FC (same width) -> sigmoid."""

    def __init__(self, channels: int, frames: int = 1):
        super().__init__()
        self.frames = int(frames)
        self.fc = nn.Linear(channels, channels)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """Per-clip channel weights in (0, 1), shape [B, C]."""
        return torch.sigmoid(self.fc(clip_mean(x, self.frames)))

    def forward(self, x):
        return apply_channel_gate(x, self.gate(x), self.frames)
