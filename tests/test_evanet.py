"""EvaNet genome, builder and presets."""

import copy
import json

import pytest
import torch

from vas_ros.errors import GenomeError
from vas_ros.models import evanet
from vas_ros.models.factory import resolve_arch
from vas_ros.models.introspect import count_params
from vas_ros.models.layers.spacetime import ITGMConv3d, SameConv3d
from vas_ros.models.registry import ModelArch


def _small(name: str, **changes) -> dict:
    """A preset at reduced input: 8 frames, 64 px, 1/8 width."""
    genome = copy.deepcopy(evanet.PRESETS[name])
    genome.update({'frames': 8, 'size': 64, 'width': 1 / 8, **changes})
    return genome


@pytest.mark.parametrize('name', ['evanet_a', 'evanet_b', 'evanet_tiny'])
def test_presets_forward_at_reduced_input(name):
    torch.manual_seed(0)
    genome = _small(name) if name != 'evanet_tiny' else evanet.PRESETS[name]
    arch = ModelArch.from_dict({'family': 'evanet', 'genome': genome})
    model = arch.build(5).eval()
    spec = arch.input_spec()
    assert spec.streams == ('rgb',) and spec.frames == 8 and spec.size == 64
    with torch.no_grad():
        out = model(torch.randn(2, 3, 8, 64, 64))
    assert out.shape == (2, 5)
    assert torch.isfinite(out).all()


def test_preset_parameter_counts_match_released_architectures():
    # Reference (computed from the released code, 400 classes): A ~32.8M, B ~40.3M.
    counts = {}
    for name in ('evanet_a', 'evanet_b'):
        with torch.device('meta'):
            counts[name] = count_params(resolve_arch(name).build(400))
    assert counts['evanet_a'] == pytest.approx(32.8e6, rel=0.01)
    assert counts['evanet_b'] == pytest.approx(40.3e6, rel=0.01)


def test_stage_widths_and_branch_split():
    genome = _small('evanet_a', width=0.25)
    net = evanet.EvaGenome.parse(genome).build(3)
    # block3 has 5 branches over 128 channels: 25 each, 125 out (remainder dropped,
    # as released), with a projection shortcut on the first repeat only.
    first, second = net.stages[1][0], net.stages[1][1]
    assert first.out_channels == 125 and second.out_channels == 125
    assert isinstance(first.shortcut[0], SameConv3d)
    assert isinstance(second.shortcut, torch.nn.Identity)
    assert net.stem[0].spatial.in_channels == 16 // 2  # (2+1)D stem: mid = 16 // 2
    assert net.feature_channels == (512 // 3) * 3


def test_odd_repeats_run_convs_with_temporal_size_one():
    net = evanet.EvaGenome.parse(_small('evanet_a')).build(3)
    block4 = net.stages[2]  # CONV iTGM T11 is branch 2; 5 repeats
    kinds = [type(m.branches[2][-1][0]) for m in block4]
    assert kinds == [ITGMConv3d, SameConv3d, ITGMConv3d, SameConv3d, ITGMConv3d]
    assert block4[0].branches[2][-1][0].kernel_size == (11, 3, 3)
    assert block4[1].branches[2][-1][0].kernel_size == (1, 3, 3)
    # Max-pool branches keep their temporal size in every repeat.
    assert block4[1].branches[0][0].kernel_size == (7, 3, 3)


def test_flow_stream_stem_takes_two_channels():
    genome = dict(evanet.PRESETS['evanet_tiny'], stream='flow')
    arch = ModelArch.from_dict({'family': 'evanet', 'genome': genome})
    assert arch.input_spec().streams == ('flow',)
    model = arch.build(4).eval()
    assert model.stem[0].in_channels == 2
    with torch.no_grad():
        assert model(torch.randn(1, 2, 8, 64, 64)).shape == (1, 4)


def test_json_round_trip_through_a_genome_file(tmp_path):
    arch = resolve_arch('evanet_b')
    path = tmp_path / 'b.json'
    path.write_text(arch.to_json())
    again = resolve_arch(path)
    assert again.family == 'evanet' and again.genome == arch.genome
    assert evanet.EvaGenome.from_dict(json.loads(arch.genome.to_json())) == arch.genome
    # defaults are filled in
    minimal = {k: v for k, v in evanet.PRESETS['evanet_tiny'].items()
               if k not in ('frame_stride', 'stream', 'width', 'dropout')}
    full = evanet.EvaGenome.normalise(minimal)
    assert full['stream'] == 'rgb' and full['width'] == 1.0 and full['frame_stride'] == 1


def _broken(path_fn):
    genome = copy.deepcopy(evanet.PRESETS['evanet_tiny'])
    path_fn(genome)
    return genome


@pytest.mark.parametrize('mutate,field', [
    (lambda g: g['blocks'][1]['branches'][0].update(time=4), 'blocks[1].branches[0].time'),
    (lambda g: g['blocks'][0]['branches'][0].update(type='4d'), 'blocks[0].branches[0].type'),
    (lambda g: g['blocks'][2]['branches'][0].pop('time2'), 'blocks[2].branches[0].time2'),
    (lambda g: g['blocks'][3]['branches'][1].update(time=3), 'blocks[3].branches[1]'),
    (lambda g: g['blocks'][0]['branches'][0].update(kind='lstm'),
     'blocks[0].branches[0].kind'),
    (lambda g: g['blocks'][0].update(repeats=0), 'blocks[0].repeats'),
    (lambda g: g['blocks'][0].update(branches=[]), 'blocks[0].branches'),
    (lambda g: g['blocks'].pop(), 'blocks'),
    (lambda g: g['stem'].update(time=2), 'stem.time'),
    (lambda g: g['pool_times'].update(mp3=13), 'pool_times.mp3'),
    (lambda g: g.update(stream='depth'), 'stream'),
    (lambda g: g.update(width=0), 'width'),
    (lambda g: g.update(frames=2.5), 'frames'),
    (lambda g: g.update(colour=True), 'colour'),
    # 8 branches over 32 channels leave 4 each: fine for 1x1, but 2 x 16 = 32 ch over 8
    # conv2 branches at width 1/16 leaves 2 < 4.
    (lambda g: g.update(width=1 / 16, blocks=[
        {'repeats': 1, 'branches': [{'kind': 'conv2', 'type': '3d', 'time': 1,
                                     'type2': '3d', 'time2': 1}] * 8}] * 4),
     'blocks[0].branches[0]'),
])
def test_invalid_genomes_name_the_field(mutate, field):
    with pytest.raises(GenomeError) as info:
        evanet.EvaGenome.normalise(_broken(mutate))
    assert info.value.field == field


def test_genome_distance():
    a, b = evanet.PRESETS['evanet_a'], evanet.PRESETS['evanet_b']
    assert evanet.EvaGenome.parse(a).distance(a) == 0
    assert evanet.EvaGenome.parse(a).distance(b) == evanet.EvaGenome.parse(b).distance(a) > 10
    one = copy.deepcopy(a)
    one['blocks'][0]['branches'][1]['time'] = 9  # one branch changed: removed + added
    assert evanet.EvaGenome.parse(a).distance(one) == 2
    two = copy.deepcopy(a)
    two['blocks'][3]['repeats'] = 4
    assert evanet.EvaGenome.parse(a).distance(two) == 1


def test_head_is_the_released_average_pool_then_1x1_conv():
    torch.manual_seed(0)
    net = evanet.EvaGenome.parse(evanet.PRESETS['evanet_tiny']).build(4).eval()
    x = torch.randn(2, 3, 8, 64, 64)
    with torch.no_grad():
        feats = net.features(x)
        t, h, w = feats.shape[2:]
        assert t == 2  # 8 frames -> stem stride 2 -> pool stride 2
        pooled = torch.nn.functional.avg_pool3d(feats, (min(t, 2), h, w), stride=1)
        ref = net.classifier(pooled).mean(dim=(2, 3, 4))
        torch.testing.assert_close(net(x), ref)


def test_evanet_exports_to_onnx_and_matches_eager(tmp_path):
    import onnxruntime

    torch.manual_seed(0)
    genome = dict(evanet.PRESETS['evanet_tiny'], frames=4, size=32)
    net = evanet.EvaGenome.parse(genome).build(3).eval()
    x = torch.randn(1, 3, 4, 32, 32)
    path = tmp_path / 'tiny.onnx'
    torch.onnx.export(net, (x,), str(path), input_names=['rgb'], output_names=['logits'],
                      dynamo=False)
    session = onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    (out,) = session.run(None, {'rgb': x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(out), net(x), atol=1e-4, rtol=1e-4)
