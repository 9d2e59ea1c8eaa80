"""Sigmoid-weighted fusion of several feature maps into one (AssembleNet connections).

A node of a multi-stream graph takes features from several earlier nodes that can differ in
spatial size, temporal length and width. `WeightedFusion` brings them to a common shape and
sums them, each edge scaled by sigmoid(w) with its own scalar logit w:

1. scale input i by sigmoid(w_i) (not a softmax: edges do not compete, so a weight near 0
   says "this connection is useless" on its own, which is what the search prunes on);
2. max-pool larger inputs down to the smallest time length and the smallest height/width
   among the inputs (kernel = stride = the size ratio, so sizes from repeated stride-2
   halving line up exactly; any other mismatch falls back to adaptive max pooling);
3. sum the inputs that share a width, project each width group that is narrower than the
   widest input to that width with a 1x1x1 conv (grouping first saves convolutions);
4. sum the groups.

A single input passes through unchanged with weight 1 (no parameter), as in the published
model. The logits are an `nn.Parameter` (learned with the network) or, when `frozen`, a
buffer that no optimizer sees and that is still saved in checkpoints.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def logit(probability: float) -> float:
    """Inverse sigmoid, for turning a published edge weight into an initial logit."""
    p = min(max(float(probability), 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def _pool_to(x: torch.Tensor, size: tuple[int, int, int]) -> torch.Tensor:
    """Max-pool [B, C, T, H, W] down to `size` (T, H, W)."""
    if tuple(x.shape[2:]) == size:
        return x
    kernel = tuple(max(1, math.ceil(have / want)) for have, want in zip(x.shape[2:], size))
    pooled = F.max_pool3d(x, kernel, kernel, ceil_mode=True)
    if tuple(pooled.shape[2:]) != size:
        pooled = F.adaptive_max_pool3d(x, size)
    return pooled


class WeightedFusion(nn.Module):
    """Fuse `len(in_channels)` inputs into one tensor of `max(in_channels)` channels."""

    def __init__(self, in_channels: list[int], initial_logits: list[float] | None = None,
                 frozen: bool = False, init_std: float = 0.01):
        super().__init__()
        if not in_channels:
            raise ValueError('WeightedFusion needs at least one input')
        self.in_channels = [int(c) for c in in_channels]
        self.out_channels = max(self.in_channels)
        self.frozen = bool(frozen)
        count = len(self.in_channels)
        if initial_logits is not None and len(initial_logits) != count:
            raise ValueError(f'{len(initial_logits)} initial logits for {count} inputs')
        if count == 1:
            self.edge_logits = None
        else:
            if initial_logits is None:
                start = torch.randn(count) * init_std if not frozen else torch.zeros(count)
            else:
                start = torch.tensor([float(v) for v in initial_logits])
            if frozen:
                self.register_buffer('edge_logits', start.float())
            else:
                self.edge_logits = nn.Parameter(start.float())
        # One projection per width narrower than the widest input.
        self.projections = nn.ModuleDict({
            str(width): nn.Conv3d(width, self.out_channels, 1, bias=False)
            for width in sorted(set(self.in_channels)) if width != self.out_channels
        })

    def edge_weights(self) -> torch.Tensor:
        """sigmoid(logits), one per input (1.0 for a single input)."""
        if self.edge_logits is None:
            return torch.ones(1)
        return torch.sigmoid(self.edge_logits.detach().float())

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        if len(inputs) != len(self.in_channels):
            raise ValueError(f'expected {len(self.in_channels)} inputs, got {len(inputs)}')
        if self.edge_logits is None:
            return inputs[0]
        size = tuple(min(x.shape[d] for x in inputs) for d in (2, 3, 4))
        weights = torch.sigmoid(self.edge_logits).to(inputs[0].dtype)
        groups: dict[int, torch.Tensor] = {}
        for i, x in enumerate(inputs):
            width = self.in_channels[i]  # static, so tracing/export sees plain ints
            if width not in groups:
                groups[width] = _pool_to(x, size) * weights[i]
            else:  # in place: every group's sum is a fresh tensor
                groups[width].addcmul_(_pool_to(x, size), weights[i])
        total = None
        for width, summed in groups.items():
            if width != self.out_channels:
                summed = self.projections[str(width)](summed)
            total = summed if total is None else total.add_(summed)
        return total
