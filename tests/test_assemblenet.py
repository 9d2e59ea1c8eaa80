"""AssembleNet family: graph validation, presets, edge weights, RGB+flow checkpoint at run time."""

import copy
import json

import numpy as np
import pytest
import torch

from vas_ros.errors import GenomeError, VasError
from vas_ros.models.assemblenet import (
    TINY_GENOME,
    AssembleGenome,
    published_genome,
    rgb_only,
)
from vas_ros.models.factory import resolve_arch
from vas_ros.models.introspect import count_params, example_inputs


def small_graph():
    return {
        'frames': 4, 'size': 32, 'depth': [1, 1, 1, 1], 'stem_filters': 8,
        'nodes': [
            {'type': 'stem', 'modality': 'rgb', 'temporal_dilation': 2},
            {'type': 'stem', 'modality': 'flow'},
            {'type': 'block', 'level': 0, 'inputs': [0, 1], 'filters': 4},
            {'type': 'block', 'level': 1, 'inputs': [2], 'filters': 4, 'spatial_stride': 2},
            {'type': 'block', 'level': 3, 'inputs': [1, 3], 'filters': 8, 'spatial_stride': 2},
        ]}


def broken(edit):
    genome = small_graph()
    edit(genome['nodes'])
    return genome


@pytest.mark.parametrize('edit, field, words', [
    (lambda n: n[2].update(inputs=[0, 3]), 'nodes[2].inputs', 'not earlier'),       # cycle
    (lambda n: n[3].update(inputs=[2, 2]), 'nodes[3].inputs', 'repeats'),
    (lambda n: n[4].update(inputs=[1, 9]), 'nodes[4].inputs', 'does not exist'),    # dangling
    (lambda n: n[4].update(inputs=[-1, 3]), 'nodes[4].inputs', 'does not exist'),
    (lambda n: n[4].update(inputs=[1, 2]), 'nodes[3]', 'no path to the head'),
    (lambda n: n.insert(2, {'type': 'stem', 'modality': 'rgb'}) or
     [b.update(inputs=[i + 1 if i >= 2 else i for i in b['inputs']]) for b in n[3:]],
     'nodes[2]', 'no consumers'),
    (lambda n: n[3].update(level=4), 'nodes[3].level', '<= 3'),
    (lambda n: n[2].update(level=2), 'nodes[3].inputs', 'levels out of order'),
    (lambda n: n[4].update(level=2), 'nodes', 'level-3'),
    (lambda n: n[0].update(modality='depth'), 'nodes[0].modality', 'rgb'),
    (lambda n: n[2].update(edge_logits=[0.1]), 'nodes[2].edge_logits', 'one number per input'),
    (lambda n: n[2].update(filters=0), 'nodes[2].filters', '>= 1'),
    (lambda n: n[2].update(kind='x'), 'nodes[2]', 'unknown block fields'),
    (lambda n: n[2].update(id=7), 'nodes[2].id', 'position'),
    (lambda n: n[2].pop('inputs'), 'nodes[2].inputs', 'required'),
])
def test_graph_validation_names_the_field(edit, field, words):
    with pytest.raises(GenomeError) as info:
        AssembleGenome.from_dict(broken(edit))
    assert info.value.field == field
    assert words in str(info.value)


def test_genome_level_checks():
    genome = small_graph()
    genome['nodes'] = [{'type': 'block', 'level': 3, 'inputs': [5], 'filters': 4}]
    with pytest.raises(GenomeError, match='at least one stem'):
        AssembleGenome.from_dict(genome)
    with pytest.raises(GenomeError) as info:
        AssembleGenome.from_dict({**small_graph(), 'depth': [1, 1, 0, 1]})
    assert info.value.field == 'depth[2]'
    with pytest.raises(GenomeError) as info:
        AssembleGenome.from_dict({**small_graph(), 'colour': 'red'})
    assert 'colour' in str(info.value)
    two_heads = small_graph()
    two_heads['nodes'].append({'type': 'block', 'level': 3, 'inputs': [3], 'filters': 16})
    with pytest.raises(GenomeError, match='share filters'):
        AssembleGenome.from_dict(two_heads)
    # Same-level edges are legal (earlier ids already make them acyclic).
    same_level = small_graph()
    same_level['nodes'][3].update(level=0, spatial_stride=1)
    assert AssembleGenome.from_dict(same_level).nodes[3].level == 0


def test_json_round_trip_through_a_genome_file(tmp_path):
    normal = AssembleGenome.normalise(small_graph())
    assert AssembleGenome.normalise(json.loads(json.dumps(normal))) == normal
    assert [n['id'] for n in normal['nodes']] == list(range(5))
    path = tmp_path / 'graph.json'
    path.write_text(json.dumps({'family': 'assemblenet', 'name': 'g', 'genome': normal}))
    arch = resolve_arch(str(path))
    assert arch.genome.to_dict() == normal
    assert arch.input_spec().streams == ('rgb', 'flow')


def test_small_graph_forward_and_streams():
    arch = resolve_arch({'family': 'assemblenet', 'genome': small_graph()})
    model = arch.build(5)
    spec = arch.input_spec()
    assert model(*example_inputs(spec, 2)).shape == (2, 5)
    with pytest.raises(VasError, match='takes 2 input'):
        model(torch.randn(1, 3, 4, 32, 32))


def test_tiny_presets_two_stream_and_rgb_ablation():
    tiny = resolve_arch('assemblenet_tiny')
    ablation = resolve_arch('assemblenet_tiny_rgb')
    assert tiny.input_spec().streams == ('rgb', 'flow')
    assert ablation.input_spec().streams == ('rgb',)
    assert ablation.genome.to_dict() == rgb_only(TINY_GENOME)
    assert not any(n.modality == 'flow' for n in ablation.genome.stems)
    for arch in (tiny, ablation):
        spec = arch.input_spec()
        model = arch.build(8)
        assert model(*example_inputs(spec, 2)).shape == (2, 8)
    assert count_params(ablation.build(8)) < count_params(tiny.build(8))


def test_published_presets_forward_at_reduced_input():
    counts = {}
    for variant in (50, 101):
        preset = resolve_arch(f'assemblenet{variant}')
        assert preset.input_spec().streams == ('rgb', 'flow')
        assert list(preset.genome.depth) == ([3, 4, 6, 3] if variant == 50 else [3, 4, 23, 3])
        genome = published_genome(variant, frames=4, size=64)
        arch = resolve_arch({'family': 'assemblenet', 'genome': genome})
        model = arch.build(10).eval()
        with torch.no_grad():
            out = model(*example_inputs(arch.input_spec()))
        assert out.shape == (1, 10)
        counts[variant] = count_params(model)
        # Parameters do not depend on the input size: the preset has the same count.
        assert count_params(preset.build(10)) == counts[variant]
    # About a two-stream ResNet-50's worth for 50; 101 adds 17 level-2 modules per node
    # (narrower at 192 filters) and halves the level-3 width.
    assert 30e6 < counts[50] < 45e6
    assert counts[101] - counts[50] > 10e6


def test_published_edge_weights_initial_and_frozen():
    genome = published_genome(50, frames=2, size=32, depth=[1, 1, 1, 1])
    arch = resolve_arch({'family': 'assemblenet', 'genome': genome})
    model = arch.build(3)
    weights = model.edge_weights()
    assert weights[(0, 6)] == pytest.approx(0.138, abs=1e-5)
    assert weights[(12, 14)] == pytest.approx(0.989, abs=1e-5)
    assert weights[(1, 4)] == 1.0  # single input: no weight, as published
    assert len(weights) == 30
    assert all(isinstance(f.edge_logits, torch.nn.Parameter)
               for f in model.fusions.values() if f.edge_logits is not None)
    frozen = published_genome(50, frames=2, size=32, depth=[1, 1, 1, 1], freeze_edges=True)
    frozen_model = resolve_arch({'family': 'assemblenet', 'genome': frozen}).build(3)
    names = {n for n, _ in frozen_model.named_parameters()}
    assert not any('edge_logits' in n for n in names)
    assert frozen_model.edge_weights() == pytest.approx(weights)
    fresh = published_genome(50, frames=2, size=32, depth=[1, 1, 1, 1],
                             published_weights=False)
    assert all(n.get('edge_logits') is None for n in fresh['nodes'])


def _train_step(model, spec):
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    logits = model(*example_inputs(spec, 2))
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1])).backward()
    optimizer.step()


def test_edge_weights_learn_in_the_full_model_and_stay_fixed_when_frozen():
    torch.manual_seed(0)
    genome = copy.deepcopy(TINY_GENOME)
    arch = resolve_arch({'family': 'assemblenet', 'genome': genome})
    spec = arch.input_spec()
    model = arch.build(2)
    before = model.edge_weights()
    _train_step(model, spec)
    grads = [f.edge_logits.grad for f in model.fusions.values() if f.edge_logits is not None]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)
    after = model.edge_weights()
    assert any(abs(after[e] - before[e]) > 1e-6 for e in before)

    genome['freeze_edges'] = True
    frozen = resolve_arch({'family': 'assemblenet', 'genome': genome}).build(2)
    before = frozen.edge_weights()
    _train_step(frozen, spec)
    assert frozen.edge_weights() == before
    assert all(f.edge_logits.grad is None for f in frozen.fusions.values()
               if f.edge_logits is not None)


def test_edge_logits_get_their_own_learning_rate_and_no_weight_decay():
    from vas_ros.training.trainer import param_groups

    torch.manual_seed(0)
    genome = {**copy.deepcopy(TINY_GENOME), 'edge_lr_scale': 50}
    arch = resolve_arch({'family': 'assemblenet', 'genome': genome})
    spec = arch.input_spec()
    model = arch.build(2)
    groups = param_groups(arch, model, 1e-3)
    assert [g['lr'] for g in groups] == [pytest.approx(1e-3), pytest.approx(0.05)]
    assert groups[1]['weight_decay'] == 0.0 and 'weight_decay' not in groups[0]
    ids = [id(p) for g in groups for p in g['params']]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())  # each exactly once
    edge_ids = {id(f.edge_logits) for f in model.fusions.values() if f.edge_logits is not None}
    assert {id(p) for p in groups[1]['params']} == edge_ids

    # Adam's first step moves every parameter by about its lr: 50x more for the edges.
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.AdamW(groups, lr=1e-3, weight_decay=0.05)
    logits = model(*example_inputs(spec, 2))
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1])).backward()
    optimizer.step()
    moved = {name: (p.detach() - before[name]).abs().max().item()
             for name, p in model.named_parameters()}
    edge_moves = [v for k, v in moved.items() if k.endswith('edge_logits')]
    other_moves = [v for k, v in moved.items() if not k.endswith('edge_logits')]
    assert edge_moves and min(edge_moves) == pytest.approx(0.05, rel=0.05)
    assert max(other_moves) < 2e-3

    # Default scale 1: one group's worth of lr; frozen edges: no edge group at all.
    plain = resolve_arch({'family': 'assemblenet', 'genome': TINY_GENOME})
    assert [g['lr'] for g in param_groups(plain, plain.build(2), 1e-3)] \
        == [pytest.approx(1e-3)] * 2
    frozen = resolve_arch({'family': 'assemblenet', 'genome': {
        **TINY_GENOME, 'freeze_edges': True}})
    assert len(param_groups(frozen, frozen.build(2), 1e-3)) == 1
    with pytest.raises(GenomeError, match='edge_lr_scale'):
        AssembleGenome.from_dict({**TINY_GENOME, 'edge_lr_scale': 0})


def test_two_stream_checkpoint_runs_from_rgb_frames_only(tmp_path):
    from vas_ros.data.synth import CLASSES, render_clip
    from vas_ros.data.transforms import clip_to_inputs
    from vas_ros.models.checkpoint import save_checkpoint
    from vas_ros.perception.engine import InferenceEngine

    torch.manual_seed(1)
    arch = resolve_arch('assemblenet_tiny')
    spec = arch.input_spec()
    model = arch.build(len(CLASSES)).eval()
    path = save_checkpoint(tmp_path / 'tiny.safetensors', model, arch, CLASSES, spec)

    frames = render_clip('rotate_cw', np.random.default_rng(3), size=96, frames=spec.frames)
    engine = InferenceEngine(path, device='cpu')
    prediction = engine.infer(frames, top_k=3)
    assert prediction.label in CLASSES
    assert prediction.latency_ms['flow'] > 0  # the engine computed flow from the RGB frames

    inputs = clip_to_inputs(frames, spec)
    assert set(inputs) == {'rgb', 'flow'}
    assert inputs['flow'].shape == (2, spec.frames, spec.size, spec.size)
    assert inputs['flow'].abs().max() > 0  # the clip moves, so the flow is not empty
    with torch.no_grad():
        probs = torch.softmax(model(*[inputs[s].unsqueeze(0) for s in spec.streams]), -1)[0]
    assert prediction.score == pytest.approx(probs.max().item(), abs=1e-4)


def test_two_stream_model_exports_to_onnxruntime():
    from vas_ros.models.inference import prepare_inference

    torch.manual_seed(0)
    arch = resolve_arch('assemblenet_tiny')
    spec = arch.input_spec()
    model = arch.build(8).eval()
    inputs = example_inputs(spec, 1)
    with torch.no_grad():
        expected = model(*inputs)
    run = prepare_inference(model, spec, path='onnxruntime')
    got = torch.as_tensor(run(*inputs)).float()
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-4)


def test_documented_evolved_graph_validates_and_runs():
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / 'docs' / 'assemblenet_evolved_synth.json'
    arch = resolve_arch(str(path))
    assert arch.family == 'assemblenet' and arch.genome.edge_lr_scale == 100.0
    spec = arch.input_spec()
    assert spec.streams == ('rgb', 'flow')
    model = arch.build(8).eval()
    with torch.no_grad():
        assert model(*example_inputs(spec, 1)).shape == (1, 8)
    assert rgb_only(arch.genome)['nodes'][0]['modality'] == 'rgb'
