"""The search's record types: `Status` reads and writes as the strings stores always held,
and `EvalResult` crosses the worker boundary as plain data and refuses anything else."""

from __future__ import annotations

import csv
import io
import json
import pickle

import pytest

from vas_ros.errors import VasError
from vas_ros.search.records import EvalResult, EvalResultError, Status


def test_status_is_its_string_everywhere_the_search_writes_it():
    assert [s.value for s in Status] == ['pending', 'rejected', 'training', 'done', 'failed']
    assert Status.DONE == 'done' and Status('failed') is Status.FAILED
    assert f'{Status.REJECTED}' == str(Status.REJECTED) == 'rejected'
    assert json.dumps({Status.DONE: [Status.TRAINING]}, indent=2, sort_keys=True) == \
        json.dumps({'done': ['training']}, indent=2, sort_keys=True)
    out = io.StringIO()
    csv.writer(out).writerow([Status.PENDING])
    assert out.getvalue().strip() == 'pending'
    assert {s for s in Status if s.finished} == {Status.DONE, Status.FAILED}
    with pytest.raises(ValueError):
        Status('finished')


SUCCESS = {'ok': True, 'accuracy': 0.625, 'seconds': 1.5, 'steps': 12,
           'next_genome': {'blocks': [1, 2]}, 'inherited': 0.75, 'val_loss': 1.25,
           'peak_rss_mb': 512.0, 'error': None}


def test_eval_result_round_trips_as_plain_data():
    result = EvalResult.from_dict(SUCCESS)
    assert result.ok and result.accuracy == 0.625 and result.steps == 12
    assert result.next_genome == {'blocks': [1, 2]}
    assert result.to_dict() == SUCCESS
    assert json.loads(json.dumps(result.to_dict())) == SUCCESS  # JSON-like, as Ray carries it
    assert EvalResult.from_dict(pickle.loads(pickle.dumps(result.to_dict()))) == result
    # Only 'ok' (and what it implies) is required; the rest defaults to None.
    assert EvalResult.from_dict({'ok': True, 'accuracy': 1}).accuracy == 1.0
    failure = EvalResult.failure('boom', seconds=2.0)
    assert EvalResult.from_dict(failure.to_dict()) == failure
    assert (failure.ok, failure.error, failure.seconds, failure.accuracy) == \
        (False, 'boom', 2.0, None)
    with pytest.raises(AttributeError):
        failure.ok = True  # frozen


def test_from_dict_refuses_an_unknown_field():
    with pytest.raises(EvalResultError, match="unknown field.*'?latency_ms'?") as info:
        EvalResult.from_dict({**SUCCESS, 'latency_ms': 3.0})
    assert isinstance(info.value, VasError) and 'latency_ms' in str(info.value)


def test_from_dict_refuses_a_missing_ok():
    body = {k: v for k, v in SUCCESS.items() if k != 'ok'}
    with pytest.raises(EvalResultError, match="missing the required field 'ok'"):
        EvalResult.from_dict(body)
    with pytest.raises(EvalResultError, match='must be a dict'):
        EvalResult.from_dict([('ok', True)])


@pytest.mark.parametrize('data, problem', [
    ({'ok': 1, 'accuracy': 0.5}, "'ok' must be true or false"),
    ({'ok': True}, "needs a finite 'accuracy'"),
    ({'ok': True, 'accuracy': float('nan')}, "'accuracy' must be finite"),
    ({'ok': True, 'accuracy': 0.5, 'steps': 2.7}, "'steps' must be a whole number"),
    ({'ok': True, 'accuracy': 0.5, 'steps': float('inf')}, "'steps' must be finite"),
    ({'ok': True, 'accuracy': 10**400}, "'accuracy' must be finite"),
    ({'ok': True, 'accuracy': '0.5'}, "'accuracy' must be a number"),
    ({'ok': True, 'accuracy': 0.5, 'error': 'x'}, "cannot carry an 'error'"),
    ({'ok': False}, "needs an 'error'"),
    ({'ok': False, 'error': 3}, "'error' must be a string"),
    ({'ok': True, 'accuracy': 0.5, 'steps': True}, "'steps' must be a number"),
    ({'ok': True, 'accuracy': 0.5, 'next_genome': [1]}, "'next_genome' must be a dict"),
])
def test_from_dict_refuses_inconsistent_values(data, problem):
    with pytest.raises(EvalResultError, match=problem):
        EvalResult.from_dict(data)
