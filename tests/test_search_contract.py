"""One contract for every search space and every evaluation backend, so a new family or
backend is held to it the day it is added. Spaces: random genomes and mutations are valid
genomes of their family, JSON-serialisable, reproducible from the seed, and a mutation
changes its parent. Backends: every task comes back once, a failing task is a failed
result (not an exception), and a stop request cancels."""

from __future__ import annotations

import json
import random

import pytest

from vas_ros.models.registry import get_family
from vas_ros.search.backends import make_backend
from vas_ros.search.engine import SearchCancelled
from vas_ros.search.records import EvalResult
from vas_ros.search.space import available_families, canonical_json, genome_hash, get_space

FAMILIES = available_families()


def test_every_family_with_a_model_has_a_search_space():
    assert set(FAMILIES) >= {'tvn', 'evanet', 'assemblenet'}


@pytest.mark.parametrize('family', FAMILIES)
def test_random_genomes_are_valid_serialisable_and_reproducible(family):
    space, validate = get_space(family), get_family(family).validate
    first = [space.random_genome(random.Random(7)) for _ in range(3)]
    assert first[0] == first[1] == first[2], 'the same seed must draw the same genome'
    rng = random.Random(0)
    genomes = [space.random_genome(rng) for _ in range(12)]
    for genome in genomes:
        assert json.loads(canonical_json(genome)) == genome
        validate(dict(genome))  # raises GenomeError if the space drew something invalid
    assert len({genome_hash(g) for g in genomes}) > 1, 'the space draws only one genome'


@pytest.mark.parametrize('family', FAMILIES)
def test_mutations_are_valid_changed_and_reproducible(family):
    space, validate = get_space(family), get_family(family).validate
    rng = random.Random(1)
    for _ in range(8):
        parent = space.random_genome(rng)
        state = rng.getstate()
        child = space.mutate(parent, rng)
        rng.setstate(state)
        assert space.mutate(parent, rng) == child, 'mutation must depend on the rng only'
        assert genome_hash(child) != genome_hash(parent)
        validate(dict(child))
        assert json.loads(canonical_json(child)) == child


BACKENDS = ['local', pytest.param('ray', marks=pytest.mark.slow)]


@pytest.mark.parametrize('name', BACKENDS)
def test_backends_return_every_task_once_and_failures_as_results(name):
    backend = make_backend(name, workers=2, threads=1)
    try:
        tasks = [(i, {'x': i}) for i in range(5)]
        # builtins:dict echoes its payload in the worker; divmod(payload) raises TypeError.
        results = list(backend.map_unordered('builtins:dict', tasks, lambda: False))
        assert sorted(k for k, _ in results) == list(range(5))
        assert all(result == {'x': key} for key, result in results)
        failed = dict(backend.map_unordered('builtins:divmod', [('bad', {'x': 1})],
                                            lambda: False))
        assert failed['bad']['ok'] is False and 'TypeError' in failed['bad']['error']
        typed = EvalResult.from_dict(failed['bad'])  # a failure is a well-formed result
        assert typed.ok is False and typed.error == failed['bad']['error']
        with pytest.raises(SearchCancelled):
            list(backend.map_unordered('builtins:dict', tasks, lambda: True))
        assert backend.describe()['backend'] == name
    finally:
        backend.close()
