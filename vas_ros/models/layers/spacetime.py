"""Space-time layers for 5-D video tensors [B, C, T, H, W]: the building blocks of EvaNet.

- `SameConv3d`: a 3-D convolution with TensorFlow-style SAME padding (output size
  ceil(n / stride) in every dimension, TF's alignment), so architectures transcribed
  from the released TensorFlow code keep their feature-map sizes.
- `Conv2Plus1d`: (2+1)D convolution, temporal T x 1 x 1 first, then 1 x k x k, with a BN +
  ReLU in between. As in the released EvaNet code the middle width is half the output
  width (`cout // 2`), not R(2+1)D's parameter-matching formula.
- `ITGMConv3d`: the inflated temporal Gaussian mixture convolution. A 2-D kernel S is
  inflated in time by a per-(Cin, Cout) temporal kernel that mixes N shared Cauchy-shaped
  components with learned centres and widths; its parameter count does not depend on the
  temporal length L, and L = 1 is exactly a per-frame 2-D convolution.
- `SpaceTimePool`: max / average pooling with SAME padding (padding never enters a max or
  an average, as in TensorFlow).
- `make_conv`, `pointwise`: conv factories used by the EvaNet builder, which wraps them in
  `common.ConvNormAct` for BN (+ ReLU).

`causal=True` (every conv type and the pool) puts the temporal padding before the data
(`padding.causal_pads`), so the output at frame t never sees a later frame; the number
of outputs is SAME's.

Every SAME decision and amount comes from `padding`: a layer uses its own symmetric
padding when SAME is symmetric for every input size (odd kernels at stride 1), else pads
explicitly in forward from the input's shape.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vas_ros.models.layers.padding import causal_pads, same_pads, symmetric_padding

CONV_TYPES = ('3d', 'itgm', '2plus1d')
POOL_KINDS = ('max', 'avg')


def _triple(value) -> tuple[int, int, int]:
    if isinstance(value, int):
        return (value, value, value)
    value = tuple(int(v) for v in value)
    if len(value) != 3:
        raise ValueError(f'expected an int or three ints, got {value}')
    return value


def kaiming_init_(weight: torch.Tensor) -> None:
    """Variance-scaling (factor 2, fan-in, normal) init used by the released code."""
    nn.init.kaiming_normal_(weight, mode='fan_in', nonlinearity='relu')


class SameConv3d(nn.Conv3d):
    """Conv3d with TF SAME padding (output ceil(n / stride), TF's alignment).

    Odd kernels at stride 1 use the conv's own symmetric padding; everything else pads
    the input explicitly to exactly the length the windows cover (see
    `padding.same_padding` for the CPU bug this avoids).
    """

    def __init__(self, cin: int, cout: int, kernel, stride=1, bias: bool = False,
                 causal: bool = False):
        kernel, stride = _triple(kernel), _triple(stride)
        self.causal = bool(causal) and (kernel[0] > 1 or stride[0] > 1)
        self._static = None if self.causal else symmetric_padding(kernel, stride)
        super().__init__(cin, cout, kernel, stride=stride, padding=self._static or 0,
                         bias=bias)
        kaiming_init_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._static is None:
            x = F.pad(x, _pads(x, self.kernel_size, self.stride, self.causal))
        return super().forward(x)


def _pads(x: torch.Tensor, kernel, stride, causal: bool) -> list[int]:
    """Explicit SAME (cropped) or causal padding of a [B, C, T, H, W] input."""
    if causal:
        return causal_pads(x.shape[-3:], kernel, stride)
    return same_pads(x.shape[-3:], kernel, stride, crop=True)


class Conv2Plus1d(nn.Module):
    """(2+1)D conv: T x 1 x 1 conv to `mid` channels, BN, ReLU, then 1 x k x k conv to cout.

    No BN after the spatial conv: callers add it (as for every other conv type), so all
    conv types are interchangeable inside a branch.
    """

    def __init__(self, cin: int, cout: int, kernel, stride=1, mid_channels: int | None = None,
                 causal: bool = False):
        super().__init__()
        (kt, kh, kw), (st, sh, sw) = _triple(kernel), _triple(stride)
        mid = mid_channels if mid_channels is not None else max(cout // 2, 1)
        self.mid_channels = mid
        self.temporal = SameConv3d(cin, mid, (kt, 1, 1), (st, 1, 1), causal=causal)
        self.bn = nn.BatchNorm3d(mid)
        self.spatial = SameConv3d(mid, cout, (1, kh, kw), (1, sh, sw))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(F.relu(self.bn(self.temporal(x)), inplace=True))

    def fold_bn_(self) -> Conv2Plus1d:
        """Fold the middle BatchNorm into the temporal conv (eval only, in place)."""
        from torch.nn.utils.fusion import fuse_conv_bn_eval

        if isinstance(self.bn, nn.BatchNorm3d) and self.bn.running_mean is not None:
            self.temporal = fuse_conv_bn_eval(self.temporal, self.bn)
            self.bn = nn.Identity()
        return self


class ITGMConv3d(nn.Module):
    """Inflated temporal Gaussian mixture conv (EvaNet's iTGM layer).

    Parameters: `spatial` S [Cout, Cin, kh, kw]; `mixing` A [Cout, Cin, N] (softmax over N);
    `centre_raw` and `width_raw` [N], shared by all channel pairs. Component n is
    k_n(t) = 1 / (1 + pi (t - c_n)^2 / gamma_n), t = 0..L-1, with
    c_n = (L-1)(tanh(centre_raw_n) + 1)/2 and gamma_n = exp(1.5 - 2|tanh(width_raw_n)|),
    normalised to sum 1 over t. The temporal kernel T[co, ci, t] = sum_n softmax(A)_n k_n(t)
    sums to 1 over t, and the 3-D kernel W[co, ci, t, i, j] = S[co, ci, i, j] T[co, ci, t]
    is built once per call and run through one conv3d. Parameter count:
    kh*kw*Cin*Cout + N*Cin*Cout + 2N, the same for every L.
    """

    def __init__(self, cin: int, cout: int, kernel, stride=1, num_components: int = 4,
                 causal: bool = False):
        super().__init__()
        self.length, kh, kw = _triple(kernel)
        self.stride = _triple(stride)
        self.causal = bool(causal)
        self.kernel_size = (self.length, kh, kw)
        self.num_components = int(num_components)
        if self.num_components < 1:
            raise ValueError(f'num_components must be >= 1, got {num_components}')
        self.spatial = nn.Parameter(torch.empty(cout, cin, kh, kw))
        self.mixing = nn.Parameter(torch.empty(cout, cin, self.num_components))
        self.centre_raw = nn.Parameter(torch.empty(self.num_components))
        self.width_raw = nn.Parameter(torch.empty(self.num_components))
        self._static = None if self.causal else symmetric_padding(self.kernel_size, self.stride)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        kaiming_init_(self.spatial)
        nn.init.trunc_normal_(self.mixing, std=1.0, a=-2.0, b=2.0)
        nn.init.normal_(self.centre_raw, 0.0, 0.5)
        nn.init.normal_(self.width_raw, 0.0, 0.1)

    def components(self) -> torch.Tensor:
        """[N, L] Cauchy-shaped temporal components, each summing to 1."""
        length = self.length
        t = torch.arange(length, device=self.spatial.device, dtype=self.spatial.dtype)
        centre = (length - 1) * (torch.tanh(self.centre_raw) + 1) / 2
        gamma = torch.exp(1.5 - 2 * torch.tanh(self.width_raw).abs())
        shape = 1.0 / (1.0 + math.pi * (t[None, :] - centre[:, None]) ** 2 / gamma[:, None])
        return shape / shape.sum(dim=1, keepdim=True)

    def temporal_kernel(self) -> torch.Tensor:
        """[Cout, Cin, L] soft mixture of the components; sums to 1 over L for each pair."""
        return torch.softmax(self.mixing, dim=-1) @ self.components()

    def weight(self) -> torch.Tensor:
        """The inflated 3-D kernel [Cout, Cin, L, kh, kw]."""
        return self.spatial[:, :, None, :, :] * self.temporal_kernel()[:, :, :, None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._static is None:
            x = F.pad(x, _pads(x, self.kernel_size, self.stride, self.causal))
        return F.conv3d(x, self.weight(), stride=self.stride, padding=self._static or 0)

    def as_conv3d(self) -> SameConv3d:
        """The same layer as a plain conv holding the inflated kernel, for inference:
        the mixture (a softmax, a matmul and the inflation) is not recomputed per call."""
        cout, cin = self.spatial.shape[:2]
        conv = SameConv3d(cin, cout, self.kernel_size, self.stride, causal=self.causal)
        conv.to(self.spatial.device)
        with torch.no_grad():
            conv.weight.copy_(self.weight())
        return conv

    def extra_repr(self) -> str:
        cout, cin = self.spatial.shape[:2]
        return (f'{cin}, {cout}, kernel_size={self.kernel_size}, stride={self.stride}, '
                f'num_components={self.num_components}')


def make_conv(conv_type: str, cin: int, cout: int, kernel, stride=1,
              causal: bool = False) -> nn.Module:
    """A bias-free space-time conv of the given type ('3d', 'itgm' or '2plus1d').

    An iTGM conv of temporal length 1 is exactly a 2-D conv (its temporal kernel is the
    constant 1 and its mixture parameters get no gradient), so it is built as a plain
    1 x kh x kw conv, as the released code does; parameter counts then match it.
    """
    if conv_type == '3d' or (conv_type == 'itgm' and _triple(kernel)[0] == 1):
        return SameConv3d(cin, cout, kernel, stride, causal=causal)
    if conv_type == 'itgm':
        return ITGMConv3d(cin, cout, kernel, stride, causal=causal)
    if conv_type == '2plus1d':
        return Conv2Plus1d(cin, cout, kernel, stride, causal=causal)
    raise ValueError(f'unknown conv type {conv_type!r}; expected one of {CONV_TYPES}')


def pointwise(cin: int, cout: int, bias: bool = False) -> SameConv3d:
    """1 x 1 x 1 conv (channel projection)."""
    return SameConv3d(cin, cout, 1, 1, bias=bias)


def window_max(x: torch.Tensor, dim: int, kernel: int) -> torch.Tensor:
    """Stride-1 SAME max over `dim` with an odd `kernel` (padding never wins a max).

    Where every window reaches an end of the axis (EvaNet's 7- and 11-frame pools on 8
    frames), each output is a running max from the start or from the end: about 3 passes
    over the tensor. Otherwise sliding maxima of widths 1, 2, 4, ... by doubling, then two
    overlapping windows for the rest: about log2(kernel) + 1 elementwise maxima, and
    no padded copy. Inference only (it writes into views, which autograd refuses).
    """
    n = x.shape[dim]
    half = min(kernel // 2, n - 1)
    if half <= 0:
        return x
    dim = dim % x.dim()
    if n <= 2 * half + 2:
        frames = x.unbind(dim)
        prefix, suffix = [frames[0]], [frames[-1]]
        for i in range(1, n):
            prefix.append(torch.maximum(prefix[-1], frames[i]))
            suffix.append(torch.maximum(suffix[-1], frames[n - 1 - i]))
        suffix.reverse()
        out = torch.empty_like(x)
        for i in range(n):
            out.select(dim, i).copy_(prefix[min(i + half, n - 1)] if i <= half
                                     else suffix[i - half])
        return out
    # levels[j][i] = max(x[i : i + 2**j]) along dim: no padded copy of x
    levels = [x]
    while 2 ** len(levels) <= 2 * half + 1:
        m, reach = levels[-1], 2 ** (len(levels) - 1)
        length = m.shape[dim] - reach
        levels.append(torch.maximum(m.narrow(dim, 0, length), m.narrow(dim, reach, length)))
    out = torch.empty_like(x)

    def fill(first: int, count: int, lo: int, hi: int) -> None:
        """out[first + k] = max(x[lo + k ..= hi + k]), k < count: two overlapping runs."""
        j = (hi - lo + 1).bit_length() - 1
        m = levels[j]
        torch.maximum(m.narrow(dim, lo, count), m.narrow(dim, hi - 2 ** j + 1, count),
                      out=out.narrow(dim, first, count))

    fill(half, n - 2 * half, 0, 2 * half)  # the windows inside the axis
    for i in range(half):  # and those clipped at either end
        fill(i, 1, 0, i + half)
        fill(n - 1 - i, 1, n - 1 - i - half, n - 1)
    return out


class SpaceTimePool(nn.Module):
    """Max or average pooling over (T, H, W) with SAME padding.

    Padding never wins a max (it is -inf) and never dilutes an average (the average is
    over the real entries only), matching TensorFlow's SAME pooling.
    """

    def __init__(self, kind: str, kernel, stride=1, causal: bool = False):
        super().__init__()
        if kind not in POOL_KINDS:
            raise ValueError(f'unknown pool kind {kind!r}; expected one of {POOL_KINDS}')
        self.kind = kind
        self.kernel_size = _triple(kernel)
        self.stride = _triple(stride)
        self.causal = bool(causal) and (self.kernel_size[0] > 1 or self.stride[0] > 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kt, kh, kw = self.kernel_size
        if self.causal:
            pads = causal_pads(x.shape[-3:], self.kernel_size, self.stride)
        elif (self.kind == 'max'
              and symmetric_padding(self.kernel_size, self.stride) is not None):
            # Stride 1, odd kernel: a box max is a spatial max then a temporal max, and the
            # pools' own padding never wins a max, so no padded copy and 9 + t compares
            # per output instead of 9 t. Same result as the padded 3-D pool.
            if x.dtype == torch.bfloat16 and x.device.type == 'cpu' and not x.requires_grad:
                # PyTorch's CPU bf16 max_pool3d (which also computes indices) is 1.5-4x
                # slower than elementwise maxima of shifted views (AMX Xeon).
                for dim, k in ((-1, kw), (-2, kh), (-3, kt)):
                    x = window_max(x, dim, k)
                return x
            if kh > 1 or kw > 1:
                x = F.max_pool3d(x, (1, kh, kw), 1, padding=(0, kh // 2, kw // 2))
            if kt > 1:
                x = F.max_pool3d(x, (kt, 1, 1), 1, padding=(kt // 2, 0, 0))
            return x
        else:
            pads = same_pads(x.shape[-3:], self.kernel_size, self.stride)
        if self.kind == 'max':
            if any(pads):
                x = F.pad(x, pads, value=float('-inf'))
            return F.max_pool3d(x, self.kernel_size, self.stride)
        if not any(pads):
            return F.avg_pool3d(x, self.kernel_size, self.stride)
        ones = torch.ones((1, 1, *x.shape[2:]), dtype=x.dtype, device=x.device)
        total = F.avg_pool3d(F.pad(x, pads), self.kernel_size, self.stride)
        count = F.avg_pool3d(F.pad(ones, pads), self.kernel_size, self.stride)
        return total / count

    def extra_repr(self) -> str:
        causal = ', causal' if self.causal else ''
        return f'{self.kind}, kernel_size={self.kernel_size}, stride={self.stride}{causal}'
