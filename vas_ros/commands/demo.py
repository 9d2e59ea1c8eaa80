"""`vas-ros demo`: the whole system in one command, over real DDS on loopback.

A `video_source` process plays synthetic clips of known actions, an
`activity_recognizer` process runs the shipped model, and this process listens: it
prints every label as it arrives with its end-to-end latency (clip's last frame
published -> result received) and ends with a summary. Exit 0 only if labels arrived
and most were right.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

CLIP_FRAMES = 16  # frames per synthetic clip played by video_source


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        'demo', help='run video_source -> activity_recognizer -> listener and score it',
        description='Start the synthetic video source and the activity recogniser as '
                    'separate ROS 2 processes (loopback DDS, private domain), print each '
                    'label with its latency, and summarise accuracy and latency.')
    parser.add_argument('--model', default='tvn_tiny_synth',
                        help='checkpoint or shipped model name (default: tvn_tiny_synth)')
    parser.add_argument('--clips', type=int, default=24,
                        help='synthetic clips to play (default 24: three of each class)')
    parser.add_argument('--fps', type=float, default=15.0, help='camera rate (default 15)')
    parser.add_argument('--device', default='auto', help='auto | cpu | cuda | cuda:N')
    parser.add_argument('--min-accuracy', type=float, default=0.5,
                        help='exit non-zero below this accuracy (default 0.5)')
    parser.add_argument('--json', metavar='FILE', help='also write the summary as JSON')
    parser.add_argument('--log-dir', default=None,
                        help='where the node processes log (default: a temp folder)')
    parser.set_defaults(func=run)


def score(results: list[dict], truths: list[dict]) -> list[dict]:
    """Pair each result with the synthetic clip that holds its whole input window.

    A result whose frames straddle two clips has no single true label and is not scored.
    """
    scored = []
    for result in results:
        first, last = result['first_stamp'], result['last_stamp']
        for truth in truths:
            if truth['first_stamp'] - 1e-6 <= first and last <= truth['last_stamp'] + 1e-6:
                scored.append({**result, 'truth': truth['label'],
                               'correct': result['raw_label'] == truth['label']})
                break
    return scored


def run(args) -> int:
    import tempfile

    from std_msgs.msg import String

    from vas_ros.errors import VasError
    from vas_ros.harness.probe import Probe, start_node, stop_node
    from vas_ros.msg import ActivityResult, LabelInfo
    from vas_ros.nodes.activity_msgs import message_dict
    from vas_ros.nodes.common import latched_qos
    from vas_ros.perception.engine import resolve_model_path
    from vas_ros.ros_env import apply_loopback
    from vas_ros.search.latency import percentile

    if args.clips < 1:
        raise VasError(f'--clips must be >= 1, got {args.clips}')
    if args.fps <= 0:
        raise VasError(f'--fps must be > 0, got {args.fps}')
    model = resolve_model_path(args.model)
    env = apply_loopback()
    log_dir = Path(args.log_dir or tempfile.mkdtemp(prefix='vas_ros_demo_'))
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f'demo: ROS_DOMAIN_ID={env["ROS_DOMAIN_ID"]} (loopback only), model {model.name}, '
          f'node logs in {log_dir}')

    results: list[dict] = []
    truths: list[dict] = []
    procs = []
    with Probe('vas_ros_demo') as probe:
        def on_result(_now, msg):
            body = message_dict(msg)
            body['e2e_ms'] = (time.time() - body['last_stamp']) * 1e3
            results.append(body)
            print(f'  {body["label"]:<11} score {body["score"]:.2f}  '
                  f'end-to-end {body["e2e_ms"]:6.1f} ms  (model '
                  f'{body["latency_ms"].get("model", float("nan")):.1f} ms)', flush=True)

        probe.listen('activity/result', ActivityResult, callback=on_result)
        probe.listen('video_source/label', String,
                     callback=lambda _now, msg: truths.append(json.loads(msg.data)))
        probe.listen('activity/labels', LabelInfo, qos=latched_qos())
        # hop 1: a clip after every frame, so each synthetic clip holds whole input windows
        recogniser = {'model': str(model), 'device': args.device, 'hop_frames': 1}
        procs.append(start_node('activity_node', recogniser, env=env,
                                log_path=log_dir / 'activity_recognizer.log'))
        try:
            if not probe.wait_for(lambda: probe.received('activity/labels'), timeout=120):
                raise VasError(f'the recogniser did not come up in 120 s; see '
                               f'{log_dir / "activity_recognizer.log"}')
            classes = list(probe.received('activity/labels')[-1].class_names)
            print(f'demo: recogniser ready with {len(classes)} classes: {", ".join(classes)}')
            source = {'max_clips': args.clips, 'fps': args.fps, 'clip_frames': CLIP_FRAMES,
                      'seed': 7}
            procs.append(start_node('video_source', source, env=env,
                                    log_path=log_dir / 'video_source.log'))
            clip_seconds = CLIP_FRAMES / args.fps
            deadline = time.monotonic() + 60 + args.clips * clip_seconds * 2
            # Clip labels go out at the end of each clip; the first may precede discovery.
            while (not any(t['clip_index'] >= args.clips - 1 for t in truths)
                   and time.monotonic() < deadline):
                if procs[-1].poll() is not None and procs[-1].returncode != 0:
                    raise VasError(f'video_source exited with {procs[-1].returncode}; see '
                                   f'{log_dir / "video_source.log"}')
                time.sleep(0.2)
            time.sleep(2.0)  # the last clip's results are still in flight
        finally:
            for proc in reversed(procs):
                stop_node(proc)

    scored = score(results, truths)
    latencies = [r['e2e_ms'] for r in results]
    model_ms = [r['latency_ms']['model'] for r in results if 'model' in r['latency_ms']]
    summary = {
        'model': model.name,
        # Clip indices count from 0; labels of the first clips may be lost to discovery.
        'clips_played': max((int(t['clip_index']) for t in truths), default=-1) + 1,
        'labels_received': len(truths),
        'results': len(results),
        'scored_results': len(scored),
        'accuracy': (sum(r['correct'] for r in scored) / len(scored)) if scored else 0.0,
        'e2e_latency_ms': {'median': statistics.median(latencies) if latencies else None,
                           'p95': percentile(latencies, 95) if latencies else None},
        'model_latency_ms_median': statistics.median(model_ms) if model_ms else None,
        'dropped_clips': max((r.get('dropped_clips', 0) for r in results), default=0),
    }
    print('\ndemo summary')
    print(f'  clips played        {summary["clips_played"]}')
    print(f'  labels received     {summary["results"]} ({summary["scored_results"]} inside '
          f'one clip, scored)')
    print(f'  accuracy            {summary["accuracy"]:.1%}')
    if latencies:
        print(f'  end-to-end latency  median {summary["e2e_latency_ms"]["median"]:.1f} ms, '
              f'p95 {summary["e2e_latency_ms"]["p95"]:.1f} ms (model alone: median '
              f'{summary["model_latency_ms_median"]:.1f} ms)')
    print(f'  dropped clips       {summary["dropped_clips"]}')
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    ok = bool(scored) and summary['accuracy'] >= args.min_accuracy
    print('demo: OK' if ok else f'demo: FAILED (need labels and accuracy >= '
                                f'{args.min_accuracy:.0%})')
    return 0 if ok else 1
