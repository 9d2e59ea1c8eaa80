"""Predicted latency from a genome, learned from the latencies the search measures.

Timing a candidate means building it and running it; a 100-second model takes minutes
to learn that it misses a 30 ms budget. This model predicts the median latency from the
genome's footprint (`vas_ros.models.footprint`): MACs by kind of op (dense 2D conv,
depthwise/grouped conv, 3D conv, matmul), bytes written by all ops (memory traffic), the
number of ops (dispatch overhead), the pixels of optical flow computed per clip (for
models with a flow stream, whose measured latency includes the flow) and a constant.

- With no measurement it uses `PRIOR`, per-feature costs of a modest CPU core.
- With a few measurements it scales the prior by the geometric mean of measured/predicted
  (one number, robust from a single sample).
- With `min_samples_fit` or more it fits non-negative per-feature costs to the
  measurements (least squares on relative error, `scipy.optimize.nnls`), and keeps that
  fit only if its leave-one-out error beats the scaled prior's.

Everything is a pure function of the samples given, in order, so a resumed search that
refits on the same stored measurements predicts exactly what the first run predicted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vas_ros.search.latency import percentile

FEATURES = ('const', 'macs_conv2d', 'macs_depthwise', 'macs_conv3d', 'macs_matmul',
            'bytes_written', 'ops', 'flow_pixels')
# ms per unit: about 20 GMAC/s for dense convs, 2 for depthwise ones (memory bound),
# 15 for 3D convs, 5 GB/s of writes, 10 us of dispatch per op, 100 ms per million flow
# pixels (DIS on one core: about 3.5 ms for 8 frames of 64 x 64).
PRIOR = (0.05, 1 / 20e6, 1 / 2e6, 1 / 15e6, 1 / 20e6, 1 / 5e6, 0.01, 1 / 1e4)


def features(footprint) -> tuple[float, ...]:
    """The model's inputs for one genome, from its `Footprint`."""
    return (1.0, float(footprint.macs_conv2d), float(footprint.macs_depthwise),
            float(footprint.macs_conv3d), float(footprint.macs_matmul),
            float(footprint.bytes_written), float(footprint.ops),
            float(footprint.flow_pixels))


def _dot(coef, x) -> float:
    return sum(c * v for c, v in zip(coef, x))


@dataclass(frozen=True)
class LatencyModel:
    """Per-feature costs in ms; `kind` says how they were obtained."""

    coef: tuple[float, ...] = PRIOR
    kind: str = 'prior'  # prior | scaled | fitted
    samples: int = 0

    def predict(self, x) -> float:
        return max(_dot(self.coef, x), 1e-6)

    def to_dict(self) -> dict:
        return {'kind': self.kind, 'samples': self.samples,
                'coef_ms': dict(zip(FEATURES, self.coef))}


def _scaled(samples) -> LatencyModel:
    logs = [math.log(ms / max(_dot(PRIOR, x), 1e-9)) for x, ms in samples]
    scale = math.exp(sum(logs) / len(logs))
    return LatencyModel(tuple(c * scale for c in PRIOR), 'scaled', len(samples))


def _nnls(samples) -> tuple[float, ...] | None:
    """Non-negative costs minimising the squared relative error over `samples`."""
    import numpy as np
    from scipy.optimize import nnls

    x = np.array([s[0] for s in samples], dtype=np.float64)
    y = np.array([s[1] for s in samples], dtype=np.float64)
    # Columns are scaled to unit size so that MACs (1e8) and the constant (1) are comparable.
    norm = np.maximum(np.abs(x).max(axis=0), 1e-12)
    a = x / norm / y[:, None]
    try:
        coef, _ = nnls(a, np.ones_like(y), maxiter=50 * a.shape[1])
    except RuntimeError:
        return None
    coef = coef / norm
    if not np.all(np.isfinite(coef)) or not coef.any():
        return None
    # A feature no sample exercises (flow, before any flow model was timed) keeps the
    # prior's cost scaled to this device, rather than costing nothing.
    prior = _scaled(samples).coef
    unseen = ~np.any(x != 0, axis=0)
    return tuple(float(p if u else c) for c, p, u in zip(coef, prior, unseen))


def relative_error(model: LatencyModel, x, ms: float) -> float:
    return abs(model.predict(x) - ms) / ms


def fit_latency_model(samples, min_samples_fit: int = 10) -> LatencyModel:
    """The model for `samples`, a sequence of (features, measured median ms)."""
    samples = [(tuple(x), float(ms)) for x, ms in samples if ms and ms > 0]
    if not samples:
        return LatencyModel()
    scaled = _scaled(samples)
    if len(samples) < min_samples_fit:
        return scaled
    coef = _nnls(samples)
    if coef is None:
        return scaled
    fitted = LatencyModel(coef, 'fitted', len(samples))
    # Keep the fit only if it generalises better than the one-number scaling.
    loo_fit, loo_scaled = [], []
    for i, (x, ms) in enumerate(samples):
        rest = samples[:i] + samples[i + 1:]
        held_coef = _nnls(rest)
        if held_coef is None:
            return scaled
        loo_fit.append(relative_error(LatencyModel(held_coef), x, ms))
        loo_scaled.append(relative_error(_scaled(rest), x, ms))
    return fitted if percentile(loo_fit, 50) < percentile(loo_scaled, 50) else scaled
