"""Space-time layers: shapes, parameter counts, the iTGM mixture, SAME pooling."""

import pytest
import torch
import torch.nn.functional as F

from vas_ros.models.introspect import count_params
from vas_ros.models.layers.common import ConvNormAct
from vas_ros.models.layers.padding import same_padding
from vas_ros.models.layers.spacetime import (
    Conv2Plus1d,
    ITGMConv3d,
    SameConv3d,
    SpaceTimePool,
    make_conv,
    pointwise,
    window_max,
)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_same_padding_matches_tensorflow_rule():
    assert same_padding(224, 7, 2) == (2, 3)
    assert same_padding(8, 2, 2) == (0, 0)
    assert same_padding(7, 2, 2) == (0, 1)
    assert same_padding(5, 9, 1) == (4, 4)
    assert same_padding(4, 1, 1) == (0, 0)


@pytest.mark.parametrize('conv_type', ['3d', 'itgm', '2plus1d'])
@pytest.mark.parametrize('stride,expected', [(1, (5, 9, 11)), (2, (3, 5, 6))])
def test_conv_shapes_are_same_padded(conv_type, stride, expected):
    conv = make_conv(conv_type, 3, 6, (3, 3, 3), stride)
    out = conv(torch.randn(2, 3, 5, 9, 11))
    assert out.shape == (2, 6, *expected)


@pytest.mark.parametrize('conv_type', ['3d', 'itgm', '2plus1d'])
def test_strided_conv_gradients_are_finite(conv_type):
    # Regression: oneDNN's CPU conv3d backward with stride 2 and conv-side padding the
    # windows do not fully use gave NaN weight gradients (T=8, kernel 11, padding 5).
    conv = make_conv(conv_type, 3, 4, (11, 3, 3), (2, 2, 2))
    out = conv(torch.randn(2, 3, 8, 9, 9))
    assert out.shape == (2, 4, 4, 5, 5)
    out.square().mean().backward()
    for name, param in conv.named_parameters():
        assert torch.isfinite(param.grad).all(), name


def test_strided_conv_uses_tensorflow_same_alignment():
    conv = SameConv3d(1, 1, (1, 3, 3), (1, 2, 2))
    with torch.no_grad():
        conv.weight.fill_(1.0)
    x = torch.arange(16.0).reshape(1, 1, 1, 4, 4)
    # TF SAME for n=4, k=3, s=2 pads 0 before and 1 after: the first window is rows/cols 0-2.
    assert conv(x)[0, 0, 0, 0, 0] == sum(x[0, 0, 0, :3, :3].flatten())


def test_even_kernel_conv_is_same_padded():
    conv = SameConv3d(2, 4, (2, 2, 2), (1, 2, 2))
    assert conv(torch.randn(1, 2, 5, 7, 8)).shape == (1, 4, 5, 4, 4)


def test_parameter_counts():
    assert count_params(SameConv3d(4, 8, (3, 5, 5))) == 3 * 5 * 5 * 4 * 8
    assert count_params(pointwise(4, 8)) == 32
    assert count_params(pointwise(4, 8, bias=True)) == 40
    # (2+1)D: T x1x1 to cout//2, BN (2 params per channel), then 1xkxk to cout.
    mid = 8 // 2
    assert count_params(Conv2Plus1d(4, 8, (3, 5, 5))) == 3 * 4 * mid + 2 * mid + 25 * mid * 8
    assert count_params(ConvNormAct(make_conv('3d', 4, 8, 3), 8, 3)) == 27 * 32 + 16


@pytest.mark.parametrize('length', [1, 3, 7, 11])
def test_itgm_parameter_count_is_independent_of_length(length):
    cin, cout, n = 5, 7, 4
    layer = ITGMConv3d(cin, cout, (length, 3, 3), num_components=n)
    assert count_params(layer) == 3 * 3 * cin * cout + n * cin * cout + 2 * n


def test_itgm_temporal_kernel_is_a_normalised_mixture():
    layer = ITGMConv3d(3, 4, (7, 3, 3), num_components=3)
    with torch.no_grad():
        layer.centre_raw.copy_(torch.tensor([-2.0, 0.0, 1.5]))
        layer.width_raw.copy_(torch.tensor([0.0, 0.7, -2.0]))
    comps = layer.components()
    assert comps.shape == (3, 7)
    assert torch.all(comps > 0)
    torch.testing.assert_close(comps.sum(dim=1), torch.ones(3))
    # Component 1 is centred on (L-1)/2 = 3 and symmetric around it.
    torch.testing.assert_close(comps[1], comps[1].flip(0))
    assert comps[1].argmax() == 3
    kernel = layer.temporal_kernel()
    assert kernel.shape == (4, 3, 7)
    torch.testing.assert_close(kernel.sum(dim=-1), torch.ones(4, 3))
    # Each (co, ci) kernel is the softmax(mixing)-weighted sum of the components.
    weights = torch.softmax(layer.mixing[2, 1], dim=0)
    torch.testing.assert_close(kernel[2, 1], weights @ comps)
    # The 3-D kernel is the spatial kernel scaled by the temporal one.
    full = layer.weight()
    assert full.shape == (4, 3, 7, 3, 3)
    torch.testing.assert_close(full.sum(dim=2), layer.spatial)


def test_itgm_components_follow_the_cauchy_formula():
    layer = ITGMConv3d(1, 1, (5, 1, 1), num_components=1)
    with torch.no_grad():
        layer.centre_raw.fill_(0.3)
        layer.width_raw.fill_(-0.4)
    c = 4 * (torch.tanh(torch.tensor(0.3)) + 1) / 2
    gamma = torch.exp(1.5 - 2 * torch.tanh(torch.tensor(-0.4)).abs())
    t = torch.arange(5.0)
    raw = 1 / (1 + torch.pi * (t - c) ** 2 / gamma)
    torch.testing.assert_close(layer.components()[0], raw / raw.sum())


def test_itgm_length_one_is_a_per_frame_2d_conv():
    layer = ITGMConv3d(3, 5, (1, 3, 3))
    x = torch.randn(2, 3, 4, 9, 9)
    out = layer(x)
    frames = x.permute(0, 2, 1, 3, 4).reshape(8, 3, 9, 9)
    ref = F.conv2d(frames, layer.spatial, padding=1)
    ref = ref.reshape(2, 4, 5, 9, 9).permute(0, 2, 1, 3, 4)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_itgm_matches_explicit_conv3d_with_built_kernel():
    layer = ITGMConv3d(2, 3, (5, 3, 3), stride=(1, 2, 2))
    x = torch.randn(1, 2, 6, 8, 8)
    # SAME: time pads 2/2 (stride 1); H and W (8, k=3, s=2) pad 0 before, 1 after.
    ref = F.conv3d(F.pad(x, [0, 1, 0, 1, 2, 2]), layer.weight(), stride=(1, 2, 2))
    torch.testing.assert_close(layer(x), ref)


def test_itgm_gradients_reach_centres_widths_and_mixing():
    layer = ITGMConv3d(2, 3, (5, 3, 3))
    x = torch.randn(2, 2, 6, 7, 7)
    (layer(x) ** 2).mean().backward()
    for name in ('spatial', 'mixing', 'centre_raw', 'width_raw'):
        grad = getattr(layer, name).grad
        assert grad is not None and torch.isfinite(grad).all(), name
        assert grad.abs().sum() > 0, name


def test_make_conv_uses_a_plain_conv_for_itgm_length_one():
    assert isinstance(make_conv('itgm', 4, 4, (1, 3, 3)), SameConv3d)
    assert isinstance(make_conv('itgm', 4, 4, (3, 3, 3)), ITGMConv3d)
    with pytest.raises(ValueError, match='unknown conv type'):
        make_conv('4d', 4, 4, 3)


@pytest.mark.parametrize('kernel', [(3, 3, 3), (7, 3, 3), (11, 3, 3), (1, 3, 3), (5, 1, 1)])
def test_max_pool_same_padding_never_lets_padding_win(kernel):
    x = -torch.rand(1, 2, 4, 5, 5) - 1  # all negative: zero padding would win a max
    out = SpaceTimePool('max', kernel, 1)(x)
    assert out.shape == x.shape
    assert out.max() < 0
    pads = [p for k in reversed(kernel) for p in (k // 2, k // 2)]
    ref = F.max_pool3d(F.pad(x, pads, value=float('-inf')), kernel, 1)
    torch.testing.assert_close(out, ref)


@pytest.mark.parametrize('dim', [-3, -2, -1])
def test_window_max_equals_the_padded_max_pool_for_every_length_and_kernel(dim):
    # Both of its ways (running maxima from the ends; doubling inside the axis) and the
    # windows clipped at either end, in bf16 channels-last as the bf16 path runs it.
    for n in range(1, 14):
        shape = [2, 3, 5, 5, 5]
        shape[dim] = n
        x = torch.randn(shape).bfloat16().contiguous(memory_format=torch.channels_last_3d)
        for kernel in (1, 3, 5, 7, 9, 11, 13):
            sizes = [1, 1, 1]
            sizes[dim] = kernel
            pads = [p for k in reversed(sizes) for p in (k // 2, k // 2)]
            ref = F.max_pool3d(F.pad(x.float(), pads, value=float('-inf')), sizes, 1)
            out = window_max(x, dim, kernel)
            assert torch.equal(out.float(), ref), (n, kernel)
            assert out.is_contiguous(memory_format=torch.channels_last_3d)


@pytest.mark.parametrize('kernel', [(3, 3, 3), (7, 3, 3), (11, 3, 3), (1, 3, 3), (5, 1, 1)])
def test_bf16_max_pool_takes_window_maxima_and_gives_the_same_values(kernel):
    x = torch.randn(1, 4, 8, 9, 9).bfloat16().contiguous(memory_format=torch.channels_last_3d)
    pool = SpaceTimePool('max', kernel, 1)
    with torch.inference_mode():
        out = pool(x)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out.float(), pool(x.float()))
    # with a gradient to carry it keeps to the pooling op (window_max writes into views)
    y = x.float().requires_grad_().bfloat16()
    pool(y).float().sum().backward()


def test_itgm_as_conv3d_is_the_same_layer_without_the_mixture():
    for causal in (False, True):
        layer = ITGMConv3d(4, 6, (5, 3, 3), (1, 2, 2), causal=causal).eval()
        x = torch.randn(2, 4, 7, 9, 9)
        conv = layer.as_conv3d()
        assert type(conv) is SameConv3d and conv.causal == causal
        with torch.no_grad():
            torch.testing.assert_close(conv(x), layer(x), atol=1e-5, rtol=1e-5)


def test_2plus1d_fold_bn_keeps_the_eval_output():
    layer = Conv2Plus1d(4, 6, (3, 3, 3))
    layer.train()
    with torch.no_grad():
        for _ in range(3):
            layer(torch.randn(2, 4, 5, 8, 8) * 3 + 1)  # BN statistics away from (0, 1)
    layer.eval()
    x = torch.randn(2, 4, 5, 8, 8)
    with torch.no_grad():
        before = layer(x)
        layer.fold_bn_()
        assert isinstance(layer.bn, torch.nn.Identity)
        torch.testing.assert_close(layer(x), before, atol=1e-5, rtol=1e-5)


def test_avg_pool_same_padding_averages_real_entries_only():
    x = torch.ones(1, 1, 3, 5, 5)
    out = SpaceTimePool('avg', (3, 3, 3), 1)(x)
    torch.testing.assert_close(out, torch.ones_like(x))  # zero padding would give < 1 at edges
    strided = SpaceTimePool('avg', (1, 2, 2), (1, 2, 2))(torch.arange(25.0).reshape(1, 1, 1, 5, 5))
    assert strided.shape == (1, 1, 1, 3, 3)
    assert strided[0, 0, 0, 2, 2] == 24.0  # the lone corner entry, not 24/4
    assert strided[0, 0, 0, 0, 0] == (0 + 1 + 5 + 6) / 4


def test_pool_strides_give_ceil_sizes():
    pool = SpaceTimePool('max', (1, 2, 2), (1, 2, 2))
    assert pool(torch.randn(1, 1, 3, 7, 8)).shape == (1, 1, 3, 4, 4)
    with pytest.raises(ValueError, match='unknown pool kind'):
        SpaceTimePool('min', 3)
