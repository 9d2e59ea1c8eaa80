"""Optical flow on a known shift, and the shared preprocessing `clip_to_inputs`."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from vas_ros.data.flow import FLOW_METHODS, compute_flow, flow_to_rgb, normalise_flow
from vas_ros.data.synth import clip_rng, render_clip
from vas_ros.data.transforms import clip_to_inputs, resize_frames
from vas_ros.errors import DataError
from vas_ros.models.spec import FLOW_METHODS as SPEC_FLOW_METHODS
from vas_ros.models.spec import InputSpec


def _shifted_texture(dx: float, dy: float, steps: int = 3, size: int = 64) -> np.ndarray:
    """A smooth random texture translated by (dx, dy) pixels per frame."""
    rng = np.random.default_rng(0)
    big = cv2.GaussianBlur(rng.integers(0, 256, (size * 2, size * 2, 3)).astype(np.float32),
                           (0, 0), 2.0)
    big = cv2.normalize(big, None, 0, 255, cv2.NORM_MINMAX)
    frames = []
    for t in range(steps):
        shift = np.array([[1, 0, dx * t - size / 2], [0, 1, dy * t - size / 2]], np.float64)
        frames.append(cv2.warpAffine(big, shift, (size, size), flags=cv2.INTER_CUBIC))
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


def test_flow_methods_match_the_spec_contract():
    assert FLOW_METHODS == SPEC_FLOW_METHODS


@pytest.mark.parametrize('method', FLOW_METHODS)
def test_flow_shape_and_direction_on_a_known_shift(method):
    frames = _shifted_texture(2.0, -1.0)
    flow = compute_flow(frames, method)
    assert flow.shape == (3, 64, 64, 2) and flow.dtype == np.float32
    inner = flow[:, 12:-12, 12:-12]
    for t in range(2):
        assert np.median(inner[t, ..., 0]) == pytest.approx(2.0, abs=0.25)
        assert np.median(inner[t, ..., 1]) == pytest.approx(-1.0, abs=0.25)
    assert np.array_equal(flow[-1], flow[-2])  # last step repeated to keep T


def test_flow_edge_cases_and_errors():
    single = compute_flow(_shifted_texture(1, 1, steps=1))
    assert single.shape == (1, 64, 64, 2) and not single.any()
    with pytest.raises(DataError, match='unknown flow method'):
        compute_flow(_shifted_texture(1, 1), 'raft')
    with pytest.raises(DataError, match='uint8 RGB'):
        compute_flow(np.zeros((2, 8, 8), np.uint8))
    flow = np.array([[[[40.0, -5.0]]]], np.float32)
    assert normalise_flow(flow, 20).tolist() == [[[[1.0, -0.25]]]]
    picture = flow_to_rgb(compute_flow(_shifted_texture(2, 0))[0])
    assert picture.shape == (64, 64, 3) and picture.dtype == np.uint8 and picture.any()


def test_clip_to_inputs_eval_normalises_and_resizes_whole_frame():
    spec = InputSpec(frames=3, size=32, streams=('rgb', 'flow'), mean=(0.5, 0.4, 0.3),
                     std=(0.2, 0.25, 0.5), flow_scale=4.0)
    frames = np.zeros((3, 48, 80, 3), np.uint8)  # not square: squeezed, never cropped
    frames[..., 0], frames[..., 1], frames[..., 2] = 255, 102, 0
    frames[:, :, :2] = 0  # a dark border column on the left must survive (no crop)
    inputs = clip_to_inputs(frames, spec)
    assert set(inputs) == {'rgb', 'flow'}
    rgb = inputs['rgb']
    assert rgb.shape == (3, 3, 32, 32) and rgb.dtype == torch.float32
    centre = rgb[:, 0, 16, 16].tolist()
    assert centre == pytest.approx([(1 - 0.5) / 0.2, (0.4 - 0.4) / 0.25, (0 - 0.3) / 0.5],
                                   abs=1e-5)
    assert rgb[0, 0, 16, 0] < centre[0]  # the left border is still there
    assert inputs['flow'].shape == (2, 3, 32, 32)
    only_rgb = clip_to_inputs(frames, InputSpec(frames=3, size=32))
    assert set(only_rgb) == {'rgb'}
    with pytest.raises(DataError, match='uint8 RGB frames'):
        clip_to_inputs(frames.astype(np.float32), spec)


def test_clip_to_inputs_flow_is_at_model_size_scaled_and_clipped():
    frames = _shifted_texture(4.0, 0.0, steps=3, size=64)
    spec = InputSpec(frames=3, size=32, streams=('flow',), flow_scale=4.0)
    flow = clip_to_inputs(frames, spec)['flow']
    # 4 px at 64 is 2 px at 32; / 4 -> 0.5
    assert float(flow[0, :2, 6:-6, 6:-6].median()) == pytest.approx(0.5, abs=0.08)
    tight = InputSpec(frames=3, size=32, streams=('flow',), flow_scale=0.5)
    clipped = clip_to_inputs(frames, tight)['flow']
    assert float(clipped.max()) <= 1.0 and float(clipped[0, 0, 16, 16]) == 1.0


def test_training_augmentation_never_flips_motion():
    clip = render_clip('move_right', clip_rng(4, 'aug', 'move_right', 0), size=64, frames=6)
    spec = InputSpec(frames=6, size=48, streams=('rgb', 'flow'), flow_scale=2.0)
    plain = clip_to_inputs(clip, spec)
    for seed in range(6):
        rng = np.random.default_rng(seed)
        augmented = clip_to_inputs(clip, spec, train=True, rng=rng)
        assert augmented['rgb'].shape == plain['rgb'].shape
        flow_x = augmented['flow'][0]
        moving = augmented['flow'].abs().sum(0) > 0.2
        assert float(flow_x[moving].mean()) > 0  # still moving right
    same = [clip_to_inputs(clip, spec, train=True, rng=np.random.default_rng(1))['rgb']
            for _ in range(2)]
    assert torch.equal(*same)  # augmentation is a function of the rng


def test_resize_frames_keeps_uint8_and_size():
    frames = np.random.default_rng(0).integers(0, 256, (2, 30, 50, 3), dtype=np.uint8)
    out = resize_frames(frames, 16)
    assert out.shape == (2, 16, 16, 3) and out.dtype == np.uint8
    assert resize_frames(out, 16) is out


@pytest.mark.parametrize('method', FLOW_METHODS)
def test_flow_on_tiny_and_thin_frames_does_not_crash(method):
    # OpenCV's DIS rejects frames under its patch size and crashed on 10x40 ones
    for height, width in ((1, 1), (8, 8), (10, 40), (40, 10), (15, 16)):
        frames = np.random.default_rng(0).integers(0, 256, (3, height, width, 3), np.uint8)
        flow = compute_flow(frames, method)
        assert flow.shape == (3, height, width, 2) and np.isfinite(flow).all()


@pytest.mark.parametrize('method', ['dis', 'farneback'])
def test_flow_stream_equals_the_documented_formula(method):
    from vas_ros.data.flow import flow_input_tensor

    frames = _shifted_texture(30.0, -3.0, steps=4, size=48)  # big shift: clipping matters
    expected = normalise_flow(compute_flow(frames, method), 8.0).transpose(3, 0, 1, 2)
    spec = InputSpec(frames=4, size=48, streams=('flow',), flow_method=method, flow_scale=8.0)
    tensor = clip_to_inputs(frames, spec)['flow']
    assert tensor.shape == (2, 4, 48, 48)
    np.testing.assert_allclose(tensor.numpy(), expected, atol=1e-6)
    assert float(tensor.abs().max()) == 1.0
    assert not flow_input_tensor(frames[:1], method, 8.0).any()
