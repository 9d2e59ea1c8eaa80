"""Latency routine and the `latency` / `models` commands (no timing is asserted)."""

from __future__ import annotations

import json

import pytest
import torch

from vas_ros.cli import main
from vas_ros.errors import VasError
from vas_ros.models.factory import resolve_arch
from vas_ros.search.latency import measure_arch_latency, measure_latency, summarise

pytestmark = pytest.mark.usefixtures('one_torch_thread')


def test_summary_percentiles_are_ordered_and_interpolated():
    res = summarise([5.0, 1.0, 3.0, 2.0, 4.0], 'cpu', 2, 'eager')
    assert (res.p10_ms, res.median_ms, res.p90_ms) == pytest.approx((1.4, 3.0, 4.6))
    assert res.samples_ms == [5.0, 1.0, 3.0, 2.0, 4.0]  # kept in measurement order
    assert 'samples_ms' not in res.to_dict() and res.to_dict(samples=True)['samples_ms']


def test_measure_latency_returns_sane_percentiles_and_restores_threads():
    arch = resolve_arch({'family': 'tvn', 'genome': {
        'frames': 2, 'size': 32, 'blocks': [{'spatial_type': 'std', 'spatial_stride': 2,
                                             'temporal_type': '1d', 'temporal_kernel': 2,
                                             'filters': 8, 'context_gating': True}]}})
    model = arch.build(8)
    before = torch.get_num_threads()
    res = measure_latency(model, arch.input_spec(), threads=2, warmup=1, repeats=5)
    assert torch.get_num_threads() == before
    assert res.threads == 2 and res.device == 'cpu' and res.path == 'eager'
    assert len(res.samples_ms) == 5 and all(s > 0 for s in res.samples_ms)
    assert min(res.samples_ms) <= res.p10_ms <= res.median_ms <= res.p90_ms
    assert res.p90_ms <= max(res.samples_ms)
    assert model.training  # the caller's module is not switched to eval


def test_measure_arch_latency_by_name_and_batch():
    res = measure_arch_latency('tvn_tiny', num_classes=3, warmup=0, repeats=2, batch=2,
                               path='onnxruntime')
    assert res.path == 'onnxruntime' and len(res.samples_ms) == 2


@pytest.mark.parametrize('kwargs,words', [
    ({'repeats': 0}, 'repeats'), ({'warmup': -1}, 'warmup'), ({'batch': 0}, 'batch'),
    ({'threads': 0}, 'threads'), ({'path': 'fp8'}, 'unknown inference path'),
])
def test_bad_latency_arguments(kwargs, words):
    with pytest.raises(VasError, match=words):
        measure_arch_latency('tvn_tiny', **kwargs)


def _cli_json(capsys, argv):
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def test_latency_command_compares_paths_with_eager(capsys, tmp_path):
    png = tmp_path / 'latency.png'
    out = _cli_json(capsys, ['latency', 'tvn_tiny', '--repeats', '3', '--warmup', '1',
                             '--threads', '1', '--path', 'eager', '--path', 'onnxruntime',
                             '--check-clips', '2', '--plot', str(png), '--json'])
    assert out['device'] == 'cpu' and out['threads'] == 1
    rows = {r['path']: r for r in out['results']}
    assert set(rows) == {'eager', 'onnxruntime'}
    for row in rows.values():
        assert row['model'] == 'tvn_tiny'
        assert row['p10_ms'] <= row['median_ms'] <= row['p90_ms']
        assert row['params'] > 100_000 and row['macs'] > 10_000_000
    assert rows['eager']['speedup_vs_eager'] == 1.0
    assert rows['onnxruntime']['speedup_vs_eager'] > 0
    assert rows['onnxruntime']['top1_agree'] == 1.0
    assert rows['onnxruntime']['max_abs_diff'] < 1e-3
    assert png.stat().st_size > 1000


def test_latency_command_accepts_genome_files_and_checkpoints(capsys, tmp_path):
    from vas_ros.models.checkpoint import save_checkpoint

    arch = resolve_arch('tvn_tiny')
    genome_file = tmp_path / 'g.json'
    genome_file.write_text(arch.to_json())
    ckpt = save_checkpoint(tmp_path / 'm.safetensors', arch.build(3), arch,
                           ['a', 'b', 'c'], arch.input_spec())
    out = _cli_json(capsys, ['latency', str(genome_file), str(ckpt), '--repeats', '2',
                             '--warmup', '0', '--json'])
    assert [r['model'] for r in out['results']] == [str(genome_file), str(ckpt)]
    # the checkpoint keeps its own 3-class head; the genome gets the default 400
    head = 96 * 2
    assert out['results'][0]['params'] - out['results'][1]['params'] == head * 397 + 397


def test_latency_command_times_flow_per_clip_apart_for_two_stream_models(capsys):
    from vas_ros.search.latency import measure_flow_latency

    out = _cli_json(capsys, ['latency', 'assemblenet_tiny', 'assemblenet_tiny_rgb', 'tvn_tiny',
                             '--repeats', '2', '--warmup', '0', '--classes', '8', '--json'])
    rows = {r['model']: r for r in out['results']}
    two = rows['assemblenet_tiny']
    assert two['flow_method'] == 'dis' and 0 < two['flow_p10_ms'] <= two['flow_p90_ms']
    assert 'flow_median_ms' not in rows['assemblenet_tiny_rgb']
    assert 'flow_median_ms' not in rows['tvn_tiny']
    spec = resolve_arch('assemblenet_tiny').input_spec()
    assert measure_flow_latency(resolve_arch('tvn_tiny').input_spec()) is None
    assert measure_flow_latency(spec, repeats=2).samples_ms[0] > 0
    with pytest.raises(VasError, match='repeats'):
        measure_flow_latency(spec, repeats=0)


def test_latency_command_rejects_unknown_models(capsys):
    assert main(['latency', 'tvn9', '--json']) == 2
    assert 'neither a preset' in capsys.readouterr().err


def test_models_list_shows_every_tvn_preset(capsys):
    rows = _cli_json(capsys, ['models', 'list', '--json'])
    names = {r['name']: r for r in rows}
    for name in ('tvn1', 'tvn2', 'tvn3', 'tvn4', 'tvn_tiny'):
        assert names[name]['family'] == 'tvn' and names[name]['description']


def test_models_info_json(capsys, tmp_path):
    info = _cli_json(capsys, ['models', 'info', 'tvn_tiny', '--classes', '8', '--json'])
    arch = resolve_arch('tvn_tiny')
    model = arch.build(8)
    assert info == {'name': 'tvn_tiny', 'family': 'tvn',
                    'params': sum(p.numel() for p in model.parameters()),
                    'macs': info['macs'], 'memory': info['memory'],
                    'input': {'frames': 8, 'size': 64, 'streams': ['rgb']}}
    assert 50e6 < info['macs'] < 200e6
    assert info['memory']['train_batch'] == 8
    assert 0 < info['memory']['inference_mb'] < info['memory']['train_mb']
    genome_file = tmp_path / 'custom.json'
    data = json.loads(arch.to_json())
    data['name'] = 'custom_tiny'
    data['genome']['size'] = 96
    genome_file.write_text(json.dumps(data))
    bigger = _cli_json(capsys, ['models', 'info', str(genome_file), '--classes', '8',
                                '--json'])
    assert bigger['name'] == 'custom_tiny' and bigger['input']['size'] == 96
    assert bigger['params'] == info['params']  # same layers, bigger clips
    assert bigger['macs'] > 2 * info['macs']


def test_models_info_rejects_an_invalid_genome_file(capsys, tmp_path):
    bad = tmp_path / 'bad.json'
    genome = json.loads(resolve_arch('tvn_tiny').to_json())
    genome['genome']['blocks'][1]['filters'] = 0
    bad.write_text(json.dumps(genome))
    assert main(['models', 'info', str(bad)]) == 2
    assert "'blocks[1].filters'" in capsys.readouterr().err
