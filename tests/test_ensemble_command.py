"""`vas-ros ensemble`: choosing members from a search store, training them, one checkpoint."""

import copy
import random

import pytest

from vas_ros.cli import main
from vas_ros.commands.ensemble import genome_distance, select_candidates
from vas_ros.errors import VasError
from vas_ros.models import evanet
from vas_ros.search.evanet_space import make_space
from vas_ros.search.space import genome_hash
from vas_ros.search.store import CandidateRecord


def _record(cid, genome, accuracy, status='done', latency=10.0):
    return CandidateRecord(id=cid, parent_id=None, origin='random', genome=genome,
                           genome_hash=genome_hash(genome), status=status,
                           accuracy=accuracy, latency_ms=latency)


def _genomes(n, **options):
    space = make_space(**options)
    rng = random.Random(0)
    return [space.random_genome(rng) for _ in range(n)]


def test_top_k_is_by_accuracy_distinct_and_done_only():
    g = _genomes(4)
    records = [_record(0, g[0], 0.5), _record(1, g[1], 0.9), _record(2, g[1], 0.95),
               _record(3, g[2], 0.99, status='failed'), _record(4, g[3], 0.7, latency=5),
               _record(5, g[2], 0.7, latency=4)]
    picked = select_candidates(records, 3, 'evanet')
    assert [r.id for r in picked] == [2, 5, 4]  # duplicate genome once; tie -> faster
    with pytest.raises(VasError, match='4 distinct trained'):
        select_candidates(records, 5, 'evanet')


def test_diverse_selection_prefers_distant_genomes():
    base = _genomes(1)[0]
    near = copy.deepcopy(base)
    near['blocks'][0]['repeats'] = 2 if base['blocks'][0]['repeats'] == 1 else 1
    far = copy.deepcopy(base)
    far['stem']['type'] = '3d' if base['stem']['type'] != '3d' else 'itgm'
    far['blocks'][1]['branches'] = [{'kind': '1x1'}]
    far['blocks'][2]['branches'] = [{'kind': 'maxpool', 'time': 11}]
    far = evanet.validate(far)
    assert genome_distance('evanet', base, near) < genome_distance('evanet', base, far)
    records = [_record(0, base, 0.9), _record(1, near, 0.85), _record(2, far, 0.6)]
    assert [r.id for r in select_candidates(records, 2, 'evanet')] == [0, 1]
    assert [r.id for r in select_candidates(records, 2, 'evanet', diverse=True)] == [0, 2]
    # A pool of 2 leaves the far genome out.
    assert [r.id for r in select_candidates(records, 2, 'evanet', diverse=True,
                                            pool=2)] == [0, 1]


def test_generic_distance_counts_differing_leaves():
    a = {'blocks': [{'f': 1, 'k': 3}], 'size': 64}
    b = {'blocks': [{'f': 2, 'k': 3}, {'f': 1}], 'size': 64}
    assert genome_distance('tvn', a, a) == 0
    assert genome_distance('tvn', a, b) == 3  # list length, blocks[0].f, blocks[1].f


def test_ensemble_command_errors(tmp_path):
    with pytest.raises(SystemExit):
        main(['ensemble', '--top', '2'])  # missing required options
    assert main(['ensemble', '--from-store', str(tmp_path / 'none.sqlite'), '--data',
                 str(tmp_path), '--out', str(tmp_path / 'o')]) == 2
