"""`vas-ros ensemble`: choosing members from a search store, training them, one checkpoint."""

import copy
import random

import pytest

from vas_ros.cli import main
from vas_ros.errors import VasError
from vas_ros.models import evanet
from vas_ros.models.factory import resolve_arch
from vas_ros.search.ensemble_select import genome_distance, select_candidates
from vas_ros.search.evanet_space import EvaNetSpace
from vas_ros.search.space import genome_hash
from vas_ros.search.store import CandidateRecord


def _record(cid, genome, accuracy, status='done', latency=10.0):
    return CandidateRecord(id=cid, parent_id=None, origin='random', genome=genome,
                           genome_hash=genome_hash(genome), status=status,
                           accuracy=accuracy, latency_ms=latency)


def _genomes(n, **options):
    space = EvaNetSpace(**options)
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
    far = evanet.EvaGenome.normalise(far)
    assert genome_distance('evanet', base, near) < genome_distance('evanet', base, far)
    records = [_record(0, base, 0.9), _record(1, near, 0.85), _record(2, far, 0.6)]
    assert [r.id for r in select_candidates(records, 2, 'evanet')] == [0, 1]
    assert [r.id for r in select_candidates(records, 2, 'evanet', diverse=True)] == [0, 2]
    # A pool of 2 leaves the far genome out.
    assert [r.id for r in select_candidates(records, 2, 'evanet', diverse=True,
                                            pool=2)] == [0, 1]


def test_distance_is_the_genomes_own_or_the_leaf_count():
    from vas_ros.models.genome import leaves

    a = {'blocks': [{'f': 1, 'k': 3}], 'size': 64}
    b = {'blocks': [{'f': 2, 'k': 3}, {'f': 1}], 'size': 64}
    la, lb = leaves(a), leaves(b)
    assert sum(la.get(k) != lb.get(k) for k in set(la) | set(lb)) == 3  # length, 2 x f
    # TVN keeps the default (differing JSON leaves); EvaNet counts structure.
    tvn = resolve_arch('tvn_tiny').genome.to_dict()
    wider = {**tvn, 'blocks': [{**tvn['blocks'][0], 'filters': 24}, *tvn['blocks'][1:]]}
    assert genome_distance('tvn', tvn, tvn) == 0 and genome_distance('tvn', tvn, wider) == 1
    eva = resolve_arch('evanet_tiny').genome.to_dict()
    other = {**eva, 'blocks': [*eva['blocks'][:3], {'repeats': 2, 'branches': [
        {'kind': '1x1'}]}]}
    assert genome_distance('evanet', eva, other) == 1 + 1  # one branch gone, one repeat more


def test_ensemble_command_errors(tmp_path):
    with pytest.raises(SystemExit):
        main(['ensemble', '--top', '2'])  # missing required options
    assert main(['ensemble', '--from-store', str(tmp_path / 'none.sqlite'), '--data',
                 str(tmp_path), '--out', str(tmp_path / 'o')]) == 2


def test_flow_members_come_from_the_genomes_stream_hook():
    from vas_ros.errors import VasError
    from vas_ros.models.factory import resolve_arch
    from vas_ros.training.ensemble_build import member_streams

    for name, family in (('evanet_tiny', 'evanet'), ('tvn_tiny', 'tvn')):
        pair = member_streams(family, resolve_arch(name), flow=True)
        assert [streams for _, streams in pair] == [['rgb'], ['flow']]
        assert [a.input_spec().streams for a, _ in pair] == [('rgb',), ('flow',)]
    with pytest.raises(VasError, match='assemblenet genome cannot switch to the rgb stream'):
        member_streams('assemblenet', resolve_arch('assemblenet_tiny'), flow=True)
