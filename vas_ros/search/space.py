"""Search spaces: how a family draws random genomes and mutates them.

A family's space module (listed in `SPACE_MODULES`) builds a `SearchSpace` and calls
`register_space` at import. The engine only ever calls `random_genome`, `mutate` and
`after_training`; everything family-specific stays in the space module. Spaces may take
options (e.g. a smaller filter ceiling so a CPU search stays small): `configure(**options)`
returns a new space, and `options` holds the values in force so the store can record them.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from vas_ros.errors import VasError

SPACE_MODULES = {
    'tvn': 'vas_ros.search.tvn_space',
    'evanet': 'vas_ros.search.evanet_space',
    'assemblenet': 'vas_ros.search.assemblenet_space',
}


@dataclass(frozen=True)
class SearchSpace:
    """One family's search space.

    - `random_genome(rng) -> genome`: a valid genome dict drawn with `rng` only.
    - `mutate(genome, rng) -> genome`: a valid genome that differs from `genome`.
    - `after_training(genome, model) -> genome` (optional): called in the worker after proxy
      training; the returned genome is what later mutations of this candidate start from
      (AssembleNet prunes and proposes edges from the learned connection weights here).
    - `configure(**options) -> SearchSpace` (optional): the same space with other options.
    - `options`: the option values in force (JSON-serialisable).
    """

    family: str
    random_genome: Callable[[random.Random], dict]
    mutate: Callable[[dict, random.Random], dict]
    after_training: Callable[[dict, object], dict] | None = None
    configure: Callable[..., SearchSpace] | None = None
    options: dict = field(default_factory=dict)
    description: str = ''

    def with_options(self, options: dict | None) -> SearchSpace:
        """This space with `options` applied; a clear error for options it does not take."""
        if not options:
            return self
        if self.configure is None:
            raise VasError(f'search space {self.family!r} takes no options, '
                           f'got {sorted(options)}')
        try:
            return self.configure(**options)
        except (TypeError, ValueError) as exc:  # e.g. max_filters=abc
            raise VasError(f'search space {self.family!r}: bad options '
                           f'{json.dumps(options, default=str)}: {exc}') from None


_SPACES: dict[str, SearchSpace] = {}


def register_space(space: SearchSpace) -> None:
    _SPACES[space.family] = space


def available_families() -> list[str]:
    """Families whose space module is present in this installation."""
    return [fam for fam, mod in SPACE_MODULES.items()
            if fam in _SPACES or importlib.util.find_spec(mod) is not None]


def get_space(family: str) -> SearchSpace:
    """The registered space for `family`, importing its module on first use."""
    if family not in _SPACES:
        module = SPACE_MODULES.get(family)
        if module is None:
            raise VasError(f'no search space for family {family!r}; '
                           f'spaces exist for {sorted(SPACE_MODULES)}')
        if importlib.util.find_spec(module) is None:
            raise VasError(f'the {family} search space ({module}) is not installed yet; '
                           f'available: {available_families() or "none"}')
        importlib.import_module(module)
        if family not in _SPACES:
            raise VasError(f'{module} did not register a search space for {family!r}')
    return _SPACES[family]


def canonical_json(genome: dict) -> str:
    """The one serialisation used for hashing and storing genomes."""
    return json.dumps(genome, sort_keys=True, separators=(',', ':'))


def genome_hash(genome: dict) -> str:
    return hashlib.sha256(canonical_json(genome).encode()).hexdigest()[:16]
