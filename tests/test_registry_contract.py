"""One contract for every preset in the registry, so a new preset or family is covered the
day it is added: checkpoint round trip, ONNX export against eager, and each CPU inference
path. Presets larger than tvn_small (the published 224/256 px models) are marked slow;
they still run in `make test`."""

from __future__ import annotations

import pytest
import torch

from vas_ros.models.checkpoint import load_checkpoint, save_checkpoint
from vas_ros.models.export import export_checkpoint
from vas_ros.models.inference import available_paths, compare_logits, prepare_inference
from vas_ros.models.introspect import example_inputs
from vas_ros.models.registry import presets

CLASSES = ['a', 'b', 'c', 'd', 'e']
PRESETS = presets()


def _large(name: str) -> bool:
    spec = PRESETS[name].input_spec()
    return spec.frames * spec.size ** 2 > 8 * 112 ** 2


def _cases(names):
    return [pytest.param(n, marks=pytest.mark.slow) if _large(n) else n for n in names]


SMALL = [n for n in sorted(PRESETS) if not _large(n)]
# fp32 rewrites are exact up to summation order; int8 is lossy and its accuracy is tested
# on tvn_tiny (tests/test_inference.py); here every preset must run through it.
FP32_PATHS = ('channels_last', 'onnxruntime')


def _model(name: str):
    torch.manual_seed(0)
    arch = PRESETS[name]
    return arch, arch.build(len(CLASSES)).eval(), arch.input_spec()


@pytest.fixture(scope='module', autouse=True)
def _two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize('name', _cases(sorted(PRESETS)))
def test_checkpoint_round_trip(name, tmp_path):
    arch, model, spec = _model(name)
    path = save_checkpoint(tmp_path / f'{name}.safetensors', model, arch, CLASSES, spec)
    loaded = load_checkpoint(path)
    assert loaded.arch.to_dict() == arch.to_dict()
    assert loaded.spec == spec and loaded.classes == CLASSES
    ours, theirs = model.state_dict(), loaded.model.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    inputs = example_inputs(spec, batch=1)
    with torch.no_grad():
        assert torch.equal(model(*inputs), loaded.model(*inputs))


@pytest.mark.parametrize('name', _cases(sorted(PRESETS)))
def test_onnx_export_matches_eager(name, tmp_path):
    arch, model, spec = _model(name)
    checkpoint = save_checkpoint(tmp_path / f'{name}.safetensors', model, arch, CLASSES, spec)
    path, check = export_checkpoint(checkpoint, 'onnx', tmp_path / f'{name}.onnx')
    assert path.is_file() and path.stat().st_size > 0
    assert check.passes(1e-3), check  # what `vas-ros export` requires


@pytest.mark.parametrize('path', FP32_PATHS + ('int8',))
@pytest.mark.parametrize('name', SMALL)
def test_every_cpu_path_runs_every_small_preset(name, path):
    if path not in available_paths('cpu'):
        pytest.skip(f'{path} is not available on this CPU')
    arch, model, spec = _model(name)
    inputs = example_inputs(spec, batch=2)
    with torch.no_grad():
        reference = model(*inputs)
    out = prepare_inference(model, spec, path, 'cpu')(*inputs)
    assert out.dtype == torch.float32 and out.shape == reference.shape
    cmp = compare_logits(reference, out)
    assert cmp['finite'], cmp
    if path in FP32_PATHS:
        assert cmp['max_abs_diff'] <= 1e-3 and cmp['top1_agree'] == 1.0, cmp


def test_registering_a_taken_family_or_preset_name_is_an_error():
    from vas_ros.errors import VasError
    from vas_ros.models.registry import Family, families, register_family
    from vas_ros.models.tvn import TVNGenome

    tvn = families()['tvn']
    register_family(tvn)  # the same family again: a no-op
    with pytest.raises(VasError, match="'tvn' is already registered"):
        register_family(Family(tvn.name, tvn.genome))

    class ThiefGenome(TVNGenome):
        family = 'thief'

    thief = Family('thief', ThiefGenome, {'tvn_tiny': dict(tvn.presets['tvn_tiny'])})
    with pytest.raises(VasError, match="tvn_tiny.*already presets of family 'tvn'"):
        register_family(thief)
    with pytest.raises(VasError, match="its genome class says family 'tvn'"):
        register_family(Family('stray', TVNGenome))
    with pytest.raises(VasError, match='must be a Genome subclass'):
        register_family(Family('dicts', dict))
    assert not {'thief', 'stray', 'dicts'} & set(families())
