"""`vas-ros latency`: per-clip latency of models and inference paths, side by side.

All models and paths in one call are timed in the same process, one after another, so
their ratios can be read from one table. Each non-eager path is also checked against
eager fp32 of the same weights on a few clips (max |logit diff|, top-1 agreement). For a
two-stream model the optical flow one clip needs is timed separately (the robot computes
it on the CPU before the forward pass) and shown in its own column, not in the median.
"""

from __future__ import annotations

import json
import sys

from vas_ros.models.inference import PATHS

PATH_CHOICES = (*PATHS, 'auto', 'all')


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        'latency', help='time batch-1 clip inference of models and inference paths',
        description='Time a batch-1 clip forward pass (after warm-up) of each MODEL and '
                    'report the median and the 10th/90th percentiles in ms. MODEL is a '
                    'preset, a genome .json file or a .safetensors checkpoint. With several '
                    'paths, each is compared with eager fp32 of the same model (speed-up, '
                    'max |logit diff|, top-1 agreement).')
    parser.add_argument('models', nargs='+', metavar='MODEL')
    parser.add_argument('--device', default='cpu', help='cpu or cuda[:N] (default cpu)')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch / ONNX Runtime threads (default: torch\'s default)')
    parser.add_argument('--repeats', type=int, default=20, help='timed runs (default 20)')
    parser.add_argument('--warmup', type=int, default=3, help='untimed runs first (default 3)')
    parser.add_argument('--path', action='append', choices=PATH_CHOICES, default=None,
                        help='inference path; repeat for several, "all" for every path this '
                             'machine supports (default eager)')
    parser.add_argument('--classes', type=int, default=None,
                        help='classifier outputs for presets/genomes (default 400)')
    parser.add_argument('--check-clips', type=int, default=4,
                        help='random clips used to compare each path with eager (default 4)')
    parser.add_argument('--plot', default=None, metavar='PNG',
                        help='also draw the medians (p10-p90 whiskers) into this PNG')
    parser.add_argument('--json', action='store_true', help='print one JSON object')
    parser.set_defaults(func=run, outputs={'plot': ('file', ('models',))})


def _paths(requested, device) -> list[str]:
    from vas_ros.models.inference import available_paths

    requested = requested or ['eager']
    if 'all' in requested:
        return available_paths(device)
    # Several paths are compared with eager, so eager is always timed first then.
    ordered = ['eager', *requested] if len(set(requested)) > 1 else requested
    return list(dict.fromkeys(ordered))


def _load(ref, classes):
    """(name, model, spec) for a preset, genome file or checkpoint (with its weights)."""
    from pathlib import Path

    from vas_ros.models.factory import resolve_arch
    from vas_ros.models.footprint import check_fits

    arch = resolve_arch(ref)
    if Path(str(ref)).suffix == '.safetensors':
        from vas_ros.models.checkpoint import load_checkpoint, read_metadata

        check_fits(arch, len(read_metadata(ref)['classes']))  # before any weight is read
        loaded = load_checkpoint(ref, 'cpu')
        return str(ref), loaded.model, loaded.spec
    check_fits(arch, classes or 400)
    return str(ref), arch.build(classes or 400), arch.input_spec()


def run(args) -> int:
    import torch
    from tqdm import tqdm

    from vas_ros.commands._checks import at_least
    from vas_ros.errors import VasError
    from vas_ros.models.inference import compare_logits
    from vas_ros.models.introspect import count_macs, count_params
    from vas_ros.models.path_choice import prepare_path
    from vas_ros.search.latency import measure_flow_latency, measure_latency
    from vas_ros.training.devices import thread_count

    if args.check_clips < 1:
        raise VasError(f'--check-clips must be >= 1, got {args.check_clips}')
    paths = _paths(args.path, args.device)
    threads = thread_count(args.threads)
    at_least(args.classes, 1, '--classes')
    at_least(args.repeats, 1, '--repeats')
    at_least(args.warmup, 0, '--warmup')
    loaded = [_load(ref, args.classes) for ref in args.models]  # fail early on bad names
    results, failures = [], 0
    jobs = [(m, p) for m in loaded for p in paths]
    bar = tqdm(jobs, desc='latency', unit='run', file=sys.stderr, disable=None)
    eager_of, reference_of, flow_of = {}, {}, {}
    for (name, model, spec), path in bar:
        bar.set_postfix_str(f'{name} {path}')
        row = {'model': name, 'path': path}
        try:
            runner = prepare_path(model, spec, path, args.device, threads=threads)
            if path == 'auto':
                row['chosen'] = runner.path
            check = {}
            if len(paths) > 1:
                clips = _check_clips(spec, args.check_clips)
                logits = _logits(runner, clips)
                if path == 'eager':
                    reference_of[name] = logits
                elif name in reference_of:
                    check = _agreement(compare_logits(reference_of[name], logits))
            res = measure_latency(model, spec, device=args.device, threads=threads,
                                  warmup=args.warmup, repeats=args.repeats, path=path,
                                  runner=runner)
        except Exception as exc:  # one path failing (e.g. a compiler error) ends no table
            if len(paths) == 1:
                raise
            first_line = (str(exc).strip().splitlines() or [''])[0][:300]
            kind = '' if isinstance(exc, VasError) else f'{type(exc).__name__}: '
            row['error'] = kind + first_line
            failures += 1
            results.append(row)
            continue
        row.update({'median_ms': round(res.median_ms, 3), 'p10_ms': round(res.p10_ms, 3),
                    'p90_ms': round(res.p90_ms, 3), 'params': count_params(model),
                    'macs': count_macs(model, spec)})
        if name not in flow_of:  # the same for every path of a model: time it once
            flow = measure_flow_latency(spec, threads=threads, repeats=max(3, args.repeats))
            flow_of[name] = None if flow is None else {
                'flow_method': spec.flow_method, 'flow_median_ms': round(flow.median_ms, 3),
                'flow_p10_ms': round(flow.p10_ms, 3), 'flow_p90_ms': round(flow.p90_ms, 3)}
        row.update(flow_of[name] or {})
        if path == 'eager':
            eager_of[name] = res.median_ms
        if len(paths) > 1 and name in eager_of:
            row['speedup_vs_eager'] = round(eager_of[name] / res.median_ms, 3)
        row.update(check)
        results.append(row)
    out = {'device': args.device, 'threads': threads or torch.get_num_threads(),
           'results': results}
    if args.plot:
        _plot(results, out, args.plot)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        _print_table(out)
    return 1 if failures else 0


def _check_clips(spec, count: int):
    """The same random clips for every path of a model (batch 1 each, like the timing)."""
    import torch

    gen = torch.Generator().manual_seed(1)
    return [tuple(torch.randn(spec.shape(s), generator=gen) for s in spec.streams)
            for _ in range(count)]


def _logits(runner, clips):
    import torch

    return torch.cat([runner(*clip).float().cpu() for clip in clips])


def _agreement(cmp: dict) -> dict:
    return {'max_abs_diff': float(f'{cmp["max_abs_diff"]:.3g}'),
            'rel_diff': float(f'{cmp["rel_diff"]:.3g}'), 'top1_agree': cmp['top1_agree']}


def _print_table(out: dict) -> None:
    print(f'device {out["device"]}, {out["threads"]} threads; batch-1 clip, ms')
    head = (f'{"model":<22} {"path":<14} {"median":>9} {"p10":>9} {"p90":>9} '
            f'{"params":>8} {"GMACs":>7} {"x eager":>8} {"max|dL|":>9} {"top1=":>6} '
            f'{"flow/clip":>10}')
    print(head)
    for r in out['results']:
        if 'error' in r:
            print(f'{r["model"]:<22} {r["path"]:<14} FAILED: {r["error"]}')
            continue
        speed = f'{r["speedup_vs_eager"]:.2f}' if 'speedup_vs_eager' in r else ''
        diff = f'{r["max_abs_diff"]:.2g}' if 'max_abs_diff' in r else ''
        agree = f'{r["top1_agree"]:.2f}' if 'top1_agree' in r else ''
        flow = f'{r["flow_median_ms"]:.2f}' if 'flow_median_ms' in r else ''
        print(f'{r["model"]:<22} {r["path"]:<14} {r["median_ms"]:>9.2f} {r["p10_ms"]:>9.2f} '
              f'{r["p90_ms"]:>9.2f} {r["params"] / 1e6:>7.2f}M {r["macs"] / 1e9:>7.2f} '
              f'{speed:>8} {diff:>9} {agree:>6} {flow:>10}')
    if any('flow_median_ms' in r for r in out['results']):
        print('flow/clip: optical flow for one clip at the model\'s input (CPU, OpenCV), '
              'not included in the median')


def _plot(results, out, png) -> None:
    from vas_ros.plotting import pyplot, save_figure

    rows = [r for r in results if 'error' not in r]
    if not rows:
        return
    labels = [f'{r["model"]}\n{r["path"]}' for r in rows]
    med = [r['median_ms'] for r in rows]
    err = [[r['median_ms'] - r['p10_ms'] for r in rows],
           [r['p90_ms'] - r['median_ms'] for r in rows]]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(rows)), 4))
    ax.bar(range(len(rows)), med, yerr=err, capsize=3, color='tab:blue')
    ax.set_xticks(range(len(rows)), labels, rotation=60, ha='right', fontsize=8)
    ax.set_yscale('log')
    ax.set_ylabel('ms per clip (median, p10-p90)')
    ax.set_title(f'batch-1 clip latency, {out["device"]}, {out["threads"]} threads')
    save_figure(plt, fig, png, dpi=120)
