"""`--path auto`: the fastest inference path that agrees with eager, measured where it runs.

Which path is fastest depends on the model and the machine (oneDNN kernels, AMX or not,
ONNX Runtime's fusions), so it is measured, not guessed: every candidate path is
prepared, checked against eager on random clips (same top-1, logits within a few per
cent), and timed at batch 1 in interleaved rounds so that load changes hit every path
alike. The choice is cached per model, device, thread count and machine, in
`$XDG_CACHE_HOME/vas_ros/inference_paths.json` (a cache that cannot be written is
skipped with a warning). `compile` (tens of seconds to compile) and `int8` (needs real
calibration clips) are left to explicit requests.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from vas_ros.errors import VasError

AUTO_CANDIDATES = ('eager', 'channels_last', 'bf16', 'onnxruntime')
# A path agrees with eager when it keeps every clip's top-1 and its logits stay within
# this share of eager's largest logit (bf16 moves them by ~1e-2).
AGREEMENT_TOLERANCE = 0.05


@dataclass
class PathChoice:
    path: str
    medians_ms: dict[str, float] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)  # path -> why it was not a candidate
    cached: bool = False
    # The chosen path's prepared runner when it was measured (None from the cache).
    runner: object = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {'path': self.path, 'medians_ms': self.medians_ms, 'refused': self.refused,
                'cached': self.cached}


def default_cache() -> Path:
    base = os.environ.get('XDG_CACHE_HOME') or str(Path.home() / '.cache')
    return Path(base) / 'vas_ros' / 'inference_paths.json'


def _cpu_name() -> str:
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cache_key(model, spec, device: str, threads: int) -> str:
    """Model (its layers and input, not its weight values), device, threads, machine,
    and the revision of the paths' code."""
    import torch

    from vas_ros.models.inference import PATHS_REVISION

    text = json.dumps({'model': repr(model), 'input': spec.to_dict(), 'device': device,
                       'threads': threads, 'cpu': _cpu_name(), 'torch': torch.__version__,
                       'paths_revision': PATHS_REVISION}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_cache(path: Path, key: str, choice: PathChoice) -> None:
    from vas_ros.atomic import write_json

    data = _read_cache(path)
    data[key] = {'path': choice.path, 'medians_ms': choice.medians_ms,
                 'measured': time.strftime('%Y-%m-%d %H:%M:%S')}
    try:
        write_json(path, data, sort_keys=True)
    except OSError as exc:
        warnings.warn(f'inference path cache {path} not written ({exc}); the choice is '
                      f'measured again next time', stacklevel=3)


def _valid_entry(entry, candidates) -> dict | None:
    """A cache entry that makes sense (its path among the candidates and its fastest
    measured one, positive finite times), else None: it is measured again."""
    import math

    if not isinstance(entry, dict) or entry.get('path') not in candidates:
        return None
    medians = entry.get('medians_ms')
    if not isinstance(medians, dict) or entry['path'] not in medians:
        return None
    for value in medians.values():
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value <= 0:
            return None
    if medians[entry['path']] > min(medians.values()):
        return None
    return entry


def _agrees(reference, candidate) -> bool:
    from vas_ros.models.inference import compare_logits

    check = compare_logits(reference, candidate)
    return (check['finite'] and check['top1_agree'] == 1.0
            and check['rel_diff'] <= AGREEMENT_TOLERANCE)


def prepare_path(model, spec, path: str = 'eager', device: str = 'cpu', *,
                 threads: int | None = None, calibration=None):
    """`prepare_inference` that also takes `auto`: the runner of the chosen path, with the
    choice in `runner.choice` and `runner.note`."""
    from vas_ros.models.inference import prepare_inference

    if path != 'auto':
        return prepare_inference(model, spec, path, device, threads=threads,
                                 calibration=calibration)
    choice = choose_path(model, spec, str(device), threads=threads)
    runner = choice.runner or prepare_inference(model, spec, choice.path, device,
                                                threads=threads, calibration=calibration)
    runner.note = f'auto: {choice.path} ' + ('(cached)' if choice.cached else
                                              f'(medians ms {choice.medians_ms})')
    runner.choice = choice
    return runner


def choose_path(model, spec, device: str = 'cpu', *, threads: int | None = None,
                candidates=AUTO_CANDIDATES, rounds: int = 12, cache: Path | None = None,
                use_cache: bool = True) -> PathChoice:
    """The fastest agreeing path among `candidates` for `model` on `device`."""
    import torch

    from vas_ros.models.inference import PATHS, available_paths, prepare_inference
    from vas_ros.models.introspect import example_inputs

    unknown = [p for p in candidates if p not in PATHS]
    if unknown or not candidates:
        raise VasError(f'auto path candidates must be some of {list(PATHS)}, got '
                       f'{list(candidates)}')
    if int(rounds) < 1:
        raise VasError(f'auto path rounds must be >= 1, got {rounds}')
    threads = int(threads or torch.get_num_threads())
    cache = cache or default_cache()
    key = cache_key(model, spec, str(device), threads)
    if use_cache:
        hit = _valid_entry(_read_cache(cache).get(key), candidates)
        if hit is not None:
            return PathChoice(hit['path'], hit['medians_ms'], cached=True)

    possible = set(available_paths(str(device)))
    runners, refused = {}, {}
    checks = example_inputs(spec, batch=4, device=device)
    reference = None
    for path in dict.fromkeys(['eager', *candidates]):
        if path not in possible:
            refused[path] = f'not available on {device}'
            continue
        try:
            runner = prepare_inference(model, spec, path, str(device), threads=threads)
            logits = runner(*checks).float().cpu()
        except Exception as exc:  # a path that cannot run this model is not a candidate
            refused[path] = f'{type(exc).__name__}: {exc}'.splitlines()[0][:200]
            continue
        if path == 'eager':
            reference = logits
        elif not _agrees(reference, logits):
            refused[path] = 'disagrees with eager (top-1 or logits)'
            continue
        runners[path] = runner
    if 'eager' not in runners:
        raise VasError(f'auto path: the model does not run eager on {device}: '
                       f'{refused.get("eager")}')
    clip = example_inputs(spec, batch=1, device=device)
    times = {path: [] for path in runners}
    for runner in runners.values():  # warm-up (first calls allocate, ORT plans)
        for _ in range(2):
            runner(*clip)
    for _ in range(int(rounds)):
        for path, runner in runners.items():
            start = time.perf_counter()
            runner(*clip)
            if str(device).startswith('cuda'):
                torch.cuda.synchronize()
            times[path].append((time.perf_counter() - start) * 1e3)
    medians = {path: round(statistics.median(v), 4) for path, v in times.items()}
    best = min(medians, key=medians.get)
    chosen = best if best in candidates else 'eager'
    choice = PathChoice(chosen, medians, refused, runner=runners[chosen])
    if use_cache:
        _write_cache(cache, key, choice)
    return choice
