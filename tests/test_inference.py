"""Inference paths: each one gives eager's answer (within its tolerance) on tvn_tiny."""

from __future__ import annotations

import pytest
import torch

from vas_ros.errors import VasError
from vas_ros.models.factory import resolve_arch
from vas_ros.models.inference import (
    PATHS,
    available_paths,
    compare_logits,
    freeze_for_inference,
    fuse_conv_bn,
    prepare_inference,
)

# Relative tolerance (max |diff| / max |eager logit|) per path: fp32 rewrites are exact up
# to summation order; bf16 keeps 8 mantissa bits; int8 is calibrated on random clips.
TOLERANCE = {'eager': 1e-6, 'channels_last': 1e-4, 'compile': 1e-4, 'onnxruntime': 1e-4,
             'bf16': 0.05, 'compile_bf16': 0.05, 'int8': 0.15}
COMPILED = ('compile', 'compile_bf16')


pytestmark = pytest.mark.usefixtures('one_torch_thread')


def _with_bn_statistics(name: str, classes: int, passes: int, batch: int):
    """Preset `name` (seed 0) after `passes` train-mode passes of random clips, in eval
    mode: BatchNorm statistics away from (0, 1), so folding them is really tested."""
    torch.manual_seed(0)
    arch = resolve_arch(name)
    spec = arch.input_spec()
    model = arch.build(classes)
    model.train()
    with torch.no_grad():
        for _ in range(passes):
            model(torch.randn(batch, 3, spec.frames, spec.size, spec.size))
    return model.eval(), spec


@pytest.fixture(scope='module')
def tiny():
    """tvn_tiny with non-trivial BatchNorm statistics and logits of order 1."""
    model, spec = _with_bn_statistics('tvn_tiny', 8, passes=3, batch=4)
    with torch.no_grad():
        torch.nn.init.normal_(model.classifier.weight, std=1.0)
    clips = torch.randn(6, 3, spec.frames, spec.size, spec.size,
                        generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        reference = model(clips)
    return model, spec, clips, reference


@pytest.mark.parametrize('path', [p for p in PATHS if p not in COMPILED])
def test_path_matches_eager(tiny, path):
    model, spec, clips, reference = tiny
    if path not in available_paths('cpu'):
        pytest.skip(f'{path} not supported on this CPU')
    before = {k: v.clone() for k, v in model.state_dict().items()}
    runner = prepare_inference(model, spec, path, 'cpu')
    out = runner(clips)
    assert out.dtype == torch.float32 and out.shape == reference.shape
    cmp = compare_logits(reference, out)
    assert cmp['finite']
    assert cmp['rel_diff'] <= TOLERANCE[path], cmp
    if path in ('eager', 'channels_last', 'compile', 'onnxruntime'):
        assert cmp['top1_agree'] == 1.0
    else:
        assert cmp['top1_agree'] >= 0.8, cmp
    # a second call (different batch size) works and the caller's model is untouched
    assert runner(clips[:1]).shape == (1, 8)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not model.training


@pytest.mark.slow
@pytest.mark.parametrize('path', COMPILED)
def test_compile_path_matches_eager(path):
    # Compiling costs about a minute per graph on two shared cores, so this uses a
    # two-block TVN (same layer kinds as tvn_tiny: SAME pads, temporal conv and pool, SE,
    # gating, residual) and one input shape.
    from vas_ros.models.tvn import TVNGenome

    genome = {'frames': 4, 'size': 32, 'blocks': [
        {'spatial_type': 'std', 'spatial_kernel': 4, 'spatial_stride': 2,
         'temporal_type': '1d', 'temporal_kernel': 2, 'filters': 8, 'expand': 2,
         'se_ratio': 0.25, 'context_gating': True, 'skip': True},
        {'spatial_type': 'avgpool', 'spatial_kernel': 3, 'spatial_stride': 2,
         'temporal_type': 'maxpool', 'temporal_kernel': 2, 'temporal_stride': 2,
         'filters': 8, 'expand': 2}]}
    torch.manual_seed(0)
    model = TVNGenome.parse(genome).build(5).eval()
    torch.nn.init.normal_(model.classifier.weight, std=1.0)
    spec = TVNGenome.parse(genome).input_spec()
    clips = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        reference = model(clips)
    if path not in available_paths('cpu'):
        pytest.skip(f'{path} needs a CPU with native bfloat16 (AVX512-BF16 or AMX)')
    cmp = compare_logits(reference, prepare_inference(model, spec, path)(clips))
    assert cmp['rel_diff'] <= TOLERANCE[path] and cmp['top1_agree'] == 1.0, cmp


def test_fuse_conv_bn_keeps_outputs_and_removes_batchnorm(tiny):
    import copy

    model, spec, clips, reference = tiny
    fused = fuse_conv_bn(copy.deepcopy(model))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    with torch.no_grad():
        assert torch.allclose(fused(clips), reference, atol=1e-4, rtol=1e-4)


def test_freeze_for_inference_keeps_an_evanet_with_itgm_and_2plus1d():
    import copy

    from vas_ros.models.layers.spacetime import Conv2Plus1d, ITGMConv3d

    model, spec = _with_bn_statistics('evanet_tiny', 5, passes=2, batch=2)
    kinds = {type(m) for m in model.modules()}
    assert ITGMConv3d in kinds and Conv2Plus1d in kinds  # the layers this is about
    clips = torch.randn(2, 3, spec.frames, spec.size, spec.size)
    frozen = freeze_for_inference(copy.deepcopy(model))
    assert not any(isinstance(m, ITGMConv3d) for m in frozen.modules())
    assert all(isinstance(m.bn, torch.nn.Identity) for m in frozen.modules()
               if isinstance(m, Conv2Plus1d))
    with torch.no_grad():
        reference = model(clips)
        torch.testing.assert_close(frozen(clips), reference, atol=1e-4, rtol=1e-4)
    for path in ('channels_last', 'bf16'):
        if path in available_paths('cpu'):
            cmp = compare_logits(reference, prepare_inference(model, spec, path)(clips))
            assert cmp['rel_diff'] <= TOLERANCE[path], (path, cmp)


def test_int8_uses_given_calibration_clips(tiny):
    model, spec, clips, reference = tiny
    runner = prepare_inference(model, spec, 'int8', calibration=[(clips[:3],), (clips[3:],)])
    cmp = compare_logits(reference, runner(clips))
    assert cmp['rel_diff'] <= TOLERANCE['int8'], cmp
    # the session really holds quantised convolutions
    import onnx

    graph = onnx.load(runner.note).graph
    assert any(node.op_type == 'QuantizeLinear' for node in graph.node)



def test_an_int8_session_can_be_profiled_per_node(tiny, tmp_path):
    """bench/ort_op_profile.py's source: a session over the int8 file with profiling on
    records the kernel time of each node, quantised convolutions among them."""
    import json
    from pathlib import Path

    from vas_ros.models.inference import INT8_DISABLED_OPTIMIZERS, ort_cpu_session

    model, spec, clips, _ = tiny
    runner = prepare_inference(model, spec, 'int8', calibration=[(clips,)])
    session = ort_cpu_session(runner.note, 1, INT8_DISABLED_OPTIMIZERS,
                              profile_prefix=str(tmp_path / 'trace'))
    session.run(None, {session.get_inputs()[0].name: clips.numpy()})
    trace_file = Path(session.end_profiling())
    assert trace_file.parent == tmp_path and trace_file.name.startswith('trace')
    trace = json.loads(trace_file.read_text())
    kernels = {e['args']['op_name'] for e in trace
               if e.get('cat') == 'Node' and e['name'].endswith('_kernel_time')}
    assert 'QLinearConv' in kernels, kernels

def test_bad_paths_and_devices_are_refused(tiny):
    model, spec, _, _ = tiny
    with pytest.raises(VasError, match='unknown inference path'):
        prepare_inference(model, spec, 'tensorrt')
    if not torch.cuda.is_available():
        with pytest.raises(VasError, match='CUDA is not available'):
            prepare_inference(model, spec, 'eager', 'cuda')
    runner = prepare_inference(model, spec, 'eager')
    with pytest.raises(VasError, match='takes 1 input'):
        runner(torch.zeros(1), torch.zeros(1))
