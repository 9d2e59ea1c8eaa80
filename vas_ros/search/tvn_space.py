"""The Tiny Video Networks search space: random TVN genomes and their mutations.

Ranges follow the published models (see `shared/reference/architectures.md`): 2-7 blocks;
spatial kernels 1-5 and strides 1-4; temporal kernels 1-5 and strides 1-3; filters
32-1024; expand 1-8; repeats 1-6; squeeze-excitation ratio 0 (off) or 0.05-1; context
gating and skip on/off; 2-8 frames; 128-256 px; frame stride 1-7.

Options (`configure(**options)`, `--space-option KEY=VALUE` on the CLI) shrink the space
so a CPU search stays small: `max_filters`, `min_filters`, `sizes` ([min, max] pixels),
`size_step`, `frames` ([min, max]), `frame_strides` ([min, max]), `blocks` ([min, max]),
`max_expand`, `max_repeats`, `max_kernel`, `streams` (input streams to draw from: `rgb`,
`flow`; default both, so the search weighs what flow adds against what it costs),
`causal` (true: every genome is causal; with `max_temporal_stride=1` and
`streams=["rgb"]` every one streams frame by frame, see `vas_ros.models.stream`).

Mutation picks one edit uniformly: change one field of one block, add a block, remove a
block, or change frames / size / frame stride / input stream. A changed number (filters,
size, frames, a kernel, a stride, expand, repeats) is redrawn uniformly from its range;
with the option `local_steps` = p it instead moves to a neighbouring value of its range
with probability p, so a child stays near its parent's cost and keeps more of its
inherited tensors (p = 0, the default, is the published behaviour). Every genome returned has
passed the tvn family's checks and (for mutations) differs from its parent; edits that
produce an invalid genome are discarded and redrawn, all from the same `rng`, so a seed
determines the sequence (`SearchSpace`). The layer kinds and block fields come from the
family's genome class, through the registry.
"""

from __future__ import annotations

import random

from vas_ros.errors import VasError
from vas_ros.models.spec import STREAMS
from vas_ros.search.space import SearchSpace, register_space

FILTER_GRID = (8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
DEFAULTS = {
    'min_filters': 32,
    'max_filters': 1024,
    'sizes': [128, 256],
    'size_step': 16,
    'frames': [2, 8],
    'frame_strides': [1, 7],
    'blocks': [2, 7],
    'max_kernel': 5,
    'max_spatial_stride': 4,
    'max_temporal_stride': 3,
    'max_expand': 8,
    'max_repeats': 6,
    'dropout': 0.5,
    'streams': list(STREAMS),
    'causal': False,
    'local_steps': 0.0,
}


def _pair(options: dict, key: str) -> tuple[int, int]:
    value = options[key]
    try:
        low, high = (int(value[0]), int(value[1]))
    except (TypeError, ValueError, IndexError, KeyError, OverflowError):
        raise VasError(f'tvn space option {key!r} must be [min, max], got {value!r}') from None
    if low < 1 or high < low:
        raise VasError(f'tvn space option {key!r} must satisfy 1 <= min <= max, got {value!r}')
    return low, high


class TVNSpace(SearchSpace):
    """TVN genomes under checked options; every draw comes from `rng` only."""

    family = 'tvn'
    description = ('Tiny Video Networks: blocks of spatial/temporal conv or pooling, '
                   'squeeze-excitation, context gating')
    DEFAULTS = DEFAULTS

    def __init__(self, **options):
        super().__init__(**options)
        g, o = self.genome_type, self.options
        self.spatial_types, self.temporal_types = g.SPATIAL_TYPES, g.TEMPORAL_TYPES
        self.block_fields = g.BLOCK_FIELDS
        lo, hi = o['min_filters'], o['max_filters']
        self.filters = sorted({lo, hi, *(f for f in FILTER_GRID if lo <= f <= hi)})
        smin, smax = o['sizes']
        self.sizes = sorted({smin, smax, *range(smin, smax + 1, o['size_step'])})

    def check_options(self, o: dict) -> dict:
        streams_known = self.genome_type.INPUT_STREAMS
        limits = self.genome_type.LIMITS
        for key, field in (('sizes', 'size'), ('frames', 'frames'),
                           ('frame_strides', 'frame_stride'), ('blocks', 'blocks')):
            if isinstance(o[key], str) or not isinstance(o[key], (list, tuple)):
                raise VasError(f'tvn space option {key!r} must be [min, max], got {o[key]!r}')
            o[key] = list(_pair(o, key))
            low, high = limits[field]
            if o[key][0] < low or o[key][1] > high:
                raise VasError(f'tvn space option {key!r} must lie within the genome\'s '
                               f'{field} range [{low}, {high}], got {o[key]}')
        for key in ('min_filters', 'max_filters', 'size_step', 'max_kernel',
                    'max_spatial_stride', 'max_temporal_stride', 'max_expand', 'max_repeats'):
            if int(o[key]) < 1:
                raise VasError(f'tvn space option {key!r} must be >= 1, got {o[key]!r}')
            o[key] = int(o[key])
        streams = o['streams']
        if (not isinstance(streams, (list, tuple)) or not streams
                or any(x not in streams_known for x in streams)
                or len(set(streams)) < len(streams)):
            raise VasError(f'tvn space option \'streams\' must be a non-empty list of '
                           f'distinct streams from {list(streams_known)}, got {streams!r}')
        o['streams'] = [x for x in streams_known if x in streams]
        if not isinstance(o['causal'], bool):
            raise VasError(f"tvn space option 'causal' must be true or false, "
                           f"got {o['causal']!r}")
        local = o['local_steps']
        if isinstance(local, bool) or not isinstance(local, (int, float)) or not 0 <= local <= 1:
            raise VasError(f"tvn space option 'local_steps' must be a number in [0, 1], "
                           f"got {local!r}")
        o['local_steps'] = float(local)
        o['min_filters'] = min(o['min_filters'], o['max_filters'])
        return o

    def _pick(self, values, old, rng: random.Random):
        """A new value from the sorted `values`: a neighbour of `old` with probability
        `local_steps`, else a uniform draw (which may repeat `old`; mutate redraws then)."""
        if self.options['local_steps'] and rng.random() < self.options['local_steps']:
            index = min(range(len(values)), key=lambda i: abs(values[i] - old))
            near = [values[i] for i in (index - 1, index + 1) if 0 <= i < len(values)]
            near = [v for v in near if v != old] or [v for v in values if v != old]
            if near:
                return rng.choice(near)
        return rng.choice(values)

    # -- drawing -------------------------------------------------------------------------
    def _block(self, rng: random.Random, size: int, frames: int) -> dict:
        o = self.options
        temporal = frames > 1
        return {
            'spatial_type': rng.choice(self.spatial_types),
            'spatial_kernel': rng.randint(1, max(1, min(o['max_kernel'], size))),
            'spatial_stride': rng.randint(1, max(1, min(o['max_spatial_stride'], size))),
            'temporal_type': rng.choice(self.temporal_types),
            'temporal_kernel': rng.randint(1, min(o['max_kernel'], frames)) if temporal else 1,
            'temporal_stride': (rng.randint(1, min(o['max_temporal_stride'], frames))
                                if temporal else 1),
            'filters': rng.choice(self.filters),
            'expand': rng.randint(1, o['max_expand']),
            'repeats': rng.randint(1, o['max_repeats']),
            'se_ratio': self._se_ratio(rng),
            'context_gating': rng.random() < 0.5,
            'skip': rng.random() < 0.5,
        }

    @staticmethod
    def _se_ratio(rng: random.Random) -> float:
        return 0.0 if rng.random() < 0.5 else round(rng.uniform(0.05, 1.0), 3)

    def draw(self, rng: random.Random) -> dict:
        o = self.options
        frames = rng.randint(*o['frames'])
        size = rng.choice(self.sizes)
        genome = {'frames': frames, 'size': size,
                  'frame_stride': rng.randint(*o['frame_strides']),
                  'dropout': o['dropout'], 'stream': rng.choice(o['streams']), 'blocks': []}
        if o['causal']:
            genome['causal'] = True
        for _ in range(rng.randint(*o['blocks'])):
            block = self._block(rng, size, frames)
            genome['blocks'].append(block)
            size = -(-size // block['spatial_stride'])
            frames = -(-frames // block['temporal_stride'])
        return genome

    # -- mutating ------------------------------------------------------------------------
    def edit(self, child: dict, rng: random.Random) -> dict:
        o = self.options
        if o['causal']:
            child['causal'] = True
        blocks = child['blocks']
        edits = ['block_field', 'frames', 'size', 'frame_stride']
        if len(o['streams']) > 1:
            edits.append('stream')
        if len(blocks) < o['blocks'][1]:
            edits.append('add_block')
        if len(blocks) > o['blocks'][0]:
            edits.append('remove_block')
        edit = rng.choice(edits)
        if edit == 'block_field':
            block = rng.choice(blocks)
            key = rng.choice(self.block_fields)
            block[key] = self._field_value(key, block[key], rng, child['frames'])
        elif edit == 'add_block':
            blocks.insert(rng.randint(0, len(blocks)),
                          self._block(rng, child['size'], child['frames']))
        elif edit == 'remove_block':
            blocks.pop(rng.randrange(len(blocks)))
        elif edit == 'frames':
            child['frames'] = self._pick(range(o['frames'][0], o['frames'][1] + 1),
                                         child['frames'], rng)
        elif edit == 'size':
            child['size'] = self._pick(self.sizes, child['size'], rng)
        elif edit == 'stream':
            current = child.get('stream', 'rgb')
            child['stream'] = rng.choice([x for x in o['streams'] if x != current])
        else:
            low, high = o['frame_strides']
            child['frame_stride'] = self._pick(range(low, high + 1), child['frame_stride'], rng)
        return child

    def _field_value(self, key: str, old, rng: random.Random, frames: int):
        o = self.options
        if key == 'spatial_type':
            return rng.choice([t for t in self.spatial_types if t != old])
        if key == 'temporal_type':
            return rng.choice([t for t in self.temporal_types if t != old])
        if key in ('context_gating', 'skip'):
            return not old
        if key == 'se_ratio':
            return self._se_ratio(rng)
        if key == 'filters':
            return self._pick(self.filters, old, rng)
        high = {'spatial_kernel': o['max_kernel'], 'temporal_kernel': min(o['max_kernel'],
                                                                          max(frames, 1)),
                'spatial_stride': o['max_spatial_stride'],
                'temporal_stride': o['max_temporal_stride'],
                'expand': o['max_expand'], 'repeats': o['max_repeats']}[key]
        return self._pick(range(1, max(1, high) + 1), old, rng)


register_space(TVNSpace())
