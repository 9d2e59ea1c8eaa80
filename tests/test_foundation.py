"""The package layout, the `vas-ros` command and a real two-process DDS round trip."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


# Top-level modules vas_ros imports -> how a robot gets them: a rosdep key in package.xml,
# or pip (requirements-robot.txt) where rosdep has no key.
ROSDEP_KEYS = {
    'rclpy': 'rclpy', 'sensor_msgs': 'sensor_msgs', 'std_msgs': 'std_msgs',
    'std_srvs': 'std_srvs', 'diagnostic_msgs': 'diagnostic_msgs',
    'rcl_interfaces': 'rcl_interfaces', 'builtin_interfaces': 'builtin_interfaces',
    'launch': 'launch', 'launch_ros': 'launch_ros', 'ament_index_python': 'ament_index_python',
    'numpy': 'python3-numpy',
    'cv2': 'python3-opencv', 'yaml': 'python3-yaml', 'scipy': 'python3-scipy',
    'torch': 'python3-torch', 'torchvision': 'python3-torchvision',
    'matplotlib': 'python3-matplotlib', 'tqdm': 'python3-tqdm', 'rich': 'python3-rich'}
PIP_ONLY = {'safetensors', 'av', 'onnx', 'onnxruntime', 'rosbags', 'ray'}


def _third_party_imports() -> set[str]:
    import ast

    found = set()
    for path in (ROOT / 'vas_ros').rglob('*.py'):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split('.')[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split('.')[0])
    return {name for name in found
            if name not in sys.stdlib_module_names and name not in ('vas_ros', 'setuptools')}


def test_package_xml_declares_what_the_code_imports():
    root = ET.parse(ROOT / 'package.xml').getroot()
    assert root.tag == 'package' and root.get('format') == '3'
    assert root.findtext('name') == 'vas_ros'
    assert root.find('export/build_type').text == 'ament_cmake'
    assert root.findtext('member_of_group') == 'rosidl_interface_packages'
    buildtool = {e.text for e in root.findall('buildtool_depend')}
    assert {'ament_cmake', 'ament_cmake_python', 'rosidl_default_generators'} <= buildtool
    runtime = {e.text for e in [*root.findall('exec_depend'), *root.findall('depend')]}
    assert 'cv_bridge' not in runtime  # one decoder for training and serving
    assert 'rosidl_default_runtime' in runtime
    imported = _third_party_imports()
    unknown = imported - set(ROSDEP_KEYS) - PIP_ONLY
    assert not unknown, f'say how a robot gets {sorted(unknown)}: package.xml or pip'
    missing = {ROSDEP_KEYS[m] for m in imported & set(ROSDEP_KEYS)} - runtime
    assert not missing, f'package.xml lacks rosdep keys {sorted(missing)}'
    robot = (ROOT / 'requirements-robot.txt').read_text()
    assert all(name.replace('_', '-') in robot for name in imported & PIP_ONLY)
    test_deps = {e.text for e in root.findall('test_depend')}
    assert {'ament_copyright', 'ament_flake8', 'ament_pep257', 'python3-pytest'} <= test_deps
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
    # The ROS prefix is this venv, where the PyPI ROS wheels put ament_cmake and rosidl
    # (a robot sources /opt/ros/jazzy/setup.bash instead).
    venv = Path(sys.prefix)
    # With the venv active (VIRTUAL_ENV), as the README's robot route has it: CMake's
    # FindPython must pick the venv's interpreter for the executables by itself.
    env = dict(os.environ, AMENT_PREFIX_PATH=str(venv), CMAKE_PREFIX_PATH=str(venv),
               VIRTUAL_ENV=str(venv), PATH=f'{venv / "bin"}:{os.environ["PATH"]}')
    proc = subprocess.run([str(colcon), 'build', '--packages-select', 'vas_ros',
                           '--cmake-args', '-DBUILD_TESTING=OFF'],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    prefix = tmp_path / 'install' / 'vas_ros'
    for exe in ('vas-ros', 'activity_node', 'search_node', 'video_source'):
        assert (prefix / 'lib' / 'vas_ros' / exe).is_file(), exe
        shebang = (prefix / 'lib' / 'vas_ros' / exe).read_text().splitlines()[0]
        assert Path(shebang[2:]).parent == Path(sys.executable).parent, shebang
    share = prefix / 'share' / 'vas_ros'
    assert (share / 'package.xml').is_file()
    assert (prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / 'vas_ros').is_file()
    launch_files = sorted(p.name for p in (ROOT / 'launch').glob('*launch.py'))
    assert {'activity.launch.py', 'demo.launch.py'} <= set(launch_files)
    for name in launch_files:
        assert (share / 'launch' / name).is_file(), name
    for cfg in [*(ROOT / 'config').glob('*.yaml'), *(ROOT / 'config').glob('*.xml')]:
        assert (share / 'config' / cfg.name).is_file(), cfg.name
    assert (share / 'msg' / 'ActivityResult.msg').is_file()

    # What colcon installed runs on its own: the library with its generated interfaces,
    # found through the install prefix only (as `source install/setup.bash` would set it).
    site = next((prefix / 'lib').glob('python3*/site-packages'))
    run_env = dict(env, PYTHONPATH=str(site), AMENT_PREFIX_PATH=f'{prefix}:{venv}',
                   LD_LIBRARY_PATH=f'{prefix / "lib"}:{os.environ.get("LD_LIBRARY_PATH", "")}')
    run_env.pop('_ROS_WHEELS_BOOTSTRAP_COMPLETE', None)
    check = subprocess.run(
        [sys.executable, '-c',
         'import vas_ros; from vas_ros.msg import ActivityResult, Hypothesis\n'
         'from rclpy.serialization import deserialize_message, serialize_message\n'
         "m = ActivityResult(label='wave', hypotheses=[Hypothesis(label='wave', score=0.5)])\n"
         'back = deserialize_message(serialize_message(m), ActivityResult)\n'
         'print(vas_ros.__file__, vas_ros.__version__, back.hypotheses[0].label)'],
        env=run_env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr
    where, version, label = check.stdout.split()
    assert Path(where).is_relative_to(prefix) and version and label == 'wave'
    help_out = subprocess.run([str(prefix / 'lib' / 'vas_ros' / 'vas-ros'), '--help'],
                              env=run_env, capture_output=True, text=True, timeout=120)
    assert help_out.returncode == 0 and 'doctor' in help_out.stdout, help_out.stderr
