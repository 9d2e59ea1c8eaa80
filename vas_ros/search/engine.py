"""Regularised (aging) evolution, generic over search spaces, constraints and backends.

The loop (Real et al., "Regularized Evolution for Image Classifier Architecture Search"):

1. *Initialisation*: `population` candidates are proposed (the given seed genomes first,
   then random genomes from the space), evaluated, and the successful ones form the
   population, oldest first.
2. *Rounds*: one round = one child. A tournament samples `tournament` members of the
   population uniformly without replacement; the most accurate (ties: the younger) is the
   parent; the space mutates it; the child is evaluated; a successful child joins the
   population as its youngest member and, once the population holds more than
   `population` members, the OLDEST member leaves (whatever its accuracy). `rounds`
   counts children evaluated after initialisation, so a finished search has evaluated
   `population + rounds` candidates (a failed evaluation counts, but never joins).
3. *Constraints* (e.g. the latency budget) are checked on every proposal BEFORE it is
   evaluated. A proposal that fails one is recorded as 'rejected', never joins, does not
   count as a round, and is replaced by a fresh proposal (a new random genome, or a new
   tournament + mutation). After `max_rejections` rejections in a row the search stops
   with `BudgetUnreachable`, naming the closest miss.

Parallelism is batch-synchronous: with `batch` = B, B proposals are made from the same
population, evaluated together, and their results incorporated in proposal order before
the next B are proposed. So constraints (latency) are measured while no evaluation is
running on this machine, and the search is a deterministic function of the seed and the
evaluation results, independent of the order in which parallel results arrive.

Resume is replay: the engine re-runs its proposals from the seed and, for each proposal
id already in the store, takes the recorded outcome instead of evaluating again (the
recorded genome must hash the same, else the store came from different code/settings).
Candidates recorded as 'pending' or 'training' (killed mid-evaluation) are evaluated
again; 'done', 'failed' and 'rejected' ones never are.

Strategies: 'evolution' (above) and 'random', the control any NAS result has to beat: the
same loop with mutation off, so every proposal, initial or child, is a fresh random
genome and the best of everything evaluated wins.

Screening (optional `screen`): before a drawn genome becomes a proposal, `screen(genome,
history)` predicts its cost as a fraction of the budget from what has been measured so
far (`history`: every proposal so far, in order, with its recorded metrics). Draws
predicted over the budget are discarded and redrawn (up to `screen_draws`; then the
cheapest draw is proposed), so the constraints are measured mostly on genomes that fit.
The screen must be a pure function of its arguments: on resume the history comes from
the store, the draws repeat, and so do the proposals.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from vas_ros.errors import StoreError, VasError
from vas_ros.search.records import EvalResult, Status
from vas_ros.search.space import SearchSpace, genome_hash
from vas_ros.search.store import CandidateRecord, SearchStore

STRATEGIES = ('evolution', 'random')


class SearchCancelled(Exception):
    """The search was asked to stop (SIGTERM/SIGINT); the store is consistent."""


class _TimeUp(Exception):
    """The time budget ran out while proposing (e.g. during a streak of rejections)."""


class BudgetUnreachable(VasError):
    """No proposal met the constraints within the allowed number of tries."""


class SearchFailed(VasError):
    """The search cannot go on (e.g. every initial candidate failed to train)."""


@dataclass(frozen=True)
class EngineConfig:
    population: int
    rounds: int
    tournament: int
    seed: int = 0
    batch: int = 1
    max_rejections: int = 100
    time_budget_s: float | None = None
    strategy: str = 'evolution'
    screen_draws: int = 32

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise VasError(f'strategy must be one of {", ".join(STRATEGIES)}, '
                           f'got {self.strategy!r}')
        if self.screen_draws < 1:
            raise VasError(f'screen_draws must be >= 1, got {self.screen_draws}')
        if self.population < 1:
            raise VasError(f'population must be >= 1, got {self.population}')
        if self.rounds < 0:
            raise VasError(f'rounds must be >= 0, got {self.rounds}')
        if not 1 <= self.tournament <= self.population:
            raise VasError(f'tournament size must be between 1 and the population '
                           f'({self.population}), got {self.tournament}')
        if self.batch < 1:
            raise VasError(f'batch must be >= 1, got {self.batch}')
        if self.max_rejections < 1:
            raise VasError(f'max_rejections must be >= 1, got {self.max_rejections}')


def default_tournament(population: int) -> int:
    """A quarter of the population (the paper's 25 of 100), at least 2 when possible."""
    return max(1, min(population, max(2, round(population / 4))))


@dataclass
class Verdict:
    """A constraint's answer. `metrics` are recorded on the candidate (latency, params...);
    `value` ranks misses so the closest can be reported (e.g. the latency in ms)."""

    ok: bool
    metrics: dict = field(default_factory=dict)
    reason: str = ''
    value: float | None = None


Constraint = Callable[[dict], Verdict]
# screen(genome, history) -> (predicted cost / budget, metrics to record on the proposal)
Screen = Callable[[dict, Sequence[CandidateRecord]], tuple[float, dict]]
# evaluate(records, should_stop) yields (record, EvalResult) as results arrive (a backend
# carries results as dicts; the caller rebuilds them with EvalResult.from_dict). It raises
# SearchCancelled when should_stop() turns true.
Evaluate = Callable[[list[CandidateRecord], Callable[[], bool]],
                    Iterable[tuple[CandidateRecord, EvalResult]]]


@dataclass
class EvolutionResult:
    state: str  # 'done' | 'time_budget'
    population: list[CandidateRecord]
    best: CandidateRecord | None
    rounds_done: int
    evaluated: int


class Evolution:
    """One search over `space`, recorded in `store` (see the module docstring)."""

    def __init__(self, space: SearchSpace, store: SearchStore, config: EngineConfig,
                 evaluate: Evaluate, *, constraints: Sequence[Constraint] = (),
                 seeds: Sequence[dict] = (), screen: Screen | None = None,
                 on_event: Callable[[str, CandidateRecord | None], None] | None = None,
                 should_stop: Callable[[], bool] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.space = space
        self.store = store
        self.config = config
        self.evaluate = evaluate
        self.constraints = list(constraints)
        self.seeds = list(seeds)
        self.screen = screen
        self.history: list[CandidateRecord] = []  # every proposal so far, in order
        self.screened = 0  # draws the screen discarded
        self.on_event = on_event or (lambda event, rec: None)
        self.should_stop = should_stop or (lambda: False)
        self.clock = clock
        self.rng = random.Random(config.seed)
        self.population: deque[CandidateRecord] = deque()
        self.next_id = 0
        self.init_done = 0
        self.rounds_done = 0
        self.evaluated = 0
        self.rejected = 0
        self.running = 0  # candidates being trained right now
        self.best: CandidateRecord | None = None
        self._seed_cursor = 0
        self._closest: Verdict | None = None
        self._deadline: float | None = None

    def _time_up(self) -> bool:
        return self._deadline is not None and self.clock() >= self._deadline

    # -- public --------------------------------------------------------------------------
    def run(self, argv: list[str] | None = None) -> EvolutionResult:
        run_id = self.store.begin_run(argv)
        started = self.clock()
        spent_before = self.store.elapsed_before(run_id)
        budget = self.config.time_budget_s
        self._deadline = None if budget is None else started + budget - spent_before
        state = 'failed'
        try:
            self.on_event('start', None)
            while True:
                if self.should_stop():
                    raise SearchCancelled()
                if self.init_done < self.config.population:
                    size = min(self.config.batch, self.config.population - self.init_done)
                    phase = 'init'
                elif self.rounds_done < self.config.rounds:
                    size = min(self.config.batch, self.config.rounds - self.rounds_done)
                    phase = 'child'
                    if not self.population:
                        raise SearchFailed('every candidate of the initial population failed '
                                           'to train; see the "error" column of the store')
                else:
                    state = 'done'
                    break
                if self._time_up():
                    state = 'time_budget'
                    break
                try:
                    slots = [self._propose(phase) for _ in range(size)]
                except _TimeUp:  # proposals already recorded stay 'pending' for a resume
                    state = 'time_budget'
                    break
                self._evaluate(slots)
                for rec in sorted(slots, key=lambda r: r.id):
                    self._incorporate(rec, phase)
                self.store.touch_run(run_id)
            return EvolutionResult(state, list(self.population), self.best,
                                   self.rounds_done, self.evaluated)
        except SearchCancelled:
            state = 'cancelled'
            raise
        finally:
            self.store.touch_run(run_id, state)

    # -- proposing -----------------------------------------------------------------------
    def _draw_one(self, phase: str) -> tuple[dict, str, int | None]:
        if phase == 'init':
            if self._seed_cursor < len(self.seeds):
                self._seed_cursor += 1
                return self.seeds[self._seed_cursor - 1], 'seed', None
            return self.space.random_genome(self.rng), 'random', None
        if self.config.strategy == 'random':
            return self.space.random_genome(self.rng), 'random', None
        parent = self.tournament()
        return self.space.mutate(parent.parent_genome, self.rng), 'mutation', parent.id

    def _draw(self, phase: str) -> tuple[dict, str, int | None, dict]:
        """A drawn genome the screen predicts to fit (seeds are never screened)."""
        first = self._draw_one(phase)
        if self.screen is None or first[1] == 'seed':
            return (*first, {})
        cheapest = None
        draw = first
        for attempt in range(self.config.screen_draws):
            if attempt:
                draw = self._draw_one(phase)
            ratio, metrics = self.screen(draw[0], self.history)
            if ratio <= 1.0:
                return (*draw, metrics)
            self.screened += 1
            if cheapest is None or ratio < cheapest[0]:
                cheapest = (ratio, draw, metrics)
        return (*cheapest[1], cheapest[2])

    def tournament(self) -> CandidateRecord:
        """Sample `tournament` members uniformly; the most accurate wins (ties: younger)."""
        k = min(self.config.tournament, len(self.population))
        contenders = self.rng.sample(list(self.population), k)
        return max(contenders, key=lambda r: (r.accuracy, r.id))

    def _propose(self, phase: str) -> CandidateRecord:
        """The next proposal that meets every constraint (recording the ones that don't)."""
        misses = 0
        while True:
            if self.should_stop():
                raise SearchCancelled()
            if misses and self._time_up():
                raise _TimeUp()
            genome, origin, parent_id, predicted = self._draw(phase)
            rec = self._record_for(genome, origin, parent_id, predicted)
            self.history.append(rec)
            if rec.status == Status.REJECTED:
                verdict = Verdict(False, reason=rec.error or 'rejected',
                                  value=rec.latency_ms)
                self.on_event('replayed', rec)
            elif rec.status in (Status.TRAINING, Status.DONE, Status.FAILED):
                if rec.status != Status.TRAINING:
                    self.on_event('replayed', rec)
                return rec
            else:
                verdict = self._check(rec.genome)
                if verdict.ok:
                    self.store.update(rec, **_known_fields(verdict.metrics))
                    return rec
                self.store.update(rec, status=Status.REJECTED, error=verdict.reason,
                                  **_known_fields(verdict.metrics))
                self.on_event('rejected', rec)
            self.rejected += 1
            misses += 1
            if self._closest is None or (verdict.value is not None and (
                    self._closest.value is None or verdict.value < self._closest.value)):
                self._closest = verdict
            if misses >= self.config.max_rejections:
                closest = self._closest.reason if self._closest else 'none measured'
                raise BudgetUnreachable(
                    f'no candidate met the constraints in {misses} tries in a row; '
                    f'closest: {closest}. Relax the budget or shrink the search space')

    def _record_for(self, genome: dict, origin: str, parent_id: int | None,
                    metrics: dict | None = None) -> CandidateRecord:
        cid = self.next_id
        self.next_id += 1
        digest = genome_hash(genome)
        existing = self.store.get(cid)
        if existing is not None:
            if existing.genome_hash != digest or existing.parent_id != parent_id:
                raise StoreError(
                    f'{self.store.path}: candidate {cid} in the store ({existing.genome_hash}, '
                    f'parent {existing.parent_id}) is not what this search proposes '
                    f'({digest}, parent {parent_id}); the store was written by different '
                    f'code or settings and cannot be resumed')
            return existing
        rec = CandidateRecord(id=cid, parent_id=parent_id, origin=origin, genome=genome,
                              genome_hash=digest, **_known_fields(metrics or {}))
        self.store.insert(rec)
        self.on_event('proposed', rec)
        return rec

    def _check(self, genome: dict) -> Verdict:
        metrics: dict = {}
        for constraint in self.constraints:
            verdict = constraint(genome)
            metrics.update(verdict.metrics)
            if not verdict.ok:
                return Verdict(False, metrics, verdict.reason, verdict.value)
        return Verdict(True, metrics)

    # -- evaluating ----------------------------------------------------------------------
    def _evaluate(self, slots: list[CandidateRecord]) -> None:
        todo = [r for r in slots if not r.status.finished]
        if not todo:
            return
        self.running = len(todo)
        for rec in todo:
            self.store.update(rec, status=Status.TRAINING, error=None)
            self.on_event('training', rec)
        finished: set[int] = set()
        try:
            for rec, result in self.evaluate(todo, self.should_stop):
                finished.add(rec.id)
                self.running = len(todo) - len(finished)
                if not isinstance(result, EvalResult):
                    raise TypeError(f'evaluate yielded a {type(result).__name__} for '
                                    f'candidate {rec.id}, not an EvalResult')
                if result.ok:
                    self.store.update(rec, status=Status.DONE, accuracy=result.accuracy,
                                      train_seconds=result.seconds,
                                      train_steps=result.steps,
                                      next_genome=result.next_genome,
                                      inherited=result.inherited)
                    self.on_event('done', rec)
                else:
                    self.store.update(rec, status=Status.FAILED,
                                      error=(result.error or 'unknown error')[:4000],
                                      train_seconds=result.seconds)
                    self.on_event('failed', rec)
        except SearchCancelled:
            for rec in todo:
                if rec.id not in finished:
                    self.store.update(rec, status=Status.PENDING)
            raise
        finally:
            self.running = 0
        missing = [r.id for r in todo if r.id not in finished]
        if missing:
            raise SearchFailed(f'the backend returned no result for candidates {missing}')

    def _incorporate(self, rec: CandidateRecord, phase: str) -> None:
        self.evaluated += 1
        if phase == 'init':
            self.init_done += 1
        else:
            self.rounds_done += 1
        if rec.status != Status.DONE:
            return
        self.population.append(rec)
        while len(self.population) > self.config.population:
            self.population.popleft()
        if self.best is None or _better(rec, self.best):
            self.best = rec


def _better(a: CandidateRecord, b: CandidateRecord) -> bool:
    """More accurate; ties go to the faster, then the earlier."""
    la = a.latency_ms if a.latency_ms is not None else float('inf')
    lb = b.latency_ms if b.latency_ms is not None else float('inf')
    return (a.accuracy, -la, -a.id) > (b.accuracy, -lb, -b.id)


_METRIC_FIELDS = ('latency_ms', 'latency_p10_ms', 'latency_p90_ms', 'params', 'macs',
                  'memory_mb', 'predicted_ms')


def _known_fields(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k in _METRIC_FIELDS}


def best_of(records: Iterable[CandidateRecord]) -> CandidateRecord | None:
    best = None
    for rec in records:
        if rec.status == Status.DONE and (best is None or _better(rec, best)):
            best = rec
    return best


def iter_done(records: Iterable[CandidateRecord]) -> Iterator[CandidateRecord]:
    return (r for r in records if r.status == Status.DONE)
