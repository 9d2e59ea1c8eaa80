"""Issue 17's streaming benchmark: what one result costs in the node, stream vs clip mode.

One `activity_recognizer` process (real DDS, loopback) runs the shipped causal TVN at
hop 1 with one torch thread; this process publishes camera frames at a steady rate and
switches `inference_mode` (and `inference_path`) at run time, in alternating rounds so
that every mode sees the same machine load. Per result it reads the node's own latency
breakdown from `activity/result`:

- stream: `model` ms for the one new frame a result runs (the first clip of each phase
  after a switch runs whole and is left out as warm-up);
- stream_onnxruntime: the same step exported to ONNX and run by ONNX Runtime;
- clip (eager; channels_last: BatchNorm folded, NHWC, the stream's own preparation;
  onnxruntime): `model` ms for the whole 8-frame clip, divided by 8.

The issue's bar: stream per frame <= 1.5 x (clip of the same path / frames). Run from
the repository root:

    .venv/bin/python bench/stream_node.py --out bench

Writes OUT/stream_node.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

# Applied in this order, one at a time: every intermediate pair is one the node takes
# (stream mode runs the eager or the onnxruntime path only).
MODES = {'stream': {'inference_path': 'eager', 'inference_mode': 'stream'},
         'clip_eager': {'inference_path': 'eager', 'inference_mode': 'clip'},
         'clip_channels_last': {'inference_mode': 'clip', 'inference_path': 'channels_last'},
         'clip_onnxruntime': {'inference_mode': 'clip', 'inference_path': 'onnxruntime'},
         'stream_onnxruntime': {'inference_path': 'onnxruntime', 'inference_mode': 'stream'}}
# Each stream mode against the clip mode of the same path (the bar).
SAME_PATH = {'stream': 'clip_eager', 'stream_onnxruntime': 'clip_onnxruntime'}


def _frames(count: int) -> list[np.ndarray]:
    from vas_ros.data import synth

    rng = np.random.default_rng(0)
    return list(synth.render_clip('grow', rng, size=64, frames=count))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', default='tvn_tiny_causal_synth')
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--seconds', type=float, default=12.0, help='per mode and round')
    parser.add_argument('--fps', type=float, default=15.0)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--out', default='bench')
    args = parser.parse_args(argv)

    from sensor_msgs.msg import Image

    from vas_ros.commands.bench import machine
    from vas_ros.harness.node_bench import _Stream
    from vas_ros.harness.probe import Probe, start_node, stop_node
    from vas_ros.msg import ActivityResult
    from vas_ros.nodes.activity_msgs import message_dict
    from vas_ros.ros_env import apply_loopback

    env = apply_loopback()
    node = start_node('activity_node', {'model': args.model, 'device': 'cpu',
                                        'hop_frames': 1, 'num_threads': args.threads,
                                        'inference_mode': 'stream'}, env=env)
    rows: dict[str, list[dict]] = {name: [] for name in MODES}
    try:
        with Probe('stream_node_bench') as probe:
            probe.listen('activity/result', ActivityResult)
            if not probe.wait_for_subscriber('image', Image, timeout=120):
                raise RuntimeError(f'the recogniser did not subscribe (exit {node.poll()})')
            stream = _Stream(probe, _frames(64), args.fps).start()
            try:
                for round_index in range(args.rounds):
                    for name, params in MODES.items():
                        answers = probe.set_parameters('activity_recognizer', params)
                        if not all(ok for ok, _ in answers):
                            raise RuntimeError(f'{name}: the node refused {params}: {answers}')
                        time.sleep(6.0)  # warm-up: the new engine traces its steps
                        since = len(probe.received('activity/result'))
                        time.sleep(args.seconds)
                        for msg in probe.received('activity/result')[since:]:
                            body = message_dict(msg)
                            rows[name].append({'round': round_index,
                                               **body['latency_ms']})
                        print(f'round {round_index + 1}/{args.rounds} {name}: '
                              f'{len(probe.received("activity/result")) - since} results',
                              file=sys.stderr)
            finally:
                stream.stop()
    finally:
        stop_node(node)

    frames = 8
    summary = {}
    for name, values in rows.items():
        model = [r['model'] for r in values]
        per_frame = [m / frames for m in model] if name.startswith('clip') else model
        summary[name] = {'results': len(values),
                         'model_ms_median': round(statistics.median(model), 3),
                         'per_frame_ms_median': round(statistics.median(per_frame), 3),
                         'total_ms_median': round(statistics.median(r['total'] for r in values),
                                                  3)}
    per_frame = {name: s['per_frame_ms_median'] for name, s in summary.items()}
    best_clip = min((n for n in per_frame if n.startswith('clip')), key=per_frame.get)
    best_stream = min(SAME_PATH, key=per_frame.get)
    report = {'machine': machine(), 'model': args.model, 'threads': args.threads,
              'fps': args.fps, 'rounds': args.rounds, 'seconds_per_mode': args.seconds,
              'modes': summary,
              'ratio_stream_to_same_path_clip_per_frame': {
                  name: round(per_frame[name] / per_frame[clip], 3)
                  for name, clip in SAME_PATH.items()},
              'best_clip': best_clip, 'best_stream': best_stream,
              'ratio_best_stream_to_best_clip_per_frame': round(
                  per_frame[best_stream] / per_frame[best_clip], 3),
              'result_cost_ratio_best_clip_to_best_stream': round(
                  summary[best_clip]['model_ms_median'] / per_frame[best_stream], 3)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / 'stream_node.json').write_text(json.dumps(report, indent=2) + '\n')
    lines = [f'# Stream vs clip mode in the node ({args.model}, hop 1, {args.threads} thread)',
             '', f'Machine: {report["machine"]["cpu"]}, {report["machine"]["cores"]} cores. '
             f'Medians over {args.rounds} alternating rounds of {args.seconds:g} s per mode, '
             f'frames at {args.fps:g} fps over DDS (loopback), `model` latency as the node '
             f'reports it in activity/result.', '',
             '| mode | results | model ms per result | per frame ms | node total ms |',
             '|---|---|---|---|---|']
    for name, s in summary.items():
        lines.append(f'| {name} | {s["results"]} | {s["model_ms_median"]} | '
                     f'{s["per_frame_ms_median"]} | {s["total_ms_median"]} |')
    same = report['ratio_stream_to_same_path_clip_per_frame']
    lines += ['', f'Stream per frame / (clip of the same path / {frames}) (bar: <= 1.5): '
              + ', '.join(f'{name} {ratio}' for name, ratio in same.items())
              + f'. Best stream ({best_stream}) against the best clip path ({best_clip}): '
              f'{report["ratio_best_stream_to_best_clip_per_frame"]}; a result per frame '
              f'costs {report["result_cost_ratio_best_clip_to_best_stream"]}x less in '
              f'{best_stream} than a {best_clip} clip per frame.', '']
    (out / 'stream_node.md').write_text('\n'.join(lines))
    _plot(out / 'stream_node.png', summary, report['machine']['cpu'])
    print('\n'.join(lines))
    return 0


def _plot(path: Path, summary: dict, cpu: str) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    names = list(summary)
    fig, ax = plt.subplots(figsize=(8, 4))
    per_result = [summary[n]['model_ms_median'] for n in names]
    per_frame = [summary[n]['per_frame_ms_median'] for n in names]
    x = np.arange(len(names))
    ax.bar(x - 0.2, per_result, 0.4, label='model ms per result')
    ax.bar(x + 0.2, per_frame, 0.4, label='model ms per frame of compute')
    ax.set_xticks(x, names, rotation=20, ha='right')
    ax.set_ylabel('ms (median)')
    ax.set_title(f'activity_recognizer at hop 1: stream vs clip\n{cpu}', fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == '__main__':
    sys.exit(main())
