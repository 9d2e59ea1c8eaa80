"""A whole search, from settings to outputs, and what evaluating one candidate means.

Per proposal, in the driver (the machine the model will run on; see `backends.py`):
build the network, time it with `vas_ros.search.latency.measure_latency` and reject it if
the median exceeds the budget (a one-pass screen first rejects anything over twice the
budget without the full measurement), then count parameters and MACs. Accepted
candidates go to the backend, where `evaluate_task` proxy-trains them with
`vas_ros.training.trainer.train(max_steps=..., max_seconds=...)`; fitness is the best
validation top-1 of that short run.

After the search the best candidate (highest proxy accuracy; ties: lower latency) is
trained on the full training split (`final_epochs`, optionally capped by `final_steps`)
and `out` receives: best.safetensors, best_genome.json, candidates.csv, pareto.png and
summary.json. A cancelled search writes candidates.csv, pareto.png and summary.json for
what it has.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vas_ros.errors import VasError
from vas_ros.search.engine import (
    EngineConfig,
    Evolution,
    SearchCancelled,
    Verdict,
    best_of,
    default_tournament,
)
from vas_ros.search.space import genome_hash, get_space
from vas_ros.search.store import CandidateRecord, SearchStore

EVALUATE_TASK = 'vas_ros.search.runner:evaluate_task'
FINAL_TASK = 'vas_ros.search.runner:final_training_task'
SCREEN_FACTOR = 2.0


@dataclass
class SearchSettings:
    """Everything `vas-ros search` takes (see its --help for each field's meaning)."""

    family: str
    data: str
    budget_ms: float
    store: str
    out: str
    population: int = 8
    rounds: int = 16
    tournament: int | None = None
    seed: int = 0
    backend: str = 'local'
    address: str | None = None
    workers: int = 1
    threads: int | None = None
    batch: int | None = None
    device: str = 'cpu'
    proxy_steps: int | None = 30
    proxy_seconds: float | None = None
    proxy_batch_size: int = 8
    lr: float | None = None  # None: the trainer's default, for proxy and final training
    final_epochs: int = 3
    final_steps: int | None = None
    time_budget_s: float | None = None
    space_options: dict = field(default_factory=dict)
    initial: list[str] = field(default_factory=list)
    latency_threads: int | None = None
    latency_path: str = 'eager'
    latency_warmup: int = 3
    latency_repeats: int = 10
    max_rejections: int = 100
    progress_jsonl: str | None = None
    cache_dir: str | None = None
    progress: bool = True

    def check(self) -> None:
        if not self.budget_ms > 0:
            raise VasError(f'--latency-budget-ms must be > 0, got {self.budget_ms}')
        if self.proxy_steps is None and self.proxy_seconds is None:
            raise VasError('give --proxy-steps and/or --proxy-seconds (the proxy training '
                           'budget)')
        if self.proxy_steps is not None and self.proxy_steps < 1:
            raise VasError(f'--proxy-steps must be >= 1, got {self.proxy_steps}')
        if self.final_epochs < 1:
            raise VasError(f'--final-epochs must be >= 1, got {self.final_epochs}')
        if self.time_budget_s is not None and not self.time_budget_s > 0:
            raise VasError(f'--time-budget-s must be > 0, got {self.time_budget_s}')
        if self.latency_repeats < 1 or self.latency_warmup < 0:
            raise VasError('--latency-repeats must be >= 1 and warm-up >= 0')


@dataclass
class SearchReport:
    state: str  # done | time_budget | cancelled
    out: Path
    best: CandidateRecord | None
    summary: dict


# ------------------------------------------------------------------------ latency constraint
class LatencyConstraint:
    """Measured latency (median of `repeats`) must not exceed `budget_ms`."""

    def __init__(self, family: str, budget_ms: float, num_classes: int, *, device='cpu',
                 threads=None, path='eager', warmup=3, repeats=10):
        self.family = family
        self.budget_ms = float(budget_ms)
        self.num_classes = num_classes
        self.kwargs = {'device': device, 'threads': threads, 'path': path}
        self.warmup = warmup
        self.repeats = repeats
        self._seen: dict[str, Verdict] = {}

    def __call__(self, genome: dict) -> Verdict:
        digest = genome_hash(genome)
        if digest not in self._seen:
            self._seen[digest] = self._measure(genome)
        return self._seen[digest]

    def _measure(self, genome: dict) -> Verdict:
        import torch

        from vas_ros.models.introspect import count_macs, count_params
        from vas_ros.models.registry import ModelArch, build_model, input_spec_for
        from vas_ros.search.latency import measure_latency

        arch = ModelArch(self.family, genome, 'candidate')
        spec = input_spec_for(arch)
        model = build_model(arch, self.num_classes).eval()
        params = count_params(model)
        with torch.no_grad():
            screen = measure_latency(model, spec, warmup=1, repeats=1, **self.kwargs)
            if screen.median_ms > SCREEN_FACTOR * self.budget_ms:
                return Verdict(False, {'latency_ms': screen.median_ms, 'params': params},
                               f'latency {screen.median_ms:.1f} ms (one-pass screen) is over '
                               f'{SCREEN_FACTOR:g}x the {self.budget_ms:g} ms budget',
                               screen.median_ms)
            lat = measure_latency(model, spec, warmup=self.warmup, repeats=self.repeats,
                                  **self.kwargs)
        metrics = {'latency_ms': lat.median_ms, 'latency_p10_ms': lat.p10_ms,
                   'latency_p90_ms': lat.p90_ms, 'params': params}
        if lat.median_ms > self.budget_ms:
            return Verdict(False, metrics, f'latency {lat.median_ms:.1f} ms (median) is over '
                                           f'the {self.budget_ms:g} ms budget', lat.median_ms)
        metrics['macs'] = count_macs(model, spec)
        return Verdict(True, metrics, value=lat.median_ms)


# ------------------------------------------------------------------------------ worker tasks
def evaluate_task(payload: dict) -> dict:
    """Proxy-train one candidate (runs in a backend worker). Fitness = best val top-1."""
    from vas_ros.models.registry import ModelArch
    from vas_ros.training.trainer import train

    arch = ModelArch(payload['family'], payload['genome'], f'candidate-{payload["id"]}')
    result = train(arch, payload['data'], max_steps=payload['proxy_steps'],
                   max_seconds=payload['proxy_seconds'], batch_size=payload['batch_size'],
                   lr=payload['lr'],
                   device=payload['device'], seed=payload['seed'], progress=False,
                   cache_dir=payload['cache_dir'])
    next_genome = None
    space = get_space(payload['family']).with_options(payload['space_options'])
    if space.after_training is not None:
        changed = space.after_training(payload['genome'], result.model)
        if changed is not None and genome_hash(changed) != genome_hash(payload['genome']):
            next_genome = changed
    return {'ok': True, 'accuracy': float(result.val_top1), 'seconds': float(result.seconds),
            'steps': int(result.steps), 'next_genome': next_genome}


def final_training_task(payload: dict) -> dict:
    """Train the winner on the full training split; resumable in `payload["out"]`."""
    from vas_ros.models.registry import ModelArch
    from vas_ros.training.trainer import STATE_FILE, train

    arch = ModelArch(payload['family'], payload['genome'], payload['name'])
    out = Path(payload['out']) if payload['out'] else Path(tempfile.mkdtemp(prefix='vas-final-'))
    out.mkdir(parents=True, exist_ok=True)
    result = train(arch, payload['data'], out=out, epochs=payload['epochs'],
                   max_steps=payload['max_steps'], batch_size=payload['batch_size'],
                   lr=payload['lr'],
                   device=payload['device'], seed=payload['seed'],
                   progress=payload['progress'], resume=(out / STATE_FILE).is_file(),
                   cache_dir=payload['cache_dir'])
    if result.checkpoint is None:
        return {'ok': False, 'error': 'final training wrote no checkpoint'}
    reply = {'ok': True, 'val_top1': float(result.val_top1), 'seconds': float(result.seconds),
             'steps': int(result.steps), 'checkpoint': str(result.checkpoint),
             'history': result.history}
    if not payload['out']:  # remote worker: ship the file back
        reply['checkpoint_bytes'] = Path(result.checkpoint).read_bytes()
        shutil.rmtree(out, ignore_errors=True)
    return reply


# ---------------------------------------------------------------------------------- progress
class Progress:
    """tqdm in the terminal and, with `jsonl`, one JSON object per event for other programs
    (the ROS search node): state, round, candidates, best accuracy/latency, budget, output."""

    def __init__(self, settings: SearchSettings, total: int):
        self.settings = settings
        self.engine: Evolution | None = None
        self.jsonl = Path(settings.progress_jsonl) if settings.progress_jsonl else None
        if self.jsonl is not None:
            try:
                self.jsonl.parent.mkdir(parents=True, exist_ok=True)
                self.jsonl.open('a').close()
            except OSError as exc:
                raise VasError(f'--progress-jsonl {self.jsonl}: cannot write '
                               f'({exc.strerror})') from None
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=f'search {settings.family}', unit='cand',
                        disable=not settings.progress, dynamic_ncols=True)

    def emit(self, state: str, message: str = '', output: str | None = None, **extra) -> None:
        engine = self.engine
        best = engine.best if engine else None
        event = {
            'state': state,
            'round': engine.rounds_done if engine else 0,
            'rounds': self.settings.rounds,
            'candidates': engine.evaluated if engine else 0,
            'rejected': engine.rejected if engine else 0,
            'best_accuracy': best.accuracy if best else None,
            'best_latency_ms': best.latency_ms if best else None,
            'budget_ms': self.settings.budget_ms,
            'output': output,
            'message': message,
            'time': time.time(),
            **extra,
        }
        if self.jsonl is not None:
            with self.jsonl.open('a') as handle:
                handle.write(json.dumps(event) + '\n')
                handle.flush()
                os.fsync(handle.fileno())

    def on_event(self, kind: str, rec: CandidateRecord | None) -> None:
        if kind == 'start':
            self.emit('running', 'search started')
            return
        if kind in ('done', 'failed', 'replayed') and rec is not None and rec.status in (
                'done', 'failed'):
            self.bar.update(1)
        engine = self.engine
        if engine is not None and engine.best is not None:
            self.bar.set_postfix(best=f'{engine.best.accuracy:.3f}',
                                 ms=f'{engine.best.latency_ms:.1f}', rejected=engine.rejected)
        if kind == 'done':
            self.emit('running', f'candidate {rec.id} done: accuracy {rec.accuracy:.3f}, '
                                 f'{rec.latency_ms:.1f} ms')
        elif kind == 'failed':
            self.emit('running', f'candidate {rec.id} failed: {(rec.error or "")[:200]}')
        elif kind == 'rejected':
            self.emit('running', f'candidate {rec.id} rejected: {rec.error}')

    def close(self) -> None:
        self.bar.close()


# ----------------------------------------------------------------------------------- outputs
CSV_FIELDS = ('id', 'parent_id', 'origin', 'status', 'genome_hash', 'latency_ms',
              'latency_p10_ms', 'latency_p90_ms', 'params', 'macs', 'accuracy',
              'train_seconds', 'train_steps', 'error', 'genome')


def write_candidates_csv(records: list[CandidateRecord], path: Path) -> Path:
    tmp = path.with_suffix('.csv.tmp')
    with tmp.open('w', newline='') as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for rec in records:
            row = {k: v for k, v in asdict(rec).items() if k in CSV_FIELDS}
            row['genome'] = json.dumps(rec.genome, sort_keys=True)
            writer.writerow(row)
    os.replace(tmp, path)
    return path


def _write_json(path: Path, data) -> None:
    tmp = path.with_suffix(path.suffix + '.tmp')
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


def _summary(settings: SearchSettings, state: str, store: SearchStore, best, backend_info,
             final: dict | None) -> dict:
    return {
        'state': state,
        'family': settings.family,
        'data': str(Path(settings.data).resolve()),
        'budget_ms': settings.budget_ms,
        'device': settings.device,
        'population': settings.population,
        'rounds': settings.rounds,
        'store': str(store.path),
        'backend': backend_info,
        'counts': store.counts(),
        'search_seconds': sum((r['elapsed_s'] or 0) for r in store.runs()),
        'best': None if best is None else {
            'id': best.id, 'genome_hash': best.genome_hash, 'genome': best.genome,
            'proxy_accuracy': best.accuracy, 'latency_ms': best.latency_ms,
            'latency_p10_ms': best.latency_p10_ms, 'latency_p90_ms': best.latency_p90_ms,
            'params': best.params, 'macs': best.macs},
        'final_training': final,
        'outputs': {k: k for k in ('best.safetensors', 'best_genome.json', 'candidates.csv',
                                   'pareto.png', 'summary.json')},
    }


# --------------------------------------------------------------------------------- the search
def _load_seeds(settings: SearchSettings) -> list[dict]:
    from vas_ros.models.registry import resolve_arch

    seeds = []
    for ref in settings.initial:
        arch = resolve_arch(ref)
        if arch.family != settings.family:
            raise VasError(f'--initial {ref}: is a {arch.family} model, the search is over '
                           f'{settings.family}')
        seeds.append(arch.genome)
    return seeds


def run_search(settings: SearchSettings, *, should_stop=None,
               argv: list[str] | None = None) -> SearchReport:
    """Run (or resume) a search and write its outputs. Raises VasError on bad input,
    SearchCancelled never: a cancel returns a report with state 'cancelled'."""
    from vas_ros.data.datasets import list_classes
    from vas_ros.search.backends import make_backend
    from vas_ros.search.plots import plot_pareto

    settings.check()
    space = get_space(settings.family).with_options(settings.space_options or None)
    data = Path(settings.data).expanduser().resolve()
    classes = list_classes(data)
    out = Path(settings.out).expanduser().resolve()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VasError(f'--out {out}: cannot create ({exc.strerror})') from None
    seeds = _load_seeds(settings)
    batch = settings.batch or settings.workers
    tournament = settings.tournament or default_tournament(settings.population)
    config = EngineConfig(population=settings.population, rounds=settings.rounds,
                          tournament=tournament, seed=settings.seed, batch=batch,
                          max_rejections=settings.max_rejections,
                          time_budget_s=settings.time_budget_s)
    header = {
        'family': settings.family, 'data': str(data), 'budget_ms': settings.budget_ms,
        'seed': settings.seed,
        'config': {'population': settings.population, 'tournament': tournament,
                   'batch': batch, 'device': settings.device,
                   'proxy_steps': settings.proxy_steps, 'proxy_seconds': settings.proxy_seconds,
                   'proxy_batch_size': settings.proxy_batch_size, 'space': space.options,
                   **({'lr': settings.lr} if settings.lr is not None else {}),
                   'initial': [genome_hash(g) for g in seeds],
                   'latency': {'threads': settings.latency_threads,
                               'path': settings.latency_path,
                               'warmup': settings.latency_warmup,
                               'repeats': settings.latency_repeats}},
    }
    progress = Progress(settings, settings.population + settings.rounds)
    store = None
    backend = None
    try:
        store = SearchStore.open(settings.store, header)
        constraint = LatencyConstraint(
            settings.family, settings.budget_ms, len(classes), device=settings.device,
            threads=settings.latency_threads, path=settings.latency_path,
            warmup=settings.latency_warmup, repeats=settings.latency_repeats)
        backend = make_backend(settings.backend, workers=settings.workers,
                               threads=settings.threads, address=settings.address)
        cache_dir = settings.cache_dir or str(out / 'cache')

        def evaluate(records, should_stop_fn):
            tasks = [(rec.id, {
                'id': rec.id, 'family': settings.family, 'genome': rec.genome,
                'data': str(data), 'proxy_steps': settings.proxy_steps,
                'proxy_seconds': settings.proxy_seconds,
                'batch_size': settings.proxy_batch_size, 'lr': settings.lr,
                'device': settings.device,
                'seed': (settings.seed * 1_000_003 + rec.id) % 2**31,
                'cache_dir': cache_dir, 'space_options': space.options}) for rec in records]
            by_id = {rec.id: rec for rec in records}
            for key, result in backend.map_unordered(EVALUATE_TASK, tasks, should_stop_fn):
                yield by_id[key], result

        engine = Evolution(space, store, config, evaluate, constraints=[constraint],
                           seeds=seeds, on_event=progress.on_event,
                           should_stop=should_stop)
        progress.engine = engine
        try:
            result = engine.run(argv)
        except SearchCancelled:
            return _finish_cancelled(settings, store, engine, progress, backend, out,
                                     plot_pareto)
        best = result.best or best_of(store.candidates())
        if best is None:
            raise VasError('the search ended without any successfully trained candidate; '
                           'see the "error" column of candidates.csv')
        write_candidates_csv(store.candidates(), out / 'candidates.csv')
        plot_pareto(store.candidates(), settings.budget_ms, out / 'pareto.png', best_id=best.id,
                    title=f'{settings.family} search: accuracy vs latency')
        progress.emit('running', f'training the best candidate {best.id} on the full '
                                 f'training split')
        final = _final_training(settings, backend, best, data, out, cache_dir, should_stop)
        if final is None:
            return _finish_cancelled(settings, store, engine, progress, backend, out,
                                     plot_pareto)
        name = f'{settings.family}_search_best'
        from vas_ros.models.registry import ModelArch

        if settings.family == 'assemblenet':  # the best graph with its learned edge weights
            from vas_ros.search.graph_plot import plot_checkpoint_graph

            plot_checkpoint_graph(final['checkpoint'], out / 'best_graph.png')

        (out / 'best_genome.json').write_text(
            ModelArch(settings.family, best.genome, name).to_json() + '\n')
        summary = _summary(settings, result.state, store, best, backend.describe(), final)
        _write_json(out / 'summary.json', summary)
        progress.emit('done', f'search {result.state}: best candidate {best.id} '
                              f'(proxy accuracy {best.accuracy:.3f}, {best.latency_ms:.1f} ms); '
                              f'final val top-1 {final["val_top1"]:.3f}', output=str(out))
        return SearchReport(result.state, out, best, summary)
    except VasError as exc:
        progress.emit('failed', str(exc))
        raise
    except Exception as exc:
        progress.emit('failed', f'{type(exc).__name__}: {exc}')
        raise
    finally:
        progress.close()
        if backend is not None:
            backend.close()
        if store is not None:
            store.close()


def _final_training(settings, backend, best, data, out, cache_dir, should_stop) -> dict | None:
    local = settings.backend == 'local'
    payload = {'family': settings.family, 'genome': best.genome,
               'name': f'{settings.family}_search_best', 'data': str(data),
               'out': str(out / f'final_{best.genome_hash}') if local else None,
               'epochs': settings.final_epochs, 'max_steps': settings.final_steps,
               'batch_size': settings.proxy_batch_size, 'lr': settings.lr,
               'device': settings.device, 'seed': settings.seed,
               'progress': settings.progress, 'cache_dir': cache_dir}
    try:
        results = list(backend.map_unordered(FINAL_TASK, [('final', payload)],
                                             should_stop or (lambda: False)))
    except SearchCancelled:
        return None
    reply = results[0][1]
    if not reply.get('ok'):
        raise VasError(f'final training of candidate {best.id} failed: {reply.get("error")}')
    target = out / 'best.safetensors'
    if 'checkpoint_bytes' in reply:
        tmp = target.with_suffix('.tmp')
        tmp.write_bytes(reply.pop('checkpoint_bytes'))
        os.replace(tmp, target)
    else:
        shutil.copyfile(reply['checkpoint'], target.with_suffix('.tmp'))
        os.replace(target.with_suffix('.tmp'), target)
    reply['checkpoint'] = str(target)
    return reply


def _finish_cancelled(settings, store, engine, progress, backend, out, plot_pareto):
    records = store.candidates()
    best = best_of(records)
    write_candidates_csv(records, out / 'candidates.csv')
    if any(r.latency_ms is not None for r in records):
        plot_pareto(records, settings.budget_ms, out / 'pareto.png',
                    best_id=best.id if best else None,
                    title=f'{settings.family} search (cancelled): accuracy vs latency')
    summary = _summary(settings, 'cancelled', store, best, backend.describe(), None)
    _write_json(out / 'summary.json', summary)
    progress.emit('cancelled', f'cancelled after {engine.evaluated} evaluated candidates; '
                               f'rerun with the same --store to resume', output=str(out))
    return SearchReport('cancelled', out, best, summary)
