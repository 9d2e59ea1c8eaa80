"""Issue 12's benchmark: does the on-robot TVN search beat the presets, the baselines and
random search under a small latency budget, and is it hardware-aware?

Run from the repository root with the project's venv (it calls `vas-ros` in child
processes, two at a time on a 2-core machine, each with one torch thread):

    .venv/bin/python bench/search_budget.py --work /tmp/sb --budget-ms 10 \
        --time-budget-s 1800 --seeds 0 1 2

Every step is resumable: rerun the same command and finished steps are skipped (a killed
search resumes from its store). Writes WORK/report.json, and with --out DIR
DIR/search_budget.{json,md,png}.

Protocol (one data set, test split never used by any choice):
- data: `vas-ros data synth --per-class 24 --splits train,val,test`;
- per seed: `vas-ros search tvn --strategy evolution` and `--strategy random`, same
  budget, time budget, seed genome (tvn_tiny), proxy and final training, latency timed
  with 1 thread;
- baselines trained with the search's final-training recipe: tvn_tiny, evanet_tiny,
  assemblenet_tiny, and frame2d at each searched model's input size;
- test top-1 of every model (`vas-ros eval --split test`), latency re-measured in one
  quiet sequential pass (`vas-ros latency --threads 1`), optical flow included for models
  that take it (the TVN space draws RGB or flow input; assemblenet_tiny takes both);
- hardware awareness: seed 0's evolution search run as a pair, timed with
  `--latency-threads 1` and with 2 (one after the other, so that the 2-thread timing has
  both cores), and both winners re-measured with 1 and with 2 threads.

`--extra-only REPORT` runs only the hardware pair and frame2d at the evolution winners'
input sizes taken from an earlier report (search_budget_extra.{json,md}).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

VAS = [sys.executable, '-m', 'vas_ros']
BASELINES = ('tvn_tiny', 'evanet_tiny', 'assemblenet_tiny')


def log(message: str) -> None:
    print(f'[{time.strftime("%H:%M:%S")}] {message}', flush=True)


def run(cmd: list[str], log_path: Path, threads: int = 1) -> None:
    env = {**os.environ, 'OMP_NUM_THREADS': str(threads), 'MKL_NUM_THREADS': str(threads)}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open('a') as handle:
        handle.write(f'$ {" ".join(cmd)}\n')
        handle.flush()
        result = subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT, env=env)
    if result.returncode != 0:
        raise RuntimeError(f'{" ".join(cmd[:5])}... failed ({result.returncode}); '
                           f'see {log_path}')


def json_out(cmd: list[str], threads: int = 1) -> dict:
    env = {**os.environ, 'OMP_NUM_THREADS': str(threads)}
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out[out.index('{'):])


def search_job(args, data: Path, work: Path, strategy: str, seed: int,
               latency_threads: int = 1, time_budget_s: float | None = None,
               prefix: str | None = None, extra: tuple[str, ...] = ()) -> Path:
    name = f'{prefix or strategy}_s{seed}' + (f'_t{latency_threads}' if latency_threads != 1
                                               else '')
    out = work / 'search' / name
    if (out / 'summary.json').is_file() and (out / 'best.safetensors').is_file():
        return out
    log(f'search {name} ...')
    cmd = [*VAS, 'search', 'tvn', '--data', str(data), '--latency-budget-ms',
           str(args.budget_ms), '--time-budget-s', str(time_budget_s or args.time_budget_s),
           '--population', str(args.population), '--rounds', str(args.rounds),
           '--strategy', strategy, '--seed', str(seed), '--store',
           str(work / 'search' / f'{name}.sqlite'), '--out', str(out),
           '--proxy-steps', str(args.proxy_steps), '--batch-size', str(args.batch_size),
           '--lr', str(args.lr), '--final-epochs', str(args.final_epochs),
           '--threads', '1', '--latency-threads', str(latency_threads), '--quiet',
           *[arg for ref in args.initial for arg in ('--initial', ref)],
           '--cache-dir', str(work / 'cache'), *extra]
    run(cmd, work / 'logs' / f'search_{name}.log', threads=latency_threads)
    log(f'search {name} done')
    return out


def train_job(args, data: Path, work: Path, model: str, name: str) -> Path:
    out = work / 'train' / name
    history = out / 'history.json'
    if history.is_file() and len(json.loads(history.read_text())) >= args.final_epochs:
        return out  # finished; a killed run is trained again from the start
    log(f'train {name} ...')
    run([*VAS, 'train', '--model', model, '--data', str(data), '--out', str(out),
         '--epochs', str(args.final_epochs), '--batch-size', str(args.batch_size),
         '--lr', str(args.lr), '--seed', '0', '--quiet', '--overwrite',
         '--cache-dir', str(work / 'cache')], work / 'logs' / f'train_{name}.log')
    return out


def test_top1(checkpoint: Path, data: Path, work: Path) -> float:
    cached = checkpoint.with_suffix('.test.json')
    if cached.is_file():
        return json.loads(cached.read_text())['top1']
    result = json_out([*VAS, 'eval', str(checkpoint), '--data', str(data), '--split', 'test',
                       '--json', '--quiet', '--cache-dir', str(work / 'cache')])
    cached.write_text(json.dumps(result))
    return result['top1']


def latency_ms(refs: list[str], threads: int, classes: int = 8) -> dict[str, float]:
    result = json_out([*VAS, 'latency', *refs, '--threads', str(threads), '--repeats', '30',
                       '--warmup', '5', '--classes', str(classes), '--json'], threads=threads)
    # Rows come in the order asked (names repeat: every search winner is tvn_search_best).
    # A model with a flow stream pays for its optical flow on the robot too (DIS, timed
    # separately by `vas-ros latency`), so flow counts against the budget.
    return {ref: row['median_ms'] + (row.get('flow_median_ms') or 0.0)
            for ref, row in zip(refs, result['results'])}


def frame2d_genome(best_genome: dict, path: Path) -> Path:
    path.write_text(json.dumps({'family': 'baseline', 'name': 'frame2d', 'genome': {
        'arch': 'frame2d', 'frames': best_genome['frames'], 'size': best_genome['size'],
        'frame_stride': best_genome.get('frame_stride', 1)}}))
    return path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--work', type=Path, required=True)
    p.add_argument('--out', type=Path, default=None)
    p.add_argument('--budget-ms', type=float, default=10.0)
    p.add_argument('--time-budget-s', type=float, default=1800.0)
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--population', type=int, default=8)
    p.add_argument('--rounds', type=int, default=1000)
    p.add_argument('--proxy-steps', type=int, default=120)
    p.add_argument('--initial', nargs='*', default=['tvn_tiny'],
                   help='seed genomes of every search, evolution and random alike')
    p.add_argument('--batch-size', type=int, default=8)
    p.add_argument('--lr', type=float, default=2e-3)
    p.add_argument('--final-epochs', type=int, default=30)
    p.add_argument('--per-class', type=int, default=24)
    p.add_argument('--parallel', type=int, default=2)
    p.add_argument('--skip-hardware', action='store_true')
    p.add_argument('--skip-frame2d', action='store_true',
                   help='no frame2d baselines at the winners\' input sizes')
    p.add_argument('--hardware-time-budget-s', type=float, default=None,
                   help='time budget of the two hardware-awareness searches (default: '
                        '--time-budget-s); both run alone, one after the other')
    p.add_argument('--hardware-short', action='store_true',
                   help='hardware-awareness searches pick their winner on proxy fitness and '
                        'train it 24 steps: their architecture and latency are what they '
                        'are for, not their accuracy')
    p.add_argument('--extra-name', default='search_budget_extra',
                   help='file name (no suffix) of the --extra-only report under --out')
    p.add_argument('--extra-only', type=Path, default=None, metavar='REPORT',
                   help='skip the main searches: run only the hardware pair and frame2d at '
                        'the input size of each evolution winner in REPORT (an earlier '
                        'search_budget.json); writes search_budget_extra.{json,md}')
    args = p.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    data = work / 'data'
    if not (data / 'test').is_dir():
        log('data synth ...')
        run([*VAS, 'data', 'synth', str(data), '--per-class', str(args.per_class), '--seed',
             '7', '--splits', 'train,val,test', '--no-progress'], work / 'logs' / 'data.log')

    if args.extra_only:
        return extra_only(args, data, work)
    jobs = [(strategy, seed) for seed in args.seeds for strategy in ('evolution', 'random')]
    with ThreadPoolExecutor(args.parallel) as pool:
        searches = dict(zip(jobs, pool.map(
            lambda job: search_job(args, data, work, *job), jobs)))
        best_genomes = {job: json.loads((out / 'best_genome.json').read_text())['genome']
                        for job, out in searches.items()}
        trains = [(name, name) for name in BASELINES]
        for (strategy, seed), genome in best_genomes.items():
            if args.skip_frame2d:
                break
            ref = frame2d_genome(genome, work / f'frame2d_{strategy}_s{seed}.json')
            trains.append((str(ref), f'frame2d_{strategy}_s{seed}'))
        baseline_runs = dict(zip([n for _, n in trains], pool.map(
            lambda t: train_job(args, data, work, *t), trains)))

    hardware = None if args.skip_hardware else hardware_pair(args, data, work)

    log('evaluating on the test split and re-measuring latency ...')
    rows = []
    for (strategy, seed), out in searches.items():
        summary = json.loads((out / 'summary.json').read_text())
        rows.append({'model': f'search_{strategy}_s{seed}', 'kind': strategy, 'seed': seed,
                     'checkpoint': str(out / 'best.safetensors'),
                     'test_top1': test_top1(out / 'best.safetensors', data, work),
                     'origin': summary['best']['origin'],
                     'searched_latency_ms': summary['best']['latency_ms'],
                     'screen': summary['screen'], 'counts': summary['counts'],
                     'peak_rss_mb': summary['peak_rss_mb'],
                     'genome': summary['best']['genome']})
    for name, out in baseline_runs.items():
        rows.append({'model': name, 'kind': name.split('_s')[0] if name.startswith('frame2d')
                     else name, 'checkpoint': str(out / 'model.safetensors'),
                     'test_top1': test_top1(out / 'model.safetensors', data, work)})
    medians = latency_ms([r['checkpoint'] for r in rows], 1)
    for row in rows:
        row['latency_ms_1_thread'] = medians.get(row['checkpoint'])
        row['fits_budget'] = (row['latency_ms_1_thread'] is not None
                              and row['latency_ms_1_thread'] <= args.budget_ms)

    groups: dict[str, list[float]] = {}
    for row in rows:
        groups.setdefault(row['kind'], []).append(row['test_top1'])
    table = {kind: {'mean': statistics.mean(v), 'sd': statistics.stdev(v) if len(v) > 1
                    else 0.0, 'n': len(v)} for kind, v in groups.items()}
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from vas_ros.commands.bench import machine

    report = {'settings': vars(args) | {'work': str(work), 'out': str(args.out)},
              'cpu': machine()['cpu'], 'rows': rows, 'by_kind': table, 'hardware': hardware}
    (work / 'report.json').write_text(json.dumps(report, indent=2, default=str))
    if args.out:
        write_report(report, args.out)
    log(f'report: {work / "report.json"}')
    return 0


def hardware_pair(args, data: Path, work: Path) -> dict:
    """Seed 0's evolution search timed with 1 and with 2 threads (one after the other, so
    the 2-thread timing has both cores); each winner re-measured with 1 and 2 threads."""
    budget = args.hardware_time_budget_s
    extra = ('--promote-steps', '0', '--final-steps', '24') if args.hardware_short else ()
    outs = {threads: search_job(args, data, work, 'evolution', args.seeds[0],
                                latency_threads=threads, time_budget_s=budget,
                                prefix='hardware', extra=extra) for threads in (1, 2)}
    pair = {}
    for threads, out in outs.items():
        ckpt = str(out / 'best.safetensors')
        summary = json.loads((out / 'summary.json').read_text())
        pair[f'threads_{threads}'] = {
            'genome': summary['best']['genome'],
            'searched_latency_ms': summary['best']['latency_ms'],
            'counts': summary['counts'],
            'confirmation': summary.get('latency_confirmation'),
            'latency_ms': {f'{t}_thread{"s" if t > 1 else ""}': latency_ms([ckpt], t)[ckpt]
                           for t in (1, 2)}}
    pair['same_architecture'] = pair['threads_1']['genome'] == pair['threads_2']['genome']
    pair['each_meets_own_budget'] = (
        pair['threads_1']['latency_ms']['1_thread'] <= args.budget_ms
        and pair['threads_2']['latency_ms']['2_threads'] <= args.budget_ms)
    return pair


def extra_only(args, data: Path, work: Path) -> int:
    """The hardware pair and frame2d at the searched input sizes of an earlier report."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from vas_ros.commands.bench import machine

    earlier = json.loads(args.extra_only.read_text())
    hardware = None if args.skip_hardware else hardware_pair(args, data, work)
    rows = []
    for row in [] if args.skip_frame2d else earlier['rows']:
        if row.get('kind') != 'evolution':
            continue
        name = f'frame2d_evolution_s{row["seed"]}'
        ref = frame2d_genome(row['genome'], work / f'{name}.json')
        out = train_job(args, data, work, str(ref), name)
        ckpt = str(out / 'model.safetensors')
        rows.append({'model': name, 'kind': 'frame2d', 'checkpoint': ckpt,
                     'input': {k: row['genome'][k] for k in ('frames', 'size',
                                                             'frame_stride')},
                     'test_top1': test_top1(out / 'model.safetensors', data, work),
                     'searched_test_top1': row['test_top1']})
    if rows:
        medians = latency_ms([r['checkpoint'] for r in rows], 1)
        for row in rows:
            row['latency_ms_1_thread'] = medians[row['checkpoint']]
    report = {'settings': vars(args) | {'work': str(work), 'out': str(args.out),
                                        'extra_only': str(args.extra_only)},
              'cpu': machine()['cpu'], 'frame2d': rows, 'hardware': hardware}
    (work / 'report_extra.json').write_text(json.dumps(report, indent=2, default=str))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f'{args.extra_name}.json').write_text(
            json.dumps(report, indent=2, default=str))
        lines = [f'# Hardware pair and frame2d baselines ({report["cpu"]})', '']
        if hardware:
            lines += ['| search timed with | winner (frames, size, stream, filters) | '
                      'winner latency 1 thread | 2 threads | searched | confirmed |',
                      '|---|---|---|---|---|---|']
            for key in ('threads_1', 'threads_2'):
                h, g = hardware[key], hardware[key]['genome']
                tried = (h.get('confirmation') or {}).get('tried') or []
                confirmed = ', '.join(f'{t["confirmed_ms"]:.2f}' for t in tried) or '-'
                lines.append(f'| {key[-1]} thread(s) | {g["frames"]}, {g["size"]}, '
                             f'{g.get("stream", "rgb")}, '
                             f'{"/".join(str(b["filters"]) for b in g["blocks"])} | '
                             f'{h["latency_ms"]["1_thread"]:.2f} | '
                             f'{h["latency_ms"]["2_threads"]:.2f} | '
                             f'{h["searched_latency_ms"]:.2f} | {confirmed} |')
            lines += ['', f'same architecture: {hardware["same_architecture"]}; each meets '
                      f'its own budget: {hardware["each_meets_own_budget"]}', '']
        if rows:
            lines += ['| model | input (frames, size, stride) | test top-1 | latency ms | '
                      'searched model test top-1 |', '|---|---|---|---|---|']
            for r in rows:
                i = r['input']
                lines.append(f'| {r["model"]} | {i["frames"]}, {i["size"]}, '
                             f'{i["frame_stride"]} | {r["test_top1"]:.3f} | '
                             f'{r["latency_ms_1_thread"]:.2f} | {r["searched_test_top1"]:.3f} |')
        (args.out / f'{args.extra_name}.md').write_text('\n'.join(lines) + '\n')
    log(f'report: {work / "report_extra.json"}')
    return 0


def write_report(report: dict, out: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from vas_ros.plotting import pyplot, save_figure

    out.mkdir(parents=True, exist_ok=True)
    (out / 'search_budget.json').write_text(json.dumps(report, indent=2, default=str))
    budget = report['settings']['budget_ms']
    lines = [f'# Search under a {budget:g} ms budget ({report["cpu"]})', '',
             '| model | test top-1 | latency ms (1 thread) | fits | origin |',
             '|---|---|---|---|---|']
    for row in report['rows']:
        lat = row['latency_ms_1_thread']
        lines.append(f'| {row["model"]} | {row["test_top1"]:.3f} | '
                     f'{"-" if lat is None else f"{lat:.2f}"} | '
                     f'{"yes" if row["fits_budget"] else "no"} | {row.get("origin", "")} |')
    lines += ['', '| kind | mean | sd | n |', '|---|---|---|---|']
    for kind, stats in sorted(report['by_kind'].items(), key=lambda kv: -kv[1]['mean']):
        lines.append(f'| {kind} | {stats["mean"]:.3f} | {stats["sd"]:.3f} | {stats["n"]} |')
    (out / 'search_budget.md').write_text('\n'.join(lines) + '\n')

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for row in report['rows']:
        lat = row['latency_ms_1_thread'] or float('nan')
        marker = {'evolution': 'o', 'random': 's'}.get(row['kind'], '^')
        ax.scatter(lat, row['test_top1'], marker=marker, s=40,
                   label=row['kind'] if row['kind'] in ('evolution', 'random') else
                   row['model'])
    ax.axvline(budget, color='grey', ls='--', lw=1)
    ax.set_xscale('log')
    ax.set_xlabel('latency per clip, ms (1 thread, median)')
    ax.set_ylabel('test top-1')
    ax.set_title(f'TVN search under {budget:g} ms vs baselines ({report["cpu"][:40]})',
                 fontsize=9)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=7, loc='best')
    save_figure(plt, fig, out / 'search_budget.png')


if __name__ == '__main__':
    sys.exit(main())
