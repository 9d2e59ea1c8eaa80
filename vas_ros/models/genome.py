"""The one contract between a genome and its network, and the field checks every family shares.

A family's genome is a dataclass that subclasses `Genome`. It parses and fully checks the
family's JSON (`from_dict`, raising `GenomeError` that names the field), writes it back
in normal form (`to_dict`), says what input the network takes (`input_spec`) and builds it
(`build`). The hooks below have defaults, so a new family overrides only what it needs:

- `distance(other)`: how unalike two genomes are (ensembles pick diverse members with it);
- `with_streams(streams)`: the same architecture reading other input streams, or None;
- `artefacts(model, out_dir, name)`: files worth keeping next to a search's best model
  (AssembleNet draws its learned graph);
- `param_groups(model)`: optimizer parameter groups (AssembleNet trains its edge logits
  apart from the weights).

The field checks (`integer`, `number`, `flag`, `choice`, `json_object`, ...) take the value and
the path to report (`blocks[2].filters`), so every family's errors read the same way.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from vas_ros.errors import GenomeError

if TYPE_CHECKING:
    from torch import nn

    from vas_ros.models.spec import InputSpec


def join(path: str, key: str | int) -> str:
    """`path.key` (or `path[i]` for an index); a bare key at the root."""
    if isinstance(key, int):
        return f'{path}[{key}]'
    return f'{path}.{key}' if path else key


def _where(path: str) -> str:
    return path or 'genome'


def _finite(value) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f'{text[:20]}...({len(text)} characters)'


def integer(value, path: str, low: int | None = None, high: int | None = None) -> int:
    """A whole number (an integral float such as 4.0 is accepted) within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and not value.is_integer()):
        raise GenomeError(_where(path), f'must be an integer, got {value!r}')
    value = int(value)
    if low is not None and value < low:
        raise GenomeError(_where(path), f'must be >= {low}, got {value}')
    if high is not None and value > high:
        raise GenomeError(_where(path), f'must be <= {high}, got {value}')
    return value


def number(value, path: str, low: float, high: float, *, low_open: bool = False,
           high_open: bool = False) -> float:
    """A finite number in the interval [low, high], each end open if asked."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
        raise GenomeError(_where(path), f'must be a number, got {_short(value)}')
    if value < low or value > high or (low_open and value == low) \
            or (high_open and value == high):
        interval = f'{"(" if low_open else "["}{low}, {high}{")" if high_open else "]"}'
        raise GenomeError(_where(path), f'must be in {interval}, got {value}')
    return float(value)


def dropout(value, path: str = 'dropout') -> float:
    """The head's dropout rate: [0, 1), since 1 would drop every feature."""
    return number(value, path, 0.0, 1.0, high_open=True)


def flag(value, path: str, *, allow_01: bool = False) -> bool:
    """true/false; with `allow_01`, also 0/1 (TVN's published tables write flags so)."""
    if isinstance(value, bool):
        return value
    if allow_01 and isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    accepted = 'true/false (or 0/1)' if allow_01 else 'true or false'
    raise GenomeError(_where(path), f'must be {accepted}, got {value!r}')


def choice(value, path: str, options):
    """One of `options`; True is not 1 here, although Python says it equals it."""
    if isinstance(value, bool) and not any(isinstance(o, bool) for o in options):
        raise GenomeError(_where(path), f'must be one of {list(options)}, got {value!r}')
    try:
        ok = value in options
    except TypeError:  # an unhashable value against a set of options
        ok = False
    if not ok:
        raise GenomeError(_where(path), f'must be one of {list(options)}, got {value!r}')
    return value


def json_object(value, path: str, allowed, required=()) -> dict:
    """A JSON object with no unknown and no missing fields; the first offender is named."""
    if not isinstance(value, dict):
        raise GenomeError(_where(path), f'must be a JSON object, got {type(value).__name__}')
    unknown = sorted(set(value) - set(allowed), key=str)
    if unknown:
        raise GenomeError(join(path, str(unknown[0])),
                          f'unknown field; known: {sorted(allowed)}')
    missing = [key for key in required if key not in value]
    if missing:
        raise GenomeError(join(path, missing[0]), 'is required')
    return value


def int_list(value, path: str, length: int, low: int, high: int | None = None
             ) -> tuple[int, ...]:
    """Exactly `length` integers, each within [low, high]."""
    if not isinstance(value, (list, tuple)) or len(value) != length:
        raise GenomeError(_where(path), f'must be a list of {length} integers, got {value!r}')
    return tuple(integer(v, join(path, i), low, high) for i, v in enumerate(value))


def items(value, path: str, low: int, high: int) -> list:
    """A JSON list of `low` to `high` entries (blocks, branches, members)."""
    if not isinstance(value, list):
        raise GenomeError(_where(path), f'must be a list, got {type(value).__name__}')
    if not low <= len(value) <= high:
        raise GenomeError(_where(path), f'must hold {low} to {high} entries, got {len(value)}')
    return value


def leaves(value, prefix: str = '') -> dict:
    """Flattened {path: value} of a JSON tree; list lengths count as leaves of their own."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            out.update(leaves(item, f'{prefix}.{key}'))
        return out
    if isinstance(value, list):
        out = {f'{prefix}#len': len(value)}
        for i, item in enumerate(value):
            out.update(leaves(item, f'{prefix}[{i}]'))
        return out
    return {prefix: value}


class Genome(ABC):
    """What every family's genome dataclass provides (see the module docstring)."""

    family: ClassVar[str]

    @classmethod
    @abstractmethod
    def from_dict(cls, data: dict) -> Genome:
        """Parse and check JSON data; `GenomeError` names the first bad field."""

    @abstractmethod
    def to_dict(self) -> dict:
        """The normal JSON form: defaults written out, so equal genomes hash equal."""

    @abstractmethod
    def input_spec(self) -> InputSpec:
        """Frames, size, stride and streams of the clips the network takes."""

    @abstractmethod
    def build(self, num_classes: int) -> nn.Module:
        """A randomly initialised network, called as `model(*streams)`."""

    @classmethod
    def parse(cls, data: dict | Genome) -> Genome:
        """`data` as this family's genome; a genome of another family is an error."""
        if isinstance(data, cls):
            return data
        if isinstance(data, Genome):
            raise GenomeError('genome', f'a {data.family} genome is not a genome of family '
                                        f'{cls.family}')
        return cls.from_dict(data)

    @classmethod
    def normalise(cls, data: dict) -> dict:
        """The checked normal form of JSON data (what `validate` returned before)."""
        return cls.parse(data).to_dict()

    @classmethod
    def from_json(cls, text: str) -> Genome:
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:  # bad JSON, 4300+ digits, deep nesting
            raise GenomeError('genome', f'not valid JSON ({exc})') from None
        return cls.from_dict(data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    # ------------------------------------------------------------------ optional hooks

    def distance(self, other: Genome) -> float:
        """Number of JSON leaves that differ (a family may count something structural)."""
        a, b = leaves(self.to_dict()), leaves(type(self).parse(other).to_dict())
        return float(sum(a.get(k) != b.get(k) for k in set(a) | set(b)))

    def with_streams(self, streams: tuple[str, ...]) -> Genome | None:
        """This architecture reading `streams` instead, or None if it cannot."""
        return self if tuple(streams) == tuple(self.input_spec().streams) else None

    def artefacts(self, model: nn.Module, out_dir: Path, name: str) -> list[Path]:
        """Files to write beside a search's best model (none by default)."""
        return []

    def param_groups(self, model: nn.Module) -> list[dict]:
        """Optimizer parameter groups; extra keys (`lr_scale`) are read by the trainer."""
        return [{'params': list(model.parameters())}]
