"""One-file checkpoints: safetensors weights plus JSON metadata that says how to run them.

The metadata (key `vas_ros` in the safetensors header) holds the architecture (family,
genome, name), the class names and the input spec, so a checkpoint is self-describing:
the trainer, `vas-ros eval`, the exporters and the ROS node all load it the same way.
Loading never unpickles anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vas_ros.atomic import atomic_path
from vas_ros.errors import CheckpointError, VasError
from vas_ros.models.registry import ModelArch
from vas_ros.models.spec import InputSpec

if TYPE_CHECKING:
    from torch import nn

FORMAT = 'vas_ros.checkpoint/1'
META_KEY = 'vas_ros'


@dataclass
class LoadedCheckpoint:
    model: nn.Module  # in eval mode
    arch: ModelArch
    classes: list[str]
    spec: InputSpec
    metadata: dict
    path: Path
    temperature: float = 1.0  # divide logits by it before softmax (see calibration)


def save_checkpoint(path, model: nn.Module, arch: ModelArch, classes, spec: InputSpec,
                    extra: dict | None = None, calibration: dict | None = None) -> Path:
    """Write weights + metadata atomically (readers never see a partial file).

    `calibration`: the record of `vas_ros.training.calibration.calibrate` (its
    `temperature` scales the logits of every reader).
    """
    from safetensors.torch import save_model

    path = Path(path)
    meta = {
        'format': FORMAT,
        'arch': arch.to_dict(),
        'classes': list(classes),
        'input': spec.to_dict(),
        'extra': extra or {},
    }
    if calibration is not None:
        temperature(calibration, path)
        meta['calibration'] = dict(calibration)
    with atomic_path(path) as tmp:
        save_model(model, tmp, metadata={META_KEY: json.dumps(meta)})
    return path


def read_metadata(path) -> dict:
    """The checkpoint's metadata dict, checked for the fields every loader needs."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f'{path}: checkpoint file does not exist')
    if path.stat().st_size == 0:
        raise CheckpointError(f'{path}: checkpoint file is empty')
    try:
        with safe_open(str(path), framework='pt') as handle:
            header = handle.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise CheckpointError(f'{path}: not a readable safetensors file ({exc})') from None
    if META_KEY not in header:
        raise CheckpointError(f'{path}: safetensors file without vas_ros metadata '
                              f'(not written by vas-ros train)')
    try:
        meta = json.loads(header[META_KEY])
    except json.JSONDecodeError as exc:
        raise CheckpointError(f'{path}: vas_ros metadata is not valid JSON ({exc})') from None
    if not isinstance(meta, dict):
        raise CheckpointError(f'{path}: vas_ros metadata must be a JSON object, got '
                              f'{type(meta).__name__}')
    if meta.get('format') != FORMAT:
        raise CheckpointError(f'{path}: unsupported checkpoint format {meta.get("format")!r}, '
                              f'expected {FORMAT!r}')
    for key in ('arch', 'classes', 'input'):
        if key not in meta:
            raise CheckpointError(f'{path}: metadata lacks {key!r}')
    if not isinstance(meta['classes'], list) or not meta['classes'] or not all(
            isinstance(c, str) and c for c in meta['classes']):
        raise CheckpointError(f'{path}: metadata "classes" must be a non-empty list of names')
    for key in ('arch', 'input'):
        if not isinstance(meta[key], dict):
            raise CheckpointError(f'{path}: metadata {key!r} must be a JSON object, got '
                                  f'{type(meta[key]).__name__}')
    temperature(meta.get('calibration'), path)
    return meta


# The temperatures a checkpoint may hold. Far outside anything a trained model needs; past
# them the scores are all 1 or all equal (and logits / 1e-300 overflow).
TEMPERATURE_RANGE = (0.01, 100.0)


def temperature(calibration, path='checkpoint') -> float:
    """The logit temperature of a `calibration` record (1 without one), checked."""
    if calibration is None:
        return 1.0
    value = calibration.get('temperature') if isinstance(calibration, dict) else None
    low, high = TEMPERATURE_RANGE
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            low <= value <= high):
        raise CheckpointError(f'{path}: "calibration" must be an object with a finite, '
                              f'positive "temperature" in [{low:g}, {high:g}], got '
                              f'{calibration!r}')
    return float(value)


def write_calibration(path, calibration: dict, out=None) -> Path:
    """Store `calibration` in the checkpoint at `path` (or a copy at `out`), atomically.

    The weights are copied tensor for tensor, so `out` may be `path` itself: the file is
    replaced only once the new one is complete.
    """
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = Path(path)
    if not isinstance(calibration, dict):
        raise CheckpointError(f'"calibration" must be an object with a finite, positive '
                              f'"temperature", got {calibration!r}')
    temperature(calibration, 'the calibration record')
    meta = read_metadata(path)
    meta['calibration'] = dict(calibration)
    with safe_open(str(path), framework='pt') as handle:
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    target = Path(out) if out is not None else path
    with atomic_path(target) as tmp:
        save_file(tensors, tmp, metadata={META_KEY: json.dumps(meta)})
    return target


def load_checkpoint(path, device='cpu') -> LoadedCheckpoint:
    """Build the model from the metadata and load its weights (strict)."""
    from safetensors.torch import load_model

    path = Path(path)
    meta = read_metadata(path)
    try:
        arch = ModelArch.from_dict(meta['arch'])
        spec = InputSpec.from_dict(meta['input'])
        expected = arch.input_spec()
    except (VasError, TypeError, ValueError, AttributeError, KeyError) as exc:
        raise CheckpointError(f'{path}: metadata does not describe a valid model ({exc})') from None
    for field in ('frames', 'size', 'frame_stride', 'streams'):
        if getattr(spec, field) != getattr(expected, field):
            raise CheckpointError(f'{path}: metadata input {field} {getattr(spec, field)!r} '
                                  f'disagrees with its genome ({getattr(expected, field)!r}); '
                                  f'the file was edited or damaged')
    classes = [str(c) for c in meta['classes']]
    model = arch.build(len(classes))
    try:
        load_model(model, str(path), strict=True, device=str(device))
    except Exception as exc:
        raise CheckpointError(f'{path}: weights do not match the architecture in its '
                              f'metadata or are truncated ({exc})') from None
    bad = _non_finite(model)
    if bad:
        raise CheckpointError(f'{path}: {len(bad)} tensor(s) hold NaN or infinite values '
                              f'(first: {bad[0]}); the training diverged or the file is '
                              f'damaged')
    model.to(device).eval()
    return LoadedCheckpoint(model, arch, classes, spec, meta, path,
                            temperature=temperature(meta.get('calibration'), path))


def _non_finite(model) -> list[str]:
    import torch

    return [name for name, tensor in model.state_dict().items()
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
