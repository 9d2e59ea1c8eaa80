"""`vas-ros demo` (what `make demo` runs): three processes over loopback DDS, scored."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_plays_clips_and_labels_them_mostly_right(tmp_path, ros_env):
    summary_path = tmp_path / 'summary.json'
    proc = subprocess.run([sys.executable, '-m', 'vas_ros', 'demo', '--clips', '8',
                           '--json', str(summary_path), '--log-dir', str(tmp_path / 'logs')],
                          capture_output=True, text=True, env=ros_env, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(summary_path.read_text())
    assert summary['clips_played'] == 8  # the last clip's label arrived
    assert summary['labels_received'] >= 5  # the first may precede discovery
    assert summary['scored_results'] >= 7
    assert summary['accuracy'] >= 0.5
    assert 0 < summary['e2e_latency_ms']['median'] < 5000
    assert 'demo summary' in proc.stdout and 'demo: OK' in proc.stdout


def test_demo_rejects_bad_arguments_in_one_line():
    proc = subprocess.run([sys.executable, '-m', 'vas_ros', 'demo', '--clips', '0'],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert '--clips must be >= 1' in proc.stderr and 'Traceback' not in proc.stderr
    proc = subprocess.run([sys.executable, '-m', 'vas_ros', 'demo', '--model', 'nope'],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "'nope'" in proc.stderr
