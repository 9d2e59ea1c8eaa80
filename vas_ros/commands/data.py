"""`vas-ros data`: make synthetic data, inspect a data set, measure decode/flow speed."""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    from vas_ros.data.randomisation import FACTORS

    parser = subparsers.add_parser(
        'data', help='synthetic videos, data set summary and preview, throughput benchmark',
        description='Data set tools. Layout: ROOT/<split>/<class>/<clip>.{mp4,avi,mkv,webm}, '
                    'a clip-list CSV (path,label,split[,start_s,end_s][,topic]) or a rosbag2 '
                    'with labels.csv. See docs/data.md.')
    commands = parser.add_subparsers(dest='data_command', metavar='DATA_COMMAND')
    parser.set_defaults(func=lambda args: parser.print_help() or 2)

    synth = commands.add_parser(
        'synth', help='write synthetic motion clips (8 classes) as MP4 files',
        description='Write OUT/<split>/<class>/<class>_NNNN.mp4: textured objects on '
                    'cluttered backgrounds that move left/right/up/down, rotate cw/ccw, '
                    'grow or shrink. One frame never tells the class; motion does. '
                    'Deterministic for a seed.')
    synth.add_argument('out', help='output folder (data set root)')
    synth.add_argument('--per-class', type=int, required=True, help='clips per class per split')
    synth.add_argument('--seed', type=int, default=0, help='random seed (default 0)')
    synth.add_argument('--splits', default='train,val', help='comma list (default train,val)')
    synth.add_argument('--size', type=int, default=112, help='frame side in pixels, even')
    synth.add_argument('--frames', type=int, default=16, help='frames per clip (default 16)')
    synth.add_argument('--fps', type=float, default=15, help='frame rate (default 15)')
    synth.add_argument('--with-none', action='store_true',
                       help="add a 'none' class: static scenes, distractors moving on their "
                            'own, camera shake alone (for rejection; see docs/training.md)')
    synth.add_argument('--factors', default='all', metavar='LIST',
                       help='domain randomisation factors to switch on, comma list, "all" '
                            '(default) or "none"; factors: ' + ', '.join(FACTORS))
    synth.add_argument('--no-progress', action='store_true', help='no progress bar')
    synth.set_defaults(func=run_synth, renderer='synth', outputs={'out': ('dir', (), 'OUT')})

    holdout = commands.add_parser(
        'holdout', help='the same classes from a second renderer, for out-of-distribution tests',
        description='Write OUT/<split>/<class>/<class>_NNNN.mp4 with an independent renderer '
                    '(rooms with tiled floors, line-art actors with eased motion, bouncing '
                    'balls, a pendulum, occluders, camera sway, blur, noise and JPEG). Only '
                    'the look differs from data synth. train and search refuse it; use it '
                    'with vas-ros eval --ood to measure the out-of-distribution gap.')
    holdout.add_argument('out', help='output folder (data set root)')
    holdout.add_argument('--per-class', type=int, required=True,
                         help='clips per class per split')
    holdout.add_argument('--seed', type=int, default=0, help='random seed (default 0)')
    holdout.add_argument('--splits', default='test', help='comma list (default test)')
    holdout.add_argument('--size', type=int, default=112, help='frame side in pixels, even')
    holdout.add_argument('--frames', type=int, default=16, help='frames per clip (default 16)')
    holdout.add_argument('--fps', type=float, default=15, help='frame rate (default 15)')
    holdout.add_argument('--with-none', action='store_true',
                         help="add the 'none' class (an actor that never moves)")
    holdout.add_argument('--no-progress', action='store_true', help='no progress bar')
    holdout.set_defaults(func=run_synth, renderer='holdout',
                         outputs={'out': ('dir', (), 'OUT')})

    info = commands.add_parser(
        'info', help='classes, clip counts and skipped clips of each split',
        description='Open each split as training would and print one JSON object: classes, '
                    'clips per class, and every skipped clip with its reason.')
    info.add_argument('source', help='data set folder, clip-list CSV or rosbag2')
    info.add_argument('--splits', default=None,
                      help='comma list (default: every split present)')
    info.set_defaults(func=run_info)

    preview = commands.add_parser(
        'preview', help='PNG of a few frames and their optical flow per class',
        description='Write a PNG grid: for one clip of each class, frames across the clip '
                    'and the DIS optical flow (hue = direction, brightness = speed).')
    preview.add_argument('source', help='data set folder, clip-list CSV or rosbag2')
    preview.add_argument('--out', required=True, help='PNG file to write')
    preview.add_argument('--split', default='train')
    preview.add_argument('--size', type=int, default=112)
    preview.add_argument('--frames', type=int, default=16)
    preview.add_argument('--flow-method', default='dis')
    preview.set_defaults(func=run_preview, outputs={'out': ('file', ('source',))})

    bench = commands.add_parser(
        'bench', help='decode throughput (cold vs cached) and flow cost, as JSON',
        description='Measure clips/s decoding a split (no cache, first epoch writing the '
                    'cache, from the cache, cached items), and median ms per frame pair for '
                    'each flow method at 112x112 and 320x240. Prints JSON.')
    bench.add_argument('source', help='data set folder, clip-list CSV or rosbag2')
    bench.add_argument('--split', default='train')
    bench.add_argument('--size', type=int, default=112)
    bench.add_argument('--frames', type=int, default=16)
    bench.add_argument('--limit', type=int, default=None, help='use at most N clips')
    bench.add_argument('--flow-repeats', type=int, default=15)
    bench.add_argument('--out', default=None, help='also write the JSON to this file')
    bench.set_defaults(func=run_bench, outputs={'out': ('file', ('source',))})


def _splits(text: str) -> list[str]:
    return [s.strip() for s in text.split(',') if s.strip()]


def run_synth(args: argparse.Namespace) -> int:
    from vas_ros.data.synth import write_synthetic_dataset

    root = write_synthetic_dataset(args.out, args.per_class, args.seed,
                                   splits=_splits(args.splits), size=args.size,
                                   frames=args.frames, fps=args.fps,
                                   progress=not args.no_progress, with_none=args.with_none,
                                   renderer=args.renderer,
                                   **({'factors': args.factors} if args.renderer == 'synth'
                                      else {}))
    print(f'wrote {args.per_class} {args.renderer} clips per class per split to {root}')
    return 0


def run_info(args: argparse.Namespace) -> int:
    import warnings
    from pathlib import Path

    from vas_ros.data.datasets import DataWarning, list_classes, open_dataset
    from vas_ros.data.rosbag_source import is_rosbag
    from vas_ros.errors import DataError
    from vas_ros.models.spec import InputSpec

    source = Path(args.source)
    classes = list_classes(source)
    if args.splits:
        splits = _splits(args.splits)
    elif source.is_dir() and not is_rosbag(source):
        splits = sorted(p.name for p in source.iterdir()
                        if p.is_dir() and not p.name.startswith('.'))
    else:
        splits = ['train', 'val', 'test']
    report = {'source': str(source), 'classes': classes, 'splits': {}}
    spec = InputSpec(frames=1, size=8)
    for split in splits:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore', DataWarning)
                data = open_dataset(source, split, spec, classes=classes)
        except DataError as exc:
            report['splits'][split] = {'error': str(exc)}
            continue
        report['splits'][split] = {'clips': len(data), 'per_class': data.class_counts(),
                                   'skipped': data.skipped, 'skip_reasons': data.skip_reasons}
    print(json.dumps(report, indent=2))
    return 0


def run_preview(args: argparse.Namespace) -> int:
    from vas_ros.data.preview import write_preview

    path = write_preview(args.source, args.out, split=args.split, size=args.size,
                         frames=args.frames, flow_method=args.flow_method)
    print(f'wrote {path}')
    return 0


def run_bench(args: argparse.Namespace) -> int:
    from pathlib import Path

    from vas_ros.data.throughput import measure_throughput

    result = measure_throughput(args.source, args.split, size=args.size, frames=args.frames,
                                limit=args.limit, flow_repeats=args.flow_repeats,
                                progress=True)
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).write_text(text + '\n')
    print(text)
    return 0
