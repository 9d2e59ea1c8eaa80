"""The inference engine: loading checkpoints by path or shipped name, devices, predictions."""

from __future__ import annotations

import numpy as np
import pytest

from vas_ros.errors import CheckpointError, VasError
from vas_ros.perception.engine import (
    DEFAULT_MODEL,
    SHIPPED_DIR,
    InferenceEngine,
    resolve_device,
    resolve_model_path,
)

CLASSES = ['left', 'right', 'still']


def _save(tmp_path, preset: str):
    import torch

    from vas_ros.models.checkpoint import save_checkpoint
    from vas_ros.models.factory import resolve_arch
    from vas_ros.models.registry import ModelArch

    torch.manual_seed(0)
    if preset == 'tvn_tiny_flow':  # the tiny TVN on optical flow, as the search may find it
        arch = ModelArch('tvn', resolve_arch('tvn_tiny').genome.with_streams(('flow',)),
                         preset)
    else:
        arch = resolve_arch(preset)
    model = arch.build(len(CLASSES))
    return save_checkpoint(tmp_path / f'{preset}.safetensors', model, arch, CLASSES,
                           arch.input_spec())


@pytest.fixture(scope='module')
def tiny_checkpoint(tmp_path_factory):
    return _save(tmp_path_factory.mktemp('engine'), 'tvn_tiny')


def test_predicts_sorted_top_k_with_latency_breakdown(tiny_checkpoint):
    engine = InferenceEngine(tiny_checkpoint, device='cpu')
    assert engine.classes == CLASSES and engine.name == 'tvn_tiny'
    clip = np.random.default_rng(0).integers(0, 255, (engine.spec.frames, 48, 80, 3), np.uint8)
    prediction = engine.infer(clip, top_k=2)
    scores = [score for _, score in prediction.top_k]
    assert len(prediction.top_k) == 2 and scores == sorted(scores, reverse=True)
    assert prediction.label == prediction.top_k[0][0] and 0 < prediction.score <= 1
    assert set(prediction.latency_ms) == {'preprocess', 'flow', 'model', 'total'}
    assert prediction.latency_ms['total'] >= prediction.latency_ms['model'] > 0
    assert len(engine.infer(clip, top_k=50).top_k) == len(CLASSES)  # clamped
    again = engine.infer(clip, top_k=3)
    assert again.label == engine.infer(clip, top_k=3).label  # deterministic in eval mode
    with pytest.raises(VasError, match='uint8'):
        engine.infer(clip.astype(np.float32))


def test_model_references_resolve_or_fail_with_a_reason(tmp_path, tiny_checkpoint):
    assert resolve_model_path(str(tiny_checkpoint)) == tiny_checkpoint
    with pytest.raises(CheckpointError, match='does not exist'):
        resolve_model_path(tmp_path / 'missing.safetensors')
    with pytest.raises(CheckpointError, match='untrained preset'):
        resolve_model_path('tvn_tiny')
    with pytest.raises(CheckpointError, match='no such checkpoint'):
        resolve_model_path('no_such_model')
    with pytest.raises(CheckpointError, match='empty'):
        resolve_model_path('  ')
    corrupt = tmp_path / 'corrupt.safetensors'
    corrupt.write_bytes(b'\x10\x00\x00\x00\x00\x00\x00\x00{"bad json')
    with pytest.raises(CheckpointError):
        InferenceEngine(corrupt, device='cpu')
    truncated = tmp_path / 'truncated.safetensors'
    truncated.write_bytes(tiny_checkpoint.read_bytes()[:-1000])
    with pytest.raises(CheckpointError):
        InferenceEngine(truncated, device='cpu')


def test_device_choices():
    import torch

    assert resolve_device('cpu') == 'cpu'
    assert resolve_device('auto') == ('cuda' if torch.cuda.is_available() else 'cpu')
    with pytest.raises(VasError, match='expected auto'):
        resolve_device('tpu')
    if not torch.cuda.is_available():
        with pytest.raises(VasError, match='no CUDA GPU'):
            resolve_device('cuda:0')


@pytest.mark.parametrize('preset', ['assemblenet_tiny', 'tvn_tiny_flow'])
def test_flow_models_time_their_flow(tmp_path, preset):
    checkpoint = _save(tmp_path, preset)
    engine = InferenceEngine(checkpoint, device='cpu', flow_method='dis_fast')
    assert engine.spec.needs_flow and engine.spec.flow_method == 'dis_fast'
    clip = np.random.default_rng(1).integers(0, 255, (engine.spec.frames, 64, 64, 3), np.uint8)
    prediction = engine.infer(clip, top_k=1)
    assert prediction.latency_ms['flow'] > 0.1
    with pytest.raises(VasError, match='flow_method'):
        engine.set_flow_method('magic')
    engine.set_flow_method('')  # back to what it was trained with
    assert engine.spec.flow_method == engine.trained_flow_method == 'dis'


@pytest.mark.skipif(not (SHIPPED_DIR / f'{DEFAULT_MODEL}.safetensors').is_file(),
                    reason='shipped model not built yet (see vas_ros/shipped/README.md)')
def test_shipped_model_recognises_synthetic_actions():
    from vas_ros.data.synth import CLASSES as SYNTH_CLASSES
    from vas_ros.data.synth import dataset_classes, render_clip

    engine = InferenceEngine(DEFAULT_MODEL, device='cpu')
    assert engine.classes == list(dataset_classes(with_none=True))
    assert engine.temperature != 1.0  # its scores are calibrated
    rng = np.random.default_rng(12345)
    right = 0
    total = 0
    for label in SYNTH_CLASSES:
        for _ in range(2):
            clip = render_clip(label, rng, size=112, frames=16)
            frames = clip[::engine.spec.frame_stride][:engine.spec.frames]
            right += engine.infer(frames).label == label
            total += 1
    assert right / total >= 0.7, f'{right}/{total} right'
