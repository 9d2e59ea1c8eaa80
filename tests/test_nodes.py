"""activity_recognizer as a real process over DDS: labels out, bad frames, live parameters.

The recogniser runs as `python -m vas_ros.nodes.activity_node` in the test's private
loopback domain; this process publishes camera frames and listens with rclpy.
"""

from __future__ import annotations

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image
from std_msgs.msg import String

from vas_ros.harness.probe import Probe, start_node, stop_node
from vas_ros.msg import ActivityResult, LabelInfo
from vas_ros.nodes.common import latched_qos, qos_override_params, sensor_qos, stamp_to_sec
from vas_ros.perception.engine import DEFAULT_MODEL, SHIPPED_DIR

NODE = 'activity_recognizer'
pytestmark = pytest.mark.skipif(not (SHIPPED_DIR / f'{DEFAULT_MODEL}.safetensors').is_file(),
                                reason='shipped model not built (vas_ros/shipped/README.md)')


# Reliable, deep queues at both ends: frames are published in bursts and none is lost, so
# the tests wait on what arrives (results, counters), never on sleeps.
DEEP = qos_override_params('/image', 'reliable', 1000)


@pytest.fixture(scope='module')
def probe():
    with Probe('test_nodes') as client:
        client.publisher('image', Image, qos=sensor_qos('reliable', 1000))
        client.listen('activity/result', ActivityResult)
        client.listen('activity', String)
        client.listen('activity/labels', LabelInfo, latched_qos())
        client.listen('/diagnostics', DiagnosticArray)
        yield client


@pytest.fixture(scope='module')
def recogniser(ros_env, tmp_path_factory, probe):
    log = tmp_path_factory.mktemp('recogniser') / 'activity_node.log'
    proc = start_node('activity_node', {'device': 'cpu', 'hop_frames': 1, 'num_threads': 1,
                                        'score_threshold': 0.0, 'top_k': 3, **DEEP},
                      env=ros_env, log_path=log)
    try:
        assert probe.wait_for_subscriber('image', Image, timeout=90), log.read_text()
        yield proc, log
    finally:
        stop_node(proc)


def _results_since(probe, count: int) -> list[dict]:
    return probe.dicts('activity/result')[count:]


def _diagnostics(probe, node: str = '/' + NODE) -> dict:
    for msg in reversed(probe.received('/diagnostics')):
        for status in msg.status:
            if status.name.startswith(node + ':'):
                return {kv.key: kv.value for kv in status.values}
    return {}


def _publish_noise(probe, frames: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(frames):
        probe.publish_image('image', probe.image(rng.integers(0, 255, (96, 128, 3), np.uint8)))


def test_shipped_model_labels_synthetic_actions(recogniser, probe):
    from vas_ros.data.synth import CLASSES, dataset_classes, render_clip

    model_classes = list(dataset_classes(with_none=True))  # the shipped model knows `none`
    proc, log = recogniser
    assert probe.wait_for(lambda: probe.received('activity/labels'), 30)
    assert probe.dicts('activity/labels')[-1]['classes'] == model_classes
    start = len(probe.received('activity/result'))
    rng = np.random.default_rng(2024)
    truth = []  # (first stamp, last stamp, label)
    sent = set()  # every header stamp published, exactly
    for label in CLASSES:
        stamps = []
        for frame in render_clip(label, rng, size=112, frames=16):
            msg = probe.image(frame)
            stamps.append(stamp_to_sec(msg.header.stamp))
            sent.add((msg.header.stamp.sec, msg.header.stamp.nanosec))
            probe.publish_image('image', msg)
        truth.append((stamps[0], stamps[-1], label))

        def inside(first=stamps[0], last=stamps[-1]):  # a clip of this action alone came back
            return any(first <= r['first_stamp'] and r['last_stamp'] <= last
                       for r in _results_since(probe, start))
        assert probe.wait_for(inside, 30), label
    judged = []
    for result in _results_since(probe, start):
        for first, last, label in truth:
            if first <= result['first_stamp'] and result['last_stamp'] <= last:
                judged.append(result['raw_label'] == label)
    assert proc.poll() is None, log.read_text()
    assert len(judged) >= len(CLASSES) // 2, (judged, log.read_text())
    assert sum(judged) / len(judged) >= 0.7, judged
    result = _results_since(probe, start)[-1]
    assert result['model'] == DEFAULT_MODEL and result['frame_id'] == 'camera'
    # The typed result carries the header of the clip's last frame, exactly as it was sent.
    typed = probe.received('activity/result')[-1]
    assert typed.header.stamp == typed.window_end and typed.header.frame_id == 'camera'
    assert (typed.window_start.sec, typed.window_start.nanosec) in sent
    assert (typed.window_end.sec, typed.window_end.nanosec) in sent
    assert stamp_to_sec(typed.window_start) < stamp_to_sec(typed.window_end)
    assert [h.class_id for h in typed.hypotheses] == [model_classes.index(h.label)
                                                      for h in typed.hypotheses]
    labels = probe.received('activity/labels')[-1]
    assert list(labels.class_names) == model_classes and labels.model == DEFAULT_MODEL
    assert set(result['latency_ms']) >= {'preprocess', 'flow', 'model', 'total', 'queue'}
    assert len(result['top_k']) == 3
    assert probe.received('activity')[-1].data in (*CLASSES, 'unknown')


def test_bad_frames_are_counted_and_survived(recogniser, probe):
    proc, log = recogniser
    good = probe.image(np.zeros((8, 8, 3), np.uint8))

    def broken(**fields):
        msg = probe.image(np.zeros((8, 8, 3), np.uint8))
        for key, value in fields.items():
            setattr(msg, key, value)
        return msg

    bad = {
        'wrong_step': broken(step=5),
        'truncated': broken(data=bytes(good.data)[:50]),
        'unknown_encoding': broken(encoding='bayer_rgbg8'),
        'zero_size': broken(height=0, width=0, step=0, data=b''),
    }
    for _ in range(3):
        for msg in bad.values():
            probe.publish_image('image', msg)

    def counted():
        values = _diagnostics(probe)
        return all(int(values.get(f'bad_frames.{cause}', 0)) >= 2 for cause in bad)

    assert probe.wait_for(counted, 15), _diagnostics(probe)
    start = len(probe.received('activity/result'))
    _publish_noise(probe, 24)
    assert probe.wait_for(lambda: len(_results_since(probe, start)) >= 1, 20)
    assert proc.poll() is None
    text = log.read_text()
    for cause in bad:  # logged once per cause, then only counted
        assert text.count(f'dropping bad frame ({cause})') == 1, text


def test_parameters_change_live_and_bad_model_is_rejected(recogniser, probe, tmp_path):
    try:
        _change_live_and_swap_models(probe, tmp_path)
    finally:  # the module's recogniser goes back to how its fixture started it
        assert probe.set_parameters(NODE, {'model': DEFAULT_MODEL, 'top_k': 3,
                                           'score_threshold': 0.0}) == [(True, '')] * 3


def _change_live_and_swap_models(probe, tmp_path):
    import torch

    from vas_ros.models.checkpoint import save_checkpoint
    from vas_ros.models.factory import resolve_arch

    assert probe.set_parameters(NODE, {'top_k': 2, 'score_threshold': 1.0}) == [(True, '')] * 2
    start = len(probe.received('activity/result'))
    _publish_noise(probe, 24, seed=1)
    assert probe.wait_for(lambda: len(_results_since(probe, start)) >= 2, 20)
    for result in _results_since(probe, start)[1:]:  # the first may predate the change
        assert len(result['top_k']) == 2
        assert (result['label'] == 'unknown') == (result['score'] < 1.0)

    problems = probe.set_parameters(NODE, {'model': str(tmp_path / 'missing.safetensors'),
                                           'hop_frames': 0})
    assert not problems[0][0] and 'does not exist' in problems[0][1]
    assert not problems[1][0] and 'hop_frames' in problems[1][1]
    start = len(probe.received('activity/result'))
    _publish_noise(probe, 12, seed=2)
    assert probe.wait_for(lambda: len(_results_since(probe, start)) >= 1, 20)
    assert _results_since(probe, start)[-1]['model'] == DEFAULT_MODEL  # old model still runs

    torch.manual_seed(0)
    arch = resolve_arch('tvn_tiny')
    other = save_checkpoint(tmp_path / 'other.safetensors', arch.build(3), arch,
                            ['a', 'b', 'c'], arch.input_spec())
    assert probe.set_parameters(NODE, {'model': str(other), 'score_threshold': 0.0}) == \
        [(True, '')] * 2
    assert probe.wait_for(lambda: probe.dicts('activity/labels')[-1]['classes']
                          == ['a', 'b', 'c'], 10)
    start = len(probe.received('activity/result'))
    _publish_noise(probe, 24, seed=3)
    assert probe.wait_for(lambda: any(r['model'] == 'other'
                                      for r in _results_since(probe, start)), 20)
    assert _results_since(probe, start)[-1]['label'] in ('a', 'b', 'c')
    assert probe.get_parameters(NODE, ['model'])['model'] == str(other)


def test_compressed_images_and_corrupt_data(ros_env, tmp_path, probe):
    import cv2
    from sensor_msgs.msg import CompressedImage

    from vas_ros.data.synth import render_clip

    log = tmp_path / 'compressed.log'
    proc = start_node('activity_node', {'device': 'cpu', 'image_transport': 'compressed',
                                        'hop_frames': 2,
                                        'num_threads': 1,
                                        **qos_override_params('/cam2/image/compressed',
                                                              'reliable', 1000)},
                      env=ros_env, log_path=log,
                      remaps={'__ns': '/cam2'})
    try:
        probe.listen('/cam2/activity/result', ActivityResult)
        publisher = probe.publisher('/cam2/image/compressed', CompressedImage,
                                    qos=sensor_qos('reliable', 1000))
        assert probe.wait_for_subscriber('/cam2/image/compressed', CompressedImage, 90), \
            log.read_text()
        for _ in range(3):
            publisher.publish(CompressedImage(format='jpeg', data=b'\xff\xd8 not a jpeg'))
        frames = render_clip('move_left', np.random.default_rng(0), size=112, frames=16)
        for frame in frames:
            ok, jpeg = cv2.imencode('.jpg', cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            msg = CompressedImage(format='jpeg', data=jpeg.tobytes())
            msg.header.stamp = probe.node.get_clock().now().to_msg()
            publisher.publish(msg)
        assert probe.wait_for(lambda: probe.received('/cam2/activity/result'), 30), \
            log.read_text()
        assert probe.wait_for(lambda: int(_diagnostics(probe, '/cam2/' + NODE).get(
            'bad_frames.corrupt_compressed', 0)) >= 1, 10)
        assert proc.poll() is None
    finally:
        stop_node(proc)
