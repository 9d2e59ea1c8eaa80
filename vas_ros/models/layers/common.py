"""Small building blocks shared by the model families: conv + norm + activation, SAME pools.

`ConvNormAct` is the one conv + BatchNorm (+ ReLU) layer of every family: it wraps an
already-built conv of any kind (2-D, 3-D, iTGM, (2+1)D) in a flat Sequential (optional
pad, conv, bn, relu) that checkpoints' keys and BN folding rely on.

The evolved architectures come from TensorFlow code that pads SAME (see `padding`).
`conv2d_bn_act` and `Pool2dSame` work the padding out for a known input size when the
model is built (static shapes keep `torch.compile` and ONNX export simple) and add an
explicit pad only when it is asymmetric (even kernels, some strides).

Gating layers (`SqueezeExcite`, `ContextGating`) pool over the whole clip, not per frame.
They take either `[B, C, T, H, W]` tensors or frames folded into the batch,
`[B*T, C, H, W]`, with `frames=T` given at construction; `frames=1` on folded frames
gates each frame by itself (what a causal, streamable model needs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vas_ros.models.layers.padding import same_pads, symmetric_padding


def _pair(value) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        return int(value[0]), int(value[1])
    return int(value), int(value)


class ConvNormAct(nn.Sequential):
    """An already-built conv, BatchNorm (2-D or 3-D by `dims`), optional ReLU.

    Flat on purpose: (optional `pad`, conv, bn, relu) in that order, so checkpoints keep
    their keys ('0.weight', '1.running_mean', ...) and inference code can fold the
    BatchNorm into a conv that directly precedes it. `zero_gamma` starts the BN scale at 0,
    so a residual branch ending here starts as the identity.
    """

    def __init__(self, conv: nn.Module, channels: int, dims: int = 2, act: bool = True, *,
                 pad: nn.Module | None = None, zero_gamma: bool = False):
        norms = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
        if dims not in norms:
            raise ValueError(f'dims must be 2 or 3, got {dims!r}')
        norm = norms[dims](channels)
        if zero_gamma:
            nn.init.zeros_(norm.weight)
        layers = ([pad] if pad is not None else []) + [conv, norm]
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


def conv2d_bn_act(in_ch: int, out_ch: int, kernel=1, stride=1, *, in_hw=None,
                  groups: int = 1, act: bool = True, pads=None) -> ConvNormAct:
    """Bias-free Conv2d + BN (+ ReLU), SAME-padded for an `in_hw` input.

    `in_hw` may be left out only when SAME padding is the same for every size (odd
    kernels at stride 1). `pads` (F.pad amounts, last dim first) replaces SAME, e.g. for
    a causal layer that pads only before the data in time.
    """
    kernel, stride = _pair(kernel), _pair(stride)
    if pads is not None:
        conv = nn.Conv2d(in_ch, out_ch, kernel, stride, 0, groups=groups, bias=False)
        return ConvNormAct(conv, out_ch, 2, act, pad=nn.ZeroPad2d(tuple(pads)))
    padding = symmetric_padding(kernel, stride, None if in_hw is None else _pair(in_hw))
    pad = None
    if padding is None:
        if in_hw is None:
            raise ValueError(f'SAME padding for kernel {kernel}, stride {stride} depends on '
                             f'the input size: give in_hw')
        pad, padding = nn.ZeroPad2d(same_pads(_pair(in_hw), kernel, stride)), (0, 0)
    conv = nn.Conv2d(in_ch, out_ch, kernel, stride, padding, groups=groups, bias=False)
    return ConvNormAct(conv, out_ch, 2, act, pad=pad)


class Pool2dSame(nn.Module):
    """Max or average pooling with SAME padding for an `in_hw` input.

    Max pooling pads with -inf; average pooling divides by the number of real (unpadded)
    values in each window, like TensorFlow. `pads` (F.pad amounts) replaces SAME.
    """

    def __init__(self, kind: str, kernel, stride, in_hw, pads=None):
        super().__init__()
        if kind not in ('max', 'avg'):
            raise ValueError(f'pool kind must be "max" or "avg", got {kind!r}')
        kernel, stride, in_hw = _pair(kernel), _pair(stride), _pair(in_hw)
        padding = symmetric_padding(kernel, stride, in_hw) if pads is None else None
        explicit = None if pads is None else list(pads)
        if padding is None:
            padding = (0, 0)
            if explicit is None:
                explicit = same_pads(in_hw, kernel, stride)
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
