"""Launch files, parameter files and `vas-ros run`.

`launch`/`launch_ros` are not installable here, so the launch files are checked for what
they reference (executables, node names, config files, arguments), the YAML files are
loaded by real nodes through rcl's own `--params-file` parser, and `vas-ros run` starts
the same composition for real.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from std_msgs.msg import String

from vas_ros.errors import VasError
from vas_ros.harness.probe import Probe, stop_node
from vas_ros.msg import ActivityResult, LabelInfo
from vas_ros.nodes.common import config_dir, latched_qos
from vas_ros.nodes.composition import load_params

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / 'launch'


def _calls(tree, name: str) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)
            and getattr(node.func, 'id', getattr(node.func, 'attr', None)) == name]


def _keywords(call: ast.Call) -> dict:
    return {kw.arg: kw.value for kw in call.keywords}


def _console_scripts() -> dict[str, str]:
    tree = ast.parse((ROOT / 'setup.py').read_text())
    scripts = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and ' = ' in node.value:
            name, target = node.value.split(' = ', 1)
            scripts[name.strip()] = target.strip()
    return scripts


@pytest.mark.parametrize('launch_file, nodes, yaml_name', [
    ('activity.launch.py', {'activity_node': 'activity_recognizer',
                            'search_node': 'architecture_search'}, 'activity.yaml'),
    ('demo.launch.py', {'video_source': 'video_source'}, 'demo.yaml'),
])
def test_launch_files_reference_real_executables_nodes_and_config(launch_file, nodes,
                                                                   yaml_name):
    source = (LAUNCH / launch_file).read_text()
    tree = ast.parse(source)
    assert any(isinstance(n, ast.FunctionDef) and n.name == 'generate_launch_description'
               for n in tree.body)
    scripts = _console_scripts()
    constants = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
                 for t in n.targets if isinstance(n.value, ast.Constant)}

    def value(node):
        return constants[node.id] if isinstance(node, ast.Name) else node.value

    found = {}
    for call in _calls(tree, 'Node'):
        kw = _keywords(call)
        assert value(kw['package']) == 'vas_ros'
        found[value(kw['executable'])] = value(kw['name'])
    assert found == nodes
    for executable, node_name in found.items():
        module, func = scripts[executable].split(':')
        imported = __import__(module, fromlist=[func])
        assert callable(getattr(imported, func))
        assert imported.NODE_NAME == node_name
    assert f"'{yaml_name}'" in source and (ROOT / 'config' / yaml_name).is_file()
    declared = {_keywords(c)['description'] and c.args[0].value
                for c in _calls(tree, 'DeclareLaunchArgument')}
    assert {'params_file', 'model', 'device', 'image_topic', 'namespace',
            'use_search'} <= declared
    assert all('namespace' in _keywords(call) for call in _calls(tree, 'Node'))
    if launch_file == 'demo.launch.py':
        assert "'activity.launch.py'" in source  # included, not copied


def test_setup_installs_launch_and_config_files():
    setup = (ROOT / 'setup.py').read_text()
    assert "glob('launch/*launch.py')" in setup and "glob('config/*.yaml')" in setup
    assert config_dir() == ROOT / 'config'


def test_parameter_files_match_the_nodes_declared_parameters(tmp_path):
    activity = load_params(ROOT / 'config' / 'activity.yaml')
    demo = load_params(ROOT / 'config' / 'demo.yaml')
    assert activity['activity_recognizer']['model'] == 'tvn_tiny_synth'
    assert activity['activity_recognizer']['image_transport'] == 'raw'
    assert set(demo) == {'activity_recognizer', 'architecture_search', 'video_source'}
    bad = tmp_path / 'bad.yaml'
    bad.write_text(yaml.safe_dump({'activity_recognizer': {'ros__parameters': {'modle': 'x'}}}))
    with pytest.raises(VasError, match="no parameter 'modle'"):
        load_params(bad)
    bad.write_text(yaml.safe_dump({'activity_recognizer': {'ros__parameters': {'top_k': 'x'}}}))
    with pytest.raises(VasError, match='top_k should be int'):
        load_params(bad)
    qos = {'reliability': 'reliable', 'depth': 3}
    bad.write_text(yaml.safe_dump({'activity_recognizer': {'ros__parameters': {
        'qos_overrides': {'/robot1/image': {'subscription': qos}}}}}))
    assert load_params(bad)['activity_recognizer'] == {
        'qos_overrides./robot1/image.subscription.reliability': 'reliable',
        'qos_overrides./robot1/image.subscription.depth': 3}
    bad.write_text(yaml.safe_dump({'camera': {'ros__parameters': {}}}))
    with pytest.raises(VasError, match='unknown node'):
        load_params(bad)


@pytest.mark.parametrize('yaml_name, namespace', [('activity.yaml', ''),
                                                    ('demo.yaml', '/robot1')])
def test_nodes_read_the_yaml_through_rcl(ros_env, yaml_name, namespace):
    """The same YAML given to the node executables with --params-file (as ros2 launch does),
    in a namespace too (launch's namespace:=robot1): `/**/name` keys match there."""
    from vas_ros.nodes.search_node import PARAMETERS

    expected = load_params(ROOT / 'config' / yaml_name)['architecture_search']
    if yaml_name == 'demo.yaml':  # values the node would not have without the file
        assert expected['population'] != PARAMETERS['population'][0]
    args = [sys.executable, '-m', 'vas_ros.nodes.search_node', '--ros-args',
            '--params-file', str(ROOT / 'config' / yaml_name)]
    if namespace:
        args += ['-r', f'__ns:={namespace}']
    proc = subprocess.Popen(args, env=ros_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        with Probe('test_launch_params') as probe:
            got = probe.get_parameters(f'{namespace}/architecture_search', sorted(expected),
                                       timeout=60)
        if 'space_options' in expected:
            expected['space_options'] = list(expected['space_options'])
            got['space_options'] = list(got['space_options'])
        assert got == expected
    finally:
        stop_node(proc)


@pytest.mark.slow
def test_vas_ros_run_demo_composition_recognises_the_video_source(ros_env):
    proc = subprocess.Popen([sys.executable, '-m', 'vas_ros', 'run', '--demo', '--no-search',
                             '--duration', '120'], env=ros_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        with Probe('test_run') as probe:
            probe.listen('activity/result', ActivityResult)
            probe.listen('video_source/label', String)
            probe.listen('activity/labels', LabelInfo, latched_qos())
            assert probe.wait_for(lambda: len(probe.received('activity/result')) >= 3
                                  and probe.received('video_source/label'), 90), \
                proc.poll()
            assert probe.dicts('activity/labels')[-1]['model'] == 'tvn_tiny_synth'
            label = probe.dicts('video_source/label')[-1]
            assert label['first_stamp'] < label['last_stamp']
    finally:
        stop_node(proc)
    output = proc.stdout.read().decode()
    assert proc.returncode == 0, output[-2000:]
    # Callbacks still queued at shutdown used to fail on destroyed handles.
    assert 'never retrieved' not in output and 'Traceback' not in output, output[-2000:]


@pytest.mark.parametrize('when', ['starting', 'running'])
@pytest.mark.parametrize('module, node_name, signal_name', [
    ('activity_node', 'activity_recognizer', 'SIGINT'),
    ('activity_node', 'activity_recognizer', 'SIGTERM'),
    ('search_node', 'architecture_search', 'SIGINT'),
    ('search_node', 'architecture_search', 'SIGTERM'),
])
def test_nodes_exit_cleanly_on_the_signals_ros2_launch_sends(ros_env, module, node_name,
                                                             signal_name, when):
    """Exit code 0 and no traceback, so that launch logs 'finished cleanly', not 'died':
    while the node is still starting (loading its model) and once it runs."""
    import signal

    proc = subprocess.Popen([sys.executable, '-m', f'vas_ros.nodes.{module}', '--ros-args',
                             '-r', '__ns:=/sig'], env=ros_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    latched = {'activity_node': ('/sig/activity/labels', LabelInfo),
               'search_node': ('/sig/architecture_search/status', String)}[module]
    try:
        with Probe('test_signals') as probe:
            probe.listen(*latched, latched_qos())
            assert probe.wait_for(lambda: ('/sig', node_name) in {
                (ns, name) for name, ns in probe.node.get_node_names_and_namespaces()}, 90)
            if when == 'running':
                assert probe.wait_for(lambda: probe.received(latched[0]), 90)
        proc.send_signal(getattr(signal, signal_name))
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert 'Traceback' not in out and 'KeyboardInterrupt' not in out, out
