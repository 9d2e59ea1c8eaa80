"""The local process-pool backend running real task functions in spawned workers.

The Ray backend runs a whole search on a real local Ray in test_search_cli.py.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time

import pytest

from vas_ros.errors import VasError
from vas_ros.search.backends import LocalBackend, make_backend, run_task
from vas_ros.search.engine import SearchCancelled
from vas_ros.search.records import EvalResult

ME = 'test_search_backends'


def square(payload: dict) -> dict:
    return {'ok': True, 'value': payload['x'] ** 2, 'pid': os.getpid(),
            'threads': __import__('torch').get_num_threads()}


def explode(payload: dict) -> dict:
    raise RuntimeError(f'bad x {payload["x"]}')


def die(payload: dict) -> dict:
    os._exit(9)


def sleepy(payload: dict) -> dict:
    time.sleep(payload['s'])
    return {'ok': True}


def test_run_task_turns_exceptions_into_failed_results():
    assert run_task(f'{ME}:square', {'x': 3})['value'] == 9
    failed = run_task(f'{ME}:explode', {'x': 4})
    assert failed['ok'] is False and 'RuntimeError: bad x 4' in failed['error']


def test_local_backend_runs_tasks_in_spawned_workers_and_survives_a_dead_worker():
    backend = LocalBackend(workers=2, threads=1)
    try:
        results = dict(backend.map_unordered(f'{ME}:square',
                                             [(i, {'x': i}) for i in range(5)],
                                             lambda: False))
        assert {k: r['value'] for k, r in results.items()} == {i: i * i for i in range(5)}
        assert {r['pid'] for r in results.values()} - {os.getpid()}, 'ran in the driver'
        assert all(r['threads'] == 1 for r in results.values())
        dead = dict(backend.map_unordered(f'{ME}:die', [('d', {})], lambda: False))
        assert dead['d']['ok'] is False and 'worker process died (exit code 9)' in \
            dead['d']['error']
        after = dict(backend.map_unordered(f'{ME}:square', [('a', {'x': 7})], lambda: False))
        assert after['a']['value'] == 49
        failed = dict(backend.map_unordered(f'{ME}:explode', [('e', {'x': 1})], lambda: False))
        assert 'bad x 1' in failed['e']['error']
    finally:
        backend.close()
    assert not [p for p in mp.active_children() if p.name == 'vas-ros-search-worker']


def test_local_backend_cancel_terminates_running_work():
    backend = LocalBackend(workers=1, threads=1)
    started = time.monotonic()
    deadline = started + 3.0
    with pytest.raises(SearchCancelled):
        list(backend.map_unordered(f'{ME}:sleepy', [(0, {'s': 60})],
                                   lambda: time.monotonic() > deadline))
    assert time.monotonic() - started < 30
    assert not [p for p in mp.active_children() if p.name == 'vas-ros-search-worker']
    backend.close()


def test_backend_choice_errors():
    with pytest.raises(VasError, match='--address only applies'):
        make_backend('local', address='auto')
    with pytest.raises(VasError, match='unknown backend'):
        make_backend('dask')
    with pytest.raises(VasError, match='--workers must be'):
        make_backend('local', workers=0)


def test_a_worker_failure_arrives_as_a_failed_eval_result():
    """The driver's side of the boundary: what a failing task sends back rebuilds into
    EvalResult(ok=False) carrying the worker's error (a raise, and a dead worker)."""
    backend = LocalBackend(workers=1, threads=1)
    try:
        raised = dict(backend.map_unordered(f'{ME}:explode', [('e', {'x': 5})],
                                            lambda: False))
        died = dict(backend.map_unordered(f'{ME}:die', [('d', {})], lambda: False))
    finally:
        backend.close()
    failure = EvalResult.from_dict(raised['e'])
    assert failure.ok is False and failure.accuracy is None
    assert failure.error.startswith('RuntimeError: bad x 5')
    dead = EvalResult.from_dict(died['d'])
    assert dead.ok is False and 'worker process died (exit code 9)' in dead.error
    assert EvalResult.from_dict(run_task(f'{ME}:explode', {'x': 6})) == \
        EvalResult(ok=False, error=run_task(f'{ME}:explode', {'x': 6})['error'])
