"""`vas-ros train`: train a preset, genome file or checkpoint's architecture on a data set."""

from __future__ import annotations

from vas_ros.errors import VasError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        'train', help='train a model on a video data set (writes RUN/model.safetensors)',
        description='Train a model (preset name, genome .json file, or .safetensors checkpoint '
                    'whose architecture is reused with fresh weights) on ROOT/train, validating '
                    'on ROOT/val after every epoch. Writes RUN/model.safetensors (best '
                    'validation top-1 so far), RUN/train_state.safetensors (for --resume), '
                    'RUN/history.json and RUN/curve.png after every epoch.')
    parser.add_argument('--model', required=True, metavar='NAME_OR_GENOME',
                        help='preset (e.g. r2plus1d_18, frame2d, tvn_tiny), genome JSON file '
                             'or checkpoint')
    parser.add_argument('--data', required=True, metavar='ROOT',
                        help='data set root (ROOT/<split>/<class>/<clip>.mp4), CSV or bag source')
    parser.add_argument('--out', required=True, metavar='RUN', help='run folder to write')
    parser.add_argument('--epochs', type=int, default=None,
                        help='epochs to train in total (default 5, or no limit when '
                             '--max-steps/--max-seconds is given)')
    parser.add_argument('--max-steps', type=int, default=None,
                        help='stop after this many optimizer steps in total')
    parser.add_argument('--max-seconds', type=float, default=None,
                        help='stop after this many seconds of wall time')
    parser.add_argument('--batch-size', type=int, default=8, help='clips per step (default 8)')
    parser.add_argument('--lr', type=float, default=None,
                        help='peak AdamW learning rate (default 1e-3; warm-up then cosine)')
    parser.add_argument('--seed', type=int, default=0, help='random seed (default 0)')
    parser.add_argument('--device', default='auto',
                        help='auto (default: GPU if there is one), cpu, cuda, cuda:N')
    parser.add_argument('--no-amp', action='store_true',
                        help='train in float32 on the GPU (default: bf16/fp16 autocast)')
    parser.add_argument('--workers', type=int, default=0,
                        help='DataLoader worker processes (default 0: load in the main '
                             'process, best on a 2-core machine)')
    parser.add_argument('--cache-dir', default=None,
                        help='folder for decoded-clip caches (speeds up epochs after the first)')
    parser.add_argument('--resume', action='store_true',
                        help='continue from RUN/train_state.safetensors')
    parser.add_argument('--overwrite', action='store_true',
                        help='start afresh even if RUN already holds a run')
    parser.add_argument('--no-calibrate', action='store_true',
                        help='do not fit a score temperature on the validation split '
                             '(default: fit it and store it in the checkpoint)')
    parser.add_argument('--init-weights', default=None, metavar='CHECKPOINT',
                        help='start from every tensor of this .safetensors checkpoint whose '
                             'name and shape fit (fine-tuning; a new class list gets a fresh '
                             'classifier)')
    parser.add_argument('--no-augment', action='store_true',
                        help='train without the clip augmentation of vas_ros.data.augment '
                             '(flips with label swaps, colour, noise, blur, speed; default on)')
    parser.add_argument('--quiet', action='store_true', help='no progress bars')
    parser.add_argument('--json', action='store_true', help='print the summary as JSON')
    parser.set_defaults(func=run, outputs={'out': ('dir', ('data',))})


def run(args) -> int:
    import json
    from pathlib import Path

    from vas_ros.training.trainer import MODEL_FILE, STATE_FILE, train

    out = Path(args.out)
    if args.resume and args.overwrite:
        raise VasError('--resume and --overwrite contradict each other')
    if not args.resume and not args.overwrite and (
            (out / STATE_FILE).exists() or (out / MODEL_FILE).exists()):
        raise VasError(f'{out} already holds a training run; pass --resume to continue it, '
                       f'--overwrite to replace it, or choose another --out')
    if args.resume and not (out / STATE_FILE).exists():
        raise VasError(f'{out}: nothing to resume ({STATE_FILE} not found)')
    if args.workers < 0:
        raise VasError(f'--workers must be >= 0, got {args.workers}')
    epochs = args.epochs
    if epochs is None and args.max_steps is None and args.max_seconds is None:
        epochs = 5
    result = train(args.model, args.data, out=out, epochs=epochs, max_steps=args.max_steps,
                   max_seconds=args.max_seconds, batch_size=args.batch_size, lr=args.lr,
                   device=args.device, seed=args.seed, amp=not args.no_amp,
                   progress=not args.quiet, resume=args.resume, cache_dir=args.cache_dir,
                   num_workers=args.workers, calibrate=not args.no_calibrate,
                   augment=not args.no_augment, init_weights=args.init_weights)
    rates = [h['clips_per_s'] for h in result.history if h.get('clips_per_s')]
    summary = {
        'model': result.arch.name, 'family': result.arch.family,
        'checkpoint': str(result.checkpoint) if result.checkpoint else None,
        'best_epoch': result.extra.get('best_epoch'),
        'epochs_done': result.extra.get('epochs_done'), 'steps': result.steps,
        'stopped_by': result.stopped_by, 'val_top1': result.val_top1,
        'val_top5': result.val_metrics.get('top5'), 'chance': 1 / len(result.classes),
        'train_clips_per_s_median': sorted(rates)[len(rates) // 2] if rates else None,
        'seconds': round(result.seconds, 1),
        'calibration': result.calibration,
        'augment': result.extra.get('augment'),
        'inherited': result.extra.get('inherited'),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f'trained {summary["model"]} for {summary["epochs_done"]} epoch(s), '
              f'{summary["steps"]} steps ({summary["stopped_by"]}) in {summary["seconds"]} s')
        print(f'best val top-1 {summary["val_top1"]:.3f} at epoch {summary["best_epoch"]} '
              f'(chance {summary["chance"]:.3f}) -> {summary["checkpoint"]}')
        if args.init_weights is not None:
            print(f'started from {args.init_weights}: {result.extra.get("inherited", 0):.1%} '
                  f'of the parameters inherited'
                  + (' (nothing fitted: check that it is the same architecture)'
                     if not result.extra.get('inherited') else ''))
        if result.calibration:
            c = result.calibration
            print(f'scores calibrated on val: temperature {c["temperature"]:.3f}, ECE '
                  f'{c["ece_before"]:.3f} -> {c["ece_after"]:.3f}, NLL '
                  f'{c["nll_before"]:.3f} -> {c["nll_after"]:.3f}')
    return 0
