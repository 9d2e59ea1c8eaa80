"""A whole search, from settings to outputs, and what evaluating one candidate means.

Per proposal, in the driver (the machine the model will run on; see `backends.py`):

1. *Screen* (`LatencyScreen`): each drawn genome is costed on the meta device and its
   latency predicted by a model fitted to the latencies measured so far
   (`cost_model.py`); draws predicted over the budget are redrawn, so few over-budget
   networks are ever built.
2. *Memory cap* (`MemoryConstraint`): the proxy training's peak memory at the proxy batch
   size is estimated from the genome (`vas_ros.models.footprint`) and a candidate over
   `max_memory_mb` is recorded as rejected, never allocated.
3. *Latency* (`LatencyConstraint`): build the network, time it with
   `vas_ros.search.latency.measure_latency` (plus its optical flow, for a model that
   takes flow) and reject it if the median exceeds the budget (a one-pass screen first
   rejects anything over twice the budget).

Accepted candidates go to the backend, where `evaluate_task` proxy-trains them with
`vas_ros.training.trainer.train(max_steps=..., max_seconds=...)`, starting from every
tensor of the parent's trained weights whose shape still fits (weight inheritance);
fitness is the best validation top-1 of that short run. After the search, the best third
(by proxy fitness) are trained longer from scratch (multi-fidelity) and the best of those
after the longer training wins. From scratch, because an inherited proxy fitness also
counts the training of the candidate's ancestors: a long lineage outscores a better
architecture trained once. The final training starts from scratch too, so the longer
rung compares the finalists as that training will treat them.

The winner is trained on the full training split (`final_epochs`, optionally capped by
`final_steps`) and `out` receives: best.safetensors, best_genome.json, candidates.csv,
pareto.png and summary.json. A cancelled search writes candidates.csv, pareto.png and
summary.json for what it has.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vas_ros.atomic import write_json
from vas_ros.errors import VasError
from vas_ros.peak_memory import peak_rss_mb
from vas_ros.search.engine import (
    STRATEGIES,
    EngineConfig,
    Evolution,
    SearchCancelled,
    Verdict,
    best_of,
    default_tournament,
)
from vas_ros.search.latency import percentile
from vas_ros.search.records import EvalResult, Status
from vas_ros.search.space import genome_hash, get_space
from vas_ros.search.store import CandidateRecord, SearchStore

EVALUATE_TASK = 'vas_ros.search.runner:evaluate_task'
FINAL_TASK = 'vas_ros.search.runner:final_training_task'
SCREEN_FACTOR = 2.0
# Without --max-memory-mb a candidate may use this share of the memory available on the
# search device when the search starts (the rest stays with the robot's other processes).
DEFAULT_MEMORY_SHARE = 0.5
# Proposals whose latency is judged by the first measurements; the screen's hit rate and
# the cost model's error are reported for the proposals after them.
WARMUP_MEASUREMENTS = 5
WEIGHTS_DIR = 'weights'
DEFAULT_PROMOTE_MAX = 6
# The winner's latency is measured again before it is trained and deployed: with at least
# this many timed passes, and down at most CONFIRM_TRIES finalists until one fits.
CONFIRM_REPEATS = 30
CONFIRM_TRIES = 8


@dataclass
class SearchSettings:
    """Everything `vas-ros search` takes (see its --help for each field's meaning)."""

    family: str
    data: str
    budget_ms: float
    store: str
    out: str
    population: int = 8
    rounds: int = 24
    tournament: int | None = None
    seed: int = 0
    backend: str = 'local'
    address: str | None = None
    workers: int = 1
    threads: int | None = None
    batch: int | None = None
    device: str = 'cpu'
    proxy_steps: int | None = 120
    proxy_seconds: float | None = None
    proxy_batch_size: int = 8
    lr: float | None = 2e-3  # proxy and final training; None: the trainer's default
    final_epochs: int = 30
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
    strategy: str = 'evolution'
    max_memory_mb: float | None = None  # None: DEFAULT_MEMORY_SHARE of what is available
    screen: bool = True
    inherit: bool = True
    promote_fraction: float = 1 / 3
    promote_steps: int | None = None  # None: 2x proxy_steps; 0: no longer training
    # At most this many are trained longer: a third of a long search's 100 candidates
    # would take longer than the search itself. Not part of the store's identity: it
    # bounds which candidates get a longer fitness, not what that fitness means.
    promote_max: int = DEFAULT_PROMOTE_MAX
    # Re-measure the winner (and, if it misses, the next finalists) before final training.
    # Not part of the store's identity: it changes which finalist wins, not any record.
    confirm_latency: bool = True

    def check(self) -> None:
        """Every setting checked before the store is opened, so a bad value never leaves
        a half-made store that a corrected rerun would refuse."""
        from vas_ros.training.devices import resolve_device, thread_count

        if self.strategy not in STRATEGIES:
            raise VasError(f'--strategy must be one of {", ".join(STRATEGIES)}, '
                           f'got {self.strategy!r}')
        if self.max_memory_mb is not None and not self.max_memory_mb > 0:
            raise VasError(f'--max-memory-mb must be > 0, got {self.max_memory_mb}')
        if not 0 <= self.promote_fraction <= 1:
            raise VasError(f'--promote-fraction must be in [0, 1], got '
                           f'{self.promote_fraction}')
        if self.promote_steps is not None and self.promote_steps < 0:
            raise VasError(f'--promote-steps must be >= 0, got {self.promote_steps}')
        if self.promote_max < 2:
            raise VasError(f'--promote-max must be >= 2, got {self.promote_max}')
        if self.proxy_batch_size < 1:
            raise VasError(f'--batch-size must be >= 1, got {self.proxy_batch_size}')
        if not (self.budget_ms > 0 and math.isfinite(self.budget_ms)):
            raise VasError(f'--latency-budget-ms must be a finite number > 0, got '
                           f'{self.budget_ms}')
        if self.proxy_steps is None and self.proxy_seconds is None:
            raise VasError('give --proxy-steps and/or --proxy-seconds (the proxy training '
                           'budget)')
        if self.proxy_steps is not None and self.proxy_steps < 1:
            raise VasError(f'--proxy-steps must be >= 1, got {self.proxy_steps}')
        if self.proxy_seconds is not None and not (self.proxy_seconds > 0
                                                   and math.isfinite(self.proxy_seconds)):
            raise VasError(f'--proxy-seconds must be a finite number > 0, got '
                           f'{self.proxy_seconds}')
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            raise VasError(f'--lr must be a finite number > 0, got {self.lr}')
        if self.final_epochs < 1:
            raise VasError(f'--final-epochs must be >= 1, got {self.final_epochs}')
        if self.final_steps is not None and self.final_steps < 1:
            raise VasError(f'--final-steps must be >= 1, got {self.final_steps}')
        if self.time_budget_s is not None and not self.time_budget_s > 0:
            raise VasError(f'--time-budget-s must be > 0 (or 0 for no limit), got '
                           f'{self.time_budget_s}')
        if self.latency_repeats < 1 or self.latency_warmup < 0:
            raise VasError('--latency-repeats must be >= 1 and warm-up >= 0')
        if self.tournament is not None and self.tournament < 1:
            raise VasError(f'--tournament must be >= 1, got {self.tournament}')
        if self.workers < 1:
            raise VasError(f'--workers must be >= 1, got {self.workers}')
        thread_count(self.threads, '--threads')
        thread_count(self.latency_threads, '--latency-threads')
        resolve_device(self.device)
        _check_paths(self)


def _check_paths(settings: SearchSettings) -> None:
    """`--out` must not be the store, nor inside the data set (a later run would read the
    outputs as classes), nor hold another search's results (they would be overwritten)."""
    out = Path(settings.out).expanduser().resolve()
    store = Path(settings.store).expanduser().resolve()
    data = Path(settings.data).expanduser().resolve()
    from vas_ros.data.holdout import refuse_holdout

    refuse_holdout(data, 'a search')
    if out == store:
        raise VasError(f'--out {out} is the --store path; give the outputs their own folder')
    if data.is_dir() and (out == data or data in out.parents):
        raise VasError(f'--out {out} is inside the data set {data}; a later run would read '
                       f'the outputs as classes. Put them elsewhere')
    owner = _out_owner(out)
    if owner is not None and owner != str(store):
        raise VasError(f'--out {out} holds the results of another search (store {owner}); '
                       f'choose another folder or that store')


OWNER_FILE = 'search_store.txt'


def _out_owner(out: Path) -> str | None:
    """The store whose search wrote `out`, or None for a new or empty folder."""
    marker = out / OWNER_FILE
    if marker.is_file():
        return marker.read_text().strip() or None
    summary = out / 'summary.json'
    if summary.is_file():
        try:
            return str(json.loads(summary.read_text()).get('store') or '') or None
        except (OSError, ValueError, AttributeError):
            return None
    return None


@dataclass
class SearchReport:
    state: str  # done | time_budget | cancelled
    out: Path
    best: CandidateRecord | None
    summary: dict


# ------------------------------------------------------------------------------- footprints
class Footprints:
    """`estimate_footprint` per genome, cached by hash (the screen, the memory cap and the
    latency constraint all ask about the same genomes)."""

    def __init__(self, family: str, num_classes: int):
        self.family = family
        self.num_classes = num_classes
        self._cache: dict[str, object] = {}

    def __call__(self, genome: dict, training: bool = True):
        """The footprint; `training=False` may skip the training-memory pass (the screen
        needs only the inference costs, and most screened draws are never trained)."""
        from vas_ros.models.footprint import estimate_footprint
        from vas_ros.models.registry import ModelArch

        digest = genome_hash(genome)
        found = self._cache.get(digest)
        if found is None or (training and found.train_activation_bytes_per_clip is None):
            if len(self._cache) > 20_000:
                self._cache.clear()
            found = self._cache[digest] = estimate_footprint(
                ModelArch(self.family, genome, 'candidate'), self.num_classes, training)
        return found


def default_memory_cap_mb(device: str) -> float:
    from vas_ros.models.footprint import available_memory_bytes

    return DEFAULT_MEMORY_SHARE * available_memory_bytes(device) / 2**20


class MemoryConstraint:
    """Proxy training's estimated peak memory (at `batch` clips) must fit `cap_mb`."""

    def __init__(self, footprints: Footprints, cap_mb: float, batch: int):
        from vas_ros.models.footprint import TRAINING_RUNTIME_BYTES

        floor_mb = TRAINING_RUNTIME_BYTES / 2**20
        if cap_mb <= floor_mb:
            raise VasError(f'--max-memory-mb {cap_mb:g} leaves no room: training any model '
                           f'takes more than {floor_mb:.0f} MB')
        self.footprints = footprints
        self.cap_mb = float(cap_mb)
        self.batch = int(batch)

    def __call__(self, genome: dict) -> Verdict:
        cost = self.footprints(genome)
        need_mb = cost.training_bytes(self.batch) / 2**20
        metrics = {'memory_mb': round(need_mb, 1), 'params': cost.params, 'macs': cost.macs}
        if need_mb > self.cap_mb:
            return Verdict(False, metrics,
                           f'memory: training at batch {self.batch} needs about '
                           f'{need_mb:,.0f} MB, over the {self.cap_mb:,.0f} MB cap '
                           f'(--max-memory-mb); not built')
        return Verdict(True, metrics)


class LatencyScreen:
    """Predicted latency / budget for a drawn genome, from a cost model fitted to the
    latencies measured so far (see `vas_ros.search.cost_model`)."""

    def __init__(self, footprints: Footprints, budget_ms: float):
        self.footprints = footprints
        self.budget_ms = float(budget_ms)
        self._fits: dict[int, object] = {}

    def model_for(self, history) -> object:
        from vas_ros.search.cost_model import features, fit_latency_model

        samples = [(features(self.footprints(r.genome, training=False)), r.latency_ms)
                   for r in history if r.latency_ms is not None]
        key = len(samples)
        if key not in self._fits:
            self._fits = {key: fit_latency_model(samples)}
        return self._fits[key]

    def __call__(self, genome: dict, history) -> tuple[float, dict]:
        from vas_ros.search.cost_model import features

        try:
            x = features(self.footprints(genome, training=False))
        except VasError:
            return math.inf, {}
        predicted = self.model_for(history).predict(x)
        return predicted / self.budget_ms, {'predicted_ms': round(predicted, 4)}


# ------------------------------------------------------------------------ latency constraint
class LatencyConstraint:
    """Measured latency (median of `repeats`) must not exceed `budget_ms`; for a model
    with a flow stream, the optical flow the robot computes per clip counts too."""

    def __init__(self, family: str, budget_ms: float, num_classes: int, *, device='cpu',
                 threads=None, path='eager', warmup=3, repeats=10, footprints=None):
        self.family = family
        self.budget_ms = float(budget_ms)
        self.num_classes = num_classes
        self.kwargs = {'device': device, 'threads': threads, 'path': path}
        self.warmup = warmup
        self.repeats = repeats
        self.footprints = footprints or Footprints(family, num_classes)
        self._seen: dict[str, Verdict] = {}

    def __call__(self, genome: dict) -> Verdict:
        digest = genome_hash(genome)
        if digest not in self._seen:
            self._seen[digest] = self._measure(genome)
        return self._seen[digest]

    def _measure(self, genome: dict) -> Verdict:
        import torch

        from vas_ros.models.registry import ModelArch
        from vas_ros.search.latency import measure_latency

        arch = ModelArch(self.family, genome, 'candidate')
        spec = arch.input_spec()
        cost = self.footprints(genome)
        model = arch.build(self.num_classes).eval()
        flow_ms = self._flow_ms(spec, repeats=max(1, min(self.repeats, 5)))
        plus = f' + {flow_ms:.1f} ms flow' if flow_ms else ''
        with torch.no_grad():
            screen = measure_latency(model, spec, warmup=1, repeats=1, **self.kwargs)
            total = screen.median_ms + flow_ms
            if total > SCREEN_FACTOR * self.budget_ms:
                return Verdict(False, {'latency_ms': total, 'params': cost.params,
                                       'macs': cost.macs},
                               f'latency {screen.median_ms:.1f} ms{plus} (one-pass screen) is '
                               f'over {SCREEN_FACTOR:g}x the {self.budget_ms:g} ms budget',
                               total)
            lat = measure_latency(model, spec, warmup=self.warmup, repeats=self.repeats,
                                  **self.kwargs)
        total = lat.median_ms + flow_ms
        metrics = {'latency_ms': total, 'latency_p10_ms': lat.p10_ms + flow_ms,
                   'latency_p90_ms': lat.p90_ms + flow_ms, 'params': cost.params,
                   'macs': cost.macs}
        if total > self.budget_ms:
            return Verdict(False, metrics, f'latency {lat.median_ms:.1f} ms{plus} (median) is '
                                           f'over the {self.budget_ms:g} ms budget', total)
        return Verdict(True, metrics, value=total)

    def confirm(self, genome: dict) -> float:
        """A second, independent and longer measurement (ms, flow included), never cached.

        Among hundreds of candidates measured near the budget, the ones accepted are those
        whose median happened to come out low (the winner's curse): a finalist is timed
        again, in a later window, before it may win."""
        import torch

        from vas_ros.models.registry import ModelArch
        from vas_ros.search.latency import measure_latency

        arch = ModelArch(self.family, genome, 'finalist')
        spec = arch.input_spec()
        flow_ms = self._flow_ms(spec, repeats=max(5, self.repeats))
        model = arch.build(self.num_classes).eval()
        with torch.no_grad():
            lat = measure_latency(model, spec, warmup=max(self.warmup, 5),
                                  repeats=self.confirm_repeats, **self.kwargs)
        return lat.median_ms + flow_ms

    @property
    def confirm_repeats(self) -> int:
        return max(CONFIRM_REPEATS, 3 * self.repeats)

    def _flow_ms(self, spec, repeats: int) -> float:
        """The optical flow a flow-stream model needs per clip (0 for RGB only): the robot
        computes it before the forward pass, so it counts against the budget."""
        from vas_ros.search.latency import measure_flow_latency

        if not spec.needs_flow:
            return 0.0
        return measure_flow_latency(spec, threads=self.kwargs['threads'],
                                    repeats=repeats).median_ms


# ------------------------------------------------------------------------------ worker tasks
def evaluate_task(payload: dict) -> dict:
    """Proxy-train one candidate (runs in a backend worker). Fitness = best val top-1.
    Returns an `EvalResult` as a dict (plain data, for the backend to carry back).

    `init_weights` (optional): a .safetensors state dict to start from where shapes fit
    (the parent's, or the candidate's own for the longer training); skipped when the file
    is not there (a Ray node without the driver's file system). `save_weights` (optional):
    where to write the trained weights for the candidate's children.
    """
    from vas_ros.models.registry import ModelArch
    from vas_ros.training.trainer import train

    arch = ModelArch(payload['family'], payload['genome'], f'candidate-{payload["id"]}')
    init = payload.get('init_weights')
    if init and not Path(init).is_file():
        init = None
    result = train(arch, payload['data'], max_steps=payload['proxy_steps'],
                   max_seconds=payload['proxy_seconds'], batch_size=payload['batch_size'],
                   lr=payload['lr'],
                   device=payload['device'], seed=payload['seed'], progress=False,
                   cache_dir=payload['cache_dir'], init_weights=init)
    if payload.get('save_weights'):
        from safetensors.torch import save_file

        from vas_ros.atomic import atomic_path

        state = {k: v.detach().cpu().contiguous() for k, v in result.model.state_dict().items()}
        with atomic_path(payload['save_weights']) as tmp:
            save_file(state, tmp)
    next_genome = None
    space = get_space(payload['family']).with_options(payload['space_options'])
    changed = space.after_training(payload['genome'], result.model)
    if genome_hash(changed) != genome_hash(payload['genome']):
        next_genome = changed
    return EvalResult(ok=True, accuracy=float(result.val_top1), seconds=float(result.seconds),
                      steps=int(result.steps), next_genome=next_genome,
                      inherited=round(float(result.extra.get('inherited', 0.0)), 4),
                      val_loss=_finite(result.val_metrics.get('loss')),
                      peak_rss_mb=peak_rss_mb()).to_dict()


def _finite(value) -> float | None:
    return float(value) if value is not None and math.isfinite(float(value)) else None


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
                   cache_dir=payload['cache_dir'], calibrate=True)
    if result.checkpoint is None:
        return EvalResult.failure('final training wrote no checkpoint').to_dict()
    reply = {'ok': True, 'val_top1': float(result.val_top1), 'seconds': float(result.seconds),
             'steps': int(result.steps), 'checkpoint': str(result.checkpoint),
             'history': result.history, 'peak_rss_mb': peak_rss_mb()}
    if not payload['out']:  # remote worker: ship the file back
        reply['checkpoint_bytes'] = Path(result.checkpoint).read_bytes()
        shutil.rmtree(out, ignore_errors=True)
    return reply


# ---------------------------------------------------------------------------------- progress
def best_latency_ms(rec: CandidateRecord) -> float | None:
    """The latency to report for a candidate: its confirmed one where it was re-measured."""
    return rec.latency_ms if rec.latency_confirmed_ms is None else rec.latency_confirmed_ms


class Progress:
    """tqdm in the terminal and, with `jsonl`, one JSON object per event for other programs
    (the ROS search node): state, round, candidates, best accuracy/latency, budget, output."""

    def __init__(self, settings: SearchSettings, total: int):
        self.settings = settings
        self.engine: Evolution | None = None
        self.winner: CandidateRecord | None = None
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
        # Once promotion and the latency confirmation chose the winner, events report it
        # (its confirmed latency where there is one), not the best proxy fitness.
        best = self.winner or (engine.best if engine else None)
        event = {
            'state': state,
            'round': engine.rounds_done if engine else 0,
            'rounds': self.settings.rounds,
            'candidates': engine.evaluated if engine else 0,
            'rejected': engine.rejected if engine else 0,
            'running': engine.running if engine else 0,
            'total': self.settings.population + self.settings.rounds,
            'time_budget_s': self.settings.time_budget_s,
            'best_accuracy': best.accuracy if best else None,
            'best_latency_ms': best_latency_ms(best) if best else None,
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
        if kind == 'training' and rec is not None:
            self.emit('running', f'training candidate {rec.id}')
            return
        if kind in ('done', 'failed', 'replayed') and rec is not None and rec.status in (
                Status.DONE, Status.FAILED):
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
              'latency_p10_ms', 'latency_p90_ms', 'latency_confirmed_ms', 'predicted_ms',
              'params', 'macs', 'memory_mb', 'accuracy', 'accuracy_long', 'inherited',
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


def screen_report(records: list[CandidateRecord], budget_ms: float,
                  warmup: int = WARMUP_MEASUREMENTS) -> dict:
    """How well proposals were aimed: of the measured proposals after the first `warmup`,
    the share within the budget, and the latency model's median relative error there
    (its prediction was made before the measurement, from earlier measurements only)."""
    measured = [r for r in records if r.latency_ms is not None]
    later = measured[warmup:]
    errors = [abs(r.predicted_ms - r.latency_ms) / r.latency_ms for r in later
              if r.predicted_ms is not None and r.latency_ms > 0]
    memory = [r for r in records if r.status == Status.REJECTED and r.latency_ms is None
              and (r.error or '').startswith('memory')]
    return {
        'measured': len(measured),
        'warmup_measurements': min(warmup, len(measured)),
        'measured_after_warmup': len(later),
        'in_budget_share_after_warmup': (
            round(sum(r.latency_ms <= budget_ms for r in later) / len(later), 4)
            if later else None),
        'in_budget_share_all': (
            round(sum(r.latency_ms <= budget_ms for r in measured) / len(measured), 4)
            if measured else None),
        'cost_model_median_rel_error': round(percentile(errors, 50), 4) if errors else None,
        'cost_model_errors_n': len(errors),
        'refused_for_memory': len(memory),
    }


class PeakMemory:
    """Peak resident memory of the driver and of the largest worker, as the workers report
    it with each result (this run only; a resumed search starts counting afresh)."""

    def __init__(self):
        self.worker = 0.0

    def seen(self, result: EvalResult | dict) -> EvalResult | dict:
        """Note a worker's reply: an EvalResult or the final training's reply dict."""
        value = (result.peak_rss_mb if isinstance(result, EvalResult)
                 else result.get('peak_rss_mb'))
        self.worker = max(self.worker, float(value or 0.0))
        return result

    def to_dict(self) -> dict:
        return {'driver': peak_rss_mb(), 'largest_worker': self.worker}


def _summary(settings: SearchSettings, state: str, store: SearchStore, best, backend_info,
             final: dict | None, extra: dict | None = None) -> dict:
    records = store.candidates()
    return {
        'state': state,
        'family': settings.family,
        'strategy': settings.strategy,
        'data': str(Path(settings.data).resolve()),
        'budget_ms': settings.budget_ms,
        'device': settings.device,
        'population': settings.population,
        'rounds': settings.rounds,
        'store': str(store.path),
        'backend': backend_info,
        'counts': store.counts(),
        'search_seconds': sum((r['elapsed_s'] or 0) for r in store.runs()),
        'screen': screen_report(records, settings.budget_ms),
        **(extra or {}),
        'best': None if best is None else {
            'id': best.id, 'genome_hash': best.genome_hash, 'genome': best.genome,
            'origin': best.origin, 'parent_id': best.parent_id,
            'proxy_accuracy': best.accuracy, 'long_accuracy': best.accuracy_long,
            'latency_ms': best.latency_ms, 'memory_mb': best.memory_mb,
            'latency_confirmed_ms': best.latency_confirmed_ms,
            'latency_p10_ms': best.latency_p10_ms, 'latency_p90_ms': best.latency_p90_ms,
            'params': best.params, 'macs': best.macs},
        'final_training': final,
        'outputs': {k: k for k in ('best.safetensors', 'best_genome.json', 'candidates.csv',
                                   'pareto.png', 'summary.json')},
    }


# --------------------------------------------------------------------------------- the search
MIN_SEARCH_SIZE = 32


def _data_frame_side(data: Path) -> int | None:
    """The shorter frame side of the first training video of a folder data set (None for
    CSV and bag sources, or when there is no video to probe)."""
    from vas_ros.data.video_io import probe_video
    from vas_ros.errors import DataError

    train = data / 'train'
    if not train.is_dir():
        return None
    for path in sorted(train.glob('*/*')):
        if path.is_file() and not path.name.startswith('.'):
            try:
                info = probe_video(path)
            except DataError:
                continue
            return min(info['width'], info['height'])
    return None


def _space_for_data(settings: SearchSettings, data: Path):
    """The family's space with the user's options; a space with input `sizes` that the
    user left alone is capped at the data's frame side (upsampling costs latency and adds
    no information) and may go down to MIN_SEARCH_SIZE, so a small budget has room."""
    options = dict(settings.space_options or {})
    space = get_space(settings.family).with_options(options or None)
    if 'sizes' not in space.options or 'sizes' in options:
        return space
    side = _data_frame_side(data)
    low, high = space.options['sizes']
    if side is None or side >= high:
        return space
    side = max(MIN_SEARCH_SIZE, side)
    return space.with_options({**options, 'sizes': [min(low, MIN_SEARCH_SIZE), side]})


def _load_seeds(settings: SearchSettings) -> list[dict]:
    from vas_ros.models.factory import resolve_arch

    seeds = []
    for ref in settings.initial:
        arch = resolve_arch(ref)
        if arch.family != settings.family:
            raise VasError(f'--initial {ref}: is a {arch.family} model, the search is over '
                           f'{settings.family}')
        seeds.append(arch.genome.to_dict())
    return seeds


def run_search(settings: SearchSettings, *, should_stop=None,
               argv: list[str] | None = None) -> SearchReport:
    """Run (or resume) a search and write its outputs. Raises VasError on bad input,
    SearchCancelled never: a cancel returns a report with state 'cancelled'."""
    from vas_ros.data.datasets import list_classes
    from vas_ros.search.backends import make_backend
    from vas_ros.search.plots import plot_pareto

    settings.check()
    data = Path(settings.data).expanduser().resolve()
    classes = list_classes(data)
    space = _space_for_data(settings, data)
    out = Path(settings.out).expanduser().resolve()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VasError(f'--out {out}: cannot create ({exc.strerror})') from None
    seeds = _load_seeds(settings)
    batch = settings.batch or settings.workers
    tournament = (settings.tournament if settings.tournament is not None
                  else default_tournament(settings.population))
    config = EngineConfig(population=settings.population, rounds=settings.rounds,
                          tournament=tournament, seed=settings.seed, batch=batch,
                          max_rejections=settings.max_rejections,
                          time_budget_s=settings.time_budget_s, strategy=settings.strategy)
    promote_steps = (2 * (settings.proxy_steps or 0) if settings.promote_steps is None
                     else settings.promote_steps)
    memory_cap_mb = (settings.max_memory_mb if settings.max_memory_mb is not None
                     else default_memory_cap_mb(settings.device))
    header = {
        'family': settings.family, 'data': str(data), 'budget_ms': settings.budget_ms,
        'seed': settings.seed,
        'config': {'population': settings.population, 'tournament': tournament,
                   'batch': batch, 'device': settings.device,
                   'proxy_steps': settings.proxy_steps, 'proxy_seconds': settings.proxy_seconds,
                   'proxy_batch_size': settings.proxy_batch_size, 'space': space.options,
                   **({'lr': settings.lr} if settings.lr is not None else {}),
                   'initial': [genome_hash(g) for g in seeds],
                   'strategy': settings.strategy, 'screen': settings.screen,
                   'inherit': settings.inherit,
                   'promote': {'fraction': round(settings.promote_fraction, 6),
                               'steps': promote_steps, 'start': 'scratch'},
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
        try:  # claimed only once its store opened, so a refused store claims nothing
            (out / OWNER_FILE).write_text(str(store.path) + '\n')
        except OSError as exc:
            raise VasError(f'--out {out}: cannot write ({exc.strerror})') from None
        footprints = Footprints(settings.family, len(classes))
        latency = LatencyConstraint(
            settings.family, settings.budget_ms, len(classes), device=settings.device,
            threads=settings.latency_threads, path=settings.latency_path,
            warmup=settings.latency_warmup, repeats=settings.latency_repeats,
            footprints=footprints)
        constraints = [MemoryConstraint(footprints, memory_cap_mb, settings.proxy_batch_size),
                       latency]
        screen = LatencyScreen(footprints, settings.budget_ms) if settings.screen else None
        weights_dir = out / WEIGHTS_DIR
        peak = PeakMemory()
        backend = make_backend(settings.backend, workers=settings.workers,
                               threads=settings.threads, address=settings.address)
        cache_dir = settings.cache_dir or str(out / 'cache')

        def payload(rec, steps, init):
            return {'id': rec.id, 'family': settings.family, 'genome': rec.genome,
                    'data': str(data), 'proxy_steps': steps,
                    'proxy_seconds': settings.proxy_seconds,
                    'batch_size': settings.proxy_batch_size, 'lr': settings.lr,
                    'device': settings.device,
                    'seed': (settings.seed * 1_000_003 + rec.id) % 2**31,
                    'cache_dir': cache_dir, 'space_options': space.options,
                    'init_weights': init,
                    'save_weights': str(weights_dir / f'{rec.id}.safetensors')}

        def evaluate(records, should_stop_fn):
            _prune_weights(weights_dir, engine)
            tasks = []
            for rec in records:
                init = None
                if settings.inherit and rec.parent_id is not None:
                    init = str(weights_dir / f'{rec.parent_id}.safetensors')
                tasks.append((rec.id, payload(rec, settings.proxy_steps, init)))
            by_id = {rec.id: rec for rec in records}
            for key, result in backend.map_unordered(EVALUATE_TASK, tasks, should_stop_fn):
                yield by_id[key], peak.seen(EvalResult.from_dict(result))

        engine = Evolution(space, store, config, evaluate, constraints=constraints,
                           seeds=seeds, screen=screen, on_event=progress.on_event,
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
        try:
            best = _promote(settings, store, backend, payload, promote_steps,
                            progress, should_stop, peak) or best
        except SearchCancelled:
            return _finish_cancelled(settings, store, engine, progress, backend, out,
                                     plot_pareto)
        confirmation = None
        if settings.confirm_latency:
            best, confirmation = _confirm_latency(settings, store, latency, best, progress)
        progress.winner = best
        write_candidates_csv(store.candidates(), out / 'candidates.csv')
        plot_pareto(store.candidates(), settings.budget_ms, out / 'pareto.png', best_id=best.id,
                    title=f'{settings.family} search: accuracy vs latency')
        progress.emit('running', f'training the best candidate {best.id} on the full '
                                 f'training split')
        final = _final_training(settings, backend, best, data, out, cache_dir, should_stop)
        if final is not None:
            peak.seen(final)
        if final is None:
            return _finish_cancelled(settings, store, engine, progress, backend, out,
                                     plot_pareto)
        name = f'{settings.family}_search_best'
        from vas_ros.models.checkpoint import load_checkpoint
        from vas_ros.models.registry import ModelArch

        trained = load_checkpoint(final['checkpoint'])  # e.g. AssembleNet's learned graph
        trained.arch.genome.artefacts(trained.model, out, name)
        del trained

        (out / 'best_genome.json').write_text(
            ModelArch(settings.family, best.genome, name).to_json() + '\n')
        summary = _summary(settings, result.state, store, best, backend.describe(), final,
                           {'max_memory_mb': round(memory_cap_mb, 1),
                            'peak_rss_mb': peak.to_dict(),
                            'screened_draws': engine.screened,
                            'promote_steps': promote_steps,
                            'latency_confirmation': confirmation})
        write_json(out / 'summary.json', summary, sort_keys=True)
        progress.emit('done', f'search {result.state}: best candidate {best.id} '
                              f'(proxy accuracy {best.accuracy:.3f}, '
                              f'{best_latency_ms(best):.1f} ms); '
                              f'final val top-1 {final["val_top1"]:.3f}', output=str(out),
                      final_val_top1=final['val_top1'])
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


def promoted(records: list[CandidateRecord], fraction: float,
             most: int | None = None) -> list[CandidateRecord]:
    """The best `fraction` of the trained candidates by proxy fitness (at least 2 when
    there are 2, at most `most`), best first; ties go to the faster, then the earlier."""
    done = sorted((r for r in records if r.status == Status.DONE),
                  key=lambda r: (-r.accuracy, r.latency_ms or math.inf, r.id))
    return done[:_promoted_count(len(done), fraction, most)]


def _promoted_count(done: int, fraction: float, most: int | None = None) -> int:
    if fraction <= 0 or done < 2:
        return 0
    count = max(2, math.ceil(fraction * done))
    return count if most is None else min(count, max(2, most))


def _prune_weights(weights_dir: Path, engine: Evolution) -> None:
    """Keep trained weights only where they can still be used: the population, i.e. the
    parents of the next children (the longer training starts from scratch). Disk use
    stays bounded however long the search runs."""
    if not weights_dir.is_dir():
        return
    keep = {r.id for r in engine.population}
    for path in weights_dir.glob('*.safetensors'):
        if path.stem.isdigit() and int(path.stem) not in keep:
            path.unlink(missing_ok=True)


def _promote(settings, store, backend, payload, steps, progress,
             should_stop, peak) -> CandidateRecord | None:
    """Multi-fidelity: train the best third (at most `promote_max`) from scratch for their
    proxy steps plus `steps`, and pick the winner by that longer fitness (successive
    halving with two rungs, see the module docstring for why not from the proxy weights).
    Resumable: a candidate whose longer fitness is recorded is not trained again."""
    if not steps:
        return None
    chosen = promoted(store.candidates(), settings.promote_fraction, settings.promote_max)
    if not chosen:
        return None
    todo = [r for r in chosen if r.accuracy_long is None]
    if todo:
        progress.emit('running', f'training the best {len(chosen)} candidates from scratch '
                                 f'for {(settings.proxy_steps or 0) + steps} steps '
                                 f'(multi-fidelity)')
        tasks = []
        for rec in todo:
            task = payload(rec, (settings.proxy_steps or 0) + steps, None)
            task['save_weights'] = None
            task['seed'] = (task['seed'] + 7919) % 2**31
            tasks.append((rec.id, task))
        by_id = {rec.id: rec for rec in todo}
        for key, result in backend.map_unordered(EVALUATE_TASK, tasks,
                                                 should_stop or (lambda: False)):
            rec = by_id[key]
            result = peak.seen(EvalResult.from_dict(result))
            # A failed longer run keeps the candidate in the race on its proxy fitness.
            value = result.accuracy if result.ok else rec.accuracy
            store.update(rec, accuracy_long=value)
    return finalists([store.get(r.id) for r in chosen])[0]


def finalists(records: list[CandidateRecord]) -> list[CandidateRecord]:
    """Trained candidates in the order a winner is chosen: those with a longer fitness
    first, by it, then by proxy fitness; ties go to the faster, then the earlier."""
    done = (r for r in records if r.status == Status.DONE)
    return sorted(done, key=lambda r: (r.accuracy_long is None, -(r.accuracy_long or 0.0),
                                       -r.accuracy, r.latency_ms or math.inf, r.id))


def _confirm_latency(settings, store, latency, best, progress) -> tuple[CandidateRecord, dict]:
    """Time `best` again (`LatencyConstraint.confirm`); if it misses the budget now, go
    down the finalists until one fits. When none of CONFIRM_TRIES fits, `best` stays the
    winner and the summary says it missed (the search's work is kept either way).
    Resumable: a confirmation in the store is not measured again."""
    best = store.get(best.id)
    order = [best, *(r for r in finalists(store.candidates()) if r.id != best.id)]
    tried, winner = [], None
    for rec in order[:CONFIRM_TRIES]:
        if rec.latency_confirmed_ms is None:
            progress.emit('running', f're-measuring the latency of candidate {rec.id} '
                                     f'before training it fully')
            rec = store.update(rec, latency_confirmed_ms=round(latency.confirm(rec.genome), 4))
        tried.append({'id': rec.id, 'latency_ms': rec.latency_ms,
                      'confirmed_ms': rec.latency_confirmed_ms})
        if rec.latency_confirmed_ms <= settings.budget_ms:
            winner = rec
            break
    if winner is None:
        progress.emit('running', f'no finalist of {len(tried)} met the '
                                 f'{settings.budget_ms:g} ms budget when re-measured; '
                                 f'keeping candidate {best.id}')
    return winner or best, {
        'repeats': latency.confirm_repeats, 'tried': tried,
        'met_budget': winner is not None,
        'replaced': winner is not None and winner.id != best.id}


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
    write_json(out / 'summary.json', summary, sort_keys=True)
    progress.emit('cancelled', f'cancelled after {engine.evaluated} evaluated candidates; '
                               f'rerun with the same --store to resume', output=str(out))
    return SearchReport('cancelled', out, best, summary)
