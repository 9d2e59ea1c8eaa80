"""`vas-ros export`: ONNX and TorchScript files that reproduce the eager model's logits."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from vas_ros.models.checkpoint import load_checkpoint, save_checkpoint
from vas_ros.models.export import check_export, export_checkpoint, run_exported
from vas_ros.models.factory import resolve_arch
from vas_ros.models.introspect import example_inputs
from vas_ros.perception.engine import resolve_model_path

SHIPPED = resolve_model_path('tvn_tiny_synth')


@pytest.fixture(scope='module')
def two_stream_checkpoint(tmp_path_factory):
    """A randomly initialised RGB+flow AssembleNet, saved like a trained one."""
    torch.manual_seed(0)
    arch = resolve_arch('assemblenet_tiny')
    spec = arch.input_spec()
    model = arch.build(5).eval()
    path = tmp_path_factory.mktemp('ckpt') / 'two_stream.safetensors'
    save_checkpoint(path, model, arch, [f'c{i}' for i in range(5)], spec)
    return path


@pytest.mark.parametrize('fmt', ['onnx', 'torchscript'])
def test_shipped_model_exports_and_matches_eager(tmp_path, fmt):
    out = tmp_path / f'model.{"onnx" if fmt == "onnx" else "pt"}'
    path, check = export_checkpoint(SHIPPED, fmt, out)
    assert path.is_file() and path.stat().st_size > 10_000
    assert check.max_abs_diff < 1e-3 and check.top1_agree

    # Independently of check_export: new clips, batch 3, compared here.
    loaded = load_checkpoint(SHIPPED)
    torch.manual_seed(5)
    inputs = example_inputs(loaded.spec, batch=3)
    with torch.no_grad():
        eager = loaded.model(*inputs).numpy()
    exported = run_exported(path, fmt, inputs)
    assert exported.shape == (3, len(loaded.classes))
    np.testing.assert_allclose(exported, eager, atol=1e-3, rtol=1e-3)


def test_onnx_carries_classes_and_input_spec(tmp_path):
    import onnx

    path, _ = export_checkpoint(SHIPPED, 'onnx', tmp_path / 'm.onnx')
    proto = onnx.load(str(path))
    meta = json.loads({p.key: p.value for p in proto.metadata_props}['vas_ros'])
    loaded = load_checkpoint(SHIPPED)
    assert meta['classes'] == loaded.classes
    assert meta['input'] == loaded.spec.to_dict()
    assert [i.name for i in proto.graph.input] == list(loaded.spec.streams)


def test_two_stream_model_exports_with_one_input_per_stream(tmp_path, two_stream_checkpoint):
    loaded = load_checkpoint(two_stream_checkpoint)
    assert loaded.spec.streams == ('rgb', 'flow')
    for fmt in ('onnx', 'torchscript'):
        path, check = export_checkpoint(two_stream_checkpoint, fmt, tmp_path / f'ts.{fmt}')
        assert check.max_abs_diff < 1e-3 and check.top1_agree, (fmt, check)
        again = check_export(loaded.model, loaded.spec, path, fmt, batch=1, seed=3)
        assert again.max_abs_diff < 1e-3


def test_cli_reports_the_check_and_rejects_bad_checkpoints(tmp_path):
    out = tmp_path / 'm.onnx'
    proc = subprocess.run([sys.executable, '-m', 'vas_ros', 'export', str(SHIPPED),
                           '--format', 'onnx', '--out', str(out), '--json'],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report['ok'] is True and report['max_abs_diff'] < 1e-3 and out.is_file()

    truncated = tmp_path / 'cut.safetensors'
    truncated.write_bytes(SHIPPED.read_bytes()[:5000])
    proc = subprocess.run([sys.executable, '-m', 'vas_ros', 'export', str(truncated),
                           '--format', 'torchscript', '--out', str(tmp_path / 'x.pt')],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert str(truncated) in proc.stderr and 'Traceback' not in proc.stderr
    assert not (tmp_path / 'x.pt').exists()
