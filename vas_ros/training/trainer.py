"""The training loop behind `vas-ros train` and the search's proxy training.

One function, `train(...)`: seeded, AdamW with linear warm-up then cosine decay, autocast
(bf16, or fp16 with loss scaling) on a GPU, a budget in epochs, optimizer steps and/or
seconds, validation after every epoch. With `out` it writes, after every epoch:

- `out/model.safetensors`: the best-validation-top-1 weights so far (ties: lower val
  loss), via `save_checkpoint`, so the file always holds a runnable model;
- `out/train_state.safetensors`: last weights + optimizer/scheduler/scaler/RNG state,
  what `resume=True` continues from (see `vas_ros.training.state`);
- `out/history.json` (one dict per epoch) and `out/curve.png`.

Data loading uses `num_workers=0` by default: on a 2-core machine worker processes only
compete with the model for the same cores, and decoded clips are cached (`cache_dir`) so
epochs after the first are not decode-bound.
"""

from __future__ import annotations

import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from vas_ros.atomic import write_json
from vas_ros.errors import CheckpointError, DataError, VasError

MODEL_FILE = 'model.safetensors'
STATE_FILE = 'train_state.safetensors'
HISTORY_FILE = 'history.json'
CURVE_FILE = 'curve.png'
DEFAULT_LR = 1e-3
DEFAULT_WEIGHT_DECAY = 0.05
GRAD_CLIP_NORM = 5.0


@dataclass
class TrainResult:
    model: object  # torch.nn.Module holding the best-validation weights, eval mode
    classes: list[str]
    spec: object  # InputSpec
    history: list[dict]
    val_top1: float  # of the best epoch (the one in `model` and the checkpoint)
    val_metrics: dict  # evaluate() output of the best epoch
    seconds: float  # wall time of this call
    steps: int  # optimizer steps in total (across resumes)
    checkpoint: Path | None
    arch: object = None  # ModelArch
    stopped_by: str = 'epochs'  # epochs | max_steps | max_seconds
    extra: dict = field(default_factory=dict)
    calibration: dict | None = None  # the checkpoint's temperature record, if calibrated


def inherit_weights(model, source) -> float:
    """Copy into `model` every tensor of `source` (state dict or .safetensors path) whose
    name and shape fit, as large-scale evolution did for its children. Returns the share of
    the model's parameters (by count) that were copied; buffers (BatchNorm statistics)
    come along but do not count."""
    import torch

    if not isinstance(source, dict):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            source = load_file(str(source))
        except (OSError, SafetensorError) as exc:
            raise CheckpointError(f'{source}: cannot read inherited weights ({exc})') from None
    params = dict(model.named_parameters())
    total = sum(p.numel() for p in params.values()) or 1
    copied = 0
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            other = source.get(name)
            if other is None or tuple(other.shape) != tuple(tensor.shape):
                continue
            tensor.copy_(other.to(dtype=tensor.dtype))
            if name in params:
                copied += tensor.numel()
    return copied / total


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def open_splits(data, spec, *, seed=0, cache_dir=None, train_split='train', val_split='val',
                augment=None):
    """(train, val) ClipDatasets from a data source, or a ready (train, val) pair.

    `augment`: the Augmentation policy of the training split (a ready pair keeps its own).
    """
    if isinstance(data, (tuple, list)):
        if len(data) != 2:
            raise VasError('data: expected a source path or a (train, val) pair of datasets')
        train_set, val_set = data
        for name, subset in (('train', train_set), ('val', val_set)):
            given = getattr(subset, 'spec', None)
            if given is not None and given != spec:
                raise DataError(f'{name} data set was opened for input {given.to_dict()}, '
                                f'but the model needs {spec.to_dict()}')
    else:
        from vas_ros.data.datasets import open_dataset
        from vas_ros.data.holdout import refuse_holdout

        refuse_holdout(data, 'training')
        train_set = open_dataset(data, train_split, spec, train=True, cache_dir=cache_dir,
                                 seed=seed, augment=augment)
        val_set = open_dataset(data, val_split, spec, train=False, cache_dir=cache_dir,
                               seed=seed)
    if len(train_set) == 0:
        raise DataError(f'{data}: split {train_split!r} holds no usable clips')
    if len(val_set) == 0:
        raise DataError(f'{data}: split {val_split!r} holds no usable clips')
    if list(train_set.classes) != list(val_set.classes):
        raise DataError(f'{data}: splits disagree on classes: {train_split} has '
                        f'{list(train_set.classes)}, {val_split} has {list(val_set.classes)}')
    return train_set, val_set


def lr_factor(step: int, warmup: int, horizon: int | None) -> float:
    """Linear warm-up over `warmup` steps, then cosine to 1% at `horizon` (flat if None)."""
    if step < warmup:
        return (step + 1) / warmup
    if horizon is None or horizon <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, horizon - warmup))
    return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * progress))


def param_groups(arch, model, lr: float) -> list[dict]:
    """AdamW parameter groups from the genome's policy (`Genome.param_groups`).

    A group may carry `lr_scale` (its learning rate is `lr * lr_scale`; the schedule scales
    every group alike) and its own `weight_decay`. AssembleNet uses this to learn its
    connection weights faster than the convolutions.
    """
    groups = []
    for group in arch.genome.param_groups(model):
        group = dict(group)
        scale = float(group.pop('lr_scale', 1.0))
        groups.append({**group, 'lr': lr * scale})
    return groups


def _check_budget(epochs, max_steps, max_seconds, batch_size, lr):
    if epochs is not None and (isinstance(epochs, bool) or int(epochs) < 1):
        raise VasError(f'epochs must be >= 1, got {epochs}')
    if max_steps is not None and int(max_steps) < 1:
        raise VasError(f'max_steps must be >= 1, got {max_steps}')
    if max_seconds is not None and float(max_seconds) <= 0:
        raise VasError(f'max_seconds must be > 0, got {max_seconds}')
    if int(batch_size) < 1:
        raise VasError(f'batch_size must be >= 1, got {batch_size}')
    if lr is not None and not float(lr) > 0:
        raise VasError(f'lr must be > 0, got {lr}')


def _better(metrics: dict, best: dict | None) -> bool:
    if best is None:
        return True
    if metrics['top1'] != best['top1']:
        return metrics['top1'] > best['top1']
    return (metrics.get('loss') or math.inf) < (best.get('loss') or math.inf)


def train(arch, data, *, out=None, epochs=None, max_steps=None, max_seconds=None,
          batch_size=8, lr=None, device='cpu', seed=0, amp=True, progress=True,
          resume=False, cache_dir=None, weight_decay=DEFAULT_WEIGHT_DECAY,
          num_workers=0, init_weights=None, calibrate=False, augment=True) -> TrainResult:
    """Train `arch` (anything `resolve_arch` takes) on `data` and return a TrainResult.

    `data`: a data-set root, CSV or bag source for `open_dataset` (splits `train` and
    `val`), or a ready `(train_dataset, val_dataset)` pair. Budget: training stops at the
    first of `epochs`, `max_steps` (optimizer steps, counted across resumes) and
    `max_seconds` (wall time of this call); `epochs=None` means 1 when neither other limit
    is given, otherwise no epoch limit. A budget stop mid-epoch ends that epoch (it is
    validated and checkpointed). `lr=None` uses 1e-3 (AdamW). `device`: auto, cpu, cuda,
    cuda:N. `resume=True` continues from `out/train_state.safetensors`.
    `init_weights` (a state dict, or a .safetensors file of one) starts the model from
    every tensor of it whose name and shape fit (weight inheritance); the share of
    parameters copied is `extra["inherited"]`.
    `calibrate=True` fits a logit temperature on the validation split once training ends
    and stores it in the checkpoint (`vas_ros.training.calibration`).
    `augment`: True for the default `vas_ros.data.augment.Augmentation` of the training
    clips (flips with label swaps, colour, noise, blur, speed), False for none (crops and
    the small brightness jitter of `transforms` only), or an Augmentation.
    """
    import torch
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from vas_ros.models.checkpoint import save_checkpoint
    from vas_ros.models.factory import resolve_arch
    from vas_ros.models.footprint import check_fits
    from vas_ros.training.devices import resolve_device
    from vas_ros.training.evaluate import autocast_context, metrics, predict
    from vas_ros.training.plots import plot_curves
    from vas_ros.training.state import (
        load_train_state,
        restore_train_state,
        save_train_state,
    )

    started = time.monotonic()
    _check_budget(epochs, max_steps, max_seconds, batch_size, lr)
    if epochs is None and max_steps is None and max_seconds is None:
        epochs = 1
    arch = resolve_arch(arch)
    spec = arch.input_spec()
    dev = resolve_device(device) if not isinstance(device, torch.device) else device
    out = Path(out) if out is not None else None
    if resume and out is None:
        raise VasError('resume needs the run folder (out) that holds the training state')
    lr = float(lr) if lr is not None else DEFAULT_LR

    from vas_ros.data.augment import Augmentation

    if augment is True:
        augment = Augmentation()
    elif augment is False or augment is None:
        augment = None
    elif not isinstance(augment, Augmentation):
        raise VasError(f'augment must be True, False or an Augmentation, got {augment!r}')
    seed_everything(seed)
    train_set, val_set = open_splits(data, spec, seed=seed, cache_dir=cache_dir,
                                     augment=augment)
    classes = [str(c) for c in train_set.classes]
    check_fits(arch, len(classes), batch=batch_size, training=True, device=str(dev))
    model = arch.build(len(classes))
    inherited = inherit_weights(model, init_weights) if init_weights is not None else 0.0
    model = model.to(dev)
    optimizer = torch.optim.AdamW(param_groups(arch, model, lr), lr=lr, weight_decay=weight_decay)

    drop_last = len(train_set) > batch_size  # avoid a 1-clip batch upsetting BatchNorm
    steps_per_epoch = (len(train_set) // batch_size if drop_last
                       else math.ceil(len(train_set) / batch_size))
    limits = [n for n in ((epochs * steps_per_epoch) if epochs else None, max_steps) if n]
    horizon = min(limits) if limits else None
    warmup = max(1, min(steps_per_epoch, (horizon or steps_per_epoch) // 10, 500))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, warmup, horizon))
    use_amp = bool(amp) and dev.type == 'cuda'
    half = use_amp and not torch.cuda.is_bf16_supported()
    scaler = torch.amp.GradScaler('cuda', enabled=half)
    if dev.type == 'cuda':
        torch.backends.cudnn.benchmark = True

    done_epochs, step, history, best, best_epoch = 0, 0, [], None, None
    best_weights = None
    if resume:
        state = load_train_state(out / STATE_FILE)
        if state.info['arch'] != arch.to_dict():
            raise CheckpointError(f'{state.path}: belongs to model {state.info["arch"]["name"]!r} '
                                  f'with another genome; resume with the same --model')
        if state.info['classes'] != classes:
            raise CheckpointError(f'{state.path}: was trained on classes '
                                  f'{state.info["classes"]}, the data now has {classes}')
        restore_train_state(state, model=model, optimizer=optimizer, scheduler=scheduler,
                            scaler=scaler)
        done_epochs, step = int(state.info['epoch']), int(state.info['step'])
        history = list(state.info['history'])
        best, best_epoch = state.info.get('best_metrics'), state.info.get('best_epoch')
        if (out / MODEL_FILE).is_file() and best is not None:
            from safetensors.torch import load_file

            best_weights = load_file(str(out / MODEL_FILE))
    model.train()

    def budget_hit() -> str | None:
        if max_steps is not None and step >= max_steps:
            return 'max_steps'
        if max_seconds is not None and time.monotonic() - started >= max_seconds:
            return 'max_seconds'
        return None

    stopped_by = 'epochs'
    chance = 1.0 / len(classes)
    epoch = done_epochs
    while (epochs is None or epoch < epochs) and not budget_hit():
        epoch += 1
        if callable(getattr(train_set, 'set_epoch', None)):
            train_set.set_epoch(epoch)  # fresh, reproducible augmentation per epoch
        shuffle = torch.Generator().manual_seed(seed * 100_003 + epoch)
        loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, generator=shuffle,
                            drop_last=drop_last, num_workers=num_workers,
                            pin_memory=dev.type == 'cuda')
        loss_sum, correct, seen = 0.0, 0, 0
        epoch_start = time.monotonic()
        bar = tqdm(loader, desc=f'epoch {epoch}/{epochs or "?"}', disable=not progress,
                   dynamic_ncols=True)
        for inputs, labels in bar:
            reason = budget_hit()
            if reason:
                stopped_by = reason
                break
            args = [inputs[s].to(dev, non_blocking=True) for s in spec.streams]
            labels = torch.as_tensor(labels).long().to(dev, non_blocking=True)
            with autocast_context(dev, use_amp):
                logits = model(*args)
                loss = torch.nn.functional.cross_entropy(logits.float(), labels)
            if not torch.isfinite(loss):
                raise VasError(f'training diverged: loss is {float(loss)} at step {step + 1} '
                               f'(lr {scheduler.get_last_lr()[0]:.3g}); try a lower --lr')
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP_NORM)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            step += 1
            loss_sum += float(loss.detach()) * len(labels)
            correct += int((logits.argmax(1) == labels).sum())
            seen += len(labels)
            bar.set_postfix(loss=f'{loss_sum / seen:.3f}', acc=f'{correct / seen:.3f}')
        bar.close()
        train_seconds = time.monotonic() - epoch_start
        if seen == 0:  # the budget ran out before this epoch took a step
            epoch -= 1
            break
        val_start = time.monotonic()
        predictions = predict(model, val_set, device=dev, batch_size=batch_size,
                              streams=spec.streams, amp=use_amp, progress=progress,
                              desc=f'val {epoch}')
        val = metrics(predictions, classes)
        model.train()
        entry = {
            'epoch': epoch, 'step': step, 'clips': seen,
            'train_loss': loss_sum / seen, 'train_top1': correct / seen,
            'val_loss': val['loss'], 'val_top1': val['top1'], 'val_top5': val['top5'],
            'lr': scheduler.get_last_lr()[0], 'train_seconds': round(train_seconds, 3),
            'val_seconds': round(time.monotonic() - val_start, 3),
            'clips_per_s': seen / train_seconds if train_seconds > 0 else None,
            'chance': chance, 'partial': stopped_by != 'epochs',
        }
        history.append(entry)
        if progress:
            tqdm.write(f'epoch {epoch}: train loss {entry["train_loss"]:.3f} '
                       f'top1 {entry["train_top1"]:.3f} | val loss {val["loss"]:.3f} '
                       f'top1 {val["top1"]:.3f} | {entry["clips_per_s"]:.2f} clips/s',
                       file=sys.stderr)  # stdout stays free for --json
        if _better(val, best):
            best, best_epoch = val, epoch
            best_weights = {k: v.detach().to('cpu', copy=True)
                            for k, v in model.state_dict().items()}
            if out is not None:
                save_checkpoint(out / MODEL_FILE, model, arch, classes, spec, extra={
                    'epoch': epoch, 'step': step, 'val_top1': val['top1'],
                    'val_top5': val['top5'], 'val_n': val['n'], 'seed': seed,
                    'batch_size': batch_size, 'lr': lr,
                    'data': str(data) if not isinstance(data, (tuple, list)) else None,
                    'trained_by': 'vas_ros.training.trainer.train'})
        if out is not None:
            save_train_state(out / STATE_FILE, model=model, optimizer=optimizer,
                             scheduler=scheduler, scaler=scaler, info={
                                 'arch': arch.to_dict(), 'classes': classes,
                                 'epoch': epoch, 'step': step, 'history': history,
                                 'best_metrics': best, 'best_epoch': best_epoch,
                                 'seed': seed, 'batch_size': batch_size, 'lr': lr})
            write_json(out / HISTORY_FILE, history)
            plot_curves(history, out / CURVE_FILE, title=f'{arch.name} ({arch.family})')
        if stopped_by != 'epochs':
            break
    else:
        reason = budget_hit()
        if reason and (epochs is None or epoch < epochs):
            stopped_by = reason

    if best_weights is not None:
        model.load_state_dict({k: v.to(dev) for k, v in best_weights.items()})
    model.eval()
    checkpoint = out / MODEL_FILE if out is not None and (out / MODEL_FILE).is_file() else None
    calibration = None
    if calibrate and best is not None:
        from vas_ros.models.checkpoint import write_calibration
        from vas_ros.training.calibration import calibrate as fit

        predictions = predict(model, val_set, device=dev, batch_size=batch_size,
                              streams=spec.streams, amp=use_amp, progress=progress,
                              desc='calibrate')
        calibration = fit(predictions.logits, predictions.labels, split='val')
        if checkpoint is not None:
            write_calibration(checkpoint, calibration)
        if progress:
            tqdm.write(f'calibrated: temperature {calibration["temperature"]:.3f}, val ECE '
                       f'{calibration["ece_before"]:.3f} -> {calibration["ece_after"]:.3f}',
                       file=sys.stderr)
    return TrainResult(model=model, classes=classes, spec=spec, history=history,
                       val_top1=float(best['top1']) if best else 0.0,
                       val_metrics=best or {}, seconds=time.monotonic() - started,
                       steps=step, checkpoint=checkpoint, arch=arch, stopped_by=stopped_by,
                       extra={'best_epoch': best_epoch, 'epochs_done': epoch,
                              'inherited': inherited,
                              'augment': augment.to_dict() if augment else None},
                       calibration=calibration)
