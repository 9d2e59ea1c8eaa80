"""architecture_search as a real process: start, status, cancel, resume, deploy.

Tiny data and a tiny search space keep every candidate to seconds; the search itself runs
as the node's child process (`python -m vas_ros search tvn ...`).
"""

from __future__ import annotations

import json

import pytest
from sensor_msgs.msg import Image
from std_msgs.msg import String

from vas_ros.harness.probe import Probe, start_node, stop_node
from vas_ros.nodes.common import latched_qos

SEARCH = 'architecture_search'
STATUS = f'/{SEARCH}/status'
TINY_SPACE = ['max_filters=8', 'min_filters=8', 'sizes=[32,32]', 'frames=[2,2]',
              'frame_strides=[1,1]', 'blocks=[1,2]', 'max_repeats=1', 'max_expand=1']


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    from vas_ros.data.synth import write_synthetic_dataset

    return write_synthetic_dataset(tmp_path_factory.mktemp('search') / 'data', per_class=2,
                                   seed=0, splits=('train', 'val'), size=32, frames=8,
                                   progress=False)


def _search_params(data, out, **more) -> dict:
    params = {'data': str(data), 'output_dir': str(out), 'latency_budget_ms': 5000.0,
              'population': 2, 'rounds': 0, 'proxy_steps': 1, 'final_steps': 1,
              'latency_repeats': 2, 'threads': 1, 'space_options': TINY_SPACE,
              'deploy_node': ''}
    params.update(more)
    return params


def _states(probe) -> list[str]:
    return [json.loads(m.data)['state'] for m in probe.received(STATUS)]


def _status(probe) -> dict:
    received = probe.received(STATUS)
    return json.loads(received[-1].data) if received else {}


@pytest.mark.slow
def test_start_report_cancel_and_resume_after_restart(ros_env, tiny_data, tmp_path):
    out = tmp_path / 'search'
    # Far more rounds than can run before the test cancels: the tiny space trains a
    # candidate in well under a second, and 200 rounds could finish before the cancel.
    params = _search_params(tiny_data, out, rounds=100_000, proxy_steps=3,
                            resume_on_start=True)
    node = start_node('search_node', params, env=ros_env, log_path=tmp_path / 'node1.log')
    with Probe('test_search') as probe:
        probe.listen(STATUS, String, latched_qos())
        try:
            assert probe.wait_for(lambda: _states(probe), 60), (tmp_path / 'node1.log').read_text()
            assert _status(probe)['state'] == 'idle'
            probe.set_parameters(SEARCH, {'data': str(tmp_path / 'missing')})
            ok, message = probe.trigger(f'/{SEARCH}/start')
            assert not ok and 'does not exist' in message
            # Out of the declared range: refused by rclpy with the bounds, value unchanged.
            [(ok, reason)] = probe.set_parameters(SEARCH, {'population': 1})
            assert not ok and 'out of range' in reason, reason
            assert probe.get_parameters(SEARCH, ['population'])['population'] == 2
            assert probe.set_parameters(SEARCH, {'data': str(tiny_data)}) == [(True, '')]
            ok, message = probe.trigger(f'/{SEARCH}/start')
            assert ok, message
            ok, message = probe.trigger(f'/{SEARCH}/start')
            assert not ok and 'already running' in message
            assert probe.wait_for(lambda: _status(probe).get('candidates', 0) >= 1, 120), \
                _status(probe)
            status = _status(probe)
            assert status['state'] == 'running' and status['budget_ms'] == 5000.0
            ok, message = probe.trigger(f'/{SEARCH}/cancel')
            assert ok, message
            assert probe.wait_for(lambda: _status(probe)['state'] == 'cancelled', 120), \
                _status(probe)
            ok, message = probe.trigger(f'/{SEARCH}/cancel')
            assert not ok and 'no search' in message

            # Start again (resumes from the store), then stop the node mid-search.
            ok, message = probe.trigger(f'/{SEARCH}/start')
            assert ok, message
            assert probe.wait_for(lambda: _status(probe)['state'] == 'running', 30)
        finally:
            stop_node(node, timeout=60)
        store_candidates = _status(probe).get('candidates', 0)
        node = start_node('search_node', params, env=ros_env, log_path=tmp_path / 'node2.log')
        try:
            # `resumed` stays in every later status: the node may publish its resume
            # message before this probe has discovered it (the topic latches only the last).
            assert probe.wait_for(lambda: _status(probe).get('resumed') is True, 60), \
                _status(probe)
            assert probe.wait_for(lambda: _status(probe).get('candidates', 0)
                                  > store_candidates, 120), _status(probe)
            ok, message = probe.trigger(f'/{SEARCH}/cancel')
            assert ok, message
            assert probe.wait_for(lambda: _status(probe)['state'] == 'cancelled', 120)
        finally:
            stop_node(node, timeout=60)


@pytest.mark.slow
def test_finished_search_is_deployed_to_the_recogniser(ros_env, tiny_data, tmp_path):
    import torch

    from vas_ros.models.checkpoint import save_checkpoint
    from vas_ros.models.factory import resolve_arch

    arch = resolve_arch('tvn_tiny')
    torch.manual_seed(0)
    first = save_checkpoint(tmp_path / 'first.safetensors', arch.build(2), arch,
                            ['x', 'y'], arch.input_spec())
    out = tmp_path / 'search'
    recogniser = start_node('activity_node', {'model': str(first), 'device': 'cpu'},
                            env=ros_env, log_path=tmp_path / 'recogniser.log')
    search = start_node('search_node', _search_params(tiny_data, out,
                                                      deploy_node='activity_recognizer'),
                        env=ros_env, log_path=tmp_path / 'search.log')
    with Probe('test_deploy') as probe:
        probe.listen(STATUS, String, latched_qos())
        try:
            assert probe.wait_for_subscriber('image', Image, 90)
            assert probe.wait_for(lambda: _states(probe), 60)
            ok, message = probe.trigger(f'/{SEARCH}/start')
            assert ok, message
            assert probe.wait_for(lambda: _status(probe).get('deploy'), 300), \
                (_status(probe), (tmp_path / 'search.log').read_text()[-2000:])
            status = _status(probe)
            assert status['state'] == 'done', status
            assert status['deploy']['ok'], status['deploy']
            best = out / 'result' / 'best.safetensors'
            assert status['deploy']['checkpoint'] == str(best) and best.is_file()
            model = probe.get_parameters('activity_recognizer', ['model'])['model']
            assert model == str(best)
        finally:
            stop_node(search, timeout=60)
            stop_node(recogniser)
