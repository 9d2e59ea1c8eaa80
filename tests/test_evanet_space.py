"""EvaNet search space: random genomes and mutations stay valid and buildable."""

import copy
import random

import pytest
import torch

from vas_ros.errors import VasError
from vas_ros.models import evanet
from vas_ros.search.evanet_space import MUTATIONS, EvaNetSpace
from vas_ros.search.space import canonical_json, get_space


def test_space_is_registered_with_cpu_sized_defaults():
    space = get_space('evanet')
    assert space.family == 'evanet'
    assert space.options['frames'] == 8 and space.options['size'] == 64
    wider = space.with_options({'width': 0.25, 'max_branches': 6})
    assert wider.options['width'] == 0.25 and wider.options['max_branches'] == 6
    with pytest.raises(VasError, match='unknown options'):
        space.with_options({'depth': 3})
    with pytest.raises(VasError, match='max_repeats'):
        space.with_options({'max_repeats': 0})
    with pytest.raises(VasError, match='no valid genome'):
        space.with_options({'width': 5})


def test_random_genomes_are_valid_and_reproducible():
    space = EvaNetSpace(max_branches=5, max_repeats=3)
    seen = set()
    for seed in range(200):
        genome = space.random_genome(random.Random(seed))
        assert evanet.EvaGenome.normalise(genome) == genome
        assert genome['frames'] == 8 and genome['width'] == 0.125
        assert all(len(b['branches']) <= 5 and b['repeats'] <= 3 for b in genome['blocks'])
        seen.add(canonical_json(genome))
    assert len(seen) == 200
    assert space.random_genome(random.Random(7)) == space.random_genome(random.Random(7))


def test_mutations_stay_valid_and_change_the_genome():
    space = EvaNetSpace()
    rng = random.Random(0)
    genome = space.random_genome(rng)
    for _ in range(500):
        child = space.mutate(genome, rng)
        assert evanet.EvaGenome.normalise(child) == child
        assert canonical_json(child) != canonical_json(genome)
        assert all(len(b['branches']) <= 4 and 1 <= b['repeats'] <= 2
                   for b in child['blocks'])
        genome = child


@pytest.mark.parametrize('mutation', MUTATIONS)
def test_each_mutation_kind_yields_valid_changed_genomes(mutation):
    impl = EvaNetSpace(max_branches=4, max_repeats=3)
    rng = random.Random(1)
    valid = 0
    for _ in range(50):
        genome = impl.random_genome(rng)
        child = copy.deepcopy(genome)
        if not impl._apply(mutation, child, rng):
            continue
        try:
            child = evanet.EvaGenome.normalise(child)
        except VasError:
            continue  # mutate() redraws these
        assert child != genome
        valid += 1
    assert valid >= 10


def test_mutations_cover_branch_and_repeat_changes():
    space = EvaNetSpace(max_branches=4, max_repeats=3)
    rng = random.Random(3)
    genome = space.random_genome(rng)
    counts, repeats = set(), set()
    for _ in range(300):
        genome = space.mutate(genome, rng)
        counts.update(len(b['branches']) for b in genome['blocks'])
        repeats.update(b['repeats'] for b in genome['blocks'])
    assert counts == {1, 2, 3, 4}
    assert repeats == {1, 2, 3}


def test_mutated_genomes_build_and_run():
    space = EvaNetSpace(frames=4, size=32)
    rng = random.Random(5)
    genome = space.random_genome(rng)
    for _ in range(3):
        genome = space.mutate(genome, rng)
        model = evanet.EvaGenome.parse(genome).build(3).eval()
        with torch.no_grad():
            assert model(torch.randn(1, 3, 4, 32, 32)).shape == (1, 3)
