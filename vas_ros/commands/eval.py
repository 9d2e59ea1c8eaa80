"""`vas-ros eval`: accuracy, per-class accuracy and confusion of a checkpoint on a split."""

from __future__ import annotations

from vas_ros.errors import DataError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        'eval', help='evaluate a checkpoint on a data-set split',
        description='Load CHECKPOINT (safetensors written by vas-ros train; never unpickled), '
                    'preprocess ROOT/<split> with the input spec stored in it, and report '
                    'top-1, top-5, per-class accuracy, the confusion matrix (rows: true '
                    'class, columns: predicted), the expected calibration error of its '
                    '(temperature-scaled) scores and how often the node would say unknown. '
                    '--ood adds a data set from another renderer (vas-ros data holdout) and '
                    'the gap between the two.')
    add_checkpoint_split_arguments(parser)
    parser.add_argument('--score-threshold', type=float, default=0.3,
                        help="the node's score_threshold, for the unknown rates (default 0.3, "
                             'as in config/activity.yaml)')
    parser.add_argument('--ood', default=None, metavar='ROOT',
                        help='also evaluate this out-of-distribution data set (e.g. written by '
                             'vas-ros data holdout) and report the gap')
    parser.add_argument('--ood-split', default='test',
                        help='split of --ood to use (default test)')
    parser.add_argument('--confusion-png', default=None, metavar='PNG',
                        help='also draw the confusion matrix to this PNG file')
    parser.add_argument('--json', action='store_true', help='print one JSON object')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    parser.set_defaults(func=run, outputs={'confusion_png': ('file', ('checkpoint', 'data'))})


def add_checkpoint_split_arguments(parser, batch_size: int = 8) -> None:
    """CHECKPOINT, --data, --split, --device, --batch-size, --cache-dir (see load_split)."""
    parser.add_argument('checkpoint', metavar='CHECKPOINT', help='.safetensors checkpoint')
    parser.add_argument('--data', required=True, metavar='ROOT',
                        help='data set root, CSV or bag source')
    parser.add_argument('--split', default='val', help='split to use (default val)')
    parser.add_argument('--device', default='auto', help='auto (default), cpu, cuda, cuda:N')
    parser.add_argument('--batch-size', type=int, default=batch_size,
                        help=f'clips per batch (default {batch_size})')
    parser.add_argument('--cache-dir', default=None, help='folder for decoded-clip caches')


def load_split(args, family: str | None = None):
    """(checkpoint, dataset, device) for those arguments: the split preprocessed with the
    checkpoint's input spec, its classes checked against the checkpoint's."""
    from vas_ros.data.datasets import open_dataset
    from vas_ros.models.checkpoint import load_checkpoint
    from vas_ros.training.devices import resolve_device

    if args.batch_size < 1:
        raise DataError(f'--batch-size must be >= 1, got {args.batch_size}')
    device = resolve_device(args.device)
    loaded = load_checkpoint(args.checkpoint, device=device)
    if family is not None and loaded.arch.family != family:
        raise DataError(f'{args.checkpoint}: is a {loaded.arch.family} model; this command '
                        f'needs a checkpoint of the {family} family')
    dataset = open_dataset(args.data, args.split, loaded.spec, train=False,
                           cache_dir=args.cache_dir)
    check_classes(loaded.classes, list(dataset.classes), f'{args.data} ({args.split})')
    if len(dataset) == 0:
        raise DataError(f'{args.data}: split {args.split!r} holds no usable clips')
    return loaded, dataset, device


def check_classes(checkpoint_classes: list[str], data_classes: list[str], where: str) -> None:
    """The data's class list must be the checkpoint's, in the same order."""
    if list(checkpoint_classes) == list(data_classes):
        return
    missing = sorted(set(checkpoint_classes) - set(data_classes))
    extra = sorted(set(data_classes) - set(checkpoint_classes))
    detail = []
    if missing:
        detail.append(f'missing {missing}')
    if extra:
        detail.append(f'not in the checkpoint {extra}')
    if not detail:
        detail.append('same names in another order')
    raise DataError(f'{where}: classes do not match the checkpoint\'s '
                    f'{list(checkpoint_classes)} ({"; ".join(detail)})')


def run(args) -> int:
    import json
    import math
    from pathlib import Path

    from vas_ros.data.datasets import open_dataset
    from vas_ros.training.evaluate import evaluate

    if not (math.isfinite(args.score_threshold) and 0.0 <= args.score_threshold <= 1.0):
        raise DataError(f'--score-threshold must be in [0, 1], got {args.score_threshold}')
    if args.confusion_png and Path(args.confusion_png).suffix.lower() not in ('.png', ''):
        raise DataError(f'--confusion-png {args.confusion_png}: the figure is a PNG; name '
                        f'the file *.png')
    loaded, dataset, device = load_split(args)
    ood_set = None
    if args.ood is not None:  # opened first: a bad --ood fails before the long part
        ood_set = open_dataset(args.ood, args.ood_split, loaded.spec, train=False,
                               cache_dir=args.cache_dir)
        check_classes(loaded.classes, list(ood_set.classes), f'{args.ood} ({args.ood_split})')
        if len(ood_set) == 0:
            raise DataError(f'{args.ood}: split {args.ood_split!r} holds no usable clips')
    options = dict(device=device, batch_size=args.batch_size, streams=loaded.spec.streams,
                   progress=not args.quiet and not args.json, temperature=loaded.temperature,
                   threshold=args.score_threshold)
    result = evaluate(loaded.model, dataset, **options)
    if ood_set is not None:
        ood = evaluate(loaded.model, ood_set, **options)
        result['ood'] = {'data': str(args.ood), 'split': args.ood_split,
                         'gap': result['top1'] - ood['top1'], **ood}
    if args.confusion_png:
        from vas_ros.training.plots import plot_confusion

        plot_confusion(result['confusion'], result['classes'], args.confusion_png,
                       title=f'{loaded.arch.name} on {args.split}: top-1 {result["top1"]:.3f}')
    if args.json:
        print(json.dumps(result))
        return 0
    print(f'{args.checkpoint} ({loaded.arch.name}) on {args.data} [{args.split}], '
          f'n={result["n"]}')
    _print_summary(result)
    width = max(len(c) for c in result['classes'])
    for name, accuracy in result['per_class'].items():
        shown = '   n/a' if accuracy is None else f'{accuracy:6.3f}'
        print(f'  {name:<{width}}  {shown}')
    print('confusion (rows: true, columns: predicted):')
    for name, row in zip(result['classes'], result['confusion']):
        print(f'  {name:<{width}}  ' + ' '.join(f'{c:4d}' for c in row))
    for member in result.get('members', []):
        print(f'  member {member["index"]}: top-1 {member["top1"]:.4f} '
              f'top-5 {member["top5"]:.4f}')
    if 'ood' in result:
        ood = result['ood']
        print(f'out of distribution: {ood["data"]} [{ood["split"]}], n={ood["n"]}')
        _print_summary(ood)
        print(f'  gap (top-1 here minus out of distribution) {ood["gap"]:+.4f}')
        print('  per class: ' + ', '.join(
            f'{name} {"n/a" if acc is None else f"{acc:.2f}"}'
            for name, acc in ood['per_class'].items()))
    return 0


def _print_summary(result: dict) -> None:
    print(f'top-1 {result["top1"]:.4f}   top-5 {result["top5"]:.4f}   '
          f'chance {1 / len(result["classes"]):.4f}')
    print(f'ECE {result["ece"]:.4f}   NLL {result["nll"]:.4f}   '
          f'(temperature {result["temperature"]:.3f})')
    reject = result.get('rejection')
    if reject:
        parts = [f'unknown at score < {reject["threshold"]:g} or top class none:']
        if reject['rejected_true'] is not None:
            parts.append(f'{reject["rejected_true"]:.3f} of real-class clips')
        if reject['rejected_none'] is not None:
            parts.append(f'{reject["rejected_none"]:.3f} of none clips')
        print('  '.join(parts))
