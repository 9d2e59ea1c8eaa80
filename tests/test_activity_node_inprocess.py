"""The recogniser's logic in this process, with real rclpy and DDS: overload dropping, a
flow model end to end, and the live switches of flow_method, inference_path and
stride_seconds. The node gets its own rclpy context and executor; a Probe (another
context) publishes frames and listens, so every message crosses DDS on loopback.
Pacing waits on events (messages seen, counters reached), never on fixed sleeps."""

from __future__ import annotations

import numpy as np
import pytest
from inprocess import RunningNode
from sensor_msgs.msg import Image

from vas_ros.harness.probe import Probe
from vas_ros.msg import ActivityResult
from vas_ros.nodes.activity_node import ActivityNode
from vas_ros.nodes.common import qos_override_params

CLASSES = ['left', 'right', 'still']


def _checkpoint(path, stream: str):
    import torch

    from vas_ros.models.checkpoint import save_checkpoint
    from vas_ros.models.factory import resolve_arch
    from vas_ros.models.registry import ModelArch

    torch.manual_seed(0)
    arch = ModelArch('tvn', resolve_arch('tvn_tiny').genome.with_streams((stream,)),
                     f'tvn_tiny_{stream}')
    return save_checkpoint(path, arch.build(len(CLASSES)), arch, CLASSES,
                           arch.input_spec())


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp('models')
    return {s: _checkpoint(root / f'tvn_tiny_{s}.safetensors', s) for s in ('rgb', 'flow')}


@pytest.fixture
def node_and_probe(request):
    made = []

    def make(name: str, **params):
        running = RunningNode(ActivityNode, f'/{name}', **params)
        probe = Probe(f'probe_{name}')
        probe.listen(f'/{name}/activity/result', ActivityResult)
        made.append((running, probe))
        assert probe.wait_for_subscriber(f'/{name}/image', Image, timeout=30)
        return running, probe

    yield make
    for running, probe in made:
        probe.close()
        running.close()


def _frames(count: int, size: int = 64, seed: int = 0) -> list[np.ndarray]:
    """A square sliding right over noise: enough texture for optical flow."""
    rng = np.random.default_rng(seed)
    back = rng.integers(0, 80, (size, size, 3), np.uint8)
    frames = []
    for i in range(count):
        frame = back.copy()
        x = 4 + (2 * i) % (size - 20)
        frame[20:36, x:x + 16] = (230, 200, 40)
        frames.append(frame)
    return frames


def _publish(probe, topic: str, frames, first_ns: int = 10**18, period_ns: int = 33_333_333):
    from builtin_interfaces.msg import Time

    from vas_ros.nodes.common import sensor_qos

    probe.publisher(topic, Image, qos=sensor_qos('reliable', 1000))  # keeps every frame

    for i, frame in enumerate(frames):
        ns = first_ns + i * period_ns
        probe.publish_image(topic, probe.image(frame, stamp=Time(sec=ns // 10**9,
                                                                 nanosec=ns % 10**9)))


def test_overload_drops_clips_and_keeps_results_fresh(models, node_and_probe):
    running, probe = node_and_probe('overload', model=str(models['rgb']), device='cpu',
                                    hop_frames=1, num_threads=1,
                                    **qos_override_params('/overload/image', 'reliable', 1000))
    node = running.node
    frames = 240
    _publish(probe, '/overload/image', _frames(frames))  # as fast as DDS takes them
    assert probe.wait_for(lambda: node.frames_received >= frames, 60), node.frames_received
    results = '/overload/activity/result'
    assert probe.wait_for(lambda: node._mailbox._item is None and probe.received(results), 60)
    stats = node.stats()
    due = frames - node._engine.spec.span + 1  # one clip per frame once the window is full
    # Each clip either ran or was replaced in the one-slot mailbox by a newer one.
    assert stats['dropped_clips'] > 0, stats
    assert stats['clips_inferred'] + stats['dropped_clips'] >= due - 1, stats
    assert stats['clips_inferred'] < due, stats
    latest = probe.dicts(results)[-1]
    # Latency stays bounded: a clip waits for at most the one inference ahead of it, never
    # for a backlog of them.
    model_ms = max(m['latency_ms']['total'] for m in probe.dicts(results))
    assert latest['latency_ms']['queue'] <= 2 * model_ms + 250, latest['latency_ms']


def test_a_flow_model_runs_end_to_end_and_flow_method_switches_live(models, node_and_probe):
    running, probe = node_and_probe('flow', model=str(models['flow']), device='cpu',
                                    hop_frames=2, num_threads=1,
                                    **qos_override_params('/flow/image', 'reliable', 50))
    results = '/flow/activity/result'
    spec = running.node._engine.spec
    assert spec.needs_flow and spec.flow_method == 'dis'
    _publish(probe, '/flow/image', _frames(spec.span + 6))
    assert probe.wait_for(lambda: len(probe.received(results)) >= 2, 60)
    first = probe.dicts(results)[-1]
    assert first['model'] == 'tvn_tiny_flow' and first['label'] in CLASSES
    assert first['latency_ms']['flow'] > 0 and set(first['top_k'][0]) >= {'label', 'score'}

    assert running.set(flow_method='farneback')[0].successful
    assert running.node._engine.spec.flow_method == 'farneback'
    seen = len(probe.received(results))
    _publish(probe, '/flow/image', _frames(spec.span + 6, seed=1), first_ns=2 * 10**18)
    assert probe.wait_for(lambda: len(probe.received(results)) >= seen + 2, 60)
    refused = running.set(flow_method='magic')[0]
    assert not refused.successful and 'flow_method' in refused.reason
    assert running.node._engine.spec.flow_method == 'farneback'


def test_inference_path_and_stride_seconds_switch_live(models, node_and_probe):
    running, probe = node_and_probe('switch', model=str(models['rgb']), device='cpu',
                                    hop_frames=1, num_threads=1,
                                    **qos_override_params('/switch/image', 'reliable', 50))
    results = '/switch/activity/result'
    node = running.node
    assert running.set(inference_path='channels_last')[0].successful
    assert node._engine.path == 'channels_last'
    span = node._engine.spec.span
    _publish(probe, '/switch/image', _frames(span + 2))
    assert probe.wait_for(lambda: len(probe.received(results)) >= 1, 60)

    # stride_seconds: clip frames 0.1 s apart in stamp time; at 30 Hz that is every third
    # frame, so the first clip needs about three times the frames.
    assert running.set(stride_seconds=0.1)[0].successful
    assert node._buffer.stride_seconds == pytest.approx(0.1)

    def strided() -> list[dict]:  # results on frames stamped after the switch (t >= 2e9 s)
        return [r for r in probe.dicts(results) if r['first_stamp'] >= 2e9]

    _publish(probe, '/switch/image', _frames(span + 1), first_ns=2 * 10**18)
    assert probe.wait_for(lambda: node.frames_received >= 2 * span + 3, 30)
    assert probe.wait_for(lambda: node._mailbox._item is None, 30)
    assert not strided(), 'a 0.1 s stride cannot fill a clip from these frames yet'
    _publish(probe, '/switch/image', _frames(3 * span, seed=2),
             first_ns=2 * 10**18 + (span + 1) * 33_333_333)
    assert probe.wait_for(lambda: strided(), 60), node.stats()
    last = strided()[-1]
    spacing = (last['last_stamp'] - last['first_stamp']) / (node._engine.spec.frames - 1)
    assert spacing == pytest.approx(0.1, abs=0.034)
    for bad in (dict(stride_seconds=-1.0), dict(inference_path='warp')):
        assert not running.set(**bad)[0].successful
    assert node._engine.path == 'channels_last'


def test_the_window_keeps_model_sized_frames_of_a_large_camera(models, node_and_probe):
    running, probe = node_and_probe('large', model=str(models['rgb']), device='cpu',
                                    hop_frames=4, num_threads=1,
                                    **qos_override_params('/large/image', 'reliable', 50))
    node = running.node
    size = node._engine.spec.size
    big = [np.full((1080, 1920, 3), 20 * i % 255, np.uint8) for i in range(6)]
    _publish(probe, '/large/image', big)
    assert probe.wait_for(lambda: node.frames_received >= len(big), 60)
    window = [entry[1] for entry in node._buffer._window]
    assert window and all(frame.shape == (size, size, 3) for frame in window)
    assert node._latest_frame.shape == (1080, 1920, 3)  # for activity/image only
