"""Issue 17's streaming benchmark: what one result costs in the node, stream vs clip mode.

One `activity_recognizer` process (real DDS, loopback) runs the shipped causal TVN at
hop 1 with one torch thread; this process publishes camera frames at a steady rate and
switches `inference_mode` (and `inference_path`) at run time, in alternating rounds so
that every mode sees the same machine load. Per result it reads the node's own latency
breakdown from `activity/result`:

- stream: `model` ms for the one new frame a result runs (the first clip of each phase
  after a switch runs whole and is left out as warm-up);
- clip (eager, and channels_last: BatchNorm folded, NHWC, the stream's own preparation):
  `model` ms for the whole 8-frame clip, divided by 8.

The issue's bar: stream per frame <= 1.5 x (clip / frames). Run from the repository root:

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

# Path first: the node applies them one at a time, and stream mode runs eager only.
MODES = {'stream': {'inference_path': 'eager', 'inference_mode': 'stream'},
         'clip_eager': {'inference_path': 'eager', 'inference_mode': 'clip'},
         'clip_channels_last': {'inference_mode': 'clip', 'inference_path': 'channels_last'}}


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
    stream_ms = summary['stream']['per_frame_ms_median']
    report = {'machine': machine(), 'model': args.model, 'threads': args.threads,
              'fps': args.fps, 'rounds': args.rounds, 'seconds_per_mode': args.seconds,
              'modes': summary,
              'ratio_stream_to_clip_eager_per_frame': round(
                  stream_ms / summary['clip_eager']['per_frame_ms_median'], 3),
              'ratio_stream_to_clip_channels_last_per_frame': round(
                  stream_ms / summary['clip_channels_last']['per_frame_ms_median'], 3),
              'result_cost_ratio_clip_eager_to_stream': round(
                  summary['clip_eager']['model_ms_median'] / stream_ms, 3)}
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
    lines += ['', f'Stream per frame / (clip / {frames}): '
              f'{report["ratio_stream_to_clip_eager_per_frame"]} against eager clips, '
              f'{report["ratio_stream_to_clip_channels_last_per_frame"]} against '
              f'channels_last clips (bar: <= 1.5). A result per frame costs '
              f'{report["result_cost_ratio_clip_eager_to_stream"]}x less in stream mode '
              f'than an eager clip per frame.', '']
    (out / 'stream_node.md').write_text('\n'.join(lines))
    _plot(out / 'stream_node.png', summary, report['machine']['cpu'])
    print('\n'.join(lines))
    return 0


def _plot(path: Path, summary: dict, cpu: str) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    names = list(summary)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    per_result = [summary[n]['model_ms_median'] for n in names]
    per_frame = [summary[n]['per_frame_ms_median'] for n in names]
    x = np.arange(len(names))
    ax.bar(x - 0.2, per_result, 0.4, label='model ms per result')
    ax.bar(x + 0.2, per_frame, 0.4, label='model ms per frame of compute')
    ax.set_xticks(x, names)
    ax.set_ylabel('ms (median)')
    ax.set_title(f'activity_recognizer at hop 1: stream vs clip\n{cpu}', fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == '__main__':
    sys.exit(main())
