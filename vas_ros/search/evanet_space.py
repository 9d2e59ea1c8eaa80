"""EvaNet search space: random module networks and the mutations EvaNet evolves with.

Mutations (one per call, drawn uniformly among those that apply): change a conv layer's
type (stem or branch), change a temporal size (stem, pools, branch layers), add or
remove a branch, add or remove a layer inside a branch (1x1 <-> conv <-> conv2), and
change a stage's repeats by one. Every result is validated by the family; a mutation
that would make an invalid genome (e.g. too many branches for the stage width) is
redrawn. Options (`configure`) fix the clip and width so a CPU search stays small.
"""

from __future__ import annotations

import copy
import random

from vas_ros.errors import GenomeError, VasError
from vas_ros.models import evanet
from vas_ros.search.space import SearchSpace, canonical_json, register_space

DEFAULT_OPTIONS = {
    'frames': 8, 'size': 64, 'frame_stride': 2, 'width': 0.125, 'dropout': 0.2,
    'stream': 'rgb', 'max_branches': 4, 'max_repeats': 2,
}
MUTATIONS = ('layer_type', 'temporal_size', 'add_branch', 'remove_branch', 'add_layer',
             'remove_layer', 'repeats')
_TRIES = 100


def _random_branch(rng: random.Random) -> dict:
    kind = rng.choice(evanet.BRANCH_KINDS)
    branch = {'kind': kind}
    if kind in ('conv', 'conv2'):
        branch['type'] = rng.choice(evanet.CONV_TYPES)
        branch['time'] = rng.choice(evanet.TEMPORAL_SIZES)
    if kind == 'conv2':
        branch['type2'] = rng.choice(evanet.CONV_TYPES)
        branch['time2'] = rng.choice(evanet.TEMPORAL_SIZES)
    if kind == 'maxpool':
        branch['time'] = rng.choice(evanet.TEMPORAL_SIZES)
    return branch


def _check_options(options: dict) -> dict:
    unknown = set(options) - set(DEFAULT_OPTIONS)
    if unknown:
        raise VasError(f'evanet search space: unknown options {sorted(unknown)}; '
                       f'known: {sorted(DEFAULT_OPTIONS)}')
    merged = {**DEFAULT_OPTIONS, **options}
    for key in ('max_branches', 'max_repeats'):
        limit = evanet.MAX_BRANCHES if key == 'max_branches' else evanet.MAX_REPEATS
        if not isinstance(merged[key], int) or not 1 <= merged[key] <= limit:
            raise VasError(f'evanet search space: {key} must be an integer in [1, {limit}], '
                           f'got {merged[key]!r}')
    probe = _base(merged)
    probe.update(stem={'type': '3d', 'time': 1}, pool_times={'mp1': 1, 'mp3': 1, 'mp4': 1},
                 blocks=[{'repeats': 1, 'branches': [{'kind': '1x1'}]}] * evanet.NUM_STAGES)
    try:
        evanet.validate(probe)
    except GenomeError as exc:
        raise VasError(f'evanet search space: options give no valid genome ({exc})') from None
    return merged


def _base(options: dict) -> dict:
    return {k: options[k] for k in ('frames', 'size', 'frame_stride', 'width', 'dropout',
                                    'stream')}


class EvaNetSpace:
    """Random genomes and mutations under fixed options."""

    def __init__(self, options: dict):
        self.options = _check_options(options)

    def random_genome(self, rng: random.Random) -> dict:
        opts = self.options
        for _ in range(_TRIES):
            genome = _base(opts)
            genome['stem'] = {'type': rng.choice(evanet.CONV_TYPES),
                              'time': rng.choice(evanet.TEMPORAL_SIZES)}
            genome['pool_times'] = {k: rng.choice(evanet.TEMPORAL_SIZES)
                                    for k in ('mp1', 'mp3', 'mp4')}
            genome['blocks'] = [
                {'repeats': rng.randint(1, opts['max_repeats']),
                 'branches': [_random_branch(rng)
                              for _ in range(rng.randint(1, opts['max_branches']))]}
                for _ in range(evanet.NUM_STAGES)]
            try:
                return evanet.validate(genome)
            except GenomeError:
                continue
        raise VasError('evanet search space: could not draw a valid genome; '
                       'raise width or lower max_branches')

    def mutate(self, genome: dict, rng: random.Random) -> dict:
        parent = evanet.validate(genome)
        key = canonical_json(parent)
        for _ in range(_TRIES):
            child = copy.deepcopy(parent)
            mutation = rng.choice(MUTATIONS)
            if not self._apply(mutation, child, rng):
                continue
            try:
                child = evanet.validate(child)
            except GenomeError:
                continue
            if canonical_json(child) != key:
                return child
        raise VasError('evanet search space: no valid mutation found for this genome')

    # Each mutation edits `g` in place and says whether it applied.
    def _apply(self, mutation: str, g: dict, rng: random.Random) -> bool:
        opts = self.options
        block = rng.choice(g['blocks'])
        branches = block['branches']
        if mutation == 'layer_type':
            slots = [(g['stem'], 'type')]
            for blk in g['blocks']:
                for b in blk['branches']:
                    slots += [(b, k) for k in ('type', 'type2') if k in b]
            target, field = rng.choice(slots)
            target[field] = rng.choice([t for t in evanet.CONV_TYPES if t != target[field]])
        elif mutation == 'temporal_size':
            slots = [(g['stem'], 'time')] + [(g['pool_times'], k) for k in g['pool_times']]
            for blk in g['blocks']:
                for b in blk['branches']:
                    slots += [(b, k) for k in ('time', 'time2') if k in b]
            target, field = rng.choice(slots)
            target[field] = rng.choice([t for t in evanet.TEMPORAL_SIZES
                                        if t != target[field]])
        elif mutation == 'add_branch':
            if len(branches) >= opts['max_branches']:
                return False
            branches.insert(rng.randint(0, len(branches)), _random_branch(rng))
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
                b.update(kind='conv2', type2=rng.choice(evanet.CONV_TYPES),
                         time2=rng.choice(evanet.TEMPORAL_SIZES))
            else:  # 1x1 or maxpool+1x1 gains a space-time conv
                branches[i] = {'kind': 'conv', 'type': rng.choice(evanet.CONV_TYPES),
                               'time': rng.choice(evanet.TEMPORAL_SIZES)}
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


def make_space(**options) -> SearchSpace:
    """The EvaNet SearchSpace with `options` (see DEFAULT_OPTIONS) in force."""
    impl = EvaNetSpace(options)
    return SearchSpace(
        family='evanet', random_genome=impl.random_genome, mutate=impl.mutate,
        configure=make_space, options=dict(impl.options),
        description='EvaNet modules of parallel 3D / (2+1)D / iTGM / pooling branches in '
                    'the released macro-architecture; mutations change layer types, '
                    'temporal sizes, branches, layers and repeats',
    )


register_space(make_space())
