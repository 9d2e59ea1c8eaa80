"""The search action over real DDS between processes: the robot's search and recogniser
nodes run in /robot1 as their own processes, this test process is the action client.
Goal, typed feedback, result, deploy under the namespace, cancel, resume only on request,
refused goals."""

from __future__ import annotations

import math

import pytest
from action_msgs.msg import GoalStatus
from sensor_msgs.msg import Image

from vas_ros.action import Search
from vas_ros.harness.probe import Probe, start_node, stop_node
from vas_ros.msg import LabelInfo
from vas_ros.nodes.common import latched_qos

NS = '/robot1'
ACTION = f'{NS}/architecture_search/search'
TINY_SPACE = ['max_filters=8', 'min_filters=8', 'sizes=[32,32]', 'frames=[2,2]',
              'frame_strides=[1,1]', 'blocks=[1,2]', 'max_repeats=1', 'max_expand=1']
# What a goal does not carry stays a parameter of the node: small and quick here.
NODE_PARAMS = {'rounds': 0, 'proxy_steps': 1, 'final_steps': 1, 'latency_repeats': 2, 'threads': 1,
               'latency_budget_ms': 5000.0, 'deploy_node': ''}


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    from vas_ros.data.synth import write_synthetic_dataset

    return write_synthetic_dataset(tmp_path_factory.mktemp('action') / 'data', per_class=2,
                                   seed=0, splits=('train', 'val'), size=32, frames=8,
                                   progress=False)


def _goal(data, out, **fields) -> Search.Goal:
    goal = Search.Goal(family='tvn', data=str(data), output_dir=str(out), population=2,
                       space_options=TINY_SPACE)
    for name, value in fields.items():
        setattr(goal, name, value)
    return goal


def _start(module, params, ros_env, log):
    return start_node(module, params, env=ros_env, log_path=log, remaps={'__ns': NS})


@pytest.mark.slow
def test_goal_feedback_result_and_deploy_in_a_namespace(ros_env, tiny_data, tmp_path):
    recogniser = _start('activity_node', {'device': 'cpu', 'num_threads': 1}, ros_env,
                        tmp_path / 'recogniser.log')
    search = _start('search_node', NODE_PARAMS, ros_env, tmp_path / 'search.log')
    out = tmp_path / 'search'
    with Probe('test_action') as probe:
        probe.listen(f'{NS}/activity/labels', LabelInfo, latched_qos())
        try:
            assert probe.wait_for_subscriber(f'{NS}/image', Image, 90)
            assert probe.wait_for(lambda: probe.received(f'{NS}/activity/labels'), 60)
            run = probe.send_goal(Search, ACTION, _goal(
                tiny_data, out, latency_budget_ms=4000.0, deploy=True,
                deploy_node='activity_recognizer'), timeout=60)
            assert run.accepted
            status, result = run.result(timeout=400)
            log = (tmp_path / 'search.log').read_text()[-3000:]
            assert status == GoalStatus.STATUS_SUCCEEDED, (result, log)
            assert result.success and result.state == 'done', result
            best = out / 'result' / 'best.safetensors'
            assert result.checkpoint == str(best) and best.is_file()
            assert 0.0 <= result.accuracy <= 1.0 and 0 < result.latency_ms <= 4000.0
            assert result.deployed, result.deploy_message
            # The recogniser in the same namespace now runs it, and says so, latched.
            model = probe.get_parameters(f'{NS}/activity_recognizer', ['model'])['model']
            assert model == str(best)
            assert probe.wait_for(lambda: probe.received(f'{NS}/activity/labels')[-1].model
                                  == 'best', 30)
            # Typed feedback came while it ran: the goal's budget, progress, a clock.
            assert run.feedback, 'no feedback'
            assert max(f.candidates_done for f in run.feedback) >= 2
            assert all(f.elapsed_s >= 0 for f in run.feedback)
            last = run.feedback[-1]
            assert last.rounds == 0 and 0 < last.best_latency_ms <= 4000.0
            assert not math.isnan(last.best_accuracy)

            # A search that fails next reports its own (unknown) accuracy, not this one's.
            run = probe.send_goal(Search, ACTION, _goal(tiny_data, tmp_path / 'bad',
                                                        space_options=['max_filters=abc']))
            status, result = run.result(timeout=120)
            assert status == GoalStatus.STATUS_ABORTED and result.state == 'failed'
            assert 'bad options' in result.message and 'Traceback' not in result.message
            assert math.isnan(result.accuracy) and not result.checkpoint
        finally:
            stop_node(search, timeout=60)
            stop_node(recogniser)


@pytest.mark.slow
def test_cancel_refusals_and_resume_only_when_asked(ros_env, tiny_data, tmp_path):
    search = _start('search_node', NODE_PARAMS, ros_env, tmp_path / 'search.log')
    out = tmp_path / 'search'
    with Probe('test_action_cancel') as probe:
        try:
            # A goal that cannot run is accepted and aborted with its reason.
            run = probe.send_goal(Search, ACTION, _goal(tiny_data, out, family='evanet'),
                                  timeout=60)
            status, result = run.result(timeout=60)
            assert status == GoalStatus.STATUS_ABORTED and 'runs tvn' in result.message
            run = probe.send_goal(Search, ACTION, _goal(tiny_data, out, rounds=-1))
            status, result = run.result(timeout=60)
            assert status == GoalStatus.STATUS_ABORTED and 'rounds' in result.message
            run = probe.send_goal(Search, ACTION, _goal(tiny_data, out, resume=True))
            status, result = run.result(timeout=60)
            assert status == GoalStatus.STATUS_ABORTED and 'no search' in result.message
            before = sorted(p.name for p in tiny_data.rglob('*'))
            run = probe.send_goal(Search, ACTION, _goal(tiny_data, tiny_data / 'train'))
            status, result = run.result(timeout=60)
            assert status == GoalStatus.STATUS_ABORTED and 'inside the data set' in result.message
            assert sorted(p.name for p in tiny_data.rglob('*')) == before  # nothing written
            run = probe.send_goal(Search, ACTION, _goal(tiny_data, out, deploy=True))
            status, result = run.result(timeout=60)  # deploy_node is '' on this node
            assert status == GoalStatus.STATUS_ABORTED and 'deploy_node' in result.message
            assert not out.exists()

            # Far more rounds than can run before the cancel.
            long = _goal(tiny_data, out, rounds=100_000)
            run = probe.send_goal(Search, ACTION, long)
            assert run.accepted
            assert probe.wait_for(lambda: any(f.candidates_done >= 1 for f in run.feedback),
                                  180), (tmp_path / 'search.log').read_text()[-2000:]
            # One search at a time: a second goal is rejected while this one runs.
            assert not probe.send_goal(Search, ACTION, _goal(tiny_data, tmp_path / 'b')).accepted
            run.cancel()
            status, result = run.result(timeout=180)
            first_done = max(f.candidates_done for f in run.feedback)
            assert status == GoalStatus.STATUS_CANCELED, result
            assert result.state == 'cancelled' and not result.success
            assert (out / 'search.sqlite').is_file()  # kept for a resume

            # Not resumed unless asked; asked, it continues from the store.
            run = probe.send_goal(Search, ACTION, long)
            status, result = run.result(timeout=60)
            assert status == GoalStatus.STATUS_ABORTED and 'resume' in result.message
            run = probe.send_goal(Search, ACTION, _goal(tiny_data, out, rounds=100_000,
                                                        resume=True))
            assert run.accepted
            assert probe.wait_for(lambda: any(f.candidates_done > first_done
                                              for f in run.feedback), 180)
            run.cancel()
            status, result = run.result(timeout=180)
            assert status == GoalStatus.STATUS_CANCELED
        finally:
            stop_node(search, timeout=60)
