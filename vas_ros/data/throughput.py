"""How fast clips come off disk and how much optical flow costs, measured side by side.

"cold" means not yet in the decoded-clip cache (the OS may still hold the file's bytes);
"cached" reads the .npy written by the cold pass. Flow cost is the median over repeats
of one frame pair, per method and frame size, on synthetic frames.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

import numpy as np

from vas_ros.data.flow import FLOW_METHODS, flow_pair, to_grey


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure_decode(source, split: str = 'train', *, size: int = 112, frames: int = 16,
                   limit: int | None = None, progress: bool = False) -> dict:
    """Clips per second: decode only, first epoch with caching, from the cache, and whole
    items (cached frames + `clip_to_inputs`, RGB only and RGB + DIS flow)."""
    from tqdm import tqdm

    from vas_ros.data.datasets import open_dataset
    from vas_ros.models.spec import InputSpec

    spec = InputSpec(frames=frames, size=size)
    with tempfile.TemporaryDirectory(prefix='vas_bench_cache_') as cache_dir:
        data = open_dataset(source, split, spec, cache_dir=cache_dir)
        count = min(len(data), limit) if limit else len(data)
        plain = open_dataset(source, split, spec)
        stages = {}

        def run(name, fn):
            times = [_timed(lambda i=i: fn(i)) for i in tqdm(range(count), desc=name,
                                                              disable=not progress)]
            stages[name] = {'clips_per_s': count / sum(times),
                            'median_ms_per_clip': statistics.median(times) * 1e3}

        run('decode', plain.frames)
        run('cold_with_cache_write', data.frames)
        run('cached', data.frames)
        run('cached_item_rgb', lambda i: data[i])
        two_stream = open_dataset(source, split, InputSpec(frames=frames, size=size,
                                                           streams=('rgb', 'flow')),
                                  cache_dir=cache_dir)
        run('cached_item_rgb_flow', lambda i: two_stream[i])
        cache_bytes = sum(p.stat().st_size for p in data.cache.root.rglob('*.npy'))
    stages['cached_vs_decode_speedup'] = (stages['cached']['clips_per_s']
                                          / stages['decode']['clips_per_s'])
    return {'clips': count, 'size': size, 'frames': frames, 'split': split,
            'cache_mb': cache_bytes / 2**20, **stages}


def measure_flow(sizes=((112, 112), (320, 240)), methods=FLOW_METHODS,
                 repeats: int = 15, seed: int = 0) -> dict:
    """Median milliseconds per frame pair for each flow method at each (width, height)."""
    import cv2

    from vas_ros.data.synth import render_clip

    results = {}
    for width, height in sizes:
        clip = render_clip('move_right', np.random.default_rng(seed), size=max(width, height),
                           frames=2)
        grey = to_grey(np.stack([cv2.resize(f, (width, height)) for f in clip]))
        for method in methods:
            flow_pair(grey[0], grey[1], method)  # warm-up (allocations, OpenCL probe)
            times = [_timed(lambda m=method, g=grey: flow_pair(g[0], g[1], m))
                     for _ in range(repeats)]
            results.setdefault(f'{width}x{height}', {})[method] = {
                'median_ms_per_pair': statistics.median(times) * 1e3,
                'p90_ms': float(np.percentile(times, 90) * 1e3)}
    return results


def measure_throughput(source, split: str = 'train', *, size: int = 112, frames: int = 16,
                       limit: int | None = None, flow_repeats: int = 15,
                       progress: bool = False) -> dict:
    """Decode and flow measurements plus the facts needed to compare them."""
    import cv2

    info = {'cpu_count': os.cpu_count(), 'opencv_threads': cv2.getNumThreads()}
    try:
        info['cpu_affinity'] = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        pass
    return {'source': str(source), 'machine': info,
            'decode': measure_decode(source, split, size=size, frames=frames, limit=limit,
                                     progress=progress),
            'flow_ms_per_pair': measure_flow(repeats=flow_repeats)}
