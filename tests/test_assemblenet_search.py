"""AssembleNet search space: random graphs, mutations, learned-weight pruning, graph picture."""

import random

import numpy as np
import pytest
import torch

from vas_ros.errors import VasError
from vas_ros.models.assemblenet import AssembleGenome, AssembleNet
from vas_ros.models.layers.fusion import logit
from vas_ros.search.assemblenet_space import AssembleNetSpace
from vas_ros.search.space import get_space


def test_space_is_registered_with_the_search_registry():
    space = get_space('assemblenet')
    assert space.family == 'assemblenet'
    assert space.after_training is not None
    assert space.options['prune_threshold'] == 0.2
    smaller = space.with_options({'max_blocks': 6})
    assert smaller.options['max_blocks'] == 6
    with pytest.raises(VasError, match='unknown options'):
        space.with_options({'colour': 'red'})
    with pytest.raises(VasError, match='max_blocks'):
        AssembleNetSpace(max_blocks=2)


def test_random_graphs_are_valid_over_connected_and_buildable():
    space = AssembleNetSpace()
    rng = random.Random(0)
    fan_in = []
    for _ in range(60):
        genome = space.random_genome(rng)
        g = AssembleGenome.from_dict(genome)
        assert {n.modality for n in g.stems} == {'rgb', 'flow'}
        assert len(g.blocks) <= space.options['max_blocks']
        assert all(n.edge_logits is None for n in g.blocks)
        fan_in += [len(n.inputs) for n in g.blocks]
    assert sum(fan_in) / len(fan_in) > 1.5  # over-connected: most blocks fuse several inputs
    model = AssembleNet(genome, 4)
    x = [torch.randn(1, 3, 8, 64, 64), torch.randn(1, 2, 8, 64, 64)]
    assert model(*x).shape == (1, 4)
    rgb_space = AssembleNetSpace(modalities=['rgb'])
    assert AssembleGenome.from_dict(rgb_space.random_genome(rng)).streams == ('rgb',)


def test_searched_graphs_learn_their_edges_faster():
    from vas_ros.models.assemblenet import TINY_GENOME

    space = AssembleNetSpace()
    rng = random.Random(1)
    assert space.random_genome(rng)['edge_lr_scale'] == 100.0
    # A preset seed keeps its own rate; its children get the space's.
    assert TINY_GENOME['edge_lr_scale'] == 1.0
    assert space.mutate(TINY_GENOME, rng)['edge_lr_scale'] == 100.0
    assert AssembleNetSpace(edge_lr_scale=10).random_genome(rng)['edge_lr_scale'] == 10.0
    with pytest.raises(VasError, match='edge_lr_scale'):
        AssembleNetSpace(edge_lr_scale=0)


@pytest.mark.parametrize('kind', AssembleNetSpace.MUTATIONS)
def test_each_mutation_yields_valid_changed_graphs(kind):
    space = AssembleNetSpace()
    rng = random.Random(AssembleNetSpace.MUTATIONS.index(kind))  # the same in every process
    applied = 0
    for _ in range(40):
        genome = space.random_genome(rng)
        try:
            child = space.mutate(genome, rng, kind=kind)
        except VasError:
            continue  # e.g. split at the block ceiling, merge with one block per level
        applied += 1
        assert AssembleGenome.normalise(child) == child
        assert child != genome
    assert applied >= 20


def test_mutation_chains_stay_valid():
    space = AssembleNetSpace()
    rng = random.Random(7)
    genome = space.random_genome(rng)
    seen = set()
    for _ in range(300):
        genome = space.mutate(genome, rng)
        AssembleGenome.from_dict(genome)
        seen.add(len(genome['nodes']))
    assert len(seen) > 2  # splits and merges really change the graph size


def _hand_weighted_model(weights: dict):
    genome = AssembleGenome.normalise({
        'frames': 2, 'size': 32, 'stem_filters': 4,
        'nodes': [
            {'type': 'stem', 'modality': 'rgb'},                                   # 0
            {'type': 'stem', 'modality': 'flow'},                                  # 1
            {'type': 'block', 'level': 0, 'inputs': [0, 1], 'filters': 4},         # 2
            {'type': 'block', 'level': 0, 'inputs': [0], 'filters': 4},            # 3
            {'type': 'block', 'level': 1, 'inputs': [0, 2, 3], 'filters': 4},      # 4
            {'type': 'block', 'level': 3, 'inputs': [1, 2, 4], 'filters': 4},      # 5
        ]})
    model = AssembleNet(genome, 3)
    with torch.no_grad():
        for key, fusion in model.fusions.items():
            if fusion.edge_logits is None:
                continue
            dst = int(key)
            for j, src in enumerate(model.node_inputs[dst]):
                fusion.edge_logits[j] = logit(weights[(src, dst)])
    return genome, model


def test_after_training_prunes_weak_edges_but_never_strands_a_node():
    weights = {(0, 2): 0.9, (1, 2): 0.1,           # 1->2 weak, but 2 is flow's other consumer
               (0, 4): 0.05, (2, 4): 0.6, (3, 4): 0.15,  # 3->4 is node 3's only consumer
               (1, 5): 0.5, (2, 5): 0.19, (4, 5): 0.95}
    genome, model = _hand_weighted_model(weights)
    assert model.edge_weights()[(1, 2)] == pytest.approx(0.1, abs=1e-6)
    space = AssembleNetSpace(propose_edges=0)
    pruned = space.after_training(genome, model)
    edges = {(s, n['id']) for n in pruned['nodes'] if n['type'] == 'block' for s in n['inputs']}
    assert (1, 2) not in edges       # weak, flow stem still feeds node 5
    assert (0, 4) not in edges       # weakest of all
    assert (3, 4) in edges           # weak but the last consumer of node 3
    assert (2, 5) not in edges       # 0.19 < 0.2
    assert {(0, 2), (2, 4), (1, 5), (4, 5), (0, 3)} <= edges
    # Learned weights of the survivors are kept as logits for the record.
    node5 = pruned['nodes'][5]
    assert node5['inputs'] == [1, 4]
    assert [round(1 / (1 + 2.718281828 ** -v), 3) for v in node5['edge_logits']] == [0.5, 0.95]
    # A stricter threshold prunes more; a lax one nothing.
    none = AssembleNetSpace(propose_edges=0, prune_threshold=0.0).after_training(genome, model)
    assert [n.get('inputs') for n in none['nodes']] == [n.get('inputs') for n in genome['nodes']]


def test_after_training_proposes_new_edges_deterministically():
    weights = {(0, 2): 0.9, (1, 2): 0.9, (0, 4): 0.9, (2, 4): 0.9, (3, 4): 0.9,
               (1, 5): 0.9, (2, 5): 0.9, (4, 5): 0.9}
    genome, model = _hand_weighted_model(weights)
    space = AssembleNetSpace(propose_edges=2)
    first = space.after_training(genome, model)
    assert first == space.after_training(genome, model)
    count = sum(len(n.get('inputs', [])) for n in first['nodes'])
    assert count == sum(len(n.get('inputs', [])) for n in genome['nodes']) + 2
    AssembleGenome.from_dict(first)


def test_graph_png_is_written(tmp_path):
    import matplotlib.image

    from vas_ros.models.assemblenet_plot import genome_edge_weights, plot_graph
    from vas_ros.models.factory import resolve_arch

    genome = resolve_arch('assemblenet50').genome
    weights = genome_edge_weights(genome)
    assert weights[(9, 13)] == pytest.approx(0.888, abs=1e-4)
    path = plot_graph(genome, weights, tmp_path / 'sub' / 'graph.png')
    assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 300 and image.shape[1] > 600
    assert image[..., :3].std() > 0.05  # not a blank canvas


@pytest.mark.slow
def test_tiny_search_end_to_end_writes_the_best_graph(tmp_path):
    from vas_ros.cli import main
    from vas_ros.data.synth import render_clip, write_synthetic_dataset
    from vas_ros.models.checkpoint import load_checkpoint
    from vas_ros.perception.engine import InferenceEngine
    from vas_ros.search.store import SearchStore

    data = write_synthetic_dataset(tmp_path / 'data', per_class=2, seed=0, size=48, frames=16)
    out, store = tmp_path / 'out', tmp_path / 'search.db'
    argv = ['search', 'assemblenet', '--data', str(data), '--latency-budget-ms', '20000',
            '--population', '2', '--rounds', '1', '--store', str(store), '--out', str(out),
            '--proxy-steps', '2', '--final-steps', '2', '--batch-size', '4',
            '--latency-repeats', '1', '--quiet', '--seed', '3',
            '--space-option', 'size=48', '--space-option', 'max_blocks=6']
    assert main(argv) == 0
    best = load_checkpoint(out / 'best.safetensors')
    assert best.arch.family == 'assemblenet'
    assert best.spec.streams == ('rgb', 'flow')
    assert (out / 'best_graph.png').read_bytes()[:4] == b'\x89PNG'
    # The trained two-stream winner runs on the robot runtime from RGB frames alone.
    engine = InferenceEngine(out / 'best.safetensors', device='cpu')
    clip = render_clip('move_left', np.random.default_rng(0), size=80, frames=best.spec.frames)
    prediction = engine.infer(clip)
    assert prediction.label in best.classes and prediction.latency_ms['flow'] > 0
    with SearchStore.open(store) as opened:
        records = opened.candidates()
    assert len(records) == 3
    trained = [r for r in records if r.accuracy is not None]
    assert trained
    # after_training ran on every trained candidate: learned weights recorded, graph rewired.
    assert all(r.next_genome is not None for r in trained)
    for record in trained:
        AssembleGenome.from_dict(record.next_genome)
        assert any(n.get('edge_logits') for n in record.next_genome['nodes'])
