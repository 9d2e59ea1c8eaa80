"""`vas-ros edges`: learned AssembleNet edge weights against cutting each edge."""

from __future__ import annotations

from vas_ros.commands.eval import add_checkpoint_split_arguments, load_split


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        'edges', help='how much each learned AssembleNet connection matters',
        description='Load an AssembleNet CHECKPOINT, score ROOT/<split>, then cut each '
                    'weighted edge in turn (sigmoid weight 0) and report the loss and top-1 '
                    'change next to the learned weight, plus their Spearman rank '
                    'correlation: how well the weight the search prunes by predicts what an '
                    'edge is worth. The split is decoded once and held in memory.')
    add_checkpoint_split_arguments(parser, batch_size=16)
    parser.add_argument('--png', default=None, help='also plot weight vs loss increase here')
    parser.add_argument('--prune-threshold', type=float, default=0.2,
                        help='threshold line drawn in the PNG (default 0.2, the search\'s)')
    parser.add_argument('--json', action='store_true', help='print one JSON object')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    parser.set_defaults(func=run, outputs={'png': ('file', ())})


def run(args) -> int:
    import json

    from vas_ros.training.edge_ablation import edge_ablation

    loaded, dataset, device = load_split(args, family='assemblenet')
    result = edge_ablation(loaded.model, dataset, device=device, batch_size=args.batch_size,
                           streams=loaded.spec.streams,
                           progress=not args.quiet and not args.json)
    if args.png:
        from vas_ros.training.plots import plot_edge_ablation

        plot_edge_ablation(result, args.png, prune_threshold=args.prune_threshold)
    if args.json:
        print(json.dumps(result))
        return 0
    rho = result['spearman']
    print(f'{args.checkpoint} ({loaded.arch.name}) on {args.data} [{args.split}], '
          f'n={result["n"]}: loss {result["loss"]:.4f}, top-1 {result["top1"]:.4f}')
    print(f'{len(result["edges"])} weighted edges, Spearman rho(weight, loss increase) = '
          f'{"n/a" if rho is None else f"{rho:.3f}"}')
    print('  edge      weight   loss +   top-1 +')
    for e in result['edges']:
        print(f'  {e["src"]:>3}->{e["dst"]:<3}  {e["weight"]:6.3f}  {e["loss_increase"]:+.4f}  '
              f'{e["top1_change"]:+.4f}')
    return 0
