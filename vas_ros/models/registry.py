"""Families, presets and the one way to turn a name, genome file or checkpoint into a model.

A family module (tvn, evanet, assemblenet, baselines, ensemble) calls `register_family`
at import time with a `Family`: how to validate its JSON genome, which input it needs,
how to build the network, and its named presets. Everything else (CLI, training, search,
the ROS nodes) goes through `resolve_arch`, `build_model` and `input_spec_for`.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vas_ros.errors import GenomeError, VasError
from vas_ros.models.spec import InputSpec

# Modules that register families; imported on first use.
FAMILY_MODULES = (
    'vas_ros.models.tvn',
    'vas_ros.models.evanet',
    'vas_ros.models.assemblenet',
    'vas_ros.models.baselines',
    'vas_ros.models.ensemble',
)


@dataclass(frozen=True)
class Family:
    """How one family validates, describes and builds its genomes.

    - `validate(genome) -> genome`: returns the normalised genome dict (defaults filled in)
      or raises `GenomeError` naming the field.
    - `input_spec(genome) -> InputSpec`.
    - `build(genome, num_classes) -> torch.nn.Module`, called with `*streams` tensors.
    - `presets`: name -> genome dict (published architectures and small trainable ones).
    - `descriptions`: optional name -> one line for `vas-ros models list`.
    """

    name: str
    validate: Callable[[dict], dict]
    input_spec: Callable[[dict], InputSpec]
    build: Callable[[dict, int], object]
    presets: dict[str, dict] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelArch:
    """A family plus a validated genome: everything needed to build the network."""

    family: str
    genome: dict
    name: str = 'custom'

    def to_dict(self) -> dict:
        return {'family': self.family, 'name': self.name, 'genome': self.genome}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> ModelArch:
        if not isinstance(data, dict) or 'family' not in data or 'genome' not in data:
            raise GenomeError('arch', 'expected {"family": ..., "genome": {...}, "name": ...}')
        family = get_family(data['family'])
        genome = family.validate(dict(data['genome']))
        return cls(family=family.name, genome=genome, name=str(data.get('name', 'custom')))


_FAMILIES: dict[str, Family] = {}
_loaded = False


def register_family(family: Family) -> None:
    """Add a family; a second family under a taken name, or a preset name another family
    already uses, is an error rather than a silent replacement."""
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


def families() -> dict[str, Family]:
    _load_families()
    return dict(_FAMILIES)


def get_family(name: str) -> Family:
    _load_families()
    if name not in _FAMILIES:
        raise GenomeError('family', f'unknown family {name!r}; known: {sorted(_FAMILIES)}')
    return _FAMILIES[name]


def presets() -> dict[str, ModelArch]:
    """All named presets across families."""
    out = {}
    for fam in families().values():
        for name, genome in fam.presets.items():
            out[name] = ModelArch(fam.name, fam.validate(dict(genome)), name)
    return out


def preset_description(name: str) -> str:
    for fam in families().values():
        if name in fam.descriptions:
            return fam.descriptions[name]
    return ''


def resolve_arch(ref: str | Path | dict | ModelArch) -> ModelArch:
    """A preset name, a genome JSON file, a checkpoint, a dict or a ModelArch -> ModelArch."""
    if isinstance(ref, ModelArch):
        return ref
    if isinstance(ref, dict):
        return ModelArch.from_dict(ref)
    text = str(ref)
    table = presets()
    if text in table:
        return table[text]
    path = Path(text)
    if path.suffix == '.safetensors':
        from vas_ros.models.checkpoint import read_metadata

        return ModelArch.from_dict(read_metadata(path)['arch'])
    if path.suffix == '.json' or path.exists():
        if not path.is_file():
            raise VasError(f'{path}: no such genome file')
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise VasError(f'{path}: not a readable genome JSON file ({exc})') from None
        return ModelArch.from_dict(data)
    raise VasError(f'{text!r} is neither a preset ({", ".join(sorted(table))}), '
                   f'a genome .json file nor a .safetensors checkpoint')


def input_spec_for(arch: ModelArch) -> InputSpec:
    return get_family(arch.family).input_spec(arch.genome)


def build_model(arch: ModelArch, num_classes: int):
    """Build the torch module (random init) for `arch` with `num_classes` outputs."""
    if num_classes < 1:
        raise VasError(f'num_classes must be >= 1, got {num_classes}')
    return get_family(arch.family).build(arch.genome, num_classes)
