"""Search spaces: how a family draws random genomes and mutates them.

A family's space module (listed in `SPACE_MODULES`) subclasses `SearchSpace` and calls
`register_space` at import. The engine only ever calls `random_genome`, `mutate` and
`after_training`; everything family-specific stays in the space module, and the space
reaches its family only through the registry (`self.genome_type` for the genome class and
the constants it draws from, `self.validate` for the family's checks). Spaces take options
(e.g. a smaller filter ceiling so a CPU search stays small): `with_options(options)`
returns a new space, and `options` holds the values in force so the store can record them.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import random
from abc import ABC, abstractmethod
from typing import ClassVar

from vas_ros.errors import GenomeError, VasError
from vas_ros.models.genome import Genome
from vas_ros.models.registry import get_family

SPACE_MODULES = {
    'tvn': 'vas_ros.search.tvn_space',
    'evanet': 'vas_ros.search.evanet_space',
    'assemblenet': 'vas_ros.search.assemblenet_space',
}
# Redraws before a space gives up on a valid random genome or a changing mutation.
MAX_TRIES = 200


class SearchSpace(ABC):
    """One family's search space under fixed options.

    Subclasses set `family`, `description` and `DEFAULTS` (every option with its default),
    check their options in `check_options`, and implement `draw` (a random genome, not yet
    validated) and `edit` (one random change to a copy of a valid genome, or None when the
    drawn change does not apply). `random_genome` and `mutate` redraw until the family
    accepts the result (and, for mutations, it differs from the parent), all from `rng`,
    so a seed determines the sequence. `after_training` may rewrite a trained candidate's
    genome (AssembleNet prunes and proposes edges from the learned connection weights).
    """

    family: ClassVar[str]
    description: ClassVar[str] = ''
    DEFAULTS: ClassVar[dict] = {}

    def __init__(self, **options):
        unknown = set(options) - set(self.DEFAULTS)
        if unknown:
            raise VasError(f'{self.family} search space: unknown options {sorted(unknown)}; '
                           f'known: {sorted(self.DEFAULTS)}')
        self.options = self.check_options({**self.DEFAULTS, **options})

    def check_options(self, options: dict) -> dict:
        """The options, checked and normalised (JSON-serialisable); VasError if bad."""
        return options

    @property
    def genome_type(self) -> type[Genome]:
        return get_family(self.family).genome

    def validate(self, genome: dict) -> dict:
        """The family's normal form of `genome`, or GenomeError."""
        return self.genome_type.normalise(genome)

    def accepts(self, genome: dict) -> dict | None:
        """The normal form if the family accepts `genome`, else None."""
        try:
            return self.validate(genome)
        except GenomeError:
            return None

    @abstractmethod
    def draw(self, rng: random.Random) -> dict:
        """A random genome (checked by `random_genome`, redrawn if the family refuses)."""

    @abstractmethod
    def edit(self, genome: dict, rng: random.Random) -> dict | None:
        """One random change to `genome` (a valid genome the caller lets you modify)."""

    def random_genome(self, rng: random.Random) -> dict:
        for _ in range(MAX_TRIES):
            genome = self.accepts(self.draw(rng))
            if genome is not None:
                return genome
        raise VasError(f'the {self.family} search space {self.options} yielded no valid '
                       f'genome in {MAX_TRIES} draws; widen it')

    def mutate(self, genome: dict, rng: random.Random) -> dict:
        parent = self.validate(genome)
        key = genome_hash(parent)
        for _ in range(MAX_TRIES):
            child = self.edit(json.loads(canonical_json(parent)), rng)
            child = None if child is None else self.accepts(child)
            if child is not None and genome_hash(child) != key:
                return child
        raise VasError(f'no valid mutation of {self.family} genome {key} in {MAX_TRIES} '
                       f'tries')

    def after_training(self, genome: dict, model) -> dict:
        """The genome later mutations of this trained candidate start from (unchanged)."""
        return genome

    def with_options(self, options: dict | None) -> SearchSpace:
        """This family's space with `options` over the defaults; a clear error for bad ones."""
        if not options:
            return self
        try:
            return type(self)(**options)
        except (TypeError, ValueError, KeyError, IndexError, OverflowError) as exc:
            raise VasError(f'search space {self.family!r}: bad options '
                           f'{json.dumps(options, default=str)}: {exc}') from None


_SPACES: dict[str, SearchSpace] = {}


def register_space(space: SearchSpace) -> None:
    if not isinstance(space, SearchSpace):
        raise VasError(f'a search space must be a SearchSpace, got {type(space).__name__}')
    if space.family in _SPACES and type(_SPACES[space.family]) is not type(space):
        raise VasError(f'a search space for {space.family!r} is already registered')
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
