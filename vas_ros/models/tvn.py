"""Tiny Video Networks (Piergiovanni et al., arXiv 1910.06961): genome, builder, presets.

A TVN folds the clip's frames into the batch and runs mostly 2D layers on
`[B*T, C, H, W]`, adding cheap temporal layers (a k x 1 conv or pooling over T) while
more than one frame is left. Each block is: spatial layer (1x1 conv to F then a kxk
standard or depthwise conv, or pooling), optional temporal layer, 1x1 expansion to F*E,
optional squeeze-excitation and context gating, optional residual (only when T is
unchanged, through a 1x1 projection), ReLU. A block repeats R times; only the first copy
strides, and the temporal layer is used on copies 0, 2, 4, ... The head averages over
T, H and W, applies dropout and a linear classifier.

`causal: true` makes every temporal layer look only at the present and past frames (its
SAME padding goes before the data in time), and gates squeeze-excitation and context
gating per frame. The clip forward is then unchanged in shape and cost, and a model
without temporal strides can be run one frame at a time (`vas_ros.models.stream`),
each new frame costing one frame of compute instead of a whole clip.

The genome is a JSON dict (see `TVNGenome`); validation walks the shapes through every
block copy so that a bad genome is refused with the offending field named before any
tensor is allocated. Padding is TensorFlow SAME, computed for the genome's own input
size, so a model only accepts clips of exactly `frames x size x size`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import ClassVar

import torch
from torch import nn

from vas_ros.errors import DataError, GenomeError
from vas_ros.models.genome import (
    Genome,
    choice,
    dropout,
    flag,
    integer,
    items,
    join,
    json_object,
    number,
)
from vas_ros.models.layers.common import ContextGating, Pool2dSame, SqueezeExcite, conv2d_bn_act
from vas_ros.models.registry import Family, register_family
from vas_ros.models.spec import STREAM_CHANNELS, InputSpec

SPATIAL_TYPES = ('std', 'depth', 'maxpool', 'avgpool')
TEMPORAL_TYPES = ('1d', 'maxpool', 'avgpool')
# What the first layer sees: the RGB frames (the published TVNs) or the clip's optical
# flow. Flow costs its computation on the robot, which the search adds to the latency.
INPUT_STREAMS = {'rgb': ('rgb',), 'flow': ('flow',)}

# Inclusive ranges a genome may use; the search space samples inside them.
LIMITS = {
    'frames': (1, 64),
    'size': (16, 512),
    'frame_stride': (1, 16),
    'blocks': (1, 12),
    'spatial_kernel': (1, 7),
    'spatial_stride': (1, 4),
    'temporal_kernel': (1, 7),
    'temporal_stride': (1, 4),
    'filters': (1, 4096),
    'expand': (1, 16),
    'repeats': (1, 8),
}


def _required():
    return field(metadata={'required': True})


def _keys(cls) -> tuple[list[str], list[str]]:
    """(all fields, required fields) of a genome dataclass, as its JSON keys."""
    names = [f.name for f in fields(cls)]
    return names, [f.name for f in fields(cls) if f.metadata.get('required')]


def _int(data: dict, key: str, path: str) -> int:
    return integer(data[key], join(path, key), *LIMITS[key])


@dataclass(kw_only=True, frozen=True)
class TVNBlock:
    """One block (repeated `repeats` times); field names are the genome's JSON keys."""

    spatial_type: str = _required()
    spatial_kernel: int = 3
    spatial_stride: int = 1
    temporal_type: str = 'maxpool'
    temporal_kernel: int = 1
    temporal_stride: int = 1
    filters: int = _required()
    expand: int = 1
    repeats: int = 1
    se_ratio: float = 0.0
    context_gating: bool = False
    skip: bool = False

    @classmethod
    def from_dict(cls, data: dict, path: str = 'block') -> TVNBlock:
        """Type- and range-checked block; `path` names it in errors (`blocks[2]`)."""
        names, required = _keys(cls)
        json_object(data, path, names, required)
        data = {**{f.name: f.default for f in fields(cls) if not f.metadata}, **data}
        return cls(
            spatial_type=choice(data['spatial_type'], join(path, 'spatial_type'),
                                SPATIAL_TYPES),
            spatial_kernel=_int(data, 'spatial_kernel', path),
            spatial_stride=_int(data, 'spatial_stride', path),
            temporal_type=choice(data['temporal_type'], join(path, 'temporal_type'),
                                 TEMPORAL_TYPES),
            temporal_kernel=_int(data, 'temporal_kernel', path),
            temporal_stride=_int(data, 'temporal_stride', path),
            filters=_int(data, 'filters', path),
            expand=_int(data, 'expand', path),
            repeats=_int(data, 'repeats', path),
            se_ratio=number(data['se_ratio'], join(path, 'se_ratio'), 0.0, 1.0),
            context_gating=flag(data['context_gating'], join(path, 'context_gating'),
                                allow_01=True),
            skip=flag(data['skip'], join(path, 'skip'), allow_01=True),
        )

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def expanded(self) -> int:
        return self.filters * self.expand

    @property
    def se_channels(self) -> int:
        """Width of the squeeze-excitation bottleneck (0 when SE is off)."""
        return max(int(self.expanded * self.se_ratio), 8) if self.se_ratio > 0 else 0


@dataclass(frozen=True)
class BlockStep:
    """One copy of one block with the shapes entering and leaving it (C, T, H, W)."""

    block: int
    copy: int
    spatial_stride: int
    temporal_stride: int
    use_temporal: bool
    residual: bool
    shape_in: tuple[int, int, int, int]
    shape_mid: tuple[int, int, int, int]  # after the spatial layer
    shape_out: tuple[int, int, int, int]


@dataclass(kw_only=True, frozen=True)
class TVNGenome(Genome):
    """A whole TVN: clip sampling (frames, size, frame_stride), blocks and head dropout."""

    family: ClassVar[str] = 'tvn'
    # What a search space draws from (it reaches them through the registry).
    SPATIAL_TYPES: ClassVar[tuple[str, ...]] = SPATIAL_TYPES
    TEMPORAL_TYPES: ClassVar[tuple[str, ...]] = TEMPORAL_TYPES
    INPUT_STREAMS: ClassVar[dict[str, tuple[str, ...]]] = INPUT_STREAMS
    LIMITS: ClassVar[dict[str, tuple[int, int]]] = LIMITS
    BLOCK_FIELDS: ClassVar[tuple[str, ...]] = tuple(f.name for f in fields(TVNBlock))

    frames: int = _required()
    size: int = _required()
    frame_stride: int = 1
    dropout: float = 0.5
    stream: str = 'rgb'
    causal: bool = False
    blocks: tuple[TVNBlock, ...] = _required()

    @classmethod
    def from_dict(cls, data: dict) -> TVNGenome:
        """Parse and fully validate (types, ranges, and shapes through every block)."""
        names, required = _keys(cls)
        json_object(data, '', names, required)
        blocks = items(data['blocks'], 'blocks', *LIMITS['blocks'])
        data = {'frame_stride': 1, 'dropout': 0.5, 'stream': 'rgb', 'causal': False, **data}
        genome = cls(
            frames=_int(data, 'frames', ''),
            size=_int(data, 'size', ''),
            frame_stride=_int(data, 'frame_stride', ''),
            dropout=dropout(data['dropout']),
            stream=choice(data['stream'], 'stream', tuple(INPUT_STREAMS)),
            causal=flag(data['causal'], 'causal', allow_01=True),
            blocks=tuple(TVNBlock.from_dict(b, join('blocks', i))
                         for i, b in enumerate(blocks)),
        )
        genome.plan()
        return genome

    def to_dict(self) -> dict:
        # `stream` and `causal` are left out at their defaults, so older genomes keep the
        # form (and hash) they had before the fields existed.
        data = {'frames': self.frames, 'size': self.size, 'frame_stride': self.frame_stride,
                'dropout': self.dropout}
        if self.stream != 'rgb':
            data['stream'] = self.stream
        if self.causal:
            data['causal'] = True
        return {**data, 'blocks': [b.to_dict() for b in self.blocks]}

    @property
    def streams(self) -> tuple[str, ...]:
        return INPUT_STREAMS[self.stream]

    @property
    def in_channels(self) -> int:
        return STREAM_CHANNELS[self.stream]

    def input_spec(self) -> InputSpec:
        return InputSpec(frames=self.frames, size=self.size, frame_stride=self.frame_stride,
                         streams=self.streams)

    def build(self, num_classes: int) -> TinyVideoNet:
        return TinyVideoNet(self, int(num_classes))

    def with_streams(self, streams: tuple[str, ...]) -> TVNGenome | None:
        """The same blocks on the other input (a TVN reads one stream, RGB or flow)."""
        named = {v: k for k, v in INPUT_STREAMS.items()}
        if tuple(streams) not in named:
            return None
        return dataclasses.replace(self, stream=named[tuple(streams)])

    def stream_refusal(self) -> str | None:
        """Why this genome cannot run one frame at a time, or None when it can."""
        if not self.causal:
            return ('the model is not causal: its temporal layers look at later frames '
                    '(train a genome with "causal": true, e.g. the tvn_tiny_causal preset)')
        for step in self.plan():
            if step.temporal_stride > 1:
                return (f'blocks[{step.block}] has temporal stride {step.temporal_stride}: '
                        f'past it the network runs at 1/{step.temporal_stride} of the frame '
                        f'rate, so a streamed result would come only every few frames; stream '
                        f'mode needs temporal stride 1 everywhere (the tvn_tiny_causal preset)')
        return None

    def plan(self) -> list[BlockStep]:
        """Shapes through every block copy; raises GenomeError where the clip runs out."""
        steps = []
        c, t, h, w = self.in_channels, self.frames, self.size, self.size
        for i, block in enumerate(self.blocks):
            for copy in range(block.repeats):
                step = _plan_copy(i, copy, block, (c, t, h, w))
                steps.append(step)
                c, t, h, w = step.shape_out
        return steps


def _plan_copy(i: int, copy: int, block: TVNBlock, shape_in) -> BlockStep:
    c, t, h, w = shape_in
    where = f'blocks[{i}].'
    at = f' (copy {copy + 1} of {block.repeats})' if copy else ''
    s_stride = block.spatial_stride if copy == 0 else 1
    t_stride = block.temporal_stride if copy == 0 else 1
    k = block.spatial_kernel
    if k > min(h, w):
        raise GenomeError(f'{where}spatial_kernel',
                          f'kernel {k} is larger than the {h}x{w} feature map entering this '
                          f'block{at}: the resolution has vanished')
    if s_stride > min(h, w):
        raise GenomeError(f'{where}spatial_stride',
                          f'stride {s_stride} is larger than the {h}x{w} feature map entering '
                          f'this block{at}: the resolution would vanish')
    conv = block.spatial_type in ('std', 'depth') and k > 1
    mid = (block.filters if conv else c, t, -(-h // s_stride), -(-w // s_stride))
    use_temporal = copy % 2 == 0 and t > 1
    t_out = t
    if use_temporal:
        if block.temporal_type == '1d' and block.temporal_kernel > t:
            raise GenomeError(f'{where}temporal_kernel',
                              f'temporal conv kernel {block.temporal_kernel} is longer than '
                              f'the {t} frames left at this block{at}')
        t_out = -(-t // t_stride)
    out = (block.expanded, t_out, mid[2], mid[3])
    return BlockStep(block=i, copy=copy, spatial_stride=s_stride,
                     temporal_stride=t_stride if use_temporal else 1,
                     use_temporal=use_temporal, residual=block.skip and t_out == t,
                     shape_in=(c, t, h, w), shape_mid=mid,
                     shape_out=out)


# ---------------------------------------------------------------- builder


def causal_time_pads(frames: int, kernel: int, stride: int) -> tuple[int, int, int, int]:
    """F.pad amounts for a [B, C, T, H*W] view that put SAME's padding before the data in
    time: the same ceil(T / stride) outputs, the last window ending on the last frame. A
    negative amount crops leading frames no window reaches (kernel < stride)."""
    outputs = -(-frames // stride)
    return (0, 0, (outputs - 1) * stride + kernel - frames, 0)


class TemporalLayer(nn.Module):
    """A (k x 1) conv or pool over T, run on folded frames [B*T, C, H, W].

    The folded tensor is viewed as [B, C, T, H*W] so the op is an ordinary 2D one;
    with channels-last memory both views are free. `kind` ('conv', 'max', 'avg') and
    `kernel` let a stream (`vas_ros.models.stream`) run the op one frame at a time.
    """

    def __init__(self, op: nn.Module, frames_in: int, kind: str = 'conv', kernel: int = 1,
                 stride: int = 1, causal: bool = False, channels: int = 0, positions: int = 0):
        super().__init__()
        self.op = op
        self.frames_in = frames_in
        self.kind, self.kernel, self.stride, self.causal = kind, kernel, stride, causal
        self.channels, self.positions = channels, positions  # of the [B, C, T, H*W] view
        # While a stream steps: {'past': the frames before this one, 'seen': frame count};
        # None in clip mode.
        self.stream_state: dict | None = None

    def forward(self, x):
        if self.stream_state is not None:
            state = self.stream_state
            y, state['past'] = self.step(x, state['past'], state['seen'])
            return y
        n, c, h, w = x.shape
        b = n // self.frames_in
        y = self.op(x.reshape(b, self.frames_in, c, h * w).permute(0, 2, 1, 3))
        return y.permute(0, 2, 1, 3).reshape(b * y.shape[2], y.shape[1], h, w)

    def initial_past(self, batch: int, dtype=torch.float32, device='cpu') -> torch.Tensor:
        """The k-1 frames 'before the first', [B, C, k-1, H*W]: the clip forward's padding
        (zeros before a conv or an average, -inf before a max)."""
        fill = float('-inf') if self.kind == 'max' else 0.0
        return torch.full((batch, self.channels, self.kernel - 1, self.positions), fill,
                          dtype=dtype, device=device)

    def step(self, x: torch.Tensor, past: torch.Tensor,
             seen: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One new frame per clip [B, C, H, W] -> (this layer's output for it, the new
        `past`). `seen` counts the frames so far, this one included (a 0-d float tensor):
        an average divides by the real frames in its window, as the clip forward does.
        Shapes never change, so a stream step can be traced (`vas_ros.models.stream`).
        """
        if not self.causal or self.stride != 1:
            raise DataError('only a causal temporal layer of stride 1 runs one frame at a time')
        n, c, h, w = x.shape
        window = torch.cat([past, x.reshape(n, c, 1, h * w)], dim=2)
        if self.kind == 'conv':
            y = window
            for layer in self.op:  # ConvNormAct: (pad, conv, bn, relu); `past` is the pad
                if not isinstance(layer, nn.ZeroPad2d):
                    y = layer(y)
        elif self.kind == 'max':
            y = window.amax(dim=2, keepdim=True)
        else:
            y = window.sum(dim=2, keepdim=True) / seen.clamp(max=self.kernel)
        return y.reshape(n, y.shape[1], h, w), window[:, :, 1:]


class TinyBlock(nn.Module):
    """One copy of a TVN block, built from its planned shapes."""

    def __init__(self, block: TVNBlock, step: BlockStep, causal: bool = False):
        super().__init__()
        c, t, h, w = step.shape_in
        f, k, s = block.filters, block.spatial_kernel, step.spatial_stride
        if block.spatial_type in ('std', 'depth') and k > 1:
            groups = f if block.spatial_type == 'depth' else 1
            self.spatial = nn.Sequential(
                conv2d_bn_act(c, f, 1),
                conv2d_bn_act(f, f, k, s, in_hw=(h, w), groups=groups))
        elif k > 1 or s > 1:  # pooling; kernel 1 with a stride subsamples
            kind = 'avg' if block.spatial_type == 'avgpool' else 'max'
            self.spatial = Pool2dSame(kind, k, s, (h, w))
        else:
            self.spatial = nn.Identity()
        c_mid, _, h2, w2 = step.shape_mid
        self.temporal = nn.Identity()
        tk, ts = block.temporal_kernel, step.temporal_stride
        if step.use_temporal and (tk > 1 or ts > 1):
            pads = causal_time_pads(t, tk, ts) if causal else None
            if block.temporal_type == '1d' and tk > 1:
                kind = 'conv'
                op = conv2d_bn_act(c_mid, f, (tk, 1), (ts, 1), in_hw=(t, h2 * w2), pads=pads)
            else:
                kind = 'avg' if block.temporal_type == 'avgpool' else 'max'
                op = Pool2dSame(kind, (tk, 1), (ts, 1), (t, h2 * w2), pads=pads)
            self.temporal = TemporalLayer(op, t, kind, tk, ts, causal, c_mid, h2 * w2)
        # A causal model gates each frame by itself, so no gate sees later frames.
        c_t = 1 if causal else step.shape_out[1]
        width = block.expanded
        self.expand = conv2d_bn_act(self._channels_after_temporal(block, step), width, 1,
                                    act=False)
        self.squeeze = (SqueezeExcite(width, block.se_channels, c_t)
                        if block.se_ratio > 0 else nn.Identity())
        self.gating = ContextGating(width, c_t) if block.context_gating else nn.Identity()
        self.shortcut = (conv2d_bn_act(c, width, 1, s, in_hw=(h, w), act=False)
                         if step.residual else None)

    @staticmethod
    def _channels_after_temporal(block: TVNBlock, step: BlockStep) -> int:
        if step.use_temporal and block.temporal_type == '1d' and block.temporal_kernel > 1:
            return block.filters
        return step.shape_mid[0]

    def forward(self, x):
        y = self.gating(self.squeeze(self.expand(self.temporal(self.spatial(x)))))
        if self.shortcut is not None:
            y = y + self.shortcut(x)
        return torch.relu(y)


class TinyVideoNet(nn.Module):
    """A TVN for clips [B, 3, frames, size, size] -> logits [B, num_classes]."""

    def __init__(self, genome: TVNGenome, num_classes: int):
        super().__init__()
        steps = genome.plan()
        self.frames, self.size = genome.frames, genome.size
        self.streams = genome.streams
        self.in_channels = genome.in_channels
        self.genome = genome
        self.causal = genome.causal
        self.blocks = nn.Sequential(*[TinyBlock(genome.blocks[st.block], st, genome.causal)
                                      for st in steps])
        channels, self.frames_out = steps[-1].shape_out[:2]
        self.dropout = nn.Dropout(genome.dropout)
        self.classifier = nn.Linear(channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode='fan_out', nonlinearity='relu')
        nn.init.normal_(self.classifier.weight, std=0.01)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, *inputs):
        return self.head(self.frame_features(*inputs).mean(dim=1))

    def frame_features(self, *inputs) -> torch.Tensor:
        """Features [B, frames_out, C] of each output position (mean over space); the clip
        forward averages them over time."""
        if len(inputs) != len(self.streams):
            raise DataError(f'this TVN takes {len(self.streams)} input(s) '
                            f'({", ".join(self.streams)}), got {len(inputs)}')
        for name, x in zip(self.streams, inputs):
            expected = (STREAM_CHANNELS[name], self.frames, self.size, self.size)
            if x.dim() != 5 or tuple(x.shape[1:]) != expected:
                raise DataError(f'TVN {name} input must be [B, {", ".join(map(str, expected))}]'
                                f', got {list(x.shape)}')
        clip = inputs[0]
        b = clip.shape[0]
        # [B, C, T, H, W] -> frames folded into the batch; free for channels-last-3d input.
        x = clip.permute(0, 2, 1, 3, 4).reshape(b * self.frames, self.in_channels, self.size,
                                                self.size)
        x = self.blocks(x)
        return x.reshape(b, self.frames_out, x.shape[1], -1).mean(dim=3)

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """Clip features [B, C] (the mean over time and space) -> logits."""
        return self.classifier(self.dropout(features))


# ---------------------------------------------------------------- presets

def _preset(frames: int, size: int, frame_stride: int, rows: str, dropout: float = 0.5):
    """Genome from table rows 'sp k s | tp k s | F | E | R | SE | CG | skip'."""
    blocks = []
    for row in rows.strip().splitlines():
        cells = [c.split() for c in row.split('|')]
        (sp, sk, ss), (tp, tk, ts) = cells[0], cells[1]
        (f,), (e,), (r,), (se,), (cg,), (skip,) = cells[2:]
        values = (sp, int(sk), int(ss), tp, int(tk), int(ts), int(f), int(e), int(r),
                  float(se), bool(int(cg)), bool(int(skip)))
        blocks.append(dict(zip(TVNGenome.BLOCK_FIELDS, values)))
    return {'frames': frames, 'size': size, 'frame_stride': frame_stride,
            'dropout': dropout, 'blocks': blocks}


# Transcribed from the published tables (arXiv 1910.06961 / the authors' released code).
PRESETS = {
    'tvn1': _preset(2, 224, 4, """
        std 4 2     | maxpool 2 2 | 64  | 4 | 2 | 0     | 1 | 0
        maxpool 3 2 | 1d 1 1      | 128 | 4 | 1 | 0.907 | 0 | 0
        depth 5 3   | avgpool 1 1 | 128 | 4 | 2 | 0     | 1 | 1
        std 3 2     | avgpool 1 1 | 256 | 8 | 2 | 0.727 | 1 | 0
    """),
    'tvn2': _preset(2, 256, 7, """
        depth 5 3   | 1d 2 1      | 64   | 4 | 3 | 0.067 | 1 | 1
        std 4 2     | maxpool 2 2 | 128  | 4 | 5 | 0.693 | 1 | 1
        depth 4 1   | 1d 1 1      | 1024 | 1 | 6 | 0     | 0 | 0
        avgpool 3 2 | 1d 1 1      | 256  | 4 | 1 | 0     | 1 | 0
        avgpool 4 3 | 1d 1 1      | 512  | 4 | 6 | 0.947 | 0 | 0
        depth 3 3   | maxpool 1 1 | 512  | 4 | 4 | 0     | 0 | 0
        maxpool 2 1 | maxpool 1 1 | 348  | 6 | 1 | 0     | 1 | 0
    """),
    'tvn3': _preset(8, 160, 2, """
        depth 3 2 | 1d 5 2      | 64  | 3 | 2 | 0.646 | 1 | 0
        depth 3 2 | 1d 1 1      | 256 | 5 | 4 | 0.906 | 0 | 1
        depth 5 4 | maxpool 3 2 | 256 | 2 | 4 | 0     | 0 | 1
        std 3 2   | maxpool 3 3 | 512 | 5 | 4 | 0     | 1 | 0
    """),
    'tvn4': _preset(8, 128, 4, """
        std 5 2   | 1d 3 2      | 64  | 4 | 5 | 0.478 | 0 | 1
        depth 5 2 | maxpool 2 2 | 256 | 6 | 4 | 0     | 1 | 0
        depth 5 3 | 1d 1 1      | 256 | 8 | 4 | 0.253 | 1 | 0
    """),
    # Small, CPU-trainable: temporal convs early (where motion is still visible at 32 px).
    'tvn_tiny': _preset(8, 64, 2, """
        std 3 2   | 1d 3 1      | 16 | 2 | 1 | 0    | 0 | 0
        std 3 2   | 1d 3 2      | 32 | 2 | 1 | 0.25 | 1 | 0
        depth 3 2 | 1d 3 2      | 64 | 2 | 2 | 0    | 1 | 1
        std 3 2   | maxpool 2 2 | 96 | 2 | 1 | 0    | 0 | 0
    """, dropout=0.2),
    # tvn_tiny made causal, with temporal stride 1 throughout so that it streams: one
    # result per frame, each new frame costing one frame of every layer.
    'tvn_tiny_causal': {**_preset(8, 64, 2, """
        std 3 2   | 1d 3 1      | 16 | 2 | 1 | 0    | 0 | 0
        std 3 2   | 1d 3 1      | 32 | 2 | 1 | 0.25 | 1 | 0
        depth 3 2 | 1d 3 1      | 64 | 2 | 2 | 0    | 1 | 1
        std 3 2   | maxpool 2 1 | 96 | 2 | 1 | 0    | 0 | 0
    """, dropout=0.2), 'causal': True},
    'tvn_small': _preset(8, 112, 2, """
        std 3 2   | 1d 3 1      | 24  | 2 | 1 | 0    | 0 | 0
        std 3 2   | 1d 3 2      | 48  | 2 | 2 | 0.25 | 1 | 1
        depth 3 2 | 1d 3 2      | 96  | 3 | 2 | 0.25 | 1 | 1
        depth 3 2 | maxpool 2 2 | 128 | 4 | 2 | 0    | 1 | 1
        std 3 2   | avgpool 1 1 | 192 | 4 | 1 | 0    | 1 | 0
    """, dropout=0.3),
}

DESCRIPTIONS = {
    'tvn1': 'TVN-1 (published): 2 frames x 224 px, 4 blocks; paper: 37 ms CPU per clip',
    'tvn2': 'TVN-2 (published): 2 frames x 256 px, 7 blocks',
    'tvn3': 'TVN-3 (published): 8 frames x 160 px, 4 blocks',
    'tvn4': 'TVN-4 (published): 8 frames x 128 px, 3 blocks',
    'tvn_tiny': 'small TVN, 8 frames x 64 px: trains in minutes on a CPU (tests, demos)',
    'tvn_tiny_causal': 'tvn_tiny made causal with temporal stride 1: streams one frame at a '
                       'time (vas_ros.models.stream)',
    'tvn_small': 'mid-size TVN, 8 frames x 112 px: a robot-sized model between tiny and TVN-4',
}

register_family(Family('tvn', TVNGenome, PRESETS, DESCRIPTIONS))
