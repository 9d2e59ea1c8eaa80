"""Turn the `vas-ros bench` JSON into the Markdown report the README quotes."""

from __future__ import annotations


def _fmt(value, digits: int = 2) -> str:
    if value is None:
        return ''
    if isinstance(value, bool):
        return 'yes' if value else 'no'
    if isinstance(value, float):
        return f'{value:.{digits}f}'
    return str(value)


def _table(header: list[str], rows: list[list]) -> str:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(_fmt(c) for c in row) + ' |' for row in rows]
    return '\n'.join(lines)


def _flatten(data, prefix: str = '') -> list[tuple[str, object]]:
    out = []
    for key, value in data.items():
        name = f'{prefix}{key}'
        if isinstance(value, dict):
            out += _flatten(value, name + '.')
        elif not isinstance(value, list):
            out.append((name, value))
    return out


def render_markdown(report: dict) -> str:
    m = report['machine']
    s = report['sections']
    parts = ['# vas_ros benchmark report', '',
             f'Measured {report["created"]} on {m["cpu"]}, {m["cores"]} cores '
             f'({_fmt(m.get("memory_gb"), 0)} GB), torch {m["torch"]} with '
             f'{m["torch_threads"]} threads, Python {m["python"]}; AVX512-BF16: '
             f'{_fmt(m["avx512_bf16"])}, VNNI: {_fmt(m["avx512_vnni"])}. Load average at '
             f'start: {", ".join(f"{v:.1f}" for v in m["load_average_at_start"])}. '
             'All figures are medians of repeated batch-1 runs in one sitting; ratios '
             'compare numbers from this same run.', '',
             'Regenerate: `make bench` (or `vas-ros bench --out bench`).', '']
    gpu = {}
    if 'gpu_latency' in s:
        g = s['gpu_latency']
        gpu = {r['model']: r for r in g.get('results', []) if 'median_ms' in r}
        parts += [f'GPU column: {g.get("gpu_name", g.get("device"))}, from '
                  '`vas-ros latency ... --device cuda --json` run on that machine.', '']
    if 'latency' in s:
        rows = []
        for r in s['latency']['results']:
            if 'median_ms' not in r:
                rows.append([r['model'], 'failed: ' + r.get('error', '?')] + [''] * 6)
                continue
            row = [r['model'], r['params'] / 1e6, r['macs'] / 1e9, r['median_ms'],
                   r['p10_ms'], r['p90_ms'], r.get('ratio_to_r2plus1d_18')]
            if gpu:
                row.append(gpu.get(r['model'], {}).get('median_ms'))
            rows.append(row)
        header = ['model', 'params (M)', 'GMACs', 'CPU median ms', 'p10', 'p90',
                  'x r2plus1d_18']
        if gpu:
            header.append('GPU median ms')
        parts += ['## Latency per clip (eager fp32, batch 1, CPU)', '',
                  _table(header, rows), '']
    if 'paths' in s:
        rows = [[r['model'], r['path'], r.get('median_ms'), r.get('speedup_vs_eager'),
                 f'{r["max_abs_diff"]:.1e}' if 'max_abs_diff' in r else '',
                 f'{r["rel_diff"]:.1e}' if 'rel_diff' in r else '',
                 r.get('top1_agree'), r.get('error', '')]
                for r in s['paths']['results']]
        parts += ['## Inference paths (speed-up over eager fp32, same model, same run)', '',
                  'Random weights, random clips: the differences show numerical drift; '
                  'top-1 agreement on random logits is a harsh test (near-ties).', '',
                  _table(['model', 'path', 'median ms', 'x eager', 'max abs dlogit',
                          'relative diff', 'top-1 agreement', 'note'], rows), '']
    if 'node' in s:
        rows = [[k, v] for k, v in _flatten(s['node'])]
        parts += ['## ROS node (publisher and recogniser in separate processes, DDS)', '',
                  _table(['measure', 'value'], rows), '']
    if 'flow' in s:
        rows = [[size, method, v['median_ms_per_pair'], v['p90_ms']]
                for size, methods in s['flow'].items() for method, v in methods.items()]
        parts += ['## Optical flow cost (per frame pair, OpenCV)', '',
                  _table(['frame size', 'method', 'median ms', 'p90 ms'], rows), '']
    if 'decode' in s:
        d = s['decode']
        rows = [[k, d[k]['clips_per_s'], d[k]['median_ms_per_clip']]
                for k in ('decode', 'cold_with_cache_write', 'cached', 'cached_item_rgb')
                if k in d]
        parts += [f'## Clip decoding ({d["clips"]} clips, {d["frames"]} frames, '
                  f'{d["size"]} px)', '',
                  _table(['stage', 'clips/s', 'median ms/clip'], rows), '',
                  f'Cache vs decode speed-up: {d["cached_vs_decode_speedup"]:.1f}x.', '']
    if report.get('errors'):
        parts += ['## Sections that failed', '']
        parts += [f'- {k}: {v}' for k, v in report['errors'].items()] + ['']
    parts += ['Section wall times (s): ' + ', '.join(f'{k} {v}' for k, v in
                                                    report['seconds'].items()), '']
    return '\n'.join(parts)
