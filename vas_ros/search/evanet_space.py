"""EvaNet search space: random module networks and the mutations EvaNet evolves with.

Mutations (one per call, drawn uniformly among those that apply): change a conv layer's
type (stem or branch), change a temporal size (stem, pools, branch layers), add or
remove a branch, add or remove a layer inside a branch (1x1 <-> conv <-> conv2), and
change a stage's repeats by one. Every result is validated by the family; a mutation
that would make an invalid genome (e.g. too many branches for the stage width) is
redrawn. Options fix the clip and width so a CPU search stays small. Branch kinds, conv
types and temporal sizes come from the family's genome class, through the registry.
"""

from __future__ import annotations

import random

from vas_ros.errors import GenomeError, VasError
from vas_ros.search.space import SearchSpace, register_space

DEFAULT_OPTIONS = {
    'frames': 8, 'size': 64, 'frame_stride': 2, 'width': 0.125, 'dropout': 0.2,
    'stream': 'rgb', 'max_branches': 4, 'max_repeats': 2,
}
MUTATIONS = ('layer_type', 'temporal_size', 'add_branch', 'remove_branch', 'add_layer',
             'remove_layer', 'repeats')


def _base(options: dict) -> dict:
    return {k: options[k] for k in ('frames', 'size', 'frame_stride', 'width', 'dropout',
                                    'stream')}


class EvaNetSpace(SearchSpace):
    """Random module networks and EvaNet's mutations under fixed options."""

    family = 'evanet'
    description = ('EvaNet modules of parallel 3D / (2+1)D / iTGM / pooling branches in the '
                   'released macro-architecture; mutations change layer types, temporal '
                   'sizes, branches, layers and repeats')
    DEFAULTS = DEFAULT_OPTIONS

    def check_options(self, merged: dict) -> dict:
        g = self.genome_type
        for key in ('max_branches', 'max_repeats'):
            limit = g.MAX_BRANCHES if key == 'max_branches' else g.MAX_REPEATS
            if not isinstance(merged[key], int) or not 1 <= merged[key] <= limit:
                raise VasError(f'evanet search space: {key} must be an integer in '
                               f'[1, {limit}], got {merged[key]!r}')
        probe = _base(merged)
        probe.update(stem={'type': '3d', 'time': 1},
                     pool_times={'mp1': 1, 'mp3': 1, 'mp4': 1},
                     blocks=[{'repeats': 1, 'branches': [{'kind': '1x1'}]}] * g.NUM_STAGES)
        try:
            self.validate(probe)
        except GenomeError as exc:
            raise VasError(f'evanet search space: options give no valid genome '
                           f'({exc})') from None
        return merged

    def _branch(self, rng: random.Random) -> dict:
        g = self.genome_type
        kind = rng.choice(g.BRANCH_KINDS)
        branch = {'kind': kind}
        if kind in ('conv', 'conv2'):
            branch['type'] = rng.choice(g.CONV_TYPES)
            branch['time'] = rng.choice(g.TEMPORAL_SIZES)
        if kind == 'conv2':
            branch['type2'] = rng.choice(g.CONV_TYPES)
            branch['time2'] = rng.choice(g.TEMPORAL_SIZES)
        if kind == 'maxpool':
            branch['time'] = rng.choice(g.TEMPORAL_SIZES)
        return branch

    def draw(self, rng: random.Random) -> dict:
        opts, g = self.options, self.genome_type
        genome = _base(opts)
        genome['stem'] = {'type': rng.choice(g.CONV_TYPES), 'time': rng.choice(g.TEMPORAL_SIZES)}
        genome['pool_times'] = {k: rng.choice(g.TEMPORAL_SIZES) for k in ('mp1', 'mp3', 'mp4')}
        genome['blocks'] = [
            {'repeats': rng.randint(1, opts['max_repeats']),
             'branches': [self._branch(rng) for _ in range(rng.randint(1, opts['max_branches']))]}
            for _ in range(g.NUM_STAGES)]
        return genome

    def edit(self, genome: dict, rng: random.Random) -> dict | None:
        return genome if self._apply(rng.choice(MUTATIONS), genome, rng) else None

    # Each mutation edits `g` in place and says whether it applied.
    def _apply(self, mutation: str, g: dict, rng: random.Random) -> bool:
        opts, conv_types, times = self.options, self.genome_type.CONV_TYPES, \
            self.genome_type.TEMPORAL_SIZES
        block = rng.choice(g['blocks'])
        branches = block['branches']
        if mutation == 'layer_type':
            slots = [(g['stem'], 'type')]
            for blk in g['blocks']:
                for b in blk['branches']:
                    slots += [(b, k) for k in ('type', 'type2') if k in b]
            target, field = rng.choice(slots)
            target[field] = rng.choice([t for t in conv_types if t != target[field]])
        elif mutation == 'temporal_size':
            slots = [(g['stem'], 'time')] + [(g['pool_times'], k) for k in g['pool_times']]
            for blk in g['blocks']:
                for b in blk['branches']:
                    slots += [(b, k) for k in ('time', 'time2') if k in b]
            target, field = rng.choice(slots)
            target[field] = rng.choice([t for t in times if t != target[field]])
        elif mutation == 'add_branch':
            if len(branches) >= opts['max_branches']:
                return False
            branches.insert(rng.randint(0, len(branches)), self._branch(rng))
        elif mutation == 'remove_branch':
            if len(branches) < 2:
                return False
            branches.pop(rng.randrange(len(branches)))
        elif mutation == 'add_layer':
            i = rng.randrange(len(branches))
            b = branches[i]
            if b['kind'] == 'conv2':
                return False
            if b['kind'] == 'conv':
                b.update(kind='conv2', type2=rng.choice(conv_types),
                         time2=rng.choice(times))
            else:  # 1x1 or maxpool+1x1 gains a space-time conv
                branches[i] = {'kind': 'conv', 'type': rng.choice(conv_types),
                               'time': rng.choice(times)}
        elif mutation == 'remove_layer':
            i = rng.randrange(len(branches))
            b = branches[i]
            if b['kind'] == 'conv2':
                keep = rng.choice((('type', 'time'), ('type2', 'time2')))
                branches[i] = {'kind': 'conv', 'type': b[keep[0]], 'time': b[keep[1]]}
            elif b['kind'] in ('conv', 'maxpool'):
                branches[i] = {'kind': '1x1'}
            else:
                return False
        elif mutation == 'repeats':
            choices = [r for r in (block['repeats'] - 1, block['repeats'] + 1)
                       if 1 <= r <= opts['max_repeats']]
            if not choices:
                return False
            block['repeats'] = rng.choice(choices)
        else:  # pragma: no cover - MUTATIONS and this chain are kept in step
            raise AssertionError(mutation)
        return True


register_space(EvaNetSpace())
