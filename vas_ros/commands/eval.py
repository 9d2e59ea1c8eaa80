"""`vas-ros eval`: accuracy, per-class accuracy and confusion of a checkpoint on a split."""

from __future__ import annotations

from vas_ros.errors import DataError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        'eval', help='evaluate a checkpoint on a data-set split',
        description='Load CHECKPOINT (safetensors written by vas-ros train; never unpickled), '
                    'preprocess ROOT/<split> with the input spec stored in it, and report '
                    'top-1, top-5, per-class accuracy and the confusion matrix (rows: true '
                    'class, columns: predicted).')
    add_checkpoint_split_arguments(parser)
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

    from vas_ros.training.evaluate import evaluate

    loaded, dataset, device = load_split(args)
    result = evaluate(loaded.model, dataset, device=device, batch_size=args.batch_size,
                      streams=loaded.spec.streams, progress=not args.quiet and not args.json)
    if args.confusion_png:
        from vas_ros.training.plots import plot_confusion

        plot_confusion(result['confusion'], result['classes'], args.confusion_png,
                       title=f'{loaded.arch.name} on {args.split}: top-1 {result["top1"]:.3f}')
    if args.json:
        print(json.dumps(result))
        return 0
    print(f'{args.checkpoint} ({loaded.arch.name}) on {args.data} [{args.split}], '
          f'n={result["n"]}')
    print(f'top-1 {result["top1"]:.4f}   top-5 {result["top5"]:.4f}   '
          f'chance {1 / len(result["classes"]):.4f}')
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
    return 0
