"""Where ONNX Runtime spends a clip: time per operator type of one model on the
`onnxruntime` or `int8` path, from ONNX Runtime's own profiler (issue 17).

    .venv/bin/python bench/ort_op_profile.py assemblenet50 --path int8 --runs 3 \
        --out bench/amd_epyc_avx2/ort_ops_assemblenet50_int8

The model is exported and (for int8) quantised exactly as `vas-ros latency --path P`
does it (`prepare_inference`), then run in a second session over the same file with
profiling on, with the same graph optimisations; the first run warms up and is left
out. Writes OUT.json (per op type: total ms
per clip, share, node count; the slowest nodes) and OUT.md. Kernel times only: the gaps
between kernels (Q/DQ bookkeeping inside a kernel is counted, thread hand-over is not)
make the total a little lower than a timed clip.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def op_totals(trace: list[dict], runs: int) -> tuple[list[dict], list[dict]]:
    """(per op type, per node) ms per run from an ONNX Runtime profile trace."""
    by_op: dict[str, float] = defaultdict(float)
    by_node: dict[str, list] = {}
    for event in trace:
        name = event.get('name', '')
        if event.get('cat') != 'Node' or not name.endswith('_kernel_time'):
            continue
        op = event.get('args', {}).get('op_name', '?')
        ms = event['dur'] / 1000.0
        by_op[op] += ms
        node = name[:-len('_kernel_time')]
        by_node.setdefault(node, [op, 0.0])[1] += ms
    total = sum(by_op.values()) or 1.0
    nodes_per_op: dict[str, int] = defaultdict(int)
    for op, _ in by_node.values():
        nodes_per_op[op] += 1
    ops = sorted(({'op': op, 'ms': ms / runs, 'share': ms / total,
                   'nodes': nodes_per_op[op]} for op, ms in by_op.items()),
                 key=lambda r: -r['ms'])
    nodes = sorted(({'node': n, 'op': op, 'ms': ms / runs} for n, (op, ms) in by_node.items()),
                   key=lambda r: -r['ms'])
    return ops, nodes


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('model', help='preset name, genome JSON or checkpoint')
    p.add_argument('--path', choices=('onnxruntime', 'int8'), default='int8')
    p.add_argument('--runs', type=int, default=3)
    p.add_argument('--threads', type=int, default=None)
    p.add_argument('--classes', type=int, default=400)
    p.add_argument('--top', type=int, default=15, help='slowest nodes to list')
    p.add_argument('--out', type=Path, required=True, help='OUT.json and OUT.md are written')
    args = p.parse_args()
    if args.runs < 1:
        p.error(f'--runs must be >= 1, got {args.runs}')

    import torch

    from vas_ros.commands.bench import machine
    from vas_ros.commands.latency import _load
    from vas_ros.models.inference import INT8_DISABLED_OPTIMIZERS, ort_cpu_session
    from vas_ros.models.introspect import example_inputs
    from vas_ros.models.path_choice import prepare_path

    if args.threads:
        torch.set_num_threads(args.threads)
    name, model, spec = _load(args.model, args.classes)
    runner = prepare_path(model, spec, args.path)
    inputs = [x.numpy() for x in example_inputs(spec)]
    feed = dict(zip([i.name for i in runner.session.get_inputs()], inputs))
    disabled = INT8_DISABLED_OPTIMIZERS if args.path == 'int8' else ()
    with tempfile.TemporaryDirectory() as tmp:
        session = ort_cpu_session(runner.note, args.threads, disabled,
                                  profile_prefix=os.path.join(tmp, 'trace'))
        for _ in range(args.runs + 1):  # the first run warms up and is left out
            session.run(None, feed)
        trace = json.loads(Path(session.end_profiling()).read_text())
    windows = sorted((e['ts'], e['ts'] + e['dur']) for e in trace
                     if e.get('cat') == 'Session' and e.get('name') == 'model_run')
    if len(windows) != args.runs + 1:
        raise SystemExit(f'expected {args.runs + 1} model runs in the trace, '
                         f'found {len(windows)}')
    timed = [e for e in trace if e.get('cat') == 'Node'
             and any(lo <= e['ts'] <= hi for lo, hi in windows[1:])]
    ops, nodes = op_totals(timed, args.runs)
    report = {'model': name, 'path': args.path, 'runs': args.runs, 'cpu': machine()['cpu'],
              'threads': args.threads or torch.get_num_threads(),
              'kernel_ms_per_clip': round(sum(r['ms'] for r in ops), 3),
              'ops': ops, 'slowest_nodes': nodes[:args.top]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix('.json').write_text(json.dumps(report, indent=2))
    lines = [f'# {name} on the {args.path} path: ONNX Runtime kernel time per op type',
             '', f'{report["cpu"]}, {report["threads"]} threads, mean of {args.runs} runs after '
             f'one warm-up; kernel total {report["kernel_ms_per_clip"]:.1f} '
             f'ms per clip.', '', '| op | ms per clip | share | nodes |', '|---|---|---|---|']
    lines += [f'| {r["op"]} | {r["ms"]:.2f} | {r["share"]:.1%} | {r["nodes"]} |' for r in ops]
    lines += ['', '| slowest node | op | ms |', '|---|---|---|']
    lines += [f'| {r["node"]} | {r["op"]} | {r["ms"]:.2f} |' for r in nodes[:args.top]]
    args.out.with_suffix('.md').write_text('\n'.join(lines) + '\n')
    print('\n'.join(lines))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
