"""Architectures from what a user types: a preset name, a genome JSON file, a checkpoint.

Sits above the registry and the checkpoint reader, so that neither imports the other.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from vas_ros.errors import VasError
from vas_ros.models.checkpoint import read_metadata
from vas_ros.models.registry import ModelArch, presets

if TYPE_CHECKING:
    from torch import nn

    from vas_ros.models.spec import InputSpec


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
        return ModelArch.from_dict(read_metadata(path)['arch'])
    if path.suffix == '.json' or path.exists():
        if not path.is_file():
            raise VasError(f'{path}: no such genome file')
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError, RecursionError) as exc:  # JSON, digits, nesting
            raise VasError(f'{path}: not a readable genome JSON file ({exc})') from None
        return ModelArch.from_dict(data)
    raise VasError(f'{text!r} is neither a preset ({", ".join(sorted(table))}), '
                   f'a genome .json file nor a .safetensors checkpoint')


def input_spec_for(arch: ModelArch) -> InputSpec:
    return arch.input_spec()


def build_model(arch: ModelArch, num_classes: int) -> nn.Module:
    """Build the torch module (random init) for `arch` with `num_classes` outputs."""
    return arch.build(num_classes)
