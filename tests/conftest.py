"""Test-wide settings: DDS stays on loopback in a private domain for the whole run.

Set before rclpy is imported anywhere, so every node created by a test, and every child
process started with `ros_env`, shares one private domain that parallel runs don't see.
"""

from __future__ import annotations

import os
import sys

import pytest

from vas_ros.ros_env import apply_loopback

apply_loopback(int(os.environ['VAS_TEST_DOMAIN_ID']) if 'VAS_TEST_DOMAIN_ID' in os.environ
               else None)
os.environ.setdefault('PYTHONUNBUFFERED', '1')


@pytest.fixture(scope='session')
def ros_env() -> dict:
    """Environment for child processes that must join the test's DDS domain."""
    env = dict(os.environ)
    env['PYTHONUNBUFFERED'] = '1'
    return env


@pytest.fixture(scope='session')
def python_exe() -> str:
    return sys.executable


@pytest.fixture(scope='module')
def one_torch_thread():
    """One intra-op torch thread for a module's correctness tests: OpenMP spin-waiting
    makes two threads many times slower when other processes share the two cores.
    Use with `pytestmark = pytest.mark.usefixtures('one_torch_thread')`."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
