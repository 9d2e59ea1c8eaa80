"""Temperature scaling: make a model's softmax scores mean what they say.

A network trained with cross-entropy is usually over-confident: of the clips it scores at
0.9, far fewer than 90 % are right, so a node's `score_threshold` does not reject what it
should. One scalar temperature T, fitted on the validation split by minimising the
negative log-likelihood of softmax(logits / T), fixes most of that without changing a
single prediction (Guo et al., 2017). The checkpoint stores T (`calibration` in its
metadata); `vas-ros eval`, the inference engine and the node divide logits by it.

Expected calibration error (ECE) is the measure: clips are put into equal-width bins by
their top score, and ECE is the clip-weighted mean gap between each bin's accuracy and
its mean score.
"""

from __future__ import annotations

import math

from vas_ros.errors import VasError
from vas_ros.models.checkpoint import TEMPERATURE_RANGE

ECE_BINS = 15
# What a checkpoint may hold; a fit that runs into a bound says the logits carry no
# information (all equal) or are scaled absurdly.
T_BOUNDS = TEMPERATURE_RANGE


def _as_tensors(logits, labels):
    import torch

    logits = torch.as_tensor(logits, dtype=torch.float64)
    labels = torch.as_tensor(labels, dtype=torch.long)
    if logits.ndim != 2 or labels.ndim != 1 or len(logits) != len(labels):
        raise VasError(f'calibration needs logits [N, K] and labels [N], got '
                       f'{list(logits.shape)} and {list(labels.shape)}')
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= logits.shape[1]):
        raise VasError(f'labels must lie in [0, {logits.shape[1]}), got '
                       f'{int(labels.min())}..{int(labels.max())}')
    if not bool(torch.isfinite(logits).all()):
        raise VasError('logits hold NaN or infinite values; the model is broken')
    return logits, labels


def nll(logits, labels, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the labels under softmax(logits / temperature)."""
    import torch

    logits, labels = _as_tensors(logits, labels)
    if not len(labels):
        return float('nan')
    return float(torch.nn.functional.cross_entropy(logits / temperature, labels))


def expected_calibration_error(probs, labels, bins: int = ECE_BINS) -> float:
    """ECE of probabilities [N, K] (rows sum to 1) against labels [N]; 0 for N = 0."""
    import torch

    probs, labels = _as_tensors(probs, labels)
    if bins < 1:
        raise VasError(f'ECE needs at least one bin, got {bins}')
    if not len(labels):
        return 0.0
    confidence, predicted = probs.max(dim=1)
    correct = (predicted == labels).double()
    # Bin b holds scores in (b/bins, (b+1)/bins]; a score of exactly 0 joins the first.
    index = (torch.ceil(confidence * bins).long() - 1).clamp(0, bins - 1)
    total = 0.0
    for b in range(bins):
        members = index == b
        count = int(members.sum())
        if count:
            gap = float(correct[members].mean() - confidence[members].mean())
            total += count * abs(gap)
    return total / len(labels)


def fit_temperature(logits, labels) -> float:
    """The T in T_BOUNDS that minimises NLL of softmax(logits / T) on these labels.

    NLL is smooth in log T with one minimum for non-degenerate logits, so a bounded
    golden-section search on log T finds it without step sizes to tune.
    """
    logits, labels = _as_tensors(logits, labels)
    if len(labels) < 2:
        raise VasError(f'fitting a temperature needs at least 2 labelled clips, got '
                       f'{len(labels)}')
    low, high = (math.log(b) for b in T_BOUNDS)
    ratio = (math.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = nll(logits, labels, math.exp(a)), nll(logits, labels, math.exp(b))
    while high - low > 1e-5:
        if fa <= fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = nll(logits, labels, math.exp(a))
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = nll(logits, labels, math.exp(b))
    return float(math.exp((low + high) / 2))


def calibration_report(logits, labels, temperature: float) -> dict:
    """NLL and ECE before (T = 1) and after scaling by `temperature`."""
    import torch

    logits, labels = _as_tensors(logits, labels)

    def ece_at(t: float) -> float:
        return expected_calibration_error(torch.softmax(logits / t, dim=1), labels)

    return {'temperature': float(temperature), 'n': int(len(labels)),
            'nll_before': nll(logits, labels), 'nll_after': nll(logits, labels, temperature),
            'ece_before': ece_at(1.0), 'ece_after': ece_at(temperature)}


def calibrate(logits, labels, split: str = 'val') -> dict:
    """Fit T on (logits, labels) and return the checkpoint's `calibration` record."""
    report = calibration_report(logits, labels, fit_temperature(logits, labels))
    report['split'] = str(split)
    report['bins'] = ECE_BINS
    return report
