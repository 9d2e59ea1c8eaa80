"""EvaNet: evolved space-time modules placed in the released ResNet-like macro-architecture.

A genome (plain JSON, typed here as `EvaGenome`) fixes the stem conv (type, temporal
size), the temporal sizes of the max pools between stages, and for each of the four
stages (block2..block5) a module of parallel branches and how often it repeats:

    {"frames": 32, "size": 224, "frame_stride": 2, "stream": "rgb", "width": 1.0,
     "dropout": 0.5, "stem": {"type": "2plus1d", "time": 3},
     "pool_times": {"mp1": 1, "mp3": 1, "mp4": 9},
     "blocks": [{"repeats": 2, "branches": [{"kind": "conv", "type": "3d", "time": 1},
                                            {"kind": "maxpool", "time": 7}]}, ...]}

Branch kinds (f = stage width // number of branches):
- `1x1`: 1x1x1 conv to f, BN.
- `conv`: 1x1x1 to f/2 (BN, ReLU), then a `type` conv time x 3 x 3 to f, BN.
- `conv2`: 1x1x1 to f/4, `type` conv time x 3 x 3 to f/2 (BN, ReLU), `type2` conv
  time2 x 3 x 3 to f, BN.
- `maxpool`: time x 3 x 3 max pool (stride 1), 1x1x1 conv to f, BN.
Conv types: `3d`, `itgm`, `2plus1d` (see `layers/spacetime.py`); temporal sizes 1..11 odd.

Macro-architecture (released code): stem conv time x 7 x 7, 64 ch, stride 2 -> max pool
mp1 x 3 x 3 stride 2 -> block2 (256) -> max pool mp1 x 2 x 2 stride (1,2,2) -> block3
(512) -> max pool mp3 x 2 x 2 -> block4 (1024) -> max pool mp4 x 2 x 2 -> block5 (2048)
-> avg pool (min(T,2), H, W) -> dropout -> 1x1x1 conv to classes -> mean over T, H, W.
Each repeat concatenates its branches, adds a shortcut (1x1x1 projection + BN on the first
repeat, identity after) and applies ReLU; odd repeats run their convs with temporal size 1
(pools keep theirs). Widths are scaled by `width` for small variants; `stream: flow`
makes the stem take the 2-channel optical-flow stream. `causal: true` makes every conv
and pool pad only before the data in time (`layers/spacetime.py`), so no output sees a
later frame; the stem and first pool still stride 2 in time, so it does not stream frame
by frame (see `vas_ros.models.stream`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import ClassVar

import torch
from torch import nn

from vas_ros.errors import GenomeError
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
from vas_ros.models.layers.common import ConvNormAct
from vas_ros.models.layers.spacetime import CONV_TYPES, SpaceTimePool, make_conv, pointwise
from vas_ros.models.registry import Family, register_family
from vas_ros.models.spec import STREAM_CHANNELS, STREAMS, InputSpec

BRANCH_KINDS = ('1x1', 'conv', 'conv2', 'maxpool')
TEMPORAL_SIZES = (1, 3, 5, 7, 9, 11)
STAGE_WIDTHS = (256, 512, 1024, 2048)
STEM_WIDTH = 64
NUM_STAGES = 4
MAX_BRANCHES = 8
MAX_REPEATS = 8


@dataclass(frozen=True)
class Branch:
    """One parallel branch of a module."""

    kind: str
    type: str | None = None
    time: int | None = None
    type2: str | None = None
    time2: int | None = None

    FIELDS = {'1x1': (), 'conv': ('type', 'time'), 'maxpool': ('time',),
              'conv2': ('type', 'time', 'type2', 'time2')}

    @classmethod
    def from_dict(cls, data, path: str) -> Branch:
        data = json_object(data, path, {'kind', 'type', 'time', 'type2', 'time2'}, ('kind',))
        kind = choice(data['kind'], join(path, 'kind'), BRANCH_KINDS)
        wanted = cls.FIELDS[kind]
        extra = {k for k in data if k != 'kind' and k not in wanted}
        if extra:
            raise GenomeError(path, f'a {kind!r} branch takes only {list(wanted)}, '
                                    f'not {sorted(extra)}')
        values = {}
        for key in wanted:
            if key not in data:
                raise GenomeError(f'{path}.{key}', f'required for a {kind!r} branch')
            if key.startswith('type'):
                values[key] = choice(data[key], join(path, key), CONV_TYPES)
            else:
                values[key] = int(choice(data[key], join(path, key), TEMPORAL_SIZES))
        return cls(kind=kind, **values)

    def to_dict(self) -> dict:
        out = {'kind': self.kind}
        for key in self.FIELDS[self.kind]:
            out[key] = getattr(self, key)
        return out

    def min_channels(self) -> int:
        """Smallest branch width f for which every inner layer keeps >= 1 channel."""
        return {'1x1': 1, 'maxpool': 1, 'conv': 2, 'conv2': 4}[self.kind]


@dataclass(frozen=True)
class Block:
    """One stage: a module of parallel branches repeated `repeats` times."""

    repeats: int
    branches: tuple[Branch, ...]

    @classmethod
    def from_dict(cls, data, path: str) -> Block:
        data = json_object(data, path, {'repeats', 'branches'}, ('repeats', 'branches'))
        repeats = integer(data['repeats'], join(path, 'repeats'), 1, MAX_REPEATS)
        raw = items(data['branches'], join(path, 'branches'), 1, MAX_BRANCHES)
        branches = tuple(Branch.from_dict(b, join(join(path, 'branches'), i))
                         for i, b in enumerate(raw))
        return cls(repeats, branches)

    def to_dict(self) -> dict:
        return {'repeats': self.repeats, 'branches': [b.to_dict() for b in self.branches]}


@dataclass(frozen=True)
class EvaGenome(Genome):
    """The typed form of an EvaNet genome (see the module docstring for the JSON)."""

    family: ClassVar[str] = 'evanet'
    # What a search space draws from (it reaches them through the registry).
    BRANCH_KINDS: ClassVar[tuple[str, ...]] = BRANCH_KINDS
    CONV_TYPES: ClassVar[tuple[str, ...]] = CONV_TYPES
    TEMPORAL_SIZES: ClassVar[tuple[int, ...]] = TEMPORAL_SIZES
    NUM_STAGES: ClassVar[int] = NUM_STAGES
    MAX_BRANCHES: ClassVar[int] = MAX_BRANCHES
    MAX_REPEATS: ClassVar[int] = MAX_REPEATS

    frames: int
    size: int
    frame_stride: int
    stream: str
    width: float
    dropout: float
    stem_type: str
    stem_time: int
    pool_times: tuple[int, int, int]
    blocks: tuple[Block, ...]
    causal: bool = False

    @classmethod
    def from_dict(cls, data) -> EvaGenome:
        data = json_object(data, '', {'frames', 'size', 'frame_stride', 'stream', 'width',
                                      'dropout', 'stem', 'pool_times', 'blocks', 'causal'},
                           ('frames', 'size', 'stem', 'pool_times', 'blocks'))
        frames = integer(data['frames'], 'frames', 1, 256)
        size = integer(data['size'], 'size', 16, 1024)
        frame_stride = integer(data.get('frame_stride', 1), 'frame_stride', 1, 32)
        stream = choice(data.get('stream', 'rgb'), 'stream', STREAMS)
        width = number(data.get('width', 1.0), 'width', 0, 4, low_open=True)
        rate = dropout(data.get('dropout', 0.5))
        stem = json_object(data['stem'], 'stem', {'type', 'time'}, ('type', 'time'))
        stem_type = choice(stem['type'], 'stem.type', CONV_TYPES)
        stem_time = choice(stem['time'], 'stem.time', TEMPORAL_SIZES)
        pools = json_object(data['pool_times'], 'pool_times', {'mp1', 'mp3', 'mp4'},
                            ('mp1', 'mp3', 'mp4'))
        pool_times = tuple(choice(pools[k], f'pool_times.{k}', TEMPORAL_SIZES)
                           for k in ('mp1', 'mp3', 'mp4'))
        raw = items(data['blocks'], 'blocks', NUM_STAGES, NUM_STAGES)
        blocks = tuple(Block.from_dict(b, join('blocks', i)) for i, b in enumerate(raw))
        causal = flag(data.get('causal', False), 'causal', allow_01=True)
        genome = cls(frames, size, frame_stride, stream, width, rate, stem_type,
                     int(stem_time), tuple(int(t) for t in pool_times), blocks, causal)
        genome.check_widths()
        return genome

    def stem_channels(self) -> int:
        return max(int(round(STEM_WIDTH * self.width)), 1)

    def stage_channels(self, stage: int) -> int:
        return max(int(round(STAGE_WIDTHS[stage] * self.width)), 1)

    def check_widths(self) -> None:
        """Every branch must keep at least one channel in each of its layers."""
        if self.stem_channels() < 2 and self.stem_type == '2plus1d':
            raise GenomeError('width', f'{self.width} leaves the (2+1)D stem with '
                                       f'{self.stem_channels()} channel(s); need >= 2')
        for i, block in enumerate(self.blocks):
            per_branch = self.stage_channels(i) // len(block.branches)
            for j, branch in enumerate(block.branches):
                if per_branch < branch.min_channels():
                    raise GenomeError(
                        f'blocks[{i}].branches[{j}]',
                        f'stage width {self.stage_channels(i)} split over '
                        f'{len(block.branches)} branches leaves {per_branch} channel(s); a '
                        f'{branch.kind!r} branch needs >= {branch.min_channels()} '
                        f'(use fewer branches or a larger width)')

    def to_dict(self) -> dict:
        data = {
            'frames': self.frames, 'size': self.size, 'frame_stride': self.frame_stride,
            'stream': self.stream, 'width': self.width, 'dropout': self.dropout,
            'stem': {'type': self.stem_type, 'time': self.stem_time},
            'pool_times': dict(zip(('mp1', 'mp3', 'mp4'), self.pool_times)),
            'blocks': [b.to_dict() for b in self.blocks],
        }
        if self.causal:  # left out when off, so older genomes keep their hash
            data['causal'] = True
        return data

    def input_spec(self) -> InputSpec:
        return InputSpec(frames=self.frames, size=self.size, frame_stride=self.frame_stride,
                         streams=(self.stream,))

    def build(self, num_classes: int) -> EvaNet:
        return EvaNet(self, num_classes)

    def with_streams(self, streams: tuple[str, ...]) -> EvaGenome | None:
        """The same modules on another single stream (the released two-stream ensemble
        trains one genome on RGB and on flow)."""
        if len(streams) != 1 or streams[0] not in STREAMS:
            return None
        return replace(self, stream=streams[0])

    def distance(self, other: Genome) -> float:
        """How different two EvaNet genomes are: 0 for equal ones, larger for less alike.

        Counts branches present in one module but not the other (a changed branch counts
        twice: one removed, one added), differences in repeats, the stem (type and temporal
        size) and each pool's temporal size; input settings (frames, size, width) count 1
        each. Used to pick diverse ensemble members.
        """
        a, b = self.to_dict(), EvaGenome.parse(other).to_dict()
        dist = 0.0
        for blk_a, blk_b in zip(a['blocks'], b['blocks']):
            dist += _multiset_difference([_branch_key(x) for x in blk_a['branches']],
                                         [_branch_key(x) for x in blk_b['branches']])
            dist += abs(blk_a['repeats'] - blk_b['repeats'])
        dist += sum(a['stem'][k] != b['stem'][k] for k in ('type', 'time'))
        dist += sum(a['pool_times'][k] != b['pool_times'][k] for k in ('mp1', 'mp3', 'mp4'))
        dist += sum(a[k] != b[k] for k in ('frames', 'size', 'frame_stride', 'width',
                                           'stream'))
        return float(dist)


# ----------------------------------------------------------------------------- network


def bn_relu(channels: int, relu: bool) -> list:
    return [nn.BatchNorm3d(channels)] + ([nn.ReLU(inplace=True)] if relu else [])


class EvaBranch(nn.Sequential):
    """One branch of a module; `use_time=False` runs its convs with temporal size 1."""

    def __init__(self, spec: Branch, cin: int, f: int, use_time: bool, causal: bool = False):
        t1 = spec.time if (use_time and spec.time) else 1
        t2 = spec.time2 if (use_time and spec.time2) else 1
        if spec.kind == '1x1':
            layers = [pointwise(cin, f), *bn_relu(f, False)]
        elif spec.kind == 'conv':
            layers = [pointwise(cin, f // 2), *bn_relu(f // 2, True),
                      ConvNormAct(make_conv(spec.type, f // 2, f, (t1, 3, 3), causal=causal),
                                  f, 3, act=False)]
        elif spec.kind == 'conv2':
            layers = [pointwise(cin, f // 4), *bn_relu(f // 4, True),
                      ConvNormAct(make_conv(spec.type, f // 4, f // 2, (t1, 3, 3),
                                            causal=causal), f // 2, 3),
                      ConvNormAct(make_conv(spec.type2, f // 2, f, (t2, 3, 3), causal=causal),
                                  f, 3, act=False)]
        else:  # maxpool keeps its temporal size in every repeat, as released
            layers = [SpaceTimePool('max', (spec.time, 3, 3), 1, causal=causal),
                      pointwise(cin, f), *bn_relu(f, False)]
        super().__init__(*layers)


class EvaModule(nn.Module):
    """Parallel branches, concatenated, plus a shortcut, then ReLU."""

    def __init__(self, block: Block, cin: int, width: int, first: bool, use_time: bool,
                 causal: bool = False):
        super().__init__()
        f = width // len(block.branches)
        self.out_channels = f * len(block.branches)
        self.branches = nn.ModuleList(EvaBranch(b, cin, f, use_time, causal)
                                      for b in block.branches)
        if first:
            self.shortcut = nn.Sequential(pointwise(cin, self.out_channels),
                                          nn.BatchNorm3d(self.out_channels))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.cat([branch(x) for branch in self.branches], dim=1)
        return torch.relu_(out.add_(self.shortcut(x)))  # in place: `out` is fresh


class EvaNet(nn.Module):
    """The EvaNet macro-architecture filled in from a validated genome."""

    def __init__(self, genome: EvaGenome, num_classes: int):
        super().__init__()
        self.genome = genome
        mp1, mp3, mp4 = genome.pool_times
        stem_ch, causal = genome.stem_channels(), genome.causal
        self.stem = ConvNormAct(make_conv(genome.stem_type, STREAM_CHANNELS[genome.stream],
                                          stem_ch, (genome.stem_time, 7, 7), 2, causal=causal),
                                stem_ch, 3)
        self.pools = nn.ModuleList([SpaceTimePool('max', (mp1, 3, 3), 2, causal),
                                    SpaceTimePool('max', (mp1, 2, 2), (1, 2, 2), causal),
                                    SpaceTimePool('max', (mp3, 2, 2), (1, 2, 2), causal),
                                    SpaceTimePool('max', (mp4, 2, 2), (1, 2, 2), causal)])
        stages, cin = [], stem_ch
        for i, block in enumerate(genome.blocks):
            modules = []
            for r in range(block.repeats):
                module = EvaModule(block, cin, genome.stage_channels(i), first=(r == 0),
                                   use_time=(r % 2 == 0), causal=causal)
                modules.append(module)
                cin = module.out_channels
            stages.append(nn.Sequential(*modules))
        self.stages = nn.ModuleList(stages)
        self.feature_channels = cin
        self.dropout = nn.Dropout(genome.dropout)
        self.classifier = nn.Conv3d(cin, num_classes, kernel_size=1, bias=True)
        nn.init.kaiming_normal_(self.classifier.weight, mode='fan_in', nonlinearity='relu')
        nn.init.zeros_(self.classifier.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for pool, stage in zip(self.pools, self.stages):
            x = stage(pool(x))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x).mean(dim=(3, 4), keepdim=True)
        if x.shape[2] >= 2:  # the released (min(T, 2), H, W) valid average pool, stride 1
            x = (x[:, :, :-1] + x[:, :, 1:]) / 2
        x = self.classifier(self.dropout(x))
        return x.mean(dim=(2, 3, 4))


# ----------------------------------------------------------------------------- presets


def _conv(kind_type: str, time: int) -> dict:
    return {'kind': 'conv', 'type': kind_type, 'time': time}


def _conv2(type1: str, time1: int, type2: str, time2: int) -> dict:
    return {'kind': 'conv2', 'type': type1, 'time': time1, 'type2': type2, 'time2': time2}


def _mp(time: int) -> dict:
    return {'kind': 'maxpool', 'time': time}


def _1x1() -> dict:
    return {'kind': '1x1'}

# Transcribed from the released architectures (shared/reference/architectures.md). The
# clip length is not part of the released module description; 32 frames at 224 px is
# the setting used here (frame count unverified against the paper).
EVANET_A = {
    'frames': 32, 'size': 224, 'frame_stride': 2, 'stream': 'rgb', 'width': 1.0,
    'dropout': 0.5, 'stem': {'type': '2plus1d', 'time': 3},
    'pool_times': {'mp1': 1, 'mp3': 1, 'mp4': 9},
    'blocks': [
        {'repeats': 2, 'branches': [_conv('3d', 1), _mp(7)]},
        {'repeats': 4, 'branches': [_mp(3), _1x1(), _conv('3d', 1), _1x1(), _conv('3d', 5)]},
        {'repeats': 5, 'branches': [_mp(7), _1x1(), _conv('itgm', 11), _mp(11)]},
        {'repeats': 3, 'branches': [_mp(11), _conv('3d', 1), _conv('itgm', 3)]},
    ],
}

EVANET_B = {
    'frames': 32, 'size': 224, 'frame_stride': 2, 'stream': 'rgb', 'width': 1.0,
    'dropout': 0.5, 'stem': {'type': '2plus1d', 'time': 3},
    'pool_times': {'mp1': 1, 'mp3': 3, 'mp4': 9},
    'blocks': [
        {'repeats': 2, 'branches': [_mp(1), _mp(3), _conv2('itgm', 1, '2plus1d', 9), _mp(1),
                                    _1x1()]},
        {'repeats': 3, 'branches': [_mp(1), _mp(7), _conv2('2plus1d', 5, '3d', 1),
                                    _conv2('itgm', 1, '2plus1d', 11), _1x1(),
                                    _conv2('2plus1d', 11, '3d', 1)]},
        {'repeats': 5, 'branches': [_mp(5), _1x1(), _mp(9)]},
        {'repeats': 4, 'branches': [_conv('2plus1d', 1), _mp(5)]},
    ],
}

# Small enough to train in minutes on a laptop CPU: 8 frames at 64 px, 1/8 width, one
# repeat per stage, every conv type and branch kind represented.
EVANET_TINY = {
    'frames': 8, 'size': 64, 'frame_stride': 2, 'stream': 'rgb', 'width': 0.125,
    'dropout': 0.2, 'stem': {'type': '3d', 'time': 3},
    'pool_times': {'mp1': 1, 'mp3': 1, 'mp4': 1},
    'blocks': [
        {'repeats': 1, 'branches': [_conv('3d', 3), _mp(3)]},
        {'repeats': 1, 'branches': [_conv('itgm', 3), _1x1()]},
        {'repeats': 1, 'branches': [_conv2('2plus1d', 3, '3d', 1), _mp(3)]},
        {'repeats': 1, 'branches': [_conv('3d', 1), _1x1()]},
    ],
}

PRESETS = {'evanet_a': EVANET_A, 'evanet_b': EVANET_B, 'evanet_tiny': EVANET_TINY}
DESCRIPTIONS = {
    'evanet_a': 'EvaNet architecture A (released evolved modules), 32x224, ~33M params',
    'evanet_b': 'EvaNet architecture B (released evolved modules), 32x224, ~40M params',
    'evanet_tiny': 'small EvaNet (8x64 px, 1/8 width) that trains in minutes on a CPU',
}


# ----------------------------------------------------------------------------- distance


def _branch_key(branch: dict) -> tuple:
    return tuple(branch.get(k) for k in ('kind', 'type', 'time', 'type2', 'time2'))


def _multiset_difference(a: list, b: list) -> int:
    ca, cb = Counter(a), Counter(b)
    return sum(((ca - cb) + (cb - ca)).values())


register_family(Family('evanet', EvaGenome, PRESETS, DESCRIPTIONS))
