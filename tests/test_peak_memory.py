"""Peak memory as a worker reports it: its own, not the peak of whoever started it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vas_ros.peak_memory import peak_rss_mb


@pytest.mark.skipif(not Path('/proc/self/status').exists(),
                    reason='VmHWM is read from /proc, which only Linux has')
def test_a_child_of_a_large_process_reports_its_own_small_peak():
    ballast = bytearray(768 * 2**20)
    ballast[::4096] = b'\1' * len(ballast[::4096])  # resident, not just reserved
    assert peak_rss_mb() > 700
    out = subprocess.run([sys.executable, '-c',
                          'from vas_ros.peak_memory import peak_rss_mb; print(peak_rss_mb())'],
                         check=True, capture_output=True, text=True).stdout
    del ballast
    assert 1 < float(out) < 300, out


def test_a_process_that_is_not_there_has_no_peak():
    assert peak_rss_mb(2**22 + 7) is None
