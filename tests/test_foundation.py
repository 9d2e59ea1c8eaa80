"""The package layout, the `vas-ros` command and a real two-process DDS round trip."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_package_xml_is_ament_python_with_declared_dependencies():
    root = ET.parse(ROOT / 'package.xml').getroot()
    assert root.tag == 'package' and root.get('format') == '3'
    assert root.findtext('name') == 'vas_ros'
    exec_deps = {e.text for e in root.findall('exec_depend')}
    assert {'rclpy', 'sensor_msgs', 'std_msgs', 'std_srvs', 'diagnostic_msgs'} <= exec_deps
    assert 'cv_bridge' not in exec_deps  # one decoder for training and serving
    test_deps = {e.text for e in root.findall('test_depend')}
    assert {'ament_copyright', 'ament_flake8', 'ament_pep257', 'python3-pytest'} <= test_deps
    assert root.find('export/build_type').text == 'ament_python'
    assert (ROOT / 'resource' / 'vas_ros').is_file()


def test_setup_installs_executables_where_ros2_run_finds_them():
    cfg = (ROOT / 'setup.cfg').read_text()
    assert 'script_dir=$base/lib/vas_ros' in cfg
    assert 'install_scripts=$base/lib/vas_ros' in cfg
    setup = (ROOT / 'setup.py').read_text()
    for needle in ("'share/' + package_name + '/launch'", "'share/' + package_name + '/config'",
                   'share/ament_index/resource_index/packages', 'vas-ros = vas_ros.cli:main'):
        assert needle in setup


def test_installed_console_script_and_module_entry_agree():
    exe = Path(sys.executable).with_name('vas-ros')
    assert exe.exists(), 'make venv installs the vas-ros console script'
    out1 = subprocess.run([str(exe), '--help'], capture_output=True, text=True, check=True)
    out2 = subprocess.run([sys.executable, '-m', 'vas_ros', '--help'],
                          capture_output=True, text=True, check=True)
    assert out1.stdout == out2.stdout
    assert 'doctor' in out1.stdout


def test_bad_arguments_give_an_error_and_nonzero_exit():
    proc = subprocess.run([sys.executable, '-m', 'vas_ros', 'no-such-command'],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert 'invalid choice' in proc.stderr
    proc = subprocess.run([sys.executable, '-m', 'vas_ros', 'doctor', '--timeout', 'soon'],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and 'invalid float value' in proc.stderr


def test_every_subcommand_has_help():
    from vas_ros.cli import build_parser

    parser = build_parser()
    names = parser._subparsers._group_actions[0].choices  # argparse has no public API for this
    assert 'doctor' in names
    for name in names:
        proc = subprocess.run([sys.executable, '-m', 'vas_ros', name, '--help'],
                              capture_output=True, text=True)
        assert proc.returncode == 0, (name, proc.stderr)
        assert 'usage: vas-ros' in proc.stdout


def test_core_imports():
    proc = subprocess.run([sys.executable, '-c', 'import rclpy, torch, torchvision, cv2'],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_two_process_dds_round_trip_on_loopback(ros_env):
    """A publisher in a child process, a subscription here, over real Fast DDS."""
    from vas_ros.ros_check import round_trip

    assert ros_env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
    ok, detail = round_trip(timeout=30, env=ros_env)
    assert ok, detail


@pytest.mark.slow
def test_doctor_reports_versions_and_passes(ros_env):
    proc = subprocess.run([sys.executable, '-m', 'vas_ros', 'doctor', '--json'],
                          capture_output=True, text=True, env=ros_env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    info = json.loads(proc.stdout)
    for key in ('python', 'torch', 'torchvision', 'opencv', 'rclpy', 'rmw', 'ros_distro',
                'cpu_count', 'torch_threads'):
        assert info.get(key), key
    assert info['rmw'] == 'rmw_fastrtps_cpp'
    assert info['ok'] is True and 'received' in info['dds_round_trip']


@pytest.mark.slow
def test_colcon_build_installs_executables_launch_and_config(tmp_path):
    """A real `colcon build` in a fresh workspace, as on a robot."""
    import shutil

    colcon = Path(sys.executable).with_name('colcon')
    if not colcon.exists():
        pytest.fail('colcon is part of requirements.txt; run make venv')
    tracked = subprocess.run(['git', 'ls-files'], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    src = tmp_path / 'src' / 'vas_ros'
    for rel in tracked:
        if (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    proc = subprocess.run([str(colcon), 'build', '--packages-select', 'vas_ros'],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    prefix = tmp_path / 'install' / 'vas_ros'
    for exe in ('vas-ros', 'activity_node', 'search_node', 'video_source'):
        assert (prefix / 'lib' / 'vas_ros' / exe).is_file(), exe
    share = prefix / 'share' / 'vas_ros'
    assert (share / 'package.xml').is_file()
    assert (prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / 'vas_ros').is_file()
    launch_files = sorted(p.name for p in (ROOT / 'launch').glob('*launch.py'))
    assert {'activity.launch.py', 'demo.launch.py'} <= set(launch_files)
    for name in launch_files:
        assert (share / 'launch' / name).is_file(), name
    for cfg in [*(ROOT / 'config').glob('*.yaml'), *(ROOT / 'config').glob('*.xml')]:
        assert (share / 'config' / cfg.name).is_file(), cfg.name
