"""`vas-ros search {tvn,evanet,assemblenet}`: latency-constrained evolution on this machine."""

from __future__ import annotations

import json

FAMILIES = ('tvn', 'evanet', 'assemblenet')
EXIT_CANCELLED = 3


def _space_option(text: str) -> tuple[str, object]:
    import argparse

    key, sep, value = text.partition('=')
    if not sep or not key:
        raise argparse.ArgumentTypeError(f'expected KEY=VALUE, got {text!r}')
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def _add_arguments(p) -> None:
    p.add_argument('--data', required=True,
                   help='data set root (train/ and val/ splits), CSV or bag source')
    p.add_argument('--latency-budget-ms', type=float, required=True, dest='budget_ms',
                   help='reject candidates whose median batch-1 clip latency, measured here, '
                        'exceeds this')
    p.add_argument('--population', type=int, default=8, help='population size P (default 8)')
    p.add_argument('--rounds', type=int, default=24,
                   help='children evaluated after the initial population (default 24); the '
                        'search evaluates P + R candidates in all')
    p.add_argument('--store', required=True,
                   help='SQLite file recording every candidate; rerun with the same file to '
                        'resume')
    p.add_argument('--out', required=True, help='folder for best.safetensors, '
                   'best_genome.json, candidates.csv, pareto.png, summary.json')
    p.add_argument('--tournament', type=int, default=None,
                   help='tournament size S (default: a quarter of P, at least 2)')
    p.add_argument('--time-budget-s', type=float, default=3600.0,
                   help='stop proposing after this many seconds of search (summed over '
                        'resumed runs; default 3600, 0 = no limit); the best so far are '
                        'then trained longer, and the winner fully, and written')
    p.add_argument('--backend', choices=('local', 'ray'), default='local',
                   help='local process pool (default) or Ray')
    p.add_argument('--address', default=None,
                   help='Ray cluster address (e.g. auto, ray://head:10001); default: start a '
                        'local Ray instance')
    p.add_argument('--workers', type=int, default=1,
                   help='parallel evaluations (default 1); also the batch size of the search')
    p.add_argument('--threads', type=int, default=None,
                   help='torch threads per worker (default: CPUs / workers locally, 1 on Ray)')
    p.add_argument('--device', default='cpu',
                   help='device for latency and training: cpu, cuda, cuda:N (default cpu)')
    p.add_argument('--proxy-steps', type=int, default=120,
                   help='optimizer steps of proxy training per candidate (default 120)')
    p.add_argument('--proxy-seconds', type=float, default=None,
                   help='also cap proxy training at this many seconds (breaks exact '
                        'reproducibility)')
    p.add_argument('--batch-size', type=int, default=8, dest='proxy_batch_size',
                   help='training batch size (default 8)')
    p.add_argument('--lr', type=float, default=2e-3,
                   help='learning rate of proxy and final training (default 2e-3)')
    p.add_argument('--final-epochs', type=int, default=30,
                   help='epochs to train the best candidate on the full training split '
                        '(default 30; --final-steps caps it on large data sets)')
    p.add_argument('--final-steps', type=int, default=None,
                   help='cap the final training at this many optimizer steps')
    p.add_argument('--seed', type=int, default=0, help='random seed (default 0)')
    p.add_argument('--space-option', action='append', type=_space_option, default=[],
                   metavar='KEY=VALUE', dest='space_options',
                   help='search-space option, VALUE as JSON (repeatable), e.g. '
                        'max_filters=64 sizes=[32,48]; see docs/search.md')
    p.add_argument('--initial', action='append', default=[], metavar='MODEL',
                   help='preset or genome JSON placed in the initial population (repeatable)')
    p.add_argument('--latency-threads', type=int, default=None,
                   help='torch threads when timing (default: torch default); use what the '
                        'robot will use')
    p.add_argument('--latency-path', default='eager',
                   help='inference path timed (eager, channels_last, ...; default eager)')
    p.add_argument('--latency-repeats', type=int, default=10,
                   help='timed forward passes per candidate (median reported; default 10)')
    p.add_argument('--max-rejections', type=int, default=100,
                   help='give up after this many over-budget proposals in a row (default 100)')
    p.add_argument('--cache-dir', default=None,
                   help='decoded-clip cache (default OUT/cache)')
    p.add_argument('--progress-jsonl', default=None, metavar='FILE',
                   help='append one JSON object per event (state, round, candidates, '
                        'best_accuracy, best_latency_ms, budget_ms, output, message)')
    p.add_argument('--strategy', choices=('evolution', 'random'), default='evolution',
                   help='evolution (aging evolution, default) or random: the same search '
                        'with mutation off, the baseline a NAS result has to beat')
    p.add_argument('--max-memory-mb', type=float, default=None,
                   help='refuse candidates whose proxy training is estimated to need more '
                        'memory (default: half of what the search device has available '
                        'at start); refusals are recorded, never allocated')
    p.add_argument('--no-screen', action='store_false', dest='screen',
                   help='propose genomes without predicting their latency first (by '
                        'default draws predicted over the budget are redrawn)')
    p.add_argument('--no-inherit', action='store_false', dest='inherit',
                   help="start every child from random weights (by default it starts from "
                        "its parent's trained tensors where the shapes fit)")
    p.add_argument('--promote-fraction', type=float, default=1 / 3,
                   help='share of the trained candidates that get the longer training '
                        'before the winner is chosen (default 1/3)')
    from vas_ros.search.runner import DEFAULT_PROMOTE_MAX

    p.add_argument('--promote-max', type=int, default=DEFAULT_PROMOTE_MAX,
                   help='at most this many candidates get the longer training '
                        f'(default {DEFAULT_PROMOTE_MAX})')
    p.add_argument('--promote-steps', type=int, default=None,
                   help='that longer training, from scratch, runs --proxy-steps plus this '
                        'many steps (default 2x --proxy-steps; 0: pick the winner on proxy '
                        'fitness alone)')
    p.add_argument('--no-confirm-latency', action='store_false', dest='confirm_latency',
                   help='train the winner without timing it again (by default it is '
                        're-measured and replaced by the next finalist that fits if it '
                        'now misses the budget)')
    p.add_argument('--quiet', action='store_true', help='no progress bar')


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        'search', help='evolve an architecture under a latency budget (tvn, evanet, '
                       'assemblenet)',
        description='Regularised evolution: candidates over the latency budget (measured on '
                    'this machine) are rejected before training; the rest are proxy-trained '
                    'on your data; the best is trained fully. SIGTERM/SIGINT cancel cleanly '
                    '(exit 3); rerunning with the same --store resumes.')
    families = parser.add_subparsers(dest='family', metavar='FAMILY', required=True)
    for family in FAMILIES:
        sub = families.add_parser(family, help=f'search the {family} space',
                                  description=f'Latency-constrained evolution of {family} '
                                              f'networks.')
        _add_arguments(sub)
        sub.set_defaults(func=run, outputs={'out': ('dir', ('data',)),
                                            'store': ('file', ('data',)),
                                            'progress_jsonl': ('file', ('data', 'store'))})


def run(args) -> int:
    import signal
    import sys

    from vas_ros.errors import VasError
    from vas_ros.search.runner import SearchSettings, run_search

    options: dict = {}
    for key, value in args.space_options:
        if key in options:
            raise VasError(f'--space-option {key} given twice')
        options[key] = value
    settings = SearchSettings(
        family=args.family, data=args.data, budget_ms=args.budget_ms, store=args.store,
        out=args.out, population=args.population, rounds=args.rounds,
        tournament=args.tournament, seed=args.seed, backend=args.backend,
        address=args.address, workers=args.workers, threads=args.threads,
        device=args.device, proxy_steps=args.proxy_steps, proxy_seconds=args.proxy_seconds,
        proxy_batch_size=args.proxy_batch_size, lr=args.lr, final_epochs=args.final_epochs,
        final_steps=args.final_steps,
        time_budget_s=args.time_budget_s if args.time_budget_s != 0 else None,
        space_options=options, initial=list(args.initial),
        latency_threads=args.latency_threads, latency_path=args.latency_path,
        latency_repeats=args.latency_repeats, max_rejections=args.max_rejections,
        progress_jsonl=args.progress_jsonl, cache_dir=args.cache_dir,
        progress=not args.quiet, strategy=args.strategy, max_memory_mb=args.max_memory_mb,
        screen=args.screen, inherit=args.inherit, promote_fraction=args.promote_fraction,
        promote_steps=args.promote_steps, promote_max=args.promote_max,
        confirm_latency=args.confirm_latency)
    stop = {'signal': None}

    def request_stop(signum, _frame):
        stop['signal'] = signal.Signals(signum).name
        print(f'vas-ros search: {stop["signal"]} received, stopping cleanly...',
              file=sys.stderr)

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        report = run_search(settings, should_stop=lambda: stop['signal'] is not None,
                            argv=sys.argv)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if report.state == 'cancelled':
        print(f'vas-ros search: cancelled; the store {settings.store} is consistent; rerun '
              f'the same command to resume', file=sys.stderr)
        return EXIT_CANCELLED
    best = report.summary['best']
    final = report.summary['final_training'] or {}
    confirmed = best.get('latency_confirmed_ms')
    timing = (f'{best["latency_ms"]:.1f} ms' if confirmed is None else
              f'{best["latency_ms"]:.1f} ms, {confirmed:.1f} ms re-measured')
    missed = (report.summary.get('latency_confirmation') or {}).get('met_budget') is False
    print(f'search {report.state}: best candidate {best["id"]} '
          f'({timing}, proxy top-1 {best["proxy_accuracy"]:.3f}, final '
          f'val top-1 {final.get("val_top1", float("nan")):.3f}) -> {report.out}')
    if missed:
        print(f'vas-ros search: warning: no finalist met the {settings.budget_ms:g} ms budget '
              f'when re-measured; the machine may be busier than during the search',
              file=sys.stderr)
    return 0
