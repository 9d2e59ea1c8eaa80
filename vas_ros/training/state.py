"""The resumable training state: one safetensors file, written atomically, never pickled.

`RUN/train_state.safetensors` holds the last epoch's weights (`model.*`), the optimizer's
tensors (`optim.<param>.<name>`, e.g. AdamW moments) and the torch RNG states
(`rng.torch`, `rng.cuda.<i>`) as tensors; everything else (epoch, step, history, best
result, optimizer hyper-parameters, LR-scheduler and grad-scaler state, Python and NumPy
RNG states, the architecture and classes it belongs to) is JSON in the header under
`vas_ros_train_state`. One file replaced with os.replace means a crash mid-write leaves
the previous state intact.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from vas_ros.atomic import atomic_path
from vas_ros.errors import CheckpointError

STATE_FORMAT = 'vas_ros.train_state/1'
STATE_KEY = 'vas_ros_train_state'


@dataclass
class TrainState:
    info: dict  # JSON part
    tensors: dict  # name -> CPU tensor
    path: Path


def capture_rng() -> tuple[dict, dict]:
    """(JSON-able Python/NumPy RNG states, torch RNG state tensors)."""
    import numpy as np
    import torch

    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    info = {'python': [version, list(internal), gauss],
            'numpy': [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)]}
    tensors = {'rng.torch': torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for index, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f'rng.cuda.{index}'] = state
    return info, tensors


def restore_rng(info: dict, tensors: dict) -> None:
    import numpy as np
    import torch

    version, internal, gauss = info['python']
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = info['numpy']
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(tensors['rng.torch'])
    cuda_states = [tensors[f'rng.cuda.{i}'] for i in range(torch.cuda.device_count())
                   if f'rng.cuda.{i}' in tensors]
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states)


def _cpu_copy(tensor):
    return tensor.detach().to('cpu').clone().contiguous()


def save_train_state(path, *, model, optimizer, scheduler, scaler, info: dict) -> Path:
    """Write model/optimizer/scheduler/scaler/RNG state plus `info` (JSON) to `path`."""
    import torch
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {f'model.{k}': _cpu_copy(v) for k, v in model.state_dict().items()}
    optim = optimizer.state_dict()
    scalars: dict = {}
    for param_id, param_state in optim['state'].items():
        for name, value in param_state.items():
            if torch.is_tensor(value):
                tensors[f'optim.{param_id}.{name}'] = _cpu_copy(value)
            else:
                scalars.setdefault(str(param_id), {})[name] = value
    rng_info, rng_tensors = capture_rng()
    tensors.update({k: _cpu_copy(v) for k, v in rng_tensors.items()})
    header = dict(info)
    header.update({
        'format': STATE_FORMAT,
        'optimizer': {'param_groups': optim['param_groups'], 'scalars': scalars},
        'scheduler': scheduler.state_dict(),
        'scaler': scaler.state_dict(),
        'rng': rng_info,
    })
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata={STATE_KEY: json.dumps(header)})
    return path


def load_train_state(path) -> TrainState:
    """Read and check a state file; CheckpointError naming the file if it is unusable."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f'{path}: no training state to resume from')
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework='pt') as handle:
            header = handle.metadata() or {}
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors has its own error types for damaged files
        raise CheckpointError(f'{path}: training state is not a readable safetensors file '
                              f'({exc})') from None
    try:
        info = json.loads(header[STATE_KEY])
    except (KeyError, json.JSONDecodeError):
        raise CheckpointError(f'{path}: not a vas_ros training state (header lacks valid '
                              f'{STATE_KEY!r})') from None
    if info.get('format') != STATE_FORMAT:
        raise CheckpointError(f'{path}: unsupported training-state format '
                              f'{info.get("format")!r}, expected {STATE_FORMAT!r}')
    for key in ('arch', 'classes', 'epoch', 'step', 'history', 'optimizer', 'scheduler',
                'rng'):
        if key not in info:
            raise CheckpointError(f'{path}: training state lacks {key!r}')
    if 'rng.torch' not in tensors:
        raise CheckpointError(f'{path}: training state lacks the torch RNG state')
    return TrainState(info=info, tensors=tensors, path=path)


def restore_train_state(state: TrainState, *, model, optimizer, scheduler, scaler) -> None:
    """Load weights, optimizer, scheduler, scaler and RNG states saved by save_train_state."""
    weights = {k[len('model.'):]: v for k, v in state.tensors.items() if k.startswith('model.')}
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f'{state.path}: saved weights do not fit the model '
                              f'({str(exc).splitlines()[0]})') from None
    saved = state.info['optimizer']
    optim_state: dict = {}
    for key, value in state.tensors.items():
        if key.startswith('optim.'):
            _, param_id, name = key.split('.', 2)
            optim_state.setdefault(int(param_id), {})[name] = value
    for param_id, values in saved.get('scalars', {}).items():
        optim_state.setdefault(int(param_id), {}).update(values)
    groups = []
    for group in saved['param_groups']:
        group = dict(group)
        if isinstance(group.get('betas'), list):
            group['betas'] = tuple(group['betas'])
        groups.append(group)
    try:
        optimizer.load_state_dict({'state': optim_state, 'param_groups': groups})
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f'{state.path}: optimizer state does not fit the model '
                              f'({exc})') from None
    scheduler.load_state_dict(state.info['scheduler'])
    if state.info.get('scaler'):
        scaler.load_state_dict(state.info['scaler'])
    restore_rng(state.info['rng'], state.tensors)
