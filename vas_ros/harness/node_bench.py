"""Benchmark of activity_recognizer as deployed: a camera publisher and the recogniser in
separate processes over DDS (loopback), measured in one run.

- per-frame cost of the image callback at 640x480 rgb8 (the node's own timer, median);
- end-to-end latency, publishing a clip's last frame -> receiving activity/result, against
  the bare model latency (the engine's preprocess+flow+model time) measured in the same run,
  at 30 fps with a hop the model keeps up with;
- overload: every frame starts a clip at a rate the model cannot follow; latency over time
  must stay flat (stale clips are dropped, not queued), with the drop count;
- peak RSS of the recogniser process.

`run_node_bench()` returns a dict (used by `vas-ros bench`); `python -m
vas_ros.harness.node_bench [--out DIR]` prints it as JSON and writes a latency PNG.
"""

from __future__ import annotations

import json
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

from vas_ros.nodes.activity_msgs import message_dict
from vas_ros.peak_memory import peak_rss_mb


def _median(values) -> float | None:
    values = list(values)
    return round(statistics.median(values), 3) if values else None


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    import os

    fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


class _Stream:
    """Publishes frames at a fixed rate from a thread; remembers when each stamp left."""

    def __init__(self, probe, frames: list[np.ndarray], fps: float):
        self.probe = probe
        self.frames = frames
        self.fps = fps
        self.sent: dict[tuple[int, int], float] = {}
        self.count = 0
        self.publish_ms: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        period = 1.0 / self.fps
        next_time = time.monotonic()
        while not self._stop.is_set():
            delay = next_time - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            next_time += period
            msg = self.probe.image(self.frames[self.count % len(self.frames)])
            start = time.perf_counter()
            self.probe.publish_image('image', msg)
            now = time.monotonic()
            self.publish_ms.append((time.perf_counter() - start) * 1e3)
            self.sent[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = now
            self.count += 1


def _latencies(probe, stream: _Stream, since: int) -> list[dict]:
    """Per result: arrival time, end-to-end ms, and the node's own engine ms."""
    rows = []
    with probe._lock:
        arrivals = list(probe.messages['activity/result'])[since:]
    for arrived, msg in arrivals:
        body = message_dict(msg)
        key = (body['stamp']['sec'], body['stamp']['nanosec'])
        if key not in stream.sent:
            continue
        rows.append({'t': arrived, 'e2e_ms': (arrived - stream.sent[key]) * 1e3,
                     'engine_ms': body['latency_ms']['total'],
                     'queue_ms': body['latency_ms'].get('queue', 0.0),
                     'node_ms': body['latency_ms'].get('node', 0.0)})
    return rows


def _diagnostics(probe) -> dict:
    for msg in reversed(probe.received('/diagnostics')):
        for status in msg.status:
            if status.name.startswith('/activity_recognizer:'):
                return {kv.key: kv.value for kv in status.values}
    return {}


def measure_delivery(reliability: str, large_frames: bool, seconds: float = 8.0,
                     width: int = 640, height: int = 480, fps: float = 30.0) -> dict:
    """Frames a recogniser receives of those published (no inference), in this process.

    Call in a fresh process: the Fast DDS profile is read when the first participant is made.
    """
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image

    from vas_ros.harness.probe import Probe, start_node, stop_node
    from vas_ros.nodes.common import qos_override_params, use_large_frame_transport
    from vas_ros.ros_env import apply_loopback

    env = apply_loopback()
    if large_frames:
        use_large_frame_transport()
        use_large_frame_transport(env)
    qos = qos_override_params('/image', reliability, 1 if reliability == 'best_effort' else 5)
    node = start_node('activity_node', {'hop_frames': 10_000, 'diagnostics_period': 0.5,
                                        **qos}, env=env)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (height, width, 3), np.uint8) for _ in range(8)]
    try:
        with Probe('node_bench_delivery') as probe:
            probe.listen('/diagnostics', DiagnosticArray)
            if not probe.wait_for_subscriber('image', Image, timeout=120):
                raise RuntimeError(f'the recogniser did not subscribe within 120 s (exit '
                                   f'code {node.poll()}; None: still running)')
            time.sleep(1.0)
            cpu_before = _cpu_seconds(node.pid)
            time.sleep(seconds)  # the node's own idle cost (timers, DDS), subtracted below
            cpu_idle = _cpu_seconds(node.pid) - cpu_before
            cpu_before = _cpu_seconds(node.pid)
            stream = _Stream(probe, frames, fps).start()
            time.sleep(seconds)
            stream.stop()
            cpu_used = _cpu_seconds(node.pid) - cpu_before - cpu_idle
            time.sleep(1.5)
            diag = _diagnostics(probe)
    finally:
        stop_node(node)
    received = int(diag.get('frames_received', 0))
    return {'reliability': reliability, 'large_frame_profile': large_frames,
            'published': stream.count, 'received': received,
            'fraction': round(received / max(stream.count, 1), 3),
            'callback_ms_median': float(diag.get('callback_ms', 'nan')),
            'node_cpu_ms_per_received_frame': round(cpu_used * 1e3 / max(received, 1), 3),
            'publish_ms_median': _median(stream.publish_ms)}


def _delivery_in_child(reliability: str, large_frames: bool) -> dict:
    import subprocess

    args = [sys.executable, '-m', 'vas_ros.harness.node_bench', '--delivery', reliability]
    if large_frames:
        args.append('--large-frames')
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        return {'reliability': reliability, 'large_frame_profile': large_frames,
                'error': proc.stderr.strip()[-500:]}
    return json.loads(proc.stdout)


def run_node_bench(overload_seconds: float = 60.0, steady_seconds: float = 20.0,
                   model: str = '', width: int = 640, height: int = 480, fps: float = 30.0,
                   hop_frames: int = 4, threads: int = 0, out: str | None = None) -> dict:
    """Measure the recogniser in a child process; returns a JSON-ready dict.

    Frame delivery is measured first for best_effort and reliable subscriptions with Fast
    DDS's default transport and for best_effort with the large-frame profile; the latency
    runs then use best_effort (the node's default) with that profile on both sides.
    """
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image

    from vas_ros.harness.probe import Probe, start_node, stop_node
    from vas_ros.msg import ActivityResult
    from vas_ros.nodes.common import use_large_frame_transport
    from vas_ros.perception.engine import DEFAULT_MODEL, InferenceEngine
    from vas_ros.ros_env import apply_loopback

    delivery = [_delivery_in_child('best_effort', False), _delivery_in_child('reliable', False),
                _delivery_in_child('best_effort', True)]
    env = apply_loopback()
    use_large_frame_transport()
    use_large_frame_transport(env)
    model = model or DEFAULT_MODEL
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (height, width, 3), np.uint8) for _ in range(16)]

    # Bare model latency, in this process, on the same clip size the node will see;
    # measured before the node runs and again after (the machine's load may change).
    engine = InferenceEngine(model, device='cpu', num_threads=threads)
    clip = np.stack(frames[:engine.spec.frames])

    def bare_run() -> list[dict]:
        # In a worker thread, as the node runs it (on an oversubscribed CPU, torch's
        # intra-op pool behaved very differently in the main thread).
        out: list[dict] = []

        def work():
            for _ in range(3):
                engine.infer(clip)
            out.extend(engine.infer(clip).latency_ms for _ in range(15))

        worker = threading.Thread(target=work)
        worker.start()
        worker.join()
        return out

    bare = bare_run()
    bare_total = _median(b['total'] for b in bare)

    report: dict = {'model': model, 'frame': f'{width}x{height} rgb8', 'fps': fps,
                    'hop_frames': hop_frames, 'delivery': delivery,
                    'transport': 'best_effort subscription, Fast DDS large-frame profile',
                    'bare_model_ms': {'total': bare_total,
                                      'model': _median(b['model'] for b in bare),
                                      'preprocess': _median(b['preprocess'] for b in bare)}}
    log = None
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        log = Path(out) / 'node_bench_recogniser.log'
    node = start_node('activity_node', {'model': model, 'device': 'cpu',
                                        'hop_frames': hop_frames, 'num_threads': threads,
                                        'diagnostics_period': 0.5}, env=env, log_path=log)
    try:
        with Probe('node_bench') as probe:
            probe.listen('activity/result', ActivityResult)
            probe.listen('/diagnostics', DiagnosticArray)
            if not probe.wait_for_subscriber('image', Image, timeout=120):
                raise RuntimeError(f'the recogniser did not subscribe within 120 s (exit '
                                   f'code {node.poll()}; None: still running)')
            time.sleep(1.0)

            # Steady state: 30 fps, a hop the model keeps up with.
            stream = _Stream(probe, frames, fps).start()
            time.sleep(2.0)  # warm-up, not measured
            since = len(probe.received('activity/result'))
            time.sleep(steady_seconds)
            stream.stop()
            time.sleep(1.0)
            rows = _latencies(probe, stream, since)
            diag = _diagnostics(probe)
            report['steady'] = {
                'seconds': steady_seconds, 'results': len(rows),
                'frames_published': stream.count,
                'frames_received': int(diag.get('frames_received', 0)),
                'callback_ms_median': float(diag.get('callback_ms', 'nan')),
                'publish_ms_median': _median(stream.publish_ms),
                'e2e_ms_median': _median(r['e2e_ms'] for r in rows),
                'engine_ms_median': _median(r['engine_ms'] for r in rows),
                'overhead_ms_median': _median(r['e2e_ms'] - r['engine_ms'] for r in rows),
                'queue_ms_median': _median(r['queue_ms'] for r in rows),
                'dropped_clips': int(diag.get('dropped_clips', 0)),
            }
            report['steady']['e2e_minus_bare_ms'] = (
                round(report['steady']['e2e_ms_median'] - bare_total, 3)
                if rows and bare_total else None)

            # Overload: a clip per frame, at a rate above what the model can follow.
            dropped_before = int(diag.get('dropped_clips', 0))
            probe.set_parameters('activity_recognizer', {'hop_frames': 1})
            over_fps = max(fps, min(120.0, 2.0 * 1000.0 / max(bare_total or 1.0, 1.0)))
            stream = _Stream(probe, frames, over_fps).start()
            since = len(probe.received('activity/result'))
            start = time.monotonic()
            time.sleep(overload_seconds)
            stream.stop()
            time.sleep(1.5)
            rows = _latencies(probe, stream, since)
            diag = _diagnostics(probe)
            tenth = max(1, len(rows) // 6)
            times = np.array([r['t'] - start for r in rows])
            e2e = np.array([r['e2e_ms'] for r in rows])
            slope = float(np.polyfit(times, e2e, 1)[0] * 60.0) if len(rows) > 2 else None
            report['overload'] = {
                'seconds': overload_seconds, 'fps': round(over_fps, 1),
                'clips_offered': stream.count, 'results': len(rows),
                'dropped_clips': int(diag.get('dropped_clips', 0)) - dropped_before,
                'e2e_ms_median': _median(e2e),
                'e2e_ms_first_sixth': _median(e2e[:tenth]),
                'e2e_ms_last_sixth': _median(e2e[-tenth:]),
                'e2e_slope_ms_per_minute': round(slope, 3) if slope is not None else None,
                # What the node adds beyond its engine; growth here would mean a backlog.
                'overhead_ms_first_sixth': _median(r['e2e_ms'] - r['engine_ms']
                                                   for r in rows[:tenth]),
                'overhead_ms_last_sixth': _median(r['e2e_ms'] - r['engine_ms']
                                                  for r in rows[-tenth:]),
                'engine_ms_median': _median(r['engine_ms'] for r in rows),
                'callback_ms_median': float(diag.get('callback_ms', 'nan')),
            }
            if out:
                _plot(Path(out) / 'node_overload_latency.png', times, e2e,
                      [r['engine_ms'] for r in rows], over_fps)
                report['plot'] = str(Path(out) / 'node_overload_latency.png')
            report['recogniser_peak_rss_mb'] = peak_rss_mb(node.pid)
    finally:
        stop_node(node)
    report['bare_model_ms']['total_after'] = _median(b['total'] for b in bare_run())
    return report


def _plot(path: Path, times, e2e, engine, fps: float) -> None:
    from vas_ros.plotting import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(times, e2e, '.', ms=3, label='last frame published -> activity/result')
    ax.plot(times, engine, '.', ms=3, label='engine (preprocess + model)')
    ax.set_xlabel('seconds into the overload run')
    ax.set_ylabel('ms')
    ax.set_title(f'activity_recognizer under overload ({fps:.0f} clips/s offered)')
    ax.set_ylim(bottom=0)
    ax.legend(loc='upper right', fontsize=8)
    save_figure(plt, fig, path, dpi=120)


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--overload-seconds', type=float, default=60.0)
    parser.add_argument('--steady-seconds', type=float, default=20.0)
    parser.add_argument('--model', default='')
    parser.add_argument('--threads', type=int, default=0)
    parser.add_argument('--out', default=None, help='folder for the PNG and the node log')
    parser.add_argument('--delivery', default=None, metavar='RELIABILITY',
                        help='only measure frame delivery with this subscription reliability')
    parser.add_argument('--large-frames', action='store_true',
                        help='with --delivery: use the Fast DDS large-frame profile')
    args = parser.parse_args(argv)
    if args.delivery:
        print(json.dumps(measure_delivery(args.delivery, args.large_frames)))
        return 0
    result = run_node_bench(overload_seconds=args.overload_seconds,
                            steady_seconds=args.steady_seconds, model=args.model,
                            threads=args.threads, out=args.out)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
