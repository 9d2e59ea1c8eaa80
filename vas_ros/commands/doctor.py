"""`vas-ros doctor`: versions, devices, and a real two-process DDS round trip."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        'doctor', help='check the environment: versions, devices, DDS on loopback',
        description='Print library versions, the ROS distro and RMW, CPU/GPU devices and '
                    'thread counts, then check that two processes can talk over DDS. '
                    'Exits 0 only if everything works.')
    parser.add_argument('--timeout', type=float, default=20.0,
                        help='seconds to wait for the DDS round trip (default 20)')
    parser.add_argument('--json', action='store_true', help='print one JSON object')
    parser.set_defaults(func=run)


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def collect() -> tuple[dict, list[str]]:
    """Facts about this environment, and the list of problems found."""
    problems: list[str] = []
    info: dict = {'python': platform.python_version(), 'platform': platform.platform()}
    try:
        import torch
        import torchvision

        info['torch'] = torch.__version__
        info['torchvision'] = torchvision.__version__
        info['torch_threads'] = torch.get_num_threads()
        info['cuda_available'] = torch.cuda.is_available()
        info['gpus'] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        info['cpu_capability'] = torch.backends.cpu.get_cpu_capability()
    except Exception as exc:  # report, don't crash: that is the point of doctor
        problems.append(f'torch/torchvision import failed: {exc}')
    try:
        import cv2

        info['opencv'] = cv2.__version__
        info['opencv_threads'] = cv2.getNumThreads()
    except Exception as exc:
        problems.append(f'OpenCV import failed: {exc}')
    info['cpu_count'] = os.cpu_count()
    try:
        info['cpu_affinity'] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    try:
        import rclpy  # noqa: F401
        from rclpy.utilities import get_rmw_implementation_identifier

        info['rclpy'] = _version('ros-jazzy-rclpy') or _version('rclpy') or 'installed'
        info['rmw'] = get_rmw_implementation_identifier()
    except Exception as exc:
        problems.append(f'rclpy import failed: {exc}')
    info['ros_distro'] = os.environ.get('ROS_DISTRO') or (
        'jazzy (PyPI wheels)' if _version('ros-jazzy-rclpy') else 'unknown')
    info['ros_domain_id'] = os.environ.get('ROS_DOMAIN_ID', '0 (default)')
    info['ros_automatic_discovery_range'] = os.environ.get('ROS_AUTOMATIC_DISCOVERY_RANGE',
                                                           'SUBNET (default)')
    for dist in ('safetensors', 'rosbags', 'ray', 'onnxruntime', 'numpy'):
        info[dist] = _version(dist)
    return info, problems


def run(args) -> int:
    import json

    from vas_ros.ros_check import round_trip
    from vas_ros.ros_env import apply_loopback

    info, problems = collect()
    if 'rmw' in info:
        # The probe stays on this machine whatever the user's settings are.
        env = apply_loopback()
        ok, detail = round_trip(timeout=args.timeout, env=env)
        info['dds_round_trip'] = detail
        info['dds_probe_domain_id'] = env['ROS_DOMAIN_ID']
        if not ok:
            problems.append(f'DDS round trip failed: {detail}')
    info['ok'] = not problems
    info['problems'] = problems
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        width = max(len(k) for k in info)
        for key, value in info.items():
            if key not in ('problems', 'ok'):
                print(f'{key:<{width}}  {value}')
        for problem in problems:
            print(f'PROBLEM: {problem}')
        print('doctor: all checks passed' if not problems else 'doctor: FAILED')
    return 0 if not problems else 1
