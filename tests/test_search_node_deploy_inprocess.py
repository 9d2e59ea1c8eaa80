"""Deploying a search result from the search node to the recogniser, in-process with real
rclpy and DDS: success (and results from the new model arrive), a recogniser that refuses
the model, a recogniser that is not there, and both nodes under one namespace."""

from __future__ import annotations

import json

import numpy as np
import pytest
from inprocess import RunningNode
from sensor_msgs.msg import Image

from vas_ros.harness.probe import Probe
from vas_ros.msg import ActivityResult, LabelInfo
from vas_ros.nodes import search_node as search_module
from vas_ros.nodes.activity_node import ActivityNode
from vas_ros.nodes.common import latched_qos, qos_override_params
from vas_ros.nodes.search_node import SearchNode

CLASSES = ['left', 'right', 'still']


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    import torch

    from vas_ros.models.checkpoint import save_checkpoint
    from vas_ros.models.factory import resolve_arch

    torch.manual_seed(0)
    arch = resolve_arch('tvn_tiny')
    path = tmp_path_factory.mktemp('found') / 'searched_best.safetensors'
    return save_checkpoint(path, arch.build(len(CLASSES)), arch, CLASSES,
                           arch.input_spec())


@pytest.fixture
def nodes(tmp_path):
    made = []

    def make(node_class, namespace, **params):
        running = RunningNode(node_class, namespace, **params)
        made.append(running)
        return running

    yield make
    for running in reversed(made):
        running.close()


def _search(nodes, tmp_path, namespace='/', **params):
    return nodes(SearchNode, namespace, output_dir=str(tmp_path / 'search'),
                 resume_on_start=False, **params)


def test_deploy_in_a_namespace_switches_the_recogniser_and_its_results(nodes, tmp_path,
                                                                       checkpoint):
    recogniser = nodes(ActivityNode, '/robot1', device='cpu', hop_frames=1, num_threads=1,
                       **qos_override_params('/robot1/image', 'reliable', 1000))
    search = _search(nodes, tmp_path, '/robot1')  # deploy_node: 'activity_recognizer'
    assert search.node.deploy_service('activity_recognizer') == \
        '/robot1/activity_recognizer/set_parameters'
    assert search.node.deploy_service('/other/rec') == '/other/rec/set_parameters'
    search.node.status['output'] = str(checkpoint)
    search.node._deploy()
    deploy = search.node.status['deploy']
    assert deploy['ok'], deploy
    assert deploy['checkpoint'] == str(checkpoint)
    assert recogniser.node._engine.name == 'searched_best'
    with Probe('deploy_results') as probe:
        probe.listen('/robot1/activity/result', ActivityResult)
        probe.listen('/robot1/activity/labels', LabelInfo, latched_qos())
        assert probe.wait_for(lambda: probe.received('/robot1/activity/labels'), 30)
        assert probe.dicts('/robot1/activity/labels')[-1]['classes'] == CLASSES
        assert probe.wait_for_subscriber('/robot1/image', Image, timeout=30)
        frame = np.zeros((64, 64, 3), np.uint8)
        for i in range(recogniser.node._engine.spec.span + 2):
            frame[:, :] = (i * 9) % 255
            probe.publish_image('/robot1/image', probe.image(frame))
        assert probe.wait_for(lambda: probe.received('/robot1/activity/result'), 60)
        result = probe.dicts('/robot1/activity/result')[-1]
    assert result['model'] == 'searched_best' and result['label'] in CLASSES + ['unknown']


def test_a_refused_model_is_reported_and_the_old_one_keeps_running(nodes, tmp_path):
    recogniser = nodes(ActivityNode, '/robot2', device='cpu', num_threads=1)
    before = recogniser.node._engine.name
    search = _search(nodes, tmp_path, '/robot2')
    broken = tmp_path / 'broken.safetensors'
    broken.write_bytes(b'\x00' * 64)
    search.node.status['output'] = str(broken)
    search.node._deploy()
    deploy = search.node.status['deploy']
    assert not deploy['ok'] and 'broken.safetensors' in deploy['message'], deploy
    assert recogniser.node._engine.name == before
    published = json.loads(json.dumps(search.node.status))  # what ~/status carries
    assert published['deploy']['ok'] is False


def test_no_recogniser_and_no_checkpoint_are_reported(nodes, tmp_path, checkpoint,
                                                      monkeypatch):
    monkeypatch.setattr(search_module, 'DEPLOY_WAIT_S', 1.0)
    search = _search(nodes, tmp_path, '/robot3')
    search.node.status['output'] = str(checkpoint)
    search.node._deploy()
    deploy = search.node.status['deploy']
    assert not deploy['ok']
    assert deploy['message'] == '/robot3/activity_recognizer/set_parameters is not available'
    search.node.status['output'] = str(tmp_path / 'nothing_here')
    search.node._deploy()
    assert 'no checkpoint found' in search.node.status['deploy']['message']
    assert search.set(deploy_node='')[0].successful
    search.node._deploy()
    assert search.node.status['deploy'] == {'ok': False, 'message': 'deploy_node is empty'}


def test_an_interrupted_search_waits_for_start_unless_asked_to_resume(nodes, tmp_path):
    out = tmp_path / 'search'
    out.mkdir()
    (out / 'node_state.json').write_text(json.dumps({'wanted': 'running', 'time': 0}))
    # What the node would have streamed before the robot went down.
    (out / 'progress.jsonl').write_text(json.dumps({'state': 'running', 'round': 3}) + '\n')
    search = nodes(SearchNode, '/boot', output_dir=str(out), data=str(tmp_path / 'nowhere'))
    assert search.node._param('resume_on_start') is False
    assert search.node._child is None  # nothing heavy started by itself
    assert search.node.status['state'] == 'cancelled', search.node.status
    assert '~/start resumes it' in search.node.status['message']


def test_a_failing_search_is_reported_in_one_line_and_nothing_is_deployed(nodes, tmp_path):
    import time as clock

    not_data = tmp_path / 'empty_folder'  # exists, so the node starts the search; no splits
    not_data.mkdir()
    search = _search(nodes, tmp_path, '/robot4', data=str(not_data), latency_budget_ms=50.0)
    ok, message = search.node.start_search()
    assert ok, message
    deadline = clock.monotonic() + 120
    while search.node.status['state'] == 'running' and clock.monotonic() < deadline:
        clock.sleep(0.1)  # polls the state the watcher thread sets when the child exits
    status = search.node.status
    assert status['state'] == 'failed', status
    assert status['message'].startswith('search exited with code 2: vas-ros search: error:')
    assert 'Traceback' not in status['message'] and str(not_data) in status['message']
    assert status.get('deploy') is None  # a failed search deploys nothing
