"""Family `baseline`: genome checks, shapes, and that frame2d cannot see the order of frames."""

from __future__ import annotations

import pytest
import torch

from vas_ros.errors import GenomeError
from vas_ros.models.factory import resolve_arch
from vas_ros.models.introspect import count_params, example_inputs
from vas_ros.models.registry import presets


def small(arch: str, frames: int = 4, size: int = 32):
    return resolve_arch({'family': 'baseline', 'name': f'{arch}_small',
                         'genome': {'arch': arch, 'frames': frames, 'size': size}})


def test_presets_are_registered_with_published_input():
    table = presets()
    for name in ('r2plus1d_18', 'r3d_18', 'mc3_18', 'frame2d'):
        arch = table[name]
        assert arch.family == 'baseline'
        assert arch.genome.to_dict() == {'arch': name, 'frames': 16, 'size': 112, 'frame_stride': 1}
        spec = arch.input_spec()
        assert (spec.frames, spec.size, spec.streams) == (16, 112, ('rgb',))


@pytest.mark.parametrize('genome, field', [
    ({'arch': 'resnet50'}, 'arch'),
    ({}, 'arch'),
    ({'arch': 'r3d_18', 'frames': 0}, 'frames'),
    ({'arch': 'r3d_18', 'frames': 2.5}, 'frames'),
    ({'arch': 'r3d_18', 'size': 8}, 'size'),
    ({'arch': 'r3d_18', 'frame_stride': True}, 'frame_stride'),
    ({'arch': 'r3d_18', 'depth': 34}, 'depth'),
])
def test_bad_genomes_name_the_field(genome, field):
    with pytest.raises(GenomeError) as info:
        resolve_arch({'family': 'baseline', 'genome': genome})
    assert info.value.field == field


@pytest.mark.parametrize('name, low, high', [
    ('r2plus1d_18', 31.0e6, 31.6e6), ('r3d_18', 33.0e6, 33.5e6),
    ('mc3_18', 11.3e6, 11.8e6), ('frame2d', 11.0e6, 11.3e6)])
def test_each_baseline_builds_and_maps_clips_to_logits(name, low, high):
    arch = small(name)
    model = arch.build(8).eval()
    assert low < count_params(model) < high  # torchvision sizes, with an 8-way classifier
    with torch.no_grad():
        logits = model(*example_inputs(arch.input_spec(), batch=2))
    assert logits.shape == (2, 8)
    assert torch.isfinite(logits).all()


def test_frame2d_is_blind_to_frame_order_but_video_models_are_not():
    torch.manual_seed(0)
    clip = torch.randn(2, 3, 4, 32, 32)
    reversed_clip = clip.flip(2)
    shuffled = clip[:, :, [2, 0, 3, 1]]
    frame2d = small('frame2d').build(8).eval()
    video = small('r2plus1d_18').build(8).eval()
    with torch.no_grad():
        assert torch.allclose(frame2d(clip), frame2d(reversed_clip), atol=1e-5)
        assert torch.allclose(frame2d(clip), frame2d(shuffled), atol=1e-5)
        assert not torch.allclose(video(clip), video(reversed_clip), atol=1e-4)


def test_frame2d_averages_per_frame_logits():
    torch.manual_seed(1)
    model = small('frame2d').build(5).eval()
    clip = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        per_frame = torch.stack([model.backbone(clip[:, :, t]) for t in range(4)], dim=1)
        assert torch.allclose(model(clip), per_frame.mean(dim=1), atol=1e-5)
