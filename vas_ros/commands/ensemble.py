"""`vas-ros ensemble`: the best (or best diverse) architectures of a search as one model.

Reads a search store, picks K distinct finished candidates (best proxy accuracy first;
with --diverse, greedily the one farthest in genome distance from those already picked,
within the best `--pool`), trains each as a member (RGB, and with --flow also on optical
flow, as in the released two-stream EvaNet ensemble), then writes DIR/ensemble.safetensors:
one checkpoint that `load_checkpoint`, `vas-ros eval`, the inference engine and the ROS
node run like any other model (member logits averaged). Members are trained in
DIR/members/<name>/ and reused when the command is run again with the same settings.

The selection is vas_ros.search.ensemble_select; the training and assembly is
vas_ros.training.ensemble_build. This module holds the options, their checks and the
printing.
"""

from __future__ import annotations

import json

from vas_ros.errors import VasError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        'ensemble', help='build an ensemble from the best architectures of a search',
        description='Pick the K best distinct architectures from a search store (--diverse: '
                    'greedily maximise genome distance among the best --pool), train each '
                    'member on --data, and write one checkpoint DIR/ensemble.safetensors '
                    'whose output is the mean of the member logits. Reports every member\'s '
                    'and the ensemble\'s validation accuracy (DIR/report.json, '
                    'DIR/ensemble.png).')
    parser.add_argument('--from-store', required=True, metavar='FILE', dest='store',
                        help='search store (SQLite) written by vas-ros search')
    parser.add_argument('--top', type=int, default=3, metavar='K',
                        help='number of architectures (default 3)')
    parser.add_argument('--data', required=True, metavar='ROOT',
                        help='data set root (train/ and val/), CSV or bag source')
    parser.add_argument('--out', required=True, metavar='DIR', help='output folder')
    parser.add_argument('--diverse', action='store_true',
                        help='choose members by genome distance, not accuracy alone')
    parser.add_argument('--pool', type=int, default=None,
                        help='with --diverse: choose among the best POOL candidates '
                             '(default 3 x K)')
    parser.add_argument('--flow', action='store_true',
                        help='also train every architecture on optical flow (2 members each)')
    parser.add_argument('--epochs', type=int, default=3, help='training epochs per member '
                                                              '(default 3)')
    parser.add_argument('--max-steps', type=int, default=None,
                        help='cap on optimizer steps per member')
    parser.add_argument('--batch-size', type=int, default=8, help='clips per batch (default 8)')
    parser.add_argument('--lr', type=float, default=None, help='learning rate (default 1e-3)')
    parser.add_argument('--device', default='cpu', help='cpu (default), auto, cuda, cuda:N')
    parser.add_argument('--seed', type=int, default=0, help='random seed (default 0)')
    parser.add_argument('--cache-dir', default=None,
                        help='decoded-clip cache (default DIR/cache)')
    parser.add_argument('--json', action='store_true', help='print the report as JSON')
    parser.add_argument('--quiet', action='store_true', help='no progress bars')
    parser.set_defaults(func=run, outputs={'out': ('dir', ('store', 'data'))})


def check_args(args) -> None:
    """Refuse numbers that make no sense before any work is done."""
    if args.top < 1:
        raise VasError(f'--top must be >= 1, got {args.top}')
    if args.epochs < 1:
        raise VasError(f'--epochs must be >= 1, got {args.epochs}')
    if args.pool is not None and args.pool < args.top:
        raise VasError(f'--pool must be at least --top ({args.top}), got {args.pool}')
    if args.max_steps is not None and args.max_steps < 1:
        raise VasError(f'--max-steps must be >= 1, got {args.max_steps}')
    if args.batch_size < 1:
        raise VasError(f'--batch-size must be >= 1, got {args.batch_size}')


def run(args) -> int:
    from vas_ros.search.ensemble_select import select_from_store
    from vas_ros.training.ensemble_build import build_ensemble

    check_args(args)
    family, chosen = select_from_store(args.store, args.top, diverse=args.diverse,
                                       pool=args.pool)
    report = build_ensemble(family=family, candidates=chosen, store=args.store,
                            data=args.data, out=args.out, diverse=args.diverse,
                            flow=args.flow, epochs=args.epochs, max_steps=args.max_steps,
                            batch_size=args.batch_size, lr=args.lr, device=args.device,
                            seed=args.seed, cache_dir=args.cache_dir,
                            progress=not args.quiet)
    if args.json:
        print(json.dumps(report))
        return 0
    width = max(len(m['name']) for m in report['members'])
    print(f'{report["checkpoint"]}: {len(report["members"])} members, val n={report["n_val"]}')
    for m in report['members']:
        print(f'  {m["name"]:<{width}}  {"+".join(m["streams"]):<4}  '
              f'val top-1 {m["val_top1"]:.3f}')
    print(f'  {"ensemble":<{width}}        val top-1 {report["ensemble"]["val_top1"]:.3f}')
    return 0
