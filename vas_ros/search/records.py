"""The search's record types: a candidate's status and the result of evaluating it.

`Status` is a `StrEnum`: its members equal, hash, format and serialise (JSON, CSV,
SQLite) as the plain strings the store has always held ('pending', 'done', ...), so a
store written before the enum existed reads back unchanged and files the search writes
keep their content.

`EvalResult` is what one proxy training returns. It crosses the process/Ray boundary as
plain data (`to_dict()`, a dict of JSON-like values) and is rebuilt on the driver with
`from_dict()`, which refuses a dict with an unknown field or without `ok`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from enum import StrEnum

from vas_ros.errors import VasError


class Status(StrEnum):
    """Where a candidate is: proposed, refused by a constraint, being trained, trained,
    or failed to train. The values are what the store's `status` column holds."""

    PENDING = 'pending'
    REJECTED = 'rejected'
    TRAINING = 'training'
    DONE = 'done'
    FAILED = 'failed'

    @property
    def finished(self) -> bool:
        """Evaluated (successfully or not): a resume never evaluates it again."""
        return self in (Status.DONE, Status.FAILED)


class EvalResultError(VasError, ValueError):
    """A result dict that is not an `EvalResult` (unknown or missing fields, bad values)."""


def _number(name: str, value, kind=float):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EvalResultError(f'evaluation result field {name!r} must be a number or None, '
                              f'got {value!r}')
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int too large for a float
        finite = False
    if not finite:
        raise EvalResultError(f'evaluation result field {name!r} must be finite, got '
                              f'{str(value)[:40]}')
    if kind is int and value != int(value):
        raise EvalResultError(f'evaluation result field {name!r} must be a whole number, '
                              f'got {value!r}')
    return kind(value)


@dataclass(frozen=True)
class EvalResult:
    """One candidate's proxy training, as a worker reports it.

    A success (`ok=True`) has `accuracy` (the fitness: best validation top-1); `seconds`
    and `steps` of training, `next_genome` (the genome its children start from, when the
    space's `after_training` changed it), `inherited` (share of parameters copied from
    the parent), `val_loss` and the worker's `peak_rss_mb` when known. A failure
    (`ok=False`) has `error`, and `seconds` when known. Latency, params and MACs are not
    here: the driver measures them before training (see `backends.py`).
    """

    ok: bool
    accuracy: float | None = None
    seconds: float | None = None
    steps: int | None = None
    next_genome: dict | None = None
    inherited: float | None = None
    val_loss: float | None = None
    peak_rss_mb: float | None = None
    error: str | None = None

    def __post_init__(self):
        if not isinstance(self.ok, bool):
            raise EvalResultError(f'evaluation result field \'ok\' must be true or false, '
                                  f'got {self.ok!r}')
        for name in ('accuracy', 'seconds', 'inherited', 'val_loss', 'peak_rss_mb'):
            object.__setattr__(self, name, _number(name, getattr(self, name)))
        object.__setattr__(self, 'steps', _number('steps', self.steps, int))
        if self.next_genome is not None and not isinstance(self.next_genome, dict):
            raise EvalResultError(f'evaluation result field \'next_genome\' must be a dict or '
                                  f'None, got {type(self.next_genome).__name__}')
        if self.error is not None and not isinstance(self.error, str):
            raise EvalResultError(f'evaluation result field \'error\' must be a string or '
                                  f'None, got {self.error!r}')
        if self.ok:
            if self.accuracy is None or not math.isfinite(self.accuracy):
                raise EvalResultError(f'a successful evaluation result needs a finite '
                                      f'\'accuracy\', got {self.accuracy!r}')
            if self.error is not None:
                raise EvalResultError('a successful evaluation result cannot carry an '
                                      '\'error\'')
        elif not self.error:
            raise EvalResultError('a failed evaluation result needs an \'error\' message')

    @classmethod
    def failure(cls, error: str, *, seconds: float | None = None) -> EvalResult:
        return cls(ok=False, error=str(error) or 'unknown error', seconds=seconds)

    def to_dict(self) -> dict:
        """Every field, as plain data (what a worker sends back)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data) -> EvalResult:
        """The result a worker sent; EvalResultError for anything that is not one."""
        if not isinstance(data, dict):
            raise EvalResultError(f'an evaluation result must be a dict, got '
                                  f'{type(data).__name__}')
        known = {f.name for f in fields(cls)}
        unknown = sorted(map(str, set(data) - known))
        if unknown:
            raise EvalResultError(f'evaluation result has unknown field(s) '
                                  f'{", ".join(unknown)} (known: {", ".join(sorted(known))})')
        if 'ok' not in data:
            raise EvalResultError(f'evaluation result is missing the required field \'ok\' '
                                  f'(got {", ".join(sorted(map(str, data))) or "nothing"})')
        return cls(**data)
