"""`vas-ros ensemble`: the best (or best diverse) architectures of a search as one model.

Reads a search store, picks K distinct finished candidates (best proxy accuracy first;
with --diverse, greedily the one farthest in genome distance from those already picked,
within the best `--pool`), trains each as a member (RGB, and with --flow also on optical
flow, as in the released two-stream EvaNet ensemble), then writes DIR/ensemble.safetensors:
one checkpoint that `load_checkpoint`, `vas-ros eval`, the inference engine and the ROS
node run like any other model (member logits averaged). Members are trained in
DIR/members/<name>/ and reused when the command is run again with the same settings.
"""

from __future__ import annotations

import json
from pathlib import Path

from vas_ros.errors import VasError

MEMBER_DONE_FILE = 'member.json'


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


# ------------------------------------------------------------------------------ selection


def _leaves(value, prefix='') -> dict:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            out.update(_leaves(item, f'{prefix}.{key}'))
        return out
    if isinstance(value, list):
        out = {f'{prefix}#len': len(value)}
        for i, item in enumerate(value):
            out.update(_leaves(item, f'{prefix}[{i}]'))
        return out
    return {prefix: value}


def genome_distance(family: str, a: dict, b: dict) -> float:
    """EvaNet's structural distance; for other families the number of differing leaves."""
    if family == 'evanet':
        from vas_ros.models.evanet import genome_distance as evanet_distance

        return evanet_distance(a, b)
    la, lb = _leaves(a), _leaves(b)
    return float(sum(la.get(k) != lb.get(k) for k in set(la) | set(lb)))


def select_candidates(records: list, k: int, family: str, *, diverse: bool = False,
                      pool: int | None = None) -> list:
    """K distinct finished candidates: the most accurate (ties: faster) or, with `diverse`,
    the best one and then repeatedly the one farthest (max of min genome distance) from
    those picked, among the best `pool` (ties: more accurate)."""
    done = [r for r in records if r.status == 'done' and r.accuracy is not None]
    done.sort(key=lambda r: (-r.accuracy, r.latency_ms if r.latency_ms is not None
                             else float('inf'), r.id))
    distinct, seen = [], set()
    for rec in done:
        if rec.genome_hash not in seen:
            seen.add(rec.genome_hash)
            distinct.append(rec)
    if len(distinct) < k:
        raise VasError(f'the store holds {len(distinct)} distinct trained candidate(s); '
                       f'--top {k} needs at least {k}')
    if not diverse:
        return distinct[:k]
    pool = max(k, pool if pool is not None else 3 * k)
    choices = distinct[:pool]
    picked = [choices.pop(0)]
    while len(picked) < k:
        def spread(rec):
            return min(genome_distance(family, rec.genome, p.genome) for p in picked)

        best = max(range(len(choices)), key=lambda i: (spread(choices[i]), -i))
        picked.append(choices.pop(best))
    return picked


# ------------------------------------------------------------------------------ training


def _member_streams(family: str, arch, flow: bool) -> list[tuple[object, list[str]]]:
    from vas_ros.models.registry import ModelArch, input_spec_for

    own = list(input_spec_for(arch).streams)
    if not flow:
        return [(arch, own)]
    if family != 'evanet':
        raise VasError(f'--flow switches a member to the optical-flow stream, which only '
                       f'EvaNet genomes support (this store is a {family} search)')
    pair = []
    for stream in ('rgb', 'flow'):
        genome = dict(arch.genome, stream=stream)
        pair.append((ModelArch(family, genome, f'{arch.name}_{stream}'), [stream]))
    return pair


def _train_member(arch, member_dir: Path, args, cache_dir: str) -> dict:
    """Train one member into member_dir (or reuse a finished run with the same settings)."""
    from vas_ros.training.trainer import train

    settings = {'arch': arch.to_dict(), 'epochs': args.epochs, 'max_steps': args.max_steps,
                'batch_size': args.batch_size, 'lr': args.lr, 'seed': args.seed,
                'data': str(Path(args.data).resolve())}
    marker = member_dir / MEMBER_DONE_FILE
    if marker.is_file() and (member_dir / 'model.safetensors').is_file():
        try:
            done = json.loads(marker.read_text())
        except (OSError, json.JSONDecodeError):
            done = {}
        if done.get('settings') == settings:
            return done
    result = train(arch, args.data, out=member_dir, epochs=args.epochs,
                   max_steps=args.max_steps, batch_size=args.batch_size, lr=args.lr,
                   device=args.device, seed=args.seed, progress=not args.quiet,
                   cache_dir=cache_dir)
    done = {'settings': settings, 'val_top1': result.val_top1, 'seconds': result.seconds,
            'steps': result.steps, 'checkpoint': str(result.checkpoint)}
    marker.write_text(json.dumps(done, indent=2, sort_keys=True))
    return done


def _plot(report: dict, path: Path) -> None:
    from vas_ros.plotting import pyplot, save_figure

    plt = pyplot()

    names = [m['name'] for m in report['members']] + ['ensemble']
    values = [m['val_top1'] for m in report['members']] + [report['ensemble']['val_top1']]
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(names)), 3.5))
    colours = ['tab:blue'] * len(report['members']) + ['tab:orange']
    ax.bar(range(len(names)), values, color=colours)
    ax.set_xticks(range(len(names)), names, rotation=30, ha='right', fontsize=8)
    ax.axhline(1 / len(report['classes']), color='grey', linestyle='--', linewidth=1,
               label='chance')
    ax.set_ylabel('val top-1')
    ax.set_ylim(0, 1)
    ax.legend(loc='upper right', fontsize=8)
    ax.set_title('members vs ensemble (mean logits)', fontsize=10)
    save_figure(plt, fig, path, dpi=100)


def build_ensemble(args) -> dict:
    """Select, train, assemble, save and evaluate; returns the report dict."""
    import torch

    from vas_ros.data.datasets import open_dataset
    from vas_ros.models.checkpoint import load_checkpoint, save_checkpoint
    from vas_ros.models.ensemble import make_genome
    from vas_ros.models.registry import ModelArch, build_model, input_spec_for
    from vas_ros.search.store import SearchStore
    from vas_ros.training.evaluate import evaluate

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
    out = Path(args.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    cache_dir = args.cache_dir or str(out / 'cache')
    with SearchStore.open(args.store) as store:
        family = store.header()['family']
        records = store.candidates()
    chosen = select_candidates(records, args.top, family, diverse=args.diverse, pool=args.pool)

    members = []  # (arch, streams, record, training summary)
    for rec in chosen:
        arch = ModelArch.from_dict({'family': family, 'genome': rec.genome,
                                    'name': f'{family}_{rec.genome_hash[:8]}'})
        for member_arch, streams in _member_streams(family, arch, args.flow):
            done = _train_member(member_arch, out / 'members' / member_arch.name, args,
                                 cache_dir)
            members.append((member_arch, streams, rec, done))

    genome = make_genome([(a, s) for a, s, _, _ in members])
    arch = ModelArch('ensemble', genome, f'{family}_ensemble_top{args.top}'
                                        f'{"_diverse" if args.diverse else ""}'
                                        f'{"_two_stream" if args.flow else ""}')
    spec = input_spec_for(arch)
    classes = None
    trained = []
    for member_arch, _, _, done in members:
        loaded = load_checkpoint(done['checkpoint'])
        if loaded.arch.genome != member_arch.genome:
            raise VasError(f'{done["checkpoint"]}: holds another architecture than member '
                           f'{member_arch.name}; delete {Path(done["checkpoint"]).parent}')
        if classes is not None and loaded.classes != classes:
            raise VasError(f'{done["checkpoint"]}: trained on classes {loaded.classes}, '
                           f'other members on {classes}')
        classes = loaded.classes
        trained.append(loaded.model)
    model = build_model(arch, len(classes))
    for slot, member in zip(model.members, trained):
        slot.load_state_dict(member.state_dict(), strict=True)
    model.eval()

    report_members = [{'name': a.name, 'streams': s, 'candidate_id': rec.id,
                       'genome_hash': rec.genome_hash, 'proxy_accuracy': rec.accuracy,
                       'latency_ms': rec.latency_ms, 'train_val_top1': done['val_top1']}
                      for a, s, rec, done in members]
    path = save_checkpoint(out / 'ensemble.safetensors', model, arch, classes, spec, extra={
        'source': 'vas-ros ensemble', 'store': str(Path(args.store).resolve()),
        'diverse': bool(args.diverse), 'members': report_members})

    dataset = open_dataset(args.data, 'val', spec, train=False, cache_dir=cache_dir,
                           classes=classes)
    with torch.no_grad():
        result = evaluate(model, dataset, device=args.device, batch_size=args.batch_size,
                          streams=spec.streams, progress=not args.quiet)
    for entry, scores in zip(report_members, result.get('members', [])):
        entry['val_top1'] = scores['top1']
    report = {'checkpoint': str(path), 'family': family, 'diverse': bool(args.diverse),
              'flow': bool(args.flow), 'classes': classes, 'n_val': result['n'],
              'members': report_members,
              'ensemble': {'val_top1': result['top1'], 'val_top5': result['top5']}}
    (out / 'report.json').write_text(json.dumps(report, indent=2, sort_keys=True))
    _plot(report, out / 'ensemble.png')
    return report


def run(args) -> int:
    report = build_ensemble(args)
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
