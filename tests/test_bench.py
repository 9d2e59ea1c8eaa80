"""`vas-ros bench` (what `make bench` runs), on a reduced set of sections and models."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_bench_writes_json_and_markdown_with_ratios(tmp_path, ros_env):
    out = tmp_path / 'bench'
    proc = subprocess.run([sys.executable, '-m', 'vas_ros', 'bench', '--out', str(out),
                           '--skip', 'node', '--skip', 'paths', '--repeats', '2',
                           '--models', 'tvn_tiny', 'frame2d', 'r2plus1d_18'],
                          capture_output=True, text=True, env=ros_env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads((out / 'report.json').read_text())
    assert report['errors'] == {} and report['machine']['cores'] >= 1
    rows = {r['model']: r for r in report['sections']['latency']['results']}
    assert set(rows) == {'tvn_tiny', 'frame2d', 'r2plus1d_18'}
    assert rows['r2plus1d_18']['ratio_to_r2plus1d_18'] == 1.0
    for row in rows.values():
        assert row['p10_ms'] <= row['median_ms'] <= row['p90_ms']
        assert row['ratio_to_r2plus1d_18'] == pytest.approx(
            row['median_ms'] / rows['r2plus1d_18']['median_ms'], abs=1e-4)  # rounded to 4 places
    # tvn_tiny does ~500x fewer MACs than r2plus1d_18; it must not be slower
    assert rows['tvn_tiny']['macs'] * 100 < rows['r2plus1d_18']['macs']
    assert rows['tvn_tiny']['median_ms'] < rows['r2plus1d_18']['median_ms']
    assert {'dis', 'farneback'} <= set(report['sections']['flow']['112x112'])
    assert report['sections']['decode']['cached']['clips_per_s'] > 0
    text = (out / 'report.md').read_text()
    for heading in ('## Latency per clip', '## Optical flow cost', '## Clip decoding'):
        assert heading in text
    assert '| tvn_tiny |' in text and '## ROS node' not in text  # skipped section
