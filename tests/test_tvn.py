"""TVN family: presets, genome validation and JSON round trip, block semantics, layers."""

from __future__ import annotations

import copy
import json
import random

import pytest
import torch

from vas_ros.errors import DataError, GenomeError
from vas_ros.models.factory import resolve_arch
from vas_ros.models.layers.common import (
    ContextGating,
    Pool2dSame,
    SqueezeExcite,
    conv2d_bn_act,
)
from vas_ros.models.layers.padding import same_padding
from vas_ros.models.registry import ModelArch, get_family, presets
from vas_ros.models.tvn import LIMITS, PRESETS, TVNBlock, TVNGenome

pytestmark = pytest.mark.usefixtures('one_torch_thread')


# Backbone parameters computed from the published tables (classifier excluded).
REFERENCE_BACKBONE_M = {'tvn1': 25.7, 'tvn2': 108.7, 'tvn3': 66.8, 'tvn4': 43.0}
# Smaller inputs that still validate, for presets whose own input is expensive.
TEST_SIZE = {'tvn2': 224, 'tvn3': 72, 'tvn4': 64}


def _forward(model, frames, size, batch=1):
    model.eval()
    with torch.no_grad():
        return model(torch.randn(batch, 3, frames, size, size))


@pytest.mark.parametrize('name', [pytest.param(n, marks=pytest.mark.slow) if n == 'tvn2' else n
                                  for n in sorted(PRESETS)])
def test_preset_builds_and_forwards(name):
    genome = copy.deepcopy(PRESETS[name])
    genome['size'] = TEST_SIZE.get(name, genome['size'])
    model = TVNGenome.parse(genome).build(5)
    out = _forward(model, genome['frames'], genome['size'], batch=2)
    assert out.shape == (2, 5)
    assert torch.isfinite(out).all()
    if name in REFERENCE_BACKBONE_M:
        backbone = sum(p.numel() for n, p in model.named_parameters()
                       if not n.startswith('classifier'))
        assert backbone / 1e6 == pytest.approx(REFERENCE_BACKBONE_M[name], abs=0.05)


def test_tvn1_forwards_at_its_published_input():
    arch = resolve_arch('tvn1')
    spec = arch.input_spec()
    assert (spec.frames, spec.size, spec.frame_stride) == (2, 224, 4)
    out = _forward(arch.build(400), spec.frames, spec.size)
    assert out.shape == (1, 400)


def test_presets_are_registered_with_descriptions():
    table = presets()
    family = get_family('tvn')
    for name in ('tvn1', 'tvn2', 'tvn3', 'tvn4', 'tvn_tiny'):
        assert table[name].family == 'tvn'
        assert family.descriptions[name]


def test_published_tables_transcribed():
    tvn2 = TVNGenome.from_dict(PRESETS['tvn2'])
    assert len(tvn2.blocks) == 7
    last = tvn2.blocks[-1]
    assert (last.spatial_type, last.spatial_kernel, last.filters, last.expand) == (
        'maxpool', 2, 348, 6)
    tvn3 = TVNGenome.from_dict(PRESETS['tvn3'])
    assert tvn3.blocks[0].se_ratio == pytest.approx(0.646)
    assert (tvn3.frames, tvn3.size, tvn3.frame_stride) == (8, 160, 2)


def test_genome_json_round_trip():
    for name, data in PRESETS.items():
        genome = TVNGenome.from_dict(data)
        again = TVNGenome.from_json(genome.to_json())
        assert again == genome, name
        assert again.to_dict() == genome.to_dict()
    # through the registry's genome file format too
    arch = resolve_arch('tvn4')
    assert ModelArch.from_dict(json.loads(arch.to_json())) == arch


def test_genome_defaults_are_filled_and_json_keys_match_the_contract():
    minimal = {'frames': 4, 'size': 32, 'blocks': [{'spatial_type': 'std', 'filters': 8}]}
    normal = get_family('tvn').validate(minimal)
    assert list(normal) == ['frames', 'size', 'frame_stride', 'dropout', 'blocks']
    assert list(normal['blocks'][0]) == [
        'spatial_type', 'spatial_kernel', 'spatial_stride', 'temporal_type',
        'temporal_kernel', 'temporal_stride', 'filters', 'expand', 'repeats', 'se_ratio',
        'context_gating', 'skip']
    assert normal['frame_stride'] == 1 and normal['dropout'] == 0.5
    # 0/1 flags (as in the published tables) are accepted and normalised to booleans
    block = TVNBlock.from_dict({'spatial_type': 'depth', 'filters': 8, 'skip': 1,
                                'context_gating': 0})
    assert block.skip is True and block.context_gating is False


def _tiny(**changes):
    genome = copy.deepcopy(PRESETS['tvn_tiny'])
    genome.update(changes)
    return genome


def _with_block(index, **changes):
    genome = _tiny()
    genome['blocks'][index].update(changes)
    return genome


def _strided(size, n, kernel, stride):
    return {'frames': 2, 'size': size, 'blocks': [
        {'spatial_type': 'std', 'spatial_kernel': kernel, 'spatial_stride': stride,
         'filters': 4} for _ in range(n)]}


INVALID = [
    (_with_block(0, filters=0), 'blocks[0].filters', '>= 1'),
    (_with_block(2, filters=-3), 'blocks[2].filters', '>= 1'),
    (_with_block(1, filters='64'), 'blocks[1].filters', 'integer'),
    (_with_block(1, spatial_type='conv3d'), 'blocks[1].spatial_type', 'one of'),
    (_with_block(3, temporal_type='lstm'), 'blocks[3].temporal_type', 'one of'),
    # 48 px -> 24 -> 12 -> 6 entering block 3: a 7x7 kernel no longer fits
    (_with_block(3, spatial_kernel=7) | {'size': 48}, 'blocks[3].spatial_kernel',
     'larger than the 6x6'),
    (_with_block(3, spatial_kernel=9), 'blocks[3].spatial_kernel', '<= 7'),
    (_strided(16, 5, 3, 2), 'blocks[3].spatial_kernel', 'larger than the 2x2'),
    (_strided(16, 3, 1, 4), 'blocks[2].spatial_stride', 'vanish'),
    (_with_block(0, temporal_kernel=5, temporal_type='1d') | {'frames': 2},
     'blocks[0].temporal_kernel', 'longer than the 2 frames'),
    (_with_block(0, se_ratio=1.5), 'blocks[0].se_ratio', 'in [0.0, 1.0]'),
    (_with_block(0, skip=2), 'blocks[0].skip', 'true/false'),
    (_with_block(0, spatial_stride=9), 'blocks[0].spatial_stride', '<= 4'),
    (_with_block(0, repeats=0), 'blocks[0].repeats', '>= 1'),
    (_with_block(0, colour='red'), 'blocks[0].colour', 'unknown field'),
    (_tiny(frames=0), 'frames', '>= 1'),
    (_tiny(size=4), 'size', '>= 16'),
    (_tiny(frame_stride=0), 'frame_stride', '>= 1'),
    (_tiny(dropout=1.0), 'dropout', '[0.0, 1.0)'),
    (_tiny(blocks=[]), 'blocks', '1 to 12'),
    (_tiny(blocks='std'), 'blocks', 'list'),
    (_tiny(blocks=['std']), 'blocks[0]', 'JSON object'),
    ({'frames': 8, 'blocks': []}, 'size', 'required'),
    ({'frames': 8, 'size': 64, 'blocks': [{'spatial_type': 'std'}]},
     'blocks[0].filters', 'required'),
]


@pytest.mark.parametrize('genome,field,words', INVALID,
                         ids=[f'{i}-{case[1]}' for i, case in enumerate(INVALID)])
def test_invalid_genome_names_the_field(genome, field, words):
    with pytest.raises(GenomeError) as info:
        resolve_arch({'family': 'tvn', 'name': 'bad', 'genome': genome})
    assert info.value.field == field
    if words:
        assert words in info.value.problem


def test_repeats_stride_once_and_alternate_the_temporal_layer():
    tvn4 = TVNGenome.from_dict(PRESETS['tvn4'])
    steps = [s for s in tvn4.plan() if s.block == 0]
    assert [s.use_temporal for s in steps] == [True, False, True, False, True]
    assert [s.spatial_stride for s in steps] == [2, 1, 1, 1, 1]
    assert [s.shape_out[1] for s in steps] == [4, 4, 4, 4, 4]  # T: 8 -> 4 once
    assert steps[0].shape_out == (256, 4, 64, 64)
    # temporal layers stop once one frame is left (TVN-1 pools T 2 -> 1 in block 0)
    tvn1 = TVNGenome.from_dict(PRESETS['tvn1'])
    assert all(not s.use_temporal for s in tvn1.plan()[1:])


def test_residual_only_where_the_frame_count_is_unchanged():
    genome = TVNGenome.from_dict(PRESETS['tvn3'])
    steps = genome.plan()
    block2 = [s for s in steps if s.block == 2]  # skip=1, temporal maxpool 3 stride 2
    assert [s.residual for s in block2] == [False, True, True, True]
    block1 = [s for s in steps if s.block == 1]  # skip=1, temporal identity
    assert all(s.residual for s in block1)
    assert not any(s.residual for s in steps if s.block in (0, 3))  # skip=0
    small = copy.deepcopy(PRESETS['tvn3'])
    small['size'] = 72
    model = TVNGenome.parse(small).build(3)
    with_shortcut = [b.shortcut is not None for b in model.blocks]
    assert with_shortcut == [s.residual for s in TVNGenome.from_dict(small).plan()]


def _random_genome(rng: random.Random) -> dict:
    frames = rng.choice([1, 2, 4, 8])
    blocks = []
    for _ in range(rng.randint(1, 4)):
        blocks.append({
            'spatial_type': rng.choice(['std', 'depth', 'maxpool', 'avgpool']),
            'spatial_kernel': rng.randint(1, 5), 'spatial_stride': rng.randint(1, 3),
            'temporal_type': rng.choice(['1d', 'maxpool', 'avgpool']),
            'temporal_kernel': rng.randint(1, 4), 'temporal_stride': rng.randint(1, 3),
            'filters': rng.randint(2, 12), 'expand': rng.randint(1, 3),
            'repeats': rng.randint(1, 3), 'se_ratio': rng.choice([0.0, 0.25, 0.9]),
            'context_gating': rng.random() < 0.5, 'skip': rng.random() < 0.5})
    return {'frames': frames, 'size': rng.choice([24, 32, 40, 48]),
            'frame_stride': rng.randint(1, 4), 'dropout': 0.3, 'blocks': blocks}


def test_random_valid_genomes_build_and_forward():
    rng = random.Random(7)
    built = refused = 0
    while built < 25:
        data = _random_genome(rng)
        try:
            genome = TVNGenome.from_dict(data)
        except GenomeError as exc:
            refused += 1
            assert exc.field == 'blocks' or exc.field.startswith('blocks[')
            continue
        model = TVNGenome.parse(genome).build(4)
        out = _forward(model, genome.frames, genome.size, batch=2)
        assert out.shape == (2, 4), data
        assert torch.isfinite(out).all()
        # the plan's final width is what the classifier reads
        assert model.classifier.in_features == genome.plan()[-1].shape_out[0]
        built += 1
    assert refused < 200


def test_model_refuses_clips_of_the_wrong_shape():
    arch = resolve_arch('tvn_tiny')
    model = arch.build(8).eval()
    with pytest.raises(DataError, match=r'\[B, 3, 8, 64, 64\]'):
        model(torch.randn(1, 3, 4, 64, 64))
    with pytest.raises(DataError):
        model(torch.randn(3, 8, 64, 64))


def test_flow_stream_genome_takes_the_two_channel_flow_clip():
    rgb = resolve_arch('tvn_tiny').genome.to_dict()
    assert 'stream' not in get_family('tvn').validate(rgb)  # RGB genomes keep their form
    flow = get_family('tvn').validate({**rgb, 'stream': 'flow'})
    assert flow['stream'] == 'flow'
    arch = ModelArch('tvn', flow, 'flow_tiny')
    spec = arch.input_spec()
    assert spec.streams == ('flow',) and spec.needs_flow
    model = arch.build(8).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 2, 8, 64, 64)).shape == (2, 8)
    # Only the first layer differs: 2 input channels instead of 3.
    first = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert first.in_channels == 2
    with pytest.raises(DataError, match=r'flow input must be \[B, 2, 8, 64, 64\]'):
        model(torch.randn(2, 3, 8, 64, 64))
    with pytest.raises(DataError, match='takes 1 input'):
        model(torch.randn(2, 2, 8, 64, 64), torch.randn(2, 2, 8, 64, 64))
    with pytest.raises(GenomeError, match="stream.*must be one of \\['rgb', 'flow'\\]"):
        get_family('tvn').validate({**rgb, 'stream': 'depth'})


def test_training_step_reduces_loss_on_a_fixed_batch():
    genome = {'frames': 4, 'size': 32, 'dropout': 0.0, 'blocks': [
        {'spatial_type': 'std', 'spatial_kernel': 3, 'spatial_stride': 2,
         'temporal_type': '1d', 'temporal_kernel': 3, 'filters': 8, 'expand': 2,
         'se_ratio': 0.25, 'context_gating': True, 'skip': True},
        {'spatial_type': 'depth', 'spatial_kernel': 3, 'spatial_stride': 2,
         'temporal_type': 'avgpool', 'temporal_kernel': 2, 'temporal_stride': 2,
         'filters': 16, 'expand': 2, 'repeats': 2, 'context_gating': True, 'skip': True}]}
    model = TVNGenome.parse(genome).build(4)
    model.train()
    x = torch.randn(4, 3, 4, 32, 32)
    y = torch.tensor([0, 1, 2, 3])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(20):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.5
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


# ---------------------------------------------------------------- layers


@pytest.mark.parametrize('size,kernel,stride,expected', [
    (7, 3, 1, (1, 1)), (8, 4, 2, (1, 1)), (7, 4, 2, (1, 2)), (224, 4, 2, (1, 1)),
    (2, 3, 3, (0, 1)), (56, 5, 3, (1, 2)), (5, 1, 2, (0, 0)), (6, 2, 1, (0, 1)),
])
def test_same_padding_matches_tensorflow_rule(size, kernel, stride, expected):
    assert same_padding(size, kernel, stride) == expected
    before, after = expected
    assert (size + before + after - kernel) // stride + 1 == -(-size // stride)


@pytest.mark.parametrize('kernel,stride,size', [(4, 2, 7), (3, 2, 8), (2, 1, 5), (5, 3, 56)])
def test_same_layers_keep_ceil_resolution(kernel, stride, size):
    x = torch.randn(2, 3, size, size)
    want = -(-size // stride)
    conv = conv2d_bn_act(3, 6, kernel, stride, in_hw=(size, size)).eval()
    assert conv(x).shape == (2, 6, want, want)
    for kind in ('max', 'avg'):
        assert Pool2dSame(kind, kernel, stride, (size, size))(x).shape == (2, 3, want, want)


def test_same_pooling_ignores_padding():
    # avg over a constant map stays constant (padding not counted); max over negative
    # values never returns the padding (pads with -inf, not 0)
    for kernel, stride in ((4, 2), (3, 2), (2, 1)):
        x = torch.full((1, 2, 7, 7), -5.0)
        assert torch.allclose(Pool2dSame('avg', kernel, stride, (7, 7))(x), x[:, :, :4, :4]
                              if stride == 2 else x)
        assert (Pool2dSame('max', kernel, stride, (7, 7))(x) == -5.0).all()


def test_squeeze_excite_and_context_gating_gate_per_clip():
    torch.manual_seed(0)
    b, c, t, h, w = 3, 16, 4, 5, 5
    clip = torch.randn(b, c, t, h, w)
    folded = clip.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    for layer in (SqueezeExcite(c, 8, frames=t), ContextGating(c, frames=t)):
        gate = layer.gate(folded)
        assert gate.shape == (b, c)
        assert ((gate > 0) & (gate < 1)).all()
        # same gate whether frames are folded into the batch or kept as a time axis
        assert torch.allclose(layer.gate(clip), gate, atol=1e-6)
        out = layer(folded)
        assert out.shape == folded.shape
        unfolded = out.reshape(b, t, c, h, w).permute(0, 2, 1, 3, 4)
        assert torch.allclose(unfolded, layer(clip), atol=1e-6)
        assert torch.allclose(unfolded, clip * gate[:, :, None, None, None], atol=1e-6)
        # one clip's gate does not depend on the other clips in the batch
        alone = layer.gate(folded[:t])
        assert torch.allclose(alone, gate[:1], atol=1e-6)


def test_limits_cover_the_published_models():
    for name in ('tvn1', 'tvn2', 'tvn3', 'tvn4'):
        genome = TVNGenome.from_dict(PRESETS[name])
        for block in genome.blocks:
            for key in ('spatial_kernel', 'spatial_stride', 'temporal_kernel',
                        'temporal_stride', 'filters', 'expand', 'repeats'):
                low, high = LIMITS[key]
                assert low <= getattr(block, key) <= high
