"""The evolution engine on a small pure-Python space: aging, tournaments, constraints,
determinism, and resume by replay from a real SQLite store."""

from __future__ import annotations

import random

import pytest
from toy_space import ToySpace

from vas_ros.errors import StoreError, VasError
from vas_ros.search.engine import (
    BudgetUnreachable,
    EngineConfig,
    Evolution,
    SearchCancelled,
    SearchFailed,
    Verdict,
    default_tournament,
)
from vas_ros.search.records import EvalResult, Status
from vas_ros.search.store import SearchStore

HEADER = {'family': 'toy', 'data': '/nowhere', 'budget_ms': 10.0, 'seed': 0,
          'config': {'population': 4}}


def toy_space(offset: int = 0) -> ToySpace:
    def random_genome(rng: random.Random) -> dict:
        return {'x': rng.randint(0, 50) + offset, 'y': rng.randint(0, 50)}

    def mutate(genome: dict, rng: random.Random) -> dict:
        key = rng.choice(['x', 'y'])
        return {**genome, key: genome[key] + rng.choice([-3, -2, -1, 1, 2, 3])}

    return ToySpace(random_genome, mutate)


def fitness(genome: dict) -> float:
    return 1.0 / (1.0 + abs(genome['x'] - 30) + abs(genome['y'] - 10))


class Recorder:
    """A real evaluate callable: scores genomes and remembers which ids it evaluated."""

    def __init__(self, fail_ids=()):
        self.calls: list[int] = []
        self.fail_ids = set(fail_ids)

    def __call__(self, records, should_stop):
        for rec in records:
            if should_stop():
                raise SearchCancelled()
            self.calls.append(rec.id)
            if rec.id in self.fail_ids:
                yield rec, EvalResult.failure('boom')
            else:
                yield rec, EvalResult(ok=True, accuracy=fitness(rec.genome), seconds=0.0,
                                      steps=1)


def run(tmp_path, name='s.db', *, population=4, rounds=6, tournament=2, seed=0, batch=1,
        evaluate=None, space=None, **kwargs):
    store = SearchStore.open(tmp_path / name, {**HEADER, 'seed': seed})
    config = EngineConfig(population=population, rounds=rounds, tournament=tournament,
                          seed=seed, batch=batch, max_rejections=kwargs.pop('max_rej', 20))
    engine = Evolution(space or toy_space(), store, config, evaluate or Recorder(), **kwargs)
    try:
        result = engine.run()
        return engine, result, store.candidates()
    finally:
        store.close()


def test_counts_rounds_after_initialisation(tmp_path):
    evaluate = Recorder()
    engine, result, records = run(tmp_path, population=4, rounds=6, evaluate=evaluate)
    assert result.state == 'done'
    assert len(records) == 10 and evaluate.calls == list(range(10))
    assert [r.origin for r in records] == ['random'] * 4 + ['mutation'] * 6
    assert all(r.status == 'done' for r in records)
    assert result.rounds_done == 6 and result.evaluated == 10


def test_aging_removes_the_oldest_even_when_it_is_the_best(tmp_path):
    # The seed genome is the optimum: it stays the best ever but must still age out.
    seeds = [{'x': 30, 'y': 10}]
    engine, result, records = run(tmp_path, population=3, rounds=5, tournament=3,
                                  seeds=seeds)
    assert records[0].origin == 'seed' and records[0].accuracy == 1.0
    assert result.best.id == 0
    # Population = the three youngest children, oldest first.
    assert [r.id for r in result.population] == [5, 6, 7]


def test_tournament_parent_is_the_most_accurate_sampled_member(tmp_path):
    holder = {}
    seen = []
    base = toy_space()

    def mutate(genome, rng):
        engine = holder['engine']
        best = max(engine.population, key=lambda r: (r.accuracy, r.id))
        seen.append(genome == best.parent_genome)
        return base.mutate(genome, rng)

    space = ToySpace(base.random_genome, mutate)
    store = SearchStore.open(tmp_path / 't.db', HEADER)
    # tournament == population: the whole population is sampled, so the best must win.
    engine = Evolution(space, store, EngineConfig(population=4, rounds=8, tournament=4),
                       Recorder())
    holder['engine'] = engine
    engine.run()
    store.close()
    assert len(seen) == 8 and all(seen)


def test_tournament_samples_without_replacement_and_prefers_accuracy(tmp_path):
    store = SearchStore.open(tmp_path / 'u.db', HEADER)
    engine = Evolution(toy_space(), store, EngineConfig(population=4, rounds=0, tournament=2),
                       Recorder())
    engine.run()
    wins = {r.id: 0 for r in engine.population}
    for _ in range(400):
        wins[engine.tournament().id] += 1
    ranked = sorted(engine.population, key=lambda r: r.accuracy)
    store.close()
    assert wins[ranked[0].id] == 0  # the worst can never win a 2-way tournament
    assert wins[ranked[-1].id] > wins[ranked[1].id]


def test_constraint_rejects_before_evaluation_and_rejections_do_not_count(tmp_path):
    evaluate = Recorder()

    def small_x(genome):
        ok = genome['x'] <= 28  # the optimum (x=30) lies beyond: mutations hit the limit
        return Verdict(ok, {'latency_ms': float(genome['x'])},
                       '' if ok else f'x {genome["x"]} over 28', float(genome['x']))

    engine, result, records = run(tmp_path, population=4, rounds=6, evaluate=evaluate,
                                  constraints=[small_x])
    rejected = [r for r in records if r.status == 'rejected']
    done = [r for r in records if r.status == 'done']
    assert rejected, 'the toy space draws x up to 50, some must be rejected'
    assert len(done) == 10 and result.evaluated == 10
    assert not {r.id for r in rejected} & set(evaluate.calls)
    assert all(r.genome['x'] <= 28 and r.latency_ms == r.genome['x'] for r in done)
    assert all(r.error.startswith('x ') for r in rejected)


def test_impossible_constraint_stops_with_the_closest_miss(tmp_path):
    def never(genome):
        return Verdict(False, {'latency_ms': 100.0 + genome['x']},
                       f'latency {100 + genome["x"]} ms over budget', 100.0 + genome['x'])

    with pytest.raises(BudgetUnreachable) as info:
        run(tmp_path, constraints=[never], max_rej=15)
    with SearchStore.open(tmp_path / 's.db', HEADER) as store:
        records = store.candidates()
    smallest = min(r.latency_ms for r in records)
    assert len(records) == 15 and all(r.status == 'rejected' for r in records)
    assert f'latency {smallest:g} ms over budget' in str(info.value)
    assert '15 tries' in str(info.value)


def test_same_seed_same_search_and_batches_are_order_independent(tmp_path):
    _, _, first = run(tmp_path, 'a.db', batch=3)

    class Reversed(Recorder):
        def __call__(self, records, should_stop):
            yield from super().__call__(list(reversed(records)), should_stop)

    _, _, second = run(tmp_path, 'b.db', batch=3, evaluate=Reversed())
    _, _, other_seed = run(tmp_path, 'c.db', batch=3, seed=1)
    key = [(r.genome_hash, r.parent_id, r.accuracy) for r in first]
    assert key == [(r.genome_hash, r.parent_id, r.accuracy) for r in second]
    assert key != [(r.genome_hash, r.parent_id, r.accuracy) for r in other_seed]


def test_resume_replays_without_reevaluating(tmp_path):
    _, straight, straight_records = run(tmp_path, 'full.db', rounds=9, batch=2)
    evaluate = Recorder()

    def should_stop():
        return len(evaluate.calls) >= 7

    with pytest.raises(SearchCancelled):
        run(tmp_path, 'part.db', rounds=9, batch=2, evaluate=evaluate, should_stop=should_stop)
    with SearchStore.open(tmp_path / 'part.db', HEADER) as store:
        statuses = [r.status for r in store.candidates()]
    assert statuses.count('done') == 7 and 'training' not in statuses
    done_before = set(evaluate.calls)
    again = Recorder()
    _, resumed, resumed_records = run(tmp_path, 'part.db', rounds=9, batch=2, evaluate=again)
    assert not done_before & set(again.calls), 'a done candidate was evaluated twice'
    assert sorted(done_before | set(again.calls)) == list(range(13))
    assert [(r.genome_hash, r.status, r.accuracy) for r in resumed_records] == \
        [(r.genome_hash, r.status, r.accuracy) for r in straight_records]
    assert resumed.best.id == straight.best.id


def test_resume_refuses_a_store_written_by_another_space(tmp_path):
    run(tmp_path, rounds=2)
    with pytest.raises(StoreError, match='not what this search proposes'):
        run(tmp_path, rounds=2, space=toy_space(offset=1000))


def test_failed_candidates_never_join_and_all_failed_init_is_an_error(tmp_path):
    _, result, records = run(tmp_path, 'f.db', population=4, rounds=4,
                             evaluate=Recorder(fail_ids={1, 5}))
    assert records[1].status == 'failed' and records[1].error == 'boom'
    assert 1 not in {r.id for r in result.population} and result.evaluated == 8
    with pytest.raises(SearchFailed, match='initial population failed'):
        run(tmp_path, 'g.db', population=2, rounds=2, evaluate=Recorder(fail_ids={0, 1}))


def test_time_budget_stops_between_batches(tmp_path):
    ticks = iter(range(1000))  # every clock reading advances one second
    store = SearchStore.open(tmp_path / 'tb.db', HEADER)
    config = EngineConfig(population=3, rounds=10, tournament=2, time_budget_s=4.5)
    engine = Evolution(toy_space(), store, config, Recorder(), clock=lambda: next(ticks) * 1.0)
    result = engine.run()
    store.close()
    assert result.state == 'time_budget'
    assert 0 < result.evaluated < 13


def test_config_checks_and_default_tournament():
    assert default_tournament(100) == 25 and default_tournament(3) == 2
    assert default_tournament(1) == 1
    with pytest.raises(VasError, match='tournament size'):
        EngineConfig(population=3, rounds=1, tournament=4)


class _Killed(BaseException):
    """Stands for SIGKILL mid-evaluation: nothing in the engine handles it, so the
    candidates being trained stay 'training' in the store, as after a real kill."""


def _key(records):
    return [(r.id, r.genome_hash, r.parent_id, r.origin, r.status, r.accuracy, r.error)
            for r in records]


def test_resume_at_every_cut_point_replays_rejections_and_training_rows(tmp_path):
    checked: list[dict] = []

    def small_x(genome):
        checked.append(genome)
        ok = genome['x'] <= 28
        return Verdict(ok, {'latency_ms': float(genome['x'])},
                       '' if ok else f'median x {genome["x"]} over 28', float(genome['x']))

    options = dict(population=4, rounds=8, batch=2, constraints=[small_x],
                   seeds=[{'x': 5, 'y': 5}])
    _, straight, want = run(tmp_path, 'full.db', **options)
    assert {'rejected', 'done'} <= {r.status for r in want}
    evaluations = sum(r.status == 'done' for r in want)
    for cut in range(1, evaluations):
        name = f'cut{cut}.db'
        first = Recorder()

        def dying(records, should_stop, first=first, cut=cut):
            for item in first(records, should_stop):
                if len(first.calls) == cut:
                    raise _Killed()
                yield item

        with pytest.raises(_Killed):
            run(tmp_path, name, evaluate=dying, **options)
        with SearchStore.open(tmp_path / name, HEADER) as store:
            before = {r.id: r.status for r in store.candidates()}
        assert 'training' in before.values()
        checked.clear()
        again = Recorder()
        _, resumed, records = run(tmp_path, name, evaluate=again, **options)
        assert _key(records) == _key(want), f'cut after evaluation {cut}'
        assert resumed.best.id == straight.best.id
        done_before = {i for i, s in before.items() if s == 'done'}
        training_before = {i for i, s in before.items() if s == 'training'}
        assert not done_before & set(again.calls), 'a finished candidate was trained again'
        assert training_before <= set(again.calls), 'a killed candidate was not trained again'
        # Rejections and accepted proposals already recorded are replayed, not re-checked.
        assert len(checked) == sum(1 for r in records if r.id not in before
                                   and r.origin != 'seed')


def test_a_time_budget_split_over_two_runs_continues_the_same_search(tmp_path):
    import time

    class Slow(Recorder):
        def __call__(self, records, should_stop):
            for item in super().__call__(records, should_stop):
                time.sleep(0.05)
                yield item

    options = dict(population=4, rounds=1000, batch=1)
    store = SearchStore.open(tmp_path / 'whole.db', HEADER)
    engine = Evolution(toy_space(), store, EngineConfig(population=4, rounds=1000, tournament=2,
                                                        time_budget_s=1.0), Slow())
    assert engine.run().state == 'time_budget'
    want = store.candidates()
    store.close()

    first = Slow()
    with pytest.raises(SearchCancelled):
        run(tmp_path, 'split.db', evaluate=first, should_stop=lambda: len(first.calls) >= 6,
            **options)
    store = SearchStore.open(tmp_path / 'split.db', HEADER)
    spent = store.elapsed_before(-1)
    engine = Evolution(toy_space(), store, EngineConfig(population=4, rounds=1000, tournament=2,
                                                        time_budget_s=1.0), Slow())
    result = engine.run()
    records = store.candidates()
    total = store.elapsed_before(-1)
    store.close()
    assert result.state == 'time_budget'
    assert 0.25 <= spent < 1.0, spent  # the first run's time counts against the budget
    assert total < 1.0 + 0.5, total  # one evaluation of slack at most, not a second budget
    common = min(len(records), len(want))
    assert common >= 8
    # The same search, cut in two: the same proposals in the same order.
    assert _key(records)[:common - 1] == _key(want)[:common - 1]


def test_a_store_with_plain_string_statuses_resumes_with_the_enum(tmp_path):
    """A store whose rows hold the statuses as plain strings (as every store did before
    `Status`) is resumed: done candidates are replayed, a 'training' row is trained again,
    and the rows keep their plain string values on disk."""
    import sqlite3

    _, straight, want = run(tmp_path, 'full.db', rounds=6, batch=2)
    path = tmp_path / 'old.db'
    (tmp_path / 'old.db').write_bytes((tmp_path / 'full.db').read_bytes())
    conn = sqlite3.connect(path)
    with conn:  # cut the search short, with one candidate killed mid-training
        assert {r[0] for r in conn.execute('SELECT typeof(status) FROM candidates')} == {'text'}
        conn.execute('DELETE FROM candidates WHERE id > 5')
        conn.execute("UPDATE candidates SET status = 'training', accuracy = NULL WHERE id = 5")
    conn.close()
    again = Recorder()
    _, resumed, records = run(tmp_path, 'old.db', rounds=6, batch=2, evaluate=again)
    assert again.calls == [5, 6, 7, 8, 9], 'only the killed and the missing ones are trained'
    assert _key(records) == _key(want) and resumed.best.id == straight.best.id
    assert all(type(r.status) is Status for r in records)
    conn = sqlite3.connect(path)
    raw = conn.execute('SELECT status, typeof(status) FROM candidates ORDER BY id').fetchall()
    conn.close()
    assert raw == [('done', 'text')] * 10


def test_evaluate_must_yield_eval_results(tmp_path):
    def untyped(records, should_stop):
        for rec in records:
            yield rec, {'ok': True, 'accuracy': 0.5}

    with pytest.raises(TypeError, match='not an EvalResult'):
        run(tmp_path, evaluate=untyped)
