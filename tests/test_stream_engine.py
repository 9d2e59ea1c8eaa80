"""Stream mode in the engine and in the node: clips in, only the new frames run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vas_ros.data import synth
from vas_ros.errors import VasError
from vas_ros.perception.engine import InferenceEngine
from vas_ros.perception.frame_buffer import FrameBuffer

CLASSES = ['grow', 'move_left', 'shrink']


def _save(path, preset: str):
    from vas_ros.models.checkpoint import save_checkpoint
    from vas_ros.models.factory import resolve_arch

    torch.manual_seed(0)
    arch = resolve_arch(preset)
    model = arch.build(len(CLASSES))
    with torch.no_grad():  # a head that tells the frames apart (an untrained one barely does)
        head = model.classifier
        head.weight.normal_(0.0, 1.0)
    return save_checkpoint(path, model, arch, CLASSES, arch.input_spec())


@pytest.fixture(scope='module')
def causal_checkpoint(tmp_path_factory):
    return _save(tmp_path_factory.mktemp('causal') / 'causal.safetensors', 'tvn_tiny_causal')


def _frames(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    clip = synth.render_clip('grow', rng, size=64, frames=count)
    return list(clip)


def _clips(frames, stamps, hop=1):
    buffer = FrameBuffer(8, 2, hop=hop)
    out = []
    for frame, stamp in zip(frames, stamps):
        clip = buffer.push(frame, stamp)
        if clip is not None:
            out.append(clip)
    return out


def _scores(prediction) -> dict:
    return dict(prediction.top_k)


@pytest.mark.parametrize('path', ['eager', 'onnxruntime'])
def test_stream_engine_runs_each_frame_once_and_starts_each_phase_as_the_clip_forward(
        causal_checkpoint, path):
    stream = InferenceEngine(causal_checkpoint, device='cpu', mode='stream', path=path)
    clip_engine = InferenceEngine(causal_checkpoint, device='cpu', mode='clip')
    assert (stream.mode, clip_engine.mode, stream.path) == ('stream', 'clip', path)
    assert stream.streams.stream(0).runner == {'eager': 'torchscript'}.get(path, path)
    assert len(stream.streams.phases) == 2  # frame stride 2: two interleaved phases
    frames = _frames(40)
    clips = _clips(frames, [0.1 * i for i in range(40)])
    assert len(clips) == 40 - 14  # a clip spans 15 source frames
    results = [stream.infer_stream(c.frame_list, c.stamps, top_k=3) for c in clips]
    # The first clip of each phase runs whole (8 frames); every later clip runs one frame.
    assert stream.streams.frames_run == 2 * 8 + (len(clips) - 2)
    assert stream.streams.resets == {'start': 2}
    for i in (0, 1):  # from a reset, the stream gives the clip forward's answer
        expected = _scores(clip_engine.infer(clips[i].frames, top_k=3))
        assert _scores(results[i]) == pytest.approx(expected, abs=1e-5)
    assert set(results[-1].latency_ms) == {'preprocess', 'flow', 'model', 'total'}
    # Later results carry the stream's history, so they differ from the clip forward.
    later = _scores(clip_engine.infer(clips[-1].frames, top_k=3))
    assert _scores(results[-1]) != pytest.approx(later, abs=1e-6)


@pytest.mark.parametrize('event,reason', [('time went back', 'time went back'),
                                          ('frames stopped', 'frames stopped'),
                                          ('dropped clips', 'missed frames')])
def test_streams_restart_on_a_stamp_jump_a_gap_and_dropped_clips(causal_checkpoint, event,
                                                                 reason):
    stream = InferenceEngine(causal_checkpoint, device='cpu', mode='stream')
    clip_engine = InferenceEngine(causal_checkpoint, device='cpu')
    frames = _frames(60, seed=1)
    stamps = [0.1 * i for i in range(60)]
    if event == 'time went back':
        stamps = stamps[:30] + [0.1 * i for i in range(30)]
    elif event == 'frames stopped':
        stamps = stamps[:30] + [s + 10.0 for s in stamps[30:]]
    clips = _clips(frames, stamps)
    if event == 'dropped clips':  # the worker was busy for 20 clips
        clips = clips[:10] + clips[30:]
    results = [stream.infer_stream(c.frame_list, c.stamps, top_k=3) for c in clips]
    assert stream.streams.resets[reason] >= 1
    # The first clip after the event ran whole, so its answer is the clip forward's.
    if event == 'dropped clips':
        after = 10
    elif event == 'time went back':
        after = next(i for i, c in enumerate(clips) if c.stamps[-1] < clips[i - 1].stamps[-1])
    else:
        after = next(i for i, c in enumerate(clips) if c.stamps[-1] > 10.0)
    expected = _scores(clip_engine.infer(clips[after].frames, top_k=3))
    assert _scores(results[after]) == pytest.approx(expected, abs=1e-5)
    assert stream.streams.resets['start'] == 2


def test_engine_modes_refuse_what_cannot_stream(causal_checkpoint, tmp_path):
    plain = _save(tmp_path / 'plain.safetensors', 'tvn_tiny')
    with pytest.raises(VasError, match='inference_mode stream: the model is not causal'):
        InferenceEngine(plain, device='cpu', mode='stream')
    assert InferenceEngine(plain, device='cpu', mode='auto').mode == 'clip'
    assert InferenceEngine(causal_checkpoint, device='cpu', mode='auto').mode == 'stream'
    with pytest.raises(VasError, match="inference_mode 'frames': expected one of"):
        InferenceEngine(causal_checkpoint, device='cpu', mode='frames')
    with pytest.raises(VasError, match='stream mode runs eager or onnxruntime'):
        InferenceEngine(causal_checkpoint, device='cpu', mode='stream', path='channels_last')
    clip_only = InferenceEngine(causal_checkpoint, device='cpu', mode='clip')
    with pytest.raises(VasError, match='needs an engine made with mode stream'):
        clip_only.infer_stream(_frames(8), list(range(8)))
    stream = InferenceEngine(causal_checkpoint, device='cpu', mode='stream')
    with pytest.raises(VasError, match='one stamp per frame'):
        stream.infer_stream(_frames(8), [0.0, 1.0])


def test_node_publishes_a_result_per_frame_in_stream_mode(causal_checkpoint):
    from builtin_interfaces.msg import Time
    from inprocess import RunningNode
    from sensor_msgs.msg import Image

    from vas_ros.harness.probe import Probe
    from vas_ros.msg import ActivityResult
    from vas_ros.nodes.activity_node import ActivityNode

    running = RunningNode(ActivityNode, '/st', model=str(causal_checkpoint), device='cpu',
                          hop_frames=1, inference_mode='stream', num_threads=1)
    probe = Probe('probe_stream')
    try:
        probe.listen('/st/activity/result', ActivityResult)
        assert probe.wait_for_subscriber('/st/image', Image, timeout=30)
        frames = _frames(48, seed=2)
        sent = 0

        def publish(i: int, offset: float = 0.0):
            stamp = 100.0 + offset + 0.1 * i
            msg = probe.image(frames[i % len(frames)],
                              stamp=Time(sec=int(stamp), nanosec=int(stamp % 1 * 1e9)))
            probe.publish_image('/st/image', msg)

        node = running.node

        def warmed_up() -> bool:  # resent until the recogniser answers (see lifecycle test)
            nonlocal sent
            publish(sent)
            sent += 1
            # ... and until both sampling phases (frame stride 2) have started.
            return (bool(probe.received('/st/activity/result'))
                    and node.stats()['stream_resets'].get('start', 0) >= 2)

        assert probe.wait_for(warmed_up, 60, interval=0.2)
        assert node.stats()['inference_mode'] == 'stream'
        # Let the warm-up clips (each phase's first runs whole and traces its step) finish.
        settled = [-1]

        def quiet() -> bool:
            now = len(probe.received('/st/activity/result'))
            done, settled[0] = now == settled[0], now
            return done

        assert probe.wait_for(quiet, 30, interval=1.0)
        start = node.stats()
        before = len(probe.received('/st/activity/result'))
        for i in range(sent, sent + 12):  # paced so that no clip is dropped
            publish(i)
            count = before + i - sent + 1
            assert probe.wait_for(
                lambda n=count: len(probe.received('/st/activity/result')) >= n, 30), i
        results = probe.dicts('/st/activity/result')
        # One result per frame: consecutive results end on consecutive frames' stamps.
        ends = [r['last_stamp'] for r in results[-12:]]
        assert np.diff(ends) == pytest.approx([0.1] * 11, abs=1e-6)
        stats = node.stats()
        assert stats['dropped_clips'] == start['dropped_clips']
        # Each paced result ran exactly one new frame.
        assert stats['clips_inferred'] - start['clips_inferred'] == 12
        assert stats['stream_frames_run'] - start['stream_frames_run'] == 12, (start, stats)
        assert all(set(r['latency_ms']) >= {'preprocess', 'model', 'total'} for r in results)
        # A new camera resolution starts the streams over.
        big = np.ascontiguousarray(np.repeat(np.repeat(frames[0], 2, 0), 2, 1))
        more = iter(range(10_000))

        def restarted() -> bool:
            stamp = 200.0 + 0.1 * next(more)
            probe.publish_image('/st/image', probe.image(
                big, stamp=Time(sec=int(stamp), nanosec=int(stamp % 1 * 1e9))))
            return 'resolution change' in node.stats()['stream_resets']

        assert probe.wait_for(restarted, 60, interval=0.1)
        # Explicit stream mode refuses stride_seconds (stamp-time sampling) with the reason;
        # auto falls back to clip for it and streams again without it.
        refused = running.set(stride_seconds=0.2)[0]
        assert not refused.successful and 'stride_seconds 0' in refused.reason
        assert running.set(inference_mode='auto')[0].successful
        assert node.stats()['inference_mode'] == 'stream'
        assert running.set(stride_seconds=0.2)[0].successful
        assert node.stats()['inference_mode'] == 'clip'
        assert running.set(stride_seconds=0.0)[0].successful
        assert node.stats()['inference_mode'] == 'stream'
        result = running.set(inference_mode='clip')[0]
        assert result.successful and node.stats()['inference_mode'] == 'clip'
    finally:
        probe.close()
        running.close()


def test_frames_with_equal_stamps_are_each_run_once(causal_checkpoint):
    """A camera with coarse or repeated stamps: frames are recognised by identity, so none
    is skipped and no result is stale."""
    stream = InferenceEngine(causal_checkpoint, device='cpu', mode='stream')
    frames = _frames(40, seed=3)
    stamps = [int(i / 3) / 10 for i in range(40)]  # 0.1 s stamps on a 30 fps camera
    clips = _clips(frames, stamps)
    for clip in clips:
        stream.infer_stream(clip.frame_list, clip.stamps)
    assert stream.streams.frames_run == 2 * 8 + (len(clips) - 2)
    # Copies of the frames with one repeated stamp cannot be matched: each clip runs whole.
    again = InferenceEngine(causal_checkpoint, device='cpu', mode='stream')
    for clip in clips[:4]:
        again.infer_stream([f.copy() for f in clip.frame_list], [5.0] * len(clip.stamps))
    assert again.streams.frames_run == 4 * 8


def test_stream_input_errors_are_one_line(causal_checkpoint):
    stream = InferenceEngine(causal_checkpoint, device='cpu', mode='stream')
    frames = _frames(8)
    with pytest.raises(VasError, match='must all have one size'):
        stream.infer_stream(frames[:7] + [frames[0][:32]], list(range(8)))
    with pytest.raises(VasError, match='stamps must be numbers'):
        stream.infer_stream(frames, ['a'] * 8)
    prediction = stream.infer_stream(np.stack(frames), list(range(8)))  # an array works too
    assert prediction.label in CLASSES
    for phases in (0.5, -1, 10**6, True):
        with pytest.raises(VasError, match='stream phases must be an integer in 1-64'):
            InferenceEngine(causal_checkpoint, device='cpu', mode='stream',
                            stream_phases=phases)
    with pytest.raises(VasError, match="unknown inference path 'bogus'"):
        InferenceEngine(causal_checkpoint, device='cpu', mode='stream', path='bogus')
    assert stream.describe()['path'] == 'eager' and stream.describe()['mode'] == 'stream'


def test_stream_auto_path_measures_both_runners_and_takes_the_faster(causal_checkpoint):
    engine = InferenceEngine(causal_checkpoint, device='cpu', mode='stream', path='auto')
    medians = engine.stream_choice
    assert set(medians) == {'torchscript', 'onnxruntime'}
    assert all(0 < ms < float('inf') for ms in medians.values())  # both agree with eager
    chosen = min(medians, key=medians.get)
    assert engine.path == {'torchscript': 'eager'}.get(chosen, chosen)
    assert engine.streams.stream(0).runner == chosen
    assert engine.describe()['stream_runner_ms'] == medians
    clips = _clips(_frames(20), [0.1 * i for i in range(20)])
    clip_engine = InferenceEngine(causal_checkpoint, device='cpu', mode='clip')
    first = engine.infer_stream(clips[0].frame_list, clips[0].stamps, top_k=3)
    expected = _scores(clip_engine.infer(clips[0].frames, top_k=3))
    assert _scores(first) == pytest.approx(expected, abs=1e-5)
