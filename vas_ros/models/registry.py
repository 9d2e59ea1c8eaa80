"""The registry of model families and their presets: a leaf that imports no family.

A family module (tvn, evanet, assemblenet, baselines, ensemble, or a user's own package
named under the `vas_ros.families` entry point group) calls `register_family` at import
with a `Family`: its genome class (`vas_ros.models.genome.Genome`) and its named presets.
`ModelArch` pairs a family with a parsed genome. Turning a name, a JSON file or a
checkpoint into a `ModelArch` is the factory's job (`vas_ros.models.factory`), which sits
above this module and the checkpoint reader.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vas_ros.errors import GenomeError, VasError
from vas_ros.models.genome import Genome

if TYPE_CHECKING:
    from torch import nn

    from vas_ros.models.spec import InputSpec

# Modules that register the built-in families; imported on first lookup.
FAMILY_MODULES = (
    'vas_ros.models.tvn',
    'vas_ros.models.evanet',
    'vas_ros.models.assemblenet',
    'vas_ros.models.baselines',
    'vas_ros.models.ensemble',
)
# Installed packages may add families: `[project.entry-points."vas_ros.families"]`
# naming a module that calls `register_family` when imported.
ENTRY_POINT_GROUP = 'vas_ros.families'
# Far above any activity vocabulary (Kinetics has 700, Moments in Time 339).
MAX_CLASSES = 100_000


@dataclass(frozen=True)
class Family:
    """A family: its genome class, named presets (JSON) and one-line preset descriptions.

    The dict-level methods serve code that holds JSON (search spaces, stores): each parses
    with the genome class and so checks the genome fully.
    """

    name: str
    genome: type[Genome]
    presets: dict[str, dict] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)

    def parse(self, data: dict | Genome) -> Genome:
        return self.genome.parse(data)

    def validate(self, data: dict) -> dict:
        """The normal form of a JSON genome, or `GenomeError` naming the field."""
        return self.genome.normalise(data)

    def input_spec(self, data: dict | Genome) -> InputSpec:
        return self.parse(data).input_spec()

    def build(self, data: dict | Genome, num_classes: int) -> nn.Module:
        return self.parse(data).build(num_classes)

    def distance(self, a: dict | Genome, b: dict | Genome) -> float:
        return self.parse(a).distance(self.parse(b))


@dataclass(frozen=True)
class ModelArch:
    """A family plus its parsed genome: everything needed to build the network.

    A JSON dict given as `genome` is parsed (and so checked) on construction.
    """

    family: str
    genome: Genome
    name: str = 'custom'

    def __post_init__(self):
        if not isinstance(self.family, str):
            raise GenomeError('family', f'must be a family name, got {self.family!r}')
        if not isinstance(self.name, str) or not self.name:
            raise GenomeError('name', f'must be a non-empty string, got {self.name!r}')
        object.__setattr__(self, 'genome', get_family(self.family).parse(self.genome))

    def to_dict(self) -> dict:
        return {'family': self.family, 'name': self.name, 'genome': self.genome.to_dict()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> ModelArch:
        if not isinstance(data, dict) or 'family' not in data or 'genome' not in data:
            raise GenomeError('arch', 'expected {"family": ..., "genome": {...}, "name": ...}')
        unknown = sorted(set(data) - {'family', 'genome', 'name'}, key=str)
        if unknown:
            raise GenomeError(str(unknown[0]), 'unknown field; an architecture holds family, '
                                               'genome and name')
        return cls(data['family'], data['genome'], data.get('name', 'custom'))

    def input_spec(self) -> InputSpec:
        return self.genome.input_spec()

    def build(self, num_classes: int) -> nn.Module:
        """The torch module (random init) with `num_classes` outputs."""
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) \
                or not 1 <= num_classes <= MAX_CLASSES:
            raise VasError(f'num_classes must be a whole number in 1..{MAX_CLASSES:,}, got '
                           f'{num_classes!r}')
        return self.genome.build(num_classes)


_FAMILIES: dict[str, Family] = {}
_loaded = False


def register_family(family: Family) -> None:
    """Add a family; a second family under a taken name, or a preset name another family
    already uses, is an error rather than a silent replacement."""
    if not (isinstance(family.genome, type) and issubclass(family.genome, Genome)):
        raise VasError(f'family {family.name!r}: genome must be a Genome subclass, '
                       f'got {family.genome!r}')
    if getattr(family.genome, 'family', None) != family.name:
        raise VasError(f'family {family.name!r}: its genome class says family '
                       f'{getattr(family.genome, "family", None)!r}')
    if family.name in _FAMILIES and _FAMILIES[family.name] is not family:
        raise VasError(f'model family {family.name!r} is already registered')
    for other in _FAMILIES.values():
        shared = sorted(set(other.presets) & set(family.presets)) if other is not family else []
        if shared:
            raise VasError(f'family {family.name!r}: preset names {shared} are already '
                           f'presets of family {other.name!r}')
    _FAMILIES[family.name] = family


def _load_families() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in FAMILY_MODULES:
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module)
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry.load()
        except Exception as exc:  # a broken plug-in must not take the built-ins down
            raise VasError(f'model family plug-in {entry.name!r} ({entry.value}) failed '
                           f'to load: {exc}') from exc


def families() -> dict[str, Family]:
    _load_families()
    return dict(_FAMILIES)


def get_family(name: str) -> Family:
    _load_families()
    if name not in _FAMILIES:
        raise GenomeError('family', f'unknown family {name!r}; known: {sorted(_FAMILIES)}')
    return _FAMILIES[name]


def presets() -> dict[str, ModelArch]:
    """All named presets, across families (their names never collide: see register)."""
    return {name: ModelArch(fam.name, genome, name)
            for fam in families().values() for name, genome in fam.presets.items()}


def preset_description(name: str) -> str:
    for fam in families().values():
        if name in fam.descriptions:
            return fam.descriptions[name]
    return ''
