"""Ensembles: genome validation, stream routing, and one checkpoint for the whole set."""

import numpy as np
import pytest
import torch

from vas_ros.errors import GenomeError, VasError
from vas_ros.models import evanet
from vas_ros.models.checkpoint import load_checkpoint, save_checkpoint
from vas_ros.models.ensemble import Ensemble, make_genome
from vas_ros.models.registry import ModelArch

TINY = {'family': 'evanet', 'name': 'evanet_tiny', 'genome': evanet.PRESETS['evanet_tiny']}
CLASSES = ['a', 'b', 'c']


def _two_stream() -> ModelArch:
    genome = make_genome([('evanet_tiny', ['rgb']), ('evanet_tiny', ['flow'])])
    return ModelArch('ensemble', genome, 'tiny_two_stream')


def test_two_stream_genome_and_spec():
    arch = _two_stream()
    members = arch.genome.to_dict()['members']
    assert [m['streams'] for m in members] == [['rgb'], ['flow']]
    assert members[1]['arch']['genome']['stream'] == 'flow'  # EvaNet switched to flow
    spec = arch.input_spec()
    assert spec.streams == ('rgb', 'flow')
    assert (spec.frames, spec.size, spec.frame_stride) == (8, 64, 2)
    # flow listed first still gives the canonical order rgb, flow
    flipped = make_genome([('evanet_tiny', ['flow']), ('evanet_tiny', None)])
    assert ModelArch('ensemble', flipped).input_spec().streams == ('rgb', 'flow')


@pytest.mark.parametrize('genome,field', [
    ({'members': []}, 'members'),
    ({'members': [TINY]}, 'members[0].family'),  # a bare arch, not {"arch": ...}
    ({'members': [{'arch': 'evanet_tiny'}]}, 'members[0].arch'),
    ({'members': [{'arch': TINY}], 'weights': [1]}, 'weights'),
    ({'members': [{'arch': TINY, 'streams': ['depth']}]}, 'members[0].streams'),
    ({'members': [{'arch': {**TINY, 'genome': {**TINY['genome'], 'frames': 0}}}]},
     'members[0].arch.frames'),
    ({'members': [{'arch': TINY}, {'arch': {**TINY, 'genome': {**TINY['genome'],
                                                               'size': 96}}}]},
     'members[1].arch'),
    ({'members': [{'arch': {'family': 'ensemble', 'genome': {'members': []}}}]},
     'members[0].arch.family'),
    ({'members': [{'arch': {'family': 'baseline',
                            'genome': {'arch': 'frame2d', 'frames': 8, 'size': 64}},
                   'streams': ['flow']}]}, 'members[0].streams'),
])
def test_invalid_ensembles_name_the_field(genome, field):
    with pytest.raises(GenomeError) as info:
        ModelArch.from_dict({'family': 'ensemble', 'genome': genome})
    assert info.value.field == field


def test_checkpoint_round_trip_gives_mean_of_member_logits(tmp_path):
    torch.manual_seed(0)
    arch = _two_stream()
    spec = arch.input_spec()
    model = arch.build(len(CLASSES))
    assert isinstance(model, Ensemble)
    # Make the members differ from a fresh init so a load that skipped weights would fail.
    model.train()
    with torch.no_grad():
        model(torch.randn(2, 3, 8, 64, 64), torch.randn(2, 2, 8, 64, 64))
    path = save_checkpoint(tmp_path / 'ensemble.safetensors', model, arch, CLASSES, spec)
    loaded = load_checkpoint(path)
    assert loaded.arch.family == 'ensemble' and loaded.spec.streams == ('rgb', 'flow')
    rgb, flow = torch.randn(2, 3, 8, 64, 64), torch.randn(2, 2, 8, 64, 64)
    model.eval()
    with torch.no_grad():
        members = loaded.model.member_logits(rgb, flow)
        out = loaded.model(rgb, flow)
        expected = [model.members[0](rgb), model.members[1](flow)]
    assert len(members) == 2
    for got, want in zip(members, expected):
        torch.testing.assert_close(got, want)
    torch.testing.assert_close(out, (expected[0] + expected[1]) / 2)
    assert not torch.allclose(expected[0], expected[1])


def test_ensemble_checkpoint_runs_in_the_inference_engine(tmp_path):
    from vas_ros.data.synth import render_clip
    from vas_ros.perception.engine import InferenceEngine

    torch.manual_seed(1)
    arch = _two_stream()
    model = arch.build(len(CLASSES))
    path = save_checkpoint(tmp_path / 'e.safetensors', model, arch, CLASSES,
                           arch.input_spec())
    engine = InferenceEngine(path, device='cpu')
    clip = render_clip('move_left', np.random.default_rng(0), size=96, frames=15)
    prediction = engine.infer(clip, top_k=3)
    assert prediction.label in CLASSES
    assert len(prediction.top_k) == 3
    assert prediction.latency_ms['flow'] > 0  # the flow member made the engine compute flow
    # The engine's answer is the ensemble's mean logit on the same preprocessed clip.
    inputs, _ = engine.preprocess(clip)
    with torch.no_grad():
        mean = engine.model(*inputs)
        members = engine.model.member_logits(*inputs)
    torch.testing.assert_close(mean, torch.stack(members).mean(0))
    probs = torch.softmax(mean, -1)[0]
    assert prediction.score == pytest.approx(float(probs.max()), rel=1e-4)


def test_forward_checks_the_number_of_inputs():
    model = _two_stream().build(3)
    with pytest.raises(VasError, match='takes 2 input'):
        model(torch.randn(1, 3, 8, 64, 64))
