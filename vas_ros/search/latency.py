"""Per-clip latency the way a robot sees it: batch 1, warm, the median of many runs.

One routine serves `vas-ros latency`, the search's budget check and the docs, so a
number means the same everywhere. It times only the forward call (preprocessing and
path preparation such as compiling or ONNX export happen before the clock starts),
waits for the GPU before reading the clock, and restores the caller's torch thread
count afterwards.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from vas_ros.errors import VasError


@dataclass
class LatencyResult:
    median_ms: float
    p10_ms: float
    p90_ms: float
    samples_ms: list[float]
    device: str
    threads: int
    path: str = 'eager'

    def to_dict(self, samples: bool = False) -> dict:
        data = asdict(self)
        if not samples:
            data.pop('samples_ms')
        return data


def percentile(values, q: float) -> float:
    """Linear-interpolated percentile (numpy's default) of non-empty `values`, q in [0, 100]."""
    return _percentile(sorted(values), q)


def _percentile(sorted_values: list[float], q: float) -> float:
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarise(samples_ms: list[float], device: str, threads: int, path: str) -> LatencyResult:
    ordered = sorted(samples_ms)
    return LatencyResult(median_ms=_percentile(ordered, 50), p10_ms=_percentile(ordered, 10),
                         p90_ms=_percentile(ordered, 90), samples_ms=list(samples_ms),
                         device=device, threads=threads, path=path)


def measure_latency(model, spec, *, device: str = 'cpu', threads: int | None = None,
                    warmup: int = 3, repeats: int = 10, batch: int = 1,
                    path: str = 'eager', runner=None) -> LatencyResult:
    """Time `model` on random clips shaped by `spec` (InputSpec) through inference `path`.

    `runner`: an already prepared `prepare_inference(model, spec, path, device)` result to
    time instead of preparing one (so a caller can also check its outputs).
    """
    import torch

    from vas_ros.models.inference import prepare_inference
    from vas_ros.models.introspect import example_inputs

    if repeats < 1:
        raise VasError(f'repeats must be >= 1, got {repeats}')
    if warmup < 0:
        raise VasError(f'warmup must be >= 0, got {warmup}')
    if batch < 1:
        raise VasError(f'batch must be >= 1, got {batch}')
    if threads is not None and threads < 1:
        raise VasError(f'threads must be >= 1, got {threads}')
    device = str(device)
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        used_threads = torch.get_num_threads()
        if runner is None:
            runner = prepare_inference(model, spec, path, device, threads=used_threads)
        inputs = example_inputs(spec, batch=batch, device=device)
        on_gpu = device.startswith('cuda')

        def sync():
            if on_gpu:
                torch.cuda.synchronize(device)

        with torch.inference_mode():
            for _ in range(warmup):
                runner(*inputs)
            sync()
            samples = []
            for _ in range(repeats):
                start = time.perf_counter()
                runner(*inputs)
                sync()
                samples.append((time.perf_counter() - start) * 1000.0)
    finally:
        torch.set_num_threads(previous)
    return summarise(samples, device, used_threads, path)


def measure_arch_latency(arch, *, num_classes: int = 8, device: str = 'cpu',
                         threads: int | None = None, warmup: int = 3, repeats: int = 10,
                         batch: int = 1, path: str = 'eager') -> LatencyResult:
    """Build `arch` (preset name, genome file, dict, ModelArch) and time it."""
    from vas_ros.models.factory import resolve_arch
    from vas_ros.models.footprint import check_fits

    arch = resolve_arch(arch)
    check_fits(arch, num_classes, batch=batch, device=device)
    model = arch.build(num_classes)
    return measure_latency(model, arch.input_spec(), device=device, threads=threads,
                           warmup=warmup, repeats=repeats, batch=batch, path=path)


def measure_flow_latency(spec, *, threads: int | None = None, warmup: int = 1,
                         repeats: int = 5, seed: int = 0) -> LatencyResult | None:
    """Time the optical flow a two-stream model needs per clip, on the CPU, as the robot
    computes it before the forward pass: `spec.frames` frames at `spec.size` (a rendered
    synthetic clip that moves) through `spec.flow_method`. None for RGB-only specs."""
    if 'flow' not in spec.streams:
        return None
    if repeats < 1:
        raise VasError(f'repeats must be >= 1, got {repeats}')
    import cv2
    import numpy as np

    from vas_ros.data.flow import flow_input_tensor
    from vas_ros.data.synth import render_clip

    frames = render_clip('move_right', np.random.default_rng(seed), size=spec.size,
                         frames=spec.frames)
    previous = cv2.getNumThreads()
    if threads is not None:
        cv2.setNumThreads(int(threads))
    try:
        for _ in range(max(0, warmup)):
            flow_input_tensor(frames, spec.flow_method, spec.flow_scale)
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            flow_input_tensor(frames, spec.flow_method, spec.flow_scale)
            samples.append((time.perf_counter() - start) * 1000.0)
        used = cv2.getNumThreads()
    finally:
        cv2.setNumThreads(previous)
    return summarise(samples, 'cpu', used, f'flow:{spec.flow_method}')
