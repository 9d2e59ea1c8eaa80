"""The TVN search space: every random or mutated genome validates, builds and differs."""

from __future__ import annotations

import random

import pytest

from vas_ros.errors import VasError
from vas_ros.models.registry import ModelArch, get_family
from vas_ros.models.tvn import TVNGenome
from vas_ros.search.space import available_families, genome_hash, get_space
from vas_ros.search.tvn_space import DEFAULTS

SMALL = {'max_filters': 32, 'min_filters': 8, 'sizes': [32, 48], 'frames': [2, 4],
         'max_repeats': 2, 'max_expand': 4}


def test_random_genomes_cover_the_published_ranges_and_validate():
    space = get_space('tvn')
    validate = get_family('tvn').validate
    rng = random.Random(0)
    genomes = [space.random_genome(rng) for _ in range(200)]
    assert all(validate(g) == g for g in genomes)
    blocks = [b for g in genomes for b in g['blocks']]
    assert {len(g['blocks']) for g in genomes} <= set(range(2, 8))
    assert {g['frames'] for g in genomes} <= set(range(2, 9))
    assert all(128 <= g['size'] <= 256 and 1 <= g['frame_stride'] <= 7 for g in genomes)
    assert all(32 <= b['filters'] <= 1024 and 1 <= b['expand'] <= 8 and 1 <= b['repeats'] <= 6
               and 1 <= b['spatial_stride'] <= 4 and 1 <= b['temporal_stride'] <= 3
               for b in blocks)
    assert {b['spatial_type'] for b in blocks} == {'std', 'depth', 'maxpool', 'avgpool'}
    assert {b['temporal_type'] for b in blocks} == {'1d', 'maxpool', 'avgpool'}
    assert len({genome_hash(g) for g in genomes}) == len(genomes)


def test_mutation_always_yields_a_valid_different_genome_and_reaches_every_edit():
    space = get_space('tvn').with_options(SMALL)
    validate = get_family('tvn').validate
    rng = random.Random(7)
    changed: set[str] = set()
    genome = space.random_genome(rng)
    for trial in range(600):
        child = space.mutate(genome, rng)
        assert validate(child) == child
        assert genome_hash(child) != genome_hash(genome)
        for key in ('frames', 'size', 'frame_stride'):
            if child[key] != genome[key]:
                changed.add(key)
        if child.get('stream', 'rgb') != genome.get('stream', 'rgb'):
            changed.add('stream')
        if len(child['blocks']) > len(genome['blocks']):
            changed.add('add_block')
        elif len(child['blocks']) < len(genome['blocks']):
            changed.add('remove_block')
        else:
            for old, new in zip(genome['blocks'], child['blocks']):
                changed.update(k for k in TVNGenome.BLOCK_FIELDS if old[k] != new[k])
        # walk on, occasionally restarting so both small and large genomes get mutated
        genome = child if trial % 25 else space.random_genome(rng)
    assert changed >= {'frames', 'size', 'frame_stride', 'add_block', 'remove_block',
                       'stream', *TVNGenome.BLOCK_FIELDS}


def test_streams_option_limits_the_input_streams_drawn_and_mutated():
    rng = random.Random(5)
    rgb_only = get_space('tvn').with_options({**SMALL, 'streams': ['rgb']})
    genomes = [rgb_only.random_genome(rng) for _ in range(20)]
    genomes += [rgb_only.mutate(g, rng) for g in genomes]
    assert all('stream' not in g for g in genomes)  # rgb is the default, left out
    flow_only = get_space('tvn').with_options({**SMALL, 'streams': ['flow']})
    assert {flow_only.random_genome(rng)['stream'] for _ in range(10)} == {'flow'}
    for bad in ([], ['depth'], 'rgb', ['rgb', 'rgb']):
        with pytest.raises(VasError, match="'streams' must be a non-empty list"):
            get_space('tvn').with_options({'streams': bad})


def test_small_space_genomes_build_and_run_forward():
    import torch

    space = get_space('tvn').with_options(SMALL)
    rng = random.Random(3)
    streams = set()
    for _ in range(6):
        genome = space.mutate(space.random_genome(rng), rng)
        arch = ModelArch('tvn', genome)
        spec = arch.input_spec()
        streams.add(spec.streams)
        model = arch.build(8).eval()
        with torch.no_grad():
            out = model(*[torch.randn(spec.shape(s, 2)) for s in spec.streams])
        assert out.shape == (2, 8)
        assert all(b['filters'] <= 32 for b in genome['blocks'])
        assert 32 <= genome['size'] <= 48
    assert streams == {('rgb',), ('flow',)}  # the default space draws both input streams


def test_same_seed_same_genomes():
    space = get_space('tvn').with_options(SMALL)
    a, b = random.Random(11), random.Random(11)
    seq_a = [space.mutate(space.random_genome(a), a) for _ in range(10)]
    seq_b = [space.mutate(space.random_genome(b), b) for _ in range(10)]
    assert seq_a == seq_b


def test_bad_options_and_missing_spaces_are_clear_errors():
    space = get_space('tvn')
    with pytest.raises(VasError, match="tvn search space: unknown options \\['max_filter'\\]"):
        space.with_options({'max_filter': 10})
    with pytest.raises(VasError, match="'sizes' must satisfy"):
        space.with_options({'sizes': [64, 32]})
    with pytest.raises(VasError, match='no search space for family'):
        get_space('resnet')
    assert 'tvn' in available_families()
    assert space.options == DEFAULTS


@pytest.mark.parametrize('options', [{'max_filters': 'abc'}, {'sizes': 'big'},
                                     {'no_such_option': 1}])
def test_bad_space_option_values_are_one_line_errors(options):
    with pytest.raises(VasError) as caught:
        get_space('tvn').with_options(options)
    assert '\n' not in str(caught.value) and list(options)[0] in str(caught.value)


def test_local_steps_move_a_changed_number_to_a_neighbouring_value():
    from vas_ros.search.tvn_space import FILTER_GRID

    space = get_space('tvn').with_options({**SMALL, 'local_steps': 1.0})
    grid = {'filters': [f for f in FILTER_GRID if 8 <= f <= 32], 'size': space.sizes}
    rng = random.Random(3)
    steps = 0
    for _ in range(300):
        genome = space.random_genome(rng)
        child = space.mutate(genome, rng)
        pairs = [(k, genome[k], child[k]) for k in ('frames', 'size', 'frame_stride')]
        if len(child['blocks']) == len(genome['blocks']):
            pairs += [(k, old[k], new[k]) for old, new in zip(genome['blocks'], child['blocks'])
                      for k in ('filters', 'spatial_kernel', 'spatial_stride', 'expand',
                                'repeats')]
        for key, old, new in pairs:
            if old == new:
                continue
            steps += 1
            if key in grid:
                assert abs(grid[key].index(new) - grid[key].index(old)) == 1, (key, old, new)
            else:
                assert abs(new - old) == 1, (key, old, new)
    assert steps > 100
    # The default (0) is the published uniform redraw: jumps of more than one step occur.
    uniform = get_space('tvn').with_options(SMALL)
    rng = random.Random(3)
    jumps = [abs(c['frame_stride'] - g['frame_stride'])
             for g in (uniform.random_genome(rng) for _ in range(300))
             for c in [uniform.mutate(g, rng)]]
    assert max(jumps) > 1
    for bad in (-0.1, 1.5, 'half', True, None):
        with pytest.raises(VasError, match="'local_steps' must be a number in"):
            get_space('tvn').with_options({'local_steps': bad})
