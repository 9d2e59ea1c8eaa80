"""Does proxy fitness rank candidates the way full training does? (issue 12, item 3)

Takes the trained candidates of one finished search, trains each of them fully (the
search's final-training recipe) and reports Kendall's tau between the full-training test
top-1 and each proxy:

- `proxy_search`: the fitness the search recorded (60 steps, inherited weights for
  mutants; this is what evolution selected on);
- `proxy_scratch`: the same proxy from random weights (no inheritance);
- `proxy_long`: a proxy 3x as long, from random weights;
- `proxy_promoted`: the search's longer training of its best third (where recorded);
- `proxy_scratch_negloss`, `proxy_long_negloss`: minus the validation loss of those two
  proxies (a continuous signal, where top-1 on a small validation split is coarse).

`--search-proxies-only` skips the extra proxies (only the full trainings run, for the
search's own and promoted fitness); `--parallel N` runs N full trainings at a time.

    .venv/bin/python bench/proxy_rank.py --store S.sqlite --data D --work W --out docs

Resumable: finished trainings are skipped on a rerun.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

VAS = [sys.executable, '-m', 'vas_ros']


def log(message: str) -> None:
    print(f'[{time.strftime("%H:%M:%S")}] {message}', flush=True)


def pick(records, n: int):
    """`n` trained candidates spread evenly over the proxy-fitness ranking."""
    done = sorted((r for r in records if r.status == 'done'), key=lambda r: -r.accuracy)
    if len(done) <= n:
        return done
    step = (len(done) - 1) / (n - 1)
    return [done[round(i * step)] for i in range(n)]


def proxy(rec, data: Path, work: Path, steps: int, batch: int, lr: float, tag: str) -> dict:
    from vas_ros.search.runner import evaluate_task

    cached = work / f'{tag}_{rec.id}.json'
    if cached.is_file():
        return json.loads(cached.read_text())
    result = evaluate_task({
        'id': rec.id, 'family': 'tvn', 'genome': rec.genome, 'data': str(data),
        'proxy_steps': steps, 'proxy_seconds': None, 'batch_size': batch, 'lr': lr,
        'device': 'cpu', 'seed': 1_000 + rec.id, 'cache_dir': str(work / 'cache'),
        'space_options': {}, 'init_weights': None, 'save_weights': None})
    if not result.get('ok'):
        raise RuntimeError(result.get('error'))
    cached.write_text(json.dumps(result))
    return result


def full(rec, data: Path, work: Path, epochs: int, batch: int, lr: float) -> dict:
    run = work / f'full_{rec.id}'
    genome = work / f'genome_{rec.id}.json'
    genome.write_text(json.dumps({'family': 'tvn', 'name': f'candidate_{rec.id}',
                                  'genome': rec.genome}))
    history_file = run / 'history.json'
    finished = history_file.is_file() and len(json.loads(history_file.read_text())) >= epochs
    if not finished:  # a killed run is trained again from the start
        log(f'full training of candidate {rec.id} ...')
        subprocess.run([*VAS, 'train', '--model', str(genome), '--data', str(data), '--out',
                        str(run), '--epochs', str(epochs), '--batch-size', str(batch),
                        '--lr', str(lr), '--seed', '0', '--quiet', '--overwrite',
                        '--cache-dir', str(work / 'cache')], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env={**os.environ, 'OMP_NUM_THREADS': '1'})
    cached = run / 'test.json'
    if not cached.is_file():
        out = subprocess.run([*VAS, 'eval', str(run / 'model.safetensors'), '--data',
                              str(data), '--split', 'test', '--json', '--quiet',
                              '--cache-dir', str(work / 'cache')], check=True,
                             capture_output=True, text=True).stdout
        cached.write_text(out[out.index('{'):])
    history = json.loads((run / 'history.json').read_text())
    return {'test_top1': json.loads(cached.read_text())['top1'],
            'val_top1': max(h['val_top1'] for h in history)}


def main() -> int:
    import torch
    from scipy.stats import kendalltau

    from vas_ros.search.store import SearchStore

    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--store', type=Path, required=True)
    p.add_argument('--data', type=Path, required=True)
    p.add_argument('--work', type=Path, required=True)
    p.add_argument('--out', type=Path, default=None)
    p.add_argument('--candidates', type=int, default=10)
    p.add_argument('--proxy-steps', type=int, default=60)
    p.add_argument('--batch-size', type=int, default=8)
    p.add_argument('--lr', type=float, default=2e-3)
    p.add_argument('--epochs', type=int, default=30)
    p.add_argument('--parallel', type=int, default=1)
    p.add_argument('--search-proxies-only', action='store_true')
    args = p.parse_args()
    torch.set_num_threads(1)
    args.work.mkdir(parents=True, exist_ok=True)
    with SearchStore.open(args.store) as store:
        chosen = pick(store.candidates(), args.candidates)

    def measure(rec) -> dict:
        log(f'candidate {rec.id} ({rec.origin}, proxy {rec.accuracy:.3f})')
        row = {'id': rec.id, 'origin': rec.origin, 'latency_ms': rec.latency_ms,
               'inherited': rec.inherited, 'proxy_search': rec.accuracy,
               'proxy_promoted': rec.accuracy_long,
               'stream': rec.genome.get('stream', 'rgb')}
        extra = () if args.search_proxies_only else (('scratch', args.proxy_steps),
                                                     ('long', 3 * args.proxy_steps))
        for tag, steps in extra:
            result = proxy(rec, args.data, args.work, steps, args.batch_size, args.lr, tag)
            row[f'proxy_{tag}'] = result['accuracy']
            # Minus the validation loss: higher is better, like accuracy.
            row[f'proxy_{tag}_negloss'] = (-result['val_loss'] if result.get('val_loss')
                                           is not None else None)
        row.update(full(rec, args.data, args.work, args.epochs, args.batch_size, args.lr))
        return row

    with ThreadPoolExecutor(max(1, args.parallel)) as pool:
        rows = list(pool.map(measure, chosen))
    taus = {}
    for key in ('proxy_search', 'proxy_scratch', 'proxy_long', 'proxy_promoted',
                'proxy_scratch_negloss', 'proxy_long_negloss'):
        pairs = [(r[key], r['test_top1']) for r in rows if r.get(key) is not None]
        if len(pairs) >= 3:
            tau = kendalltau(*zip(*pairs))
            taus[key] = {'tau': round(float(tau.statistic), 3),
                         'p': round(float(tau.pvalue), 3), 'n': len(pairs)}
    report = {'store': str(args.store), 'settings': {k: str(v) for k, v in vars(args).items()},
              'rows': rows, 'kendall_tau_vs_full_test_top1': taus}
    (args.work / 'proxy_rank.json').write_text(json.dumps(report, indent=2))
    if args.out:
        write_report(report, args.out)
    print(json.dumps(taus, indent=2))
    return 0


def write_report(report: dict, out: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from vas_ros.plotting import pyplot, save_figure

    out.mkdir(parents=True, exist_ok=True)
    (out / 'proxy_rank.json').write_text(json.dumps(report, indent=2))
    plt = pyplot()
    keys = [k for k in ('proxy_search', 'proxy_promoted', 'proxy_scratch', 'proxy_long',
                        'proxy_long_negloss')
            if k in report['kendall_tau_vs_full_test_top1']]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.3 * len(keys), 3.2), sharey=True)
    for ax, key in zip(axes if len(keys) > 1 else [axes], keys):
        xs = [r[key] for r in report['rows'] if r.get(key) is not None]
        ys = [r['test_top1'] for r in report['rows'] if r.get(key) is not None]
        ax.scatter(xs, ys, s=22)
        tau = report['kendall_tau_vs_full_test_top1'][key]
        ax.set_title(f'{key}: tau {tau["tau"]:+.2f} (n={tau["n"]})', fontsize=8)
        ax.set_xlabel('minus proxy val loss' if key.endswith('negloss') else
                      'proxy val top-1', fontsize=8)
    (axes[0] if len(keys) > 1 else axes).set_ylabel('test top-1 after full training',
                                                    fontsize=8)
    save_figure(plt, fig, out / 'proxy_rank.png')


if __name__ == '__main__':
    sys.exit(main())
