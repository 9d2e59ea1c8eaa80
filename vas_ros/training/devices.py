"""Turn a user's `--device` string into a torch.device, with a clear error if it's absent."""

from __future__ import annotations

from vas_ros.errors import VasError


def resolve_device(name: str | None = 'auto'):
    """'auto' (a CUDA GPU if there is one, else CPU), 'cpu', 'cuda' or 'cuda:N'."""
    import torch

    text = str(name or 'auto').strip().lower()
    if text == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if text == 'cpu':
        return torch.device('cpu')
    if text == 'cuda' or text.startswith('cuda:'):
        if not torch.cuda.is_available():
            raise VasError(f'device {name!r}: no CUDA GPU is visible to torch here; '
                           f'use cpu (or auto)')
        index_text = text.partition(':')[2] or '0'
        if not index_text.isdigit():
            raise VasError(f'device {name!r}: expected cuda:N with N a GPU index')
        index = int(index_text)
        if index >= torch.cuda.device_count():
            raise VasError(f'device {name!r}: only {torch.cuda.device_count()} CUDA GPU(s) '
                           f'visible (indices 0..{torch.cuda.device_count() - 1})')
        return torch.device('cuda', index)
    raise VasError(f'device {name!r}: expected auto, cpu, cuda or cuda:N')


def thread_count(value: int | None, flag: str = '--threads') -> int | None:
    """A torch/ONNX Runtime thread count this machine can start (OpenMP aborts the process
    on absurd counts instead of raising); None passes (the default)."""
    import os

    from vas_ros.errors import VasError

    cpus = os.cpu_count() or 1
    if value is not None and not 1 <= value <= 4 * cpus:
        raise VasError(f'{flag} must be between 1 and {4 * cpus} (this machine has {cpus} '
                       f'CPUs), got {value}')
    return value
