"""The one SAME padding rule and the one conv + norm + activation layer, in 2-D and 3-D."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vas_ros.models.inference import fuse_conv_bn
from vas_ros.models.layers.common import ConvNormAct, Pool2dSame, conv2d_bn_act
from vas_ros.models.layers.padding import same_padding, same_pads, symmetric_padding
from vas_ros.models.layers.spacetime import ITGMConv3d, SameConv3d, SpaceTimePool

pytestmark = pytest.mark.usefixtures('one_torch_thread')


def reference_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's documented SAME formula, written independently of `same_padding`."""
    if size % stride == 0:
        total = max(kernel - stride, 0)
    else:
        total = max(kernel - size % stride, 0)
    return total // 2, total - total // 2


def reference_pads(sizes, kernel, stride) -> list[int]:
    pads = []
    for n, k, s in reversed(list(zip(sizes, kernel, stride))):
        pads.extend(reference_padding(n, k, s))
    return pads


GRID = list(itertools.product(range(1, 14), range(1, 7), range(1, 5)))


@pytest.mark.parametrize('crop', [False, True])
def test_same_padding_gives_ceil_outputs_and_matches_tensorflow(crop):
    for size, kernel, stride in GRID:
        before, after = same_padding(size, kernel, stride, crop)
        want = -(-size // stride)
        assert (size + before + after - kernel) // stride + 1 == want, (size, kernel, stride)
        ref_before, ref_after = reference_padding(size, kernel, stride)
        assert before == ref_before, (size, kernel, stride)
        if crop:  # the padded length is exactly what the windows cover
            assert size + before + after == (want - 1) * stride + kernel
            assert after <= ref_after
        else:
            assert after == ref_after, (size, kernel, stride)


def test_same_pads_lists_the_last_dim_first():
    assert same_pads((7, 8), (3, 3), (2, 2)) == [0, 1, 1, 1]
    assert same_pads((8, 8, 8), (1, 1, 1), (2, 2, 2), crop=True) == [0, -1, 0, -1, 0, -1]
    assert same_pads((8, 8, 8), (1, 1, 1), (2, 2, 2)) == [0, 0, 0, 0, 0, 0]


def test_symmetric_padding_is_the_one_decision():
    # size unknown: only odd kernels at stride 1 are symmetric for every size
    assert symmetric_padding((3, 5, 1), (1, 1, 1)) == (1, 2, 0)
    assert symmetric_padding((3, 3), (2, 2)) is None
    assert symmetric_padding((2, 3), (1, 1)) is None
    # size known: symmetric exactly when SAME's amounts are
    assert symmetric_padding((3, 3), (2, 2), (7, 7)) == (1, 1)
    assert symmetric_padding((3, 3), (2, 2), (7, 8)) is None
    assert symmetric_padding((4,), (2,), (8,)) == (1,)
    for size, kernel, stride in GRID:
        before, after = reference_padding(size, kernel, stride)
        got = symmetric_padding((kernel,), (stride,), (size,))
        assert got == ((before,) if before == after else None), (size, kernel, stride)


@pytest.mark.parametrize('kernel,stride', [(1, 2), (2, 1), (2, 2), (3, 2), (4, 2), (5, 3)])
def test_2d_same_layers_agree_with_an_explicit_pad(kernel, stride):
    torch.manual_seed(0)
    for h, w in ((5, 5), (7, 8), (8, 9), (12, 11)):
        x = torch.randn(2, 3, h, w)
        pads = reference_pads((h, w), (kernel, kernel), (stride, stride))
        want = (-(-h // stride), -(-w // stride))
        layer = conv2d_bn_act(3, 4, kernel, stride, in_hw=(h, w), act=False)
        conv = [m for m in layer if isinstance(m, nn.Conv2d)][0]
        with torch.no_grad():
            ref = F.conv2d(F.pad(x, pads), conv.weight, stride=stride)
            assert torch.allclose(nn.Sequential(*list(layer)[:-1])(x), ref, atol=1e-6)
            assert ref.shape[-2:] == want
            got = Pool2dSame('max', kernel, stride, (h, w))(x)
            assert torch.equal(got, F.max_pool2d(F.pad(x, pads, value=float('-inf')),
                                                 kernel, stride))
            total = F.avg_pool2d(F.pad(x, pads), kernel, stride)
            count = F.avg_pool2d(F.pad(torch.ones(1, 1, h, w), pads), kernel, stride)
            got = Pool2dSame('avg', kernel, stride, (h, w))(x)
            assert torch.allclose(got, total / count, atol=1e-6)


def test_2d_conv_needs_the_input_size_when_same_depends_on_it():
    assert isinstance(conv2d_bn_act(3, 4, 3)[0], nn.Conv2d)
    with pytest.raises(ValueError, match='in_hw'):
        conv2d_bn_act(3, 4, 3, 2)


@pytest.mark.parametrize('kernel,stride', [((3, 3, 3), 1), ((2, 2, 2), 1), ((1, 3, 3), (1, 2, 2)),
                                           ((3, 3, 3), 2), ((5, 1, 1), (2, 1, 1)),
                                           ((1, 1, 1), 2)])
def test_3d_same_layers_agree_with_an_explicit_pad(kernel, stride):
    torch.manual_seed(0)
    stride3 = stride if isinstance(stride, tuple) else (stride,) * 3
    for size in ((8, 9, 9), (5, 8, 7)):
        x = torch.randn(1, 2, *size)
        pads = reference_pads(size, kernel, stride3)
        want = tuple(-(-n // s) for n, s in zip(size, stride3))
        with torch.no_grad():
            conv = SameConv3d(2, 3, kernel, stride)
            ref = F.conv3d(F.pad(x, pads), conv.weight, stride=stride3)
            assert ref.shape[-3:] == want
            assert torch.allclose(conv(x), ref, atol=1e-5)
            itgm = ITGMConv3d(2, 3, kernel, stride)
            assert torch.allclose(itgm(x), F.conv3d(F.pad(x, pads), itgm.weight(),
                                                    stride=stride3), atol=1e-5)
            got = SpaceTimePool('max', kernel, stride)(x)
            assert torch.equal(got, F.max_pool3d(F.pad(x, pads, value=float('-inf')),
                                                 kernel, stride3))
            total = F.avg_pool3d(F.pad(x, pads), kernel, stride3)
            count = F.avg_pool3d(F.pad(torch.ones(1, 1, *size), pads), kernel, stride3)
            got = SpaceTimePool('avg', kernel, stride)(x)
            assert torch.allclose(got, total / count, atol=1e-6)


def test_conv_norm_act_keeps_the_flat_layout():
    layer = ConvNormAct(nn.Conv2d(3, 4, 3, bias=False), 4)
    assert [type(m) for m in layer] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
    assert list(layer.state_dict()) == ['0.weight', '1.weight', '1.bias', '1.running_mean',
                                        '1.running_var', '1.num_batches_tracked']
    padded = conv2d_bn_act(3, 4, 3, 2, in_hw=(8, 8), act=False)
    assert [type(m) for m in padded] == [nn.ZeroPad2d, nn.Conv2d, nn.BatchNorm2d]
    assert '2.running_mean' in padded.state_dict() and '1.weight' in padded.state_dict()
    itgm = ConvNormAct(ITGMConv3d(2, 3, (3, 3, 3)), 3, 3, act=False)
    assert [type(m) for m in itgm] == [ITGMConv3d, nn.BatchNorm3d]
    assert '0.spatial' in itgm.state_dict() and '1.running_var' in itgm.state_dict()
    gated = ConvNormAct(nn.Conv3d(2, 3, 1, bias=False), 3, 3, zero_gamma=True)
    assert torch.equal(gated[1].weight, torch.zeros(3))
    with pytest.raises(ValueError, match='dims'):
        ConvNormAct(nn.Conv1d(2, 3, 1), 3, 1)


@pytest.mark.parametrize('dims', [2, 3])
def test_conv_norm_act_folds_for_inference(dims):
    torch.manual_seed(0)
    conv = (nn.Conv2d if dims == 2 else nn.Conv3d)(3, 4, 3, padding=1, bias=False)
    layer = nn.Sequential(ConvNormAct(conv, 4, dims))
    for m in layer.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
            nn.init.uniform_(m.running_mean, -1, 1)
            nn.init.uniform_(m.running_var, 0.5, 2)
            nn.init.uniform_(m.weight, 0.5, 2)
    layer.eval()
    x = torch.randn(2, 3, *([5] * dims))
    with torch.no_grad():
        ref = layer(x)
        fused = fuse_conv_bn(layer)
        assert isinstance(fused[0][1], nn.Identity)
        assert torch.allclose(fused(x), ref, atol=1e-5)
