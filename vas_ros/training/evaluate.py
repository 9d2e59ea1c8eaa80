"""Accuracy, top-5, per-class accuracy and the confusion matrix of a model on a data set.

The same code scores the validation split after every training epoch and `vas-ros eval`
on a saved checkpoint, so the numbers in history.json and from the CLI are comparable.
Confusion rows are the true class, columns the predicted class; `per_class[c]` is the
fraction of class-c clips predicted as c (the diagonal over the row sum), None when the
split holds no clip of c. `top5` is top-min(5, num_classes). `loss` is the raw
cross-entropy; `nll` and `ece` are taken at the model's calibrated temperature
(`vas_ros.training.calibration`), which never changes a prediction.
"""

from __future__ import annotations

from dataclasses import dataclass

from vas_ros.models.spec import STREAMS


@dataclass
class Predictions:
    logits: object  # float32 tensor [N, K] on CPU
    labels: object  # int64 tensor [N]
    members: list | None  # per ensemble member, float32 [N, K], or None


def stream_order(dataset, streams=None) -> tuple[str, ...]:
    """Which input tensors the model takes, in order: the dataset's spec, else canonical."""
    if streams:
        return tuple(streams)
    spec = getattr(dataset, 'spec', None)
    if spec is not None:
        return tuple(spec.streams)
    return STREAMS


def autocast_context(device, amp: bool):
    """bf16 autocast on a GPU that supports it (fp16 otherwise); nothing on CPU."""
    import contextlib

    import torch

    if not amp or device.type != 'cuda':
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast('cuda', dtype=dtype)


def predict(model, dataset, *, device='cpu', batch_size=8, streams=None, amp=False,
            progress=False, desc='eval') -> Predictions:
    """Run the model over the whole data set in order; logits gathered on the CPU."""
    import torch
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    device = torch.device(device)
    order = stream_order(dataset, streams)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    has_members = callable(getattr(model, 'member_logits', None))
    logits_all, labels_all, members_all = [], [], []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for inputs, labels in tqdm(loader, desc=desc, leave=False, disable=not progress):
                args = [inputs[s].to(device, non_blocking=True) for s in order]
                with autocast_context(device, amp):
                    if has_members:
                        member_out = model.member_logits(*args)
                        members_all.append([m.float().cpu() for m in member_out])
                    logits = model(*args)
                logits_all.append(logits.float().cpu())
                labels_all.append(torch.as_tensor(labels).long().cpu())
    finally:
        model.train(was_training)
    if not logits_all:
        num_classes = len(getattr(dataset, 'classes', [])) or 1
        return Predictions(torch.zeros(0, num_classes), torch.zeros(0, dtype=torch.long), None)
    members = None
    if has_members:
        members = [torch.cat([batch[i] for batch in members_all])
                   for i in range(len(members_all[0]))]
    return Predictions(torch.cat(logits_all), torch.cat(labels_all), members)


def _topk_accuracy(logits, labels, k: int) -> float:
    k = max(1, min(k, logits.shape[1]))
    hits = (logits.topk(k, dim=1).indices == labels[:, None]).any(dim=1)
    return float(hits.float().mean()) if len(labels) else 0.0


def metrics(predictions: Predictions, classes: list[str], temperature: float = 1.0) -> dict:
    """The metrics dict reported everywhere (see module docstring)."""
    import torch

    from vas_ros.training.calibration import expected_calibration_error, nll

    logits, labels = predictions.logits, predictions.labels
    num_classes = len(classes)
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
    predicted = logits.argmax(dim=1) if len(labels) else labels
    for true, pred in zip(labels.tolist(), predicted.tolist()):
        confusion[true, pred] += 1
    per_class = {}
    for index, name in enumerate(classes):
        total = int(confusion[index].sum())
        per_class[name] = float(confusion[index, index]) / total if total else None
    loss = (float(torch.nn.functional.cross_entropy(logits, labels)) if len(labels)
            else None)
    out = {
        'top1': _topk_accuracy(logits, labels, 1),
        'top5': _topk_accuracy(logits, labels, 5),
        'per_class': per_class,
        'n': int(len(labels)),
        'confusion': confusion.tolist(),
        'classes': list(classes),
        'loss': loss,
        'temperature': float(temperature),
        'nll': nll(logits, labels, temperature) if len(labels) else None,
        'ece': expected_calibration_error(torch.softmax(logits / temperature, dim=1), labels),
    }
    if predictions.members is not None:
        out['members'] = [{'index': i, 'top1': _topk_accuracy(m, labels, 1),
                           'top5': _topk_accuracy(m, labels, 5)}
                          for i, m in enumerate(predictions.members)]
    return out


def rejection(predictions: Predictions, classes: list[str], threshold: float,
              temperature: float = 1.0) -> dict:
    """How often the runtime's rule (`spec.reported_label`) says "unknown".

    `rejected_true`: the share of clips of a real class that come out unknown (a miss the
    user sees as "nothing happened"); `rejected_none`: the share of `none` clips that do
    (what should happen to every one of them), None when the split holds none.
    """
    import torch

    from vas_ros.models.spec import BACKGROUND_CLASS, UNKNOWN_LABEL, reported_label

    probs = torch.softmax(predictions.logits / temperature, dim=1)
    scores, indices = probs.max(dim=1) if len(probs) else (probs[:, 0], probs[:, 0].long())
    rejected = torch.tensor([reported_label(classes[int(i)], float(p), threshold)
                             == UNKNOWN_LABEL for p, i in zip(scores, indices)],
                            dtype=torch.bool)
    none = torch.tensor([classes[int(y)] == BACKGROUND_CLASS for y in predictions.labels],
                        dtype=torch.bool)
    return {'threshold': float(threshold),
            'rejected_true': float(rejected[~none].float().mean()) if (~none).any() else None,
            'rejected_none': float(rejected[none].float().mean()) if none.any() else None}


def evaluate(model, dataset, *, device='cpu', batch_size=8, streams=None, amp=False,
             progress=False, temperature: float = 1.0, threshold: float | None = None) -> dict:
    """{"top1", "top5", "per_class", "n", "confusion", "classes", "loss", "nll", "ece",
    "temperature"[, "members"][, "rejection" when a score `threshold` is given]}."""
    from vas_ros.training.devices import resolve_device

    device = resolve_device(device) if isinstance(device, str) else device
    predictions = predict(model, dataset, device=device, batch_size=batch_size,
                          streams=streams, amp=amp, progress=progress)
    out = metrics(predictions, list(dataset.classes), temperature=temperature)
    if threshold is not None:
        out['rejection'] = rejection(predictions, list(dataset.classes), threshold,
                                     temperature=temperature)
    return out
