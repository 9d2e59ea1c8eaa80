"""What a genome will cost, known before a single real tensor is allocated.

The network is built on PyTorch's `meta` device (parameters have shapes, no storage) and
run once on meta inputs under a dispatch mode that sees every aten op. That gives exact
parameter and MAC counts for any family, and the sizes of every intermediate tensor, from
which peak memory for inference and for training is estimated. A 680 M-parameter genome
whose real forward pass would need 500 GB is costed this way in well under a second and a
few megabytes, so the search can refuse it and `vas-ros models info` can describe it.

The same pass records the features the search's latency model learns from (MACs by kind
of op, bytes written, number of ops); see `vas_ros/search/cost_model.py`.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass

from vas_ros.errors import VasError

FLOAT_BYTES = 4
# AdamW keeps two moments per parameter; training also holds the gradient.
OPTIMIZER_COPIES = 2
GRADIENT_COPIES = 1
# Backward needs the gradient of the largest activation beside the saved ones (and the
# allocator rounds up); this many extra largest activations cover it.
BACKWARD_TRANSIENTS = 3
# What the runtime adds that no tensor shape shows: allocator slack, conv workspaces, the
# library code the first kernels page in. Inference of a trivial conv net adds 8 MB to a
# fresh process; its first AdamW training steps add 173 MB (autograd, backward kernels), at
# 1 and 2 threads alike (AMD EPYC, torch 2.14.1, peaks read as VmHWM).
INFERENCE_RUNTIME_BYTES = 64 * 2**20
TRAINING_RUNTIME_BYTES = 256 * 2**20
# The share of the memory still available that one training or timing run may take.
MEMORY_SHARE = 0.8


@dataclass(frozen=True)
class Footprint:
    """Costs of one model at batch 1 (`*_per_clip`) and the memory estimates derived."""

    params: int
    macs: int
    macs_conv2d: int
    macs_depthwise: int
    macs_conv3d: int
    macs_matmul: int
    ops: int
    bytes_written: int  # every op output of one batch-1 inference pass
    largest_activation_bytes: int
    # Outputs of a training-mode forward (saved for backward); None when costed for
    # inference only (`estimate_footprint(..., training=False)`).
    train_activation_bytes_per_clip: int | None
    # Pixels of optical flow the robot computes per clip before the forward pass
    # (frames x size x size for models with a flow stream, else 0).
    flow_pixels: int = 0

    @property
    def weight_bytes(self) -> int:
        return self.params * FLOAT_BYTES

    def inference_bytes(self, batch: int = 1) -> int:
        """Weights plus the two largest live activations (input and output of an op)."""
        return (self.weight_bytes + 2 * batch * self.largest_activation_bytes
                + INFERENCE_RUNTIME_BYTES)

    def training_bytes(self, batch: int) -> int:
        """Weights, gradients, AdamW state, saved activations and backward transients."""
        if self.train_activation_bytes_per_clip is None:
            raise VasError('this footprint was costed for inference only')
        states = self.weight_bytes * (1 + GRADIENT_COPIES + OPTIMIZER_COPIES)
        activations = batch * (self.train_activation_bytes_per_clip
                               + BACKWARD_TRANSIENTS * self.largest_activation_bytes)
        return states + activations + TRAINING_RUNTIME_BYTES

class _Tally:
    """Counts what a meta forward pass does; used as a TorchDispatchMode."""

    def __init__(self):
        import torch
        from torch.utils._python_dispatch import TorchDispatchMode

        aten = torch.ops.aten
        conv_ops = {aten.convolution.default, aten._convolution.default}
        mm_ops = {aten.mm.default: (0, 1), aten.addmm.default: (1, 2),
                  aten.bmm.default: (0, 1), aten.baddbmm.default: (1, 2)}
        tally = self

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                tally.record(func, args, out, conv_ops, mm_ops)
                return out

        self.mode = Mode()
        self.macs = {'conv2d': 0, 'depthwise': 0, 'conv3d': 0, 'matmul': 0}
        self.ops = 0
        self.bytes_written = 0
        self.largest = 0

    def record(self, func, args, out, conv_ops, mm_ops) -> None:
        import torch

        outs = [t for t in (out if isinstance(out, (tuple, list)) else (out,))
                if isinstance(t, torch.Tensor)]
        if not outs:
            return
        self.ops += 1
        for t in outs:
            size = t.numel() * t.element_size()
            self.bytes_written += size
            self.largest = max(self.largest, size)
        if func in conv_ops:
            weight, groups = args[1], int(args[8]) if len(args) > 8 else 1
            macs = outs[0].numel() * weight.shape[1:].numel()
            if weight.dim() == 5:
                self.macs['conv3d'] += macs
            elif groups > 1:
                self.macs['depthwise'] += macs
            else:
                self.macs['conv2d'] += macs
        elif func in mm_ops:
            a, b = (args[i] for i in mm_ops[func])
            self.macs['matmul'] += a.numel() * int(b.shape[-1])


def _meta_pass(model, spec, train: bool, batch: int = 1) -> _Tally:
    import torch

    from vas_ros.models.introspect import example_inputs

    model.train(train)
    tally = _Tally()
    inputs = example_inputs(spec, batch=batch, device='meta')
    context = torch.enable_grad() if train else torch.no_grad()
    with context, tally.mode:
        model(*inputs)
    return tally


_INITS = ('uniform_', 'normal_', 'trunc_normal_', 'constant_', 'ones_', 'zeros_',
          'xavier_uniform_', 'xavier_normal_', 'kaiming_uniform_', 'kaiming_normal_',
          'orthogonal_')
_INIT_LOCK = threading.Lock()


@contextmanager
def _without_weight_init():
    """`torch.nn.init` does nothing while a model is built on meta: random numbers on
    meta tensors only cost time (through Python decompositions, half of a footprint's)."""
    import torch.nn.init as init

    def keep(tensor, *args, **kwargs):
        return tensor

    with _INIT_LOCK:
        saved = {name: getattr(init, name) for name in _INITS if hasattr(init, name)}
        try:
            for name in saved:
                setattr(init, name, keep)
            yield
        finally:
            for name, fn in saved.items():
                setattr(init, name, fn)


def estimate_footprint(arch, num_classes: int = 8, training: bool = True) -> Footprint:
    """Costs of `arch` (anything `resolve_arch` takes) without allocating its tensors.
    `training=False` skips the training-mode pass (half the time; no training memory)."""
    import torch

    from vas_ros.models.factory import resolve_arch

    arch = resolve_arch(arch)
    if num_classes < 1:
        raise VasError(f'num_classes must be >= 1, got {num_classes}')
    spec = arch.input_spec()
    try:
        with torch.device('meta'), _without_weight_init():
            model = arch.build(num_classes)
        inference = _meta_pass(model, spec, train=False)
        # Batch 2: BatchNorm refuses to train on one value per channel.
        training = _meta_pass(model, spec, train=True, batch=2) if training else None
    except VasError:
        raise
    except (RuntimeError, NotImplementedError) as exc:
        raise VasError(f'{arch.name}: cannot cost this {arch.family} model without building '
                       f'it ({type(exc).__name__}: {str(exc)[:200]})') from None
    params = sum(p.numel() for p in model.parameters())
    return Footprint(
        params=int(params), macs=int(sum(inference.macs.values())),
        macs_conv2d=inference.macs['conv2d'], macs_depthwise=inference.macs['depthwise'],
        macs_conv3d=inference.macs['conv3d'], macs_matmul=inference.macs['matmul'],
        ops=inference.ops, bytes_written=inference.bytes_written,
        largest_activation_bytes=inference.largest,
        train_activation_bytes_per_clip=(training.bytes_written // 2
                                         if training is not None else None),
        flow_pixels=spec.frames * spec.size * spec.size if spec.needs_flow else 0)


def check_fits(arch, num_classes: int, *, batch: int = 1, training: bool = False,
               device: str = 'cpu', share: float = MEMORY_SHARE) -> Footprint:
    """The footprint, or a VasError when the model would need more than `share` of the
    memory `device` has left: asked before a weight is allocated, so an absurd genome or
    class count is refused instead of taking the machine (and, on a robot, the processes
    the OOM killer picks beside it)."""
    cost = estimate_footprint(arch, num_classes, training=training)
    need = cost.training_bytes(batch) if training else cost.inference_bytes(batch)
    available = available_memory_bytes(device)
    if need > share * available:
        what = f'training at batch {batch}' if training else f'inference at batch {batch}'
        raise VasError(f'{getattr(arch, "name", arch)}: {what} needs about '
                       f'{need / 2**20:,.0f} MB, more than {share:.0%} of the '
                       f'{available / 2**20:,.0f} MB available on {device}; use a smaller '
                       f'model, batch or class count')
    return cost


def available_memory_bytes(device: str = 'cpu') -> int:
    """Memory this process could still get on `device`: free GPU memory, or the kernel's
    MemAvailable (capped by a cgroup limit, where one is set) on the CPU."""
    device = str(device)
    if device.startswith('cuda'):
        import torch

        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    available = None
    try:
        with open('/proc/meminfo') as handle:
            for line in handle:
                if line.startswith('MemAvailable:'):
                    available = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if available is None:
        import os

        available = os.sysconf('SC_AVPHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')
    for path in ('/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes'):
        try:
            text = open(path).read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < available:
            used = 0
            for current in ('/sys/fs/cgroup/memory.current',
                            '/sys/fs/cgroup/memory/memory.usage_in_bytes'):
                try:
                    used = int(open(current).read().strip())
                    break
                except (OSError, ValueError):
                    continue
            available = min(available, max(0, int(text) - used))
    return int(available)
