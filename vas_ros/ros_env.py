"""DDS settings that keep every test, demo and probe on this machine.

`loopback_env()` returns an environment for child processes with discovery limited to
localhost and a private ROS_DOMAIN_ID, so parallel runs neither leak traffic nor see
each other. Call `apply_loopback()` before `rclpy.init()` in the current process.
"""

from __future__ import annotations

import os
import random

# Fast DDS maps domain ids to UDP ports; ids above 232 overflow the port range.
MAX_DOMAIN_ID = 232


def pick_domain_id() -> int:
    """A domain id unlikely to be used by a parallel run (never 0, the default)."""
    rng = random.Random(os.getpid() ^ int.from_bytes(os.urandom(4), 'little'))
    return rng.randint(101, MAX_DOMAIN_ID)


def loopback_env(domain_id: int | None = None, base: dict | None = None) -> dict:
    env = dict(os.environ if base is None else base)
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env.pop('ROS_LOCALHOST_ONLY', None)  # deprecated on Jazzy; the range above replaces it
    env['ROS_DOMAIN_ID'] = str(domain_id if domain_id is not None else
                               env.get('ROS_DOMAIN_ID') or pick_domain_id())
    return env


def apply_loopback(domain_id: int | None = None) -> dict:
    """Set loopback discovery (and a domain id if none is set) in this process."""
    env = loopback_env(domain_id)
    for key in ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'ROS_DOMAIN_ID'):
        os.environ[key] = env[key]
    os.environ.pop('ROS_LOCALHOST_ONLY', None)
    return env
