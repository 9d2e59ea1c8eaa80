"""Training ensemble members and assembling them into one checkpoint.

Given the candidates chosen from a search store (vas_ros.search.ensemble_select),
`build_ensemble` trains each as a member (RGB, and with `flow` also on optical flow, as in
the released two-stream EvaNet ensemble) in OUT/members/<name>/, reusing a member whose
finished run (OUT/members/<name>/member.json) has the same settings, then writes
OUT/ensemble.safetensors: one checkpoint that `load_checkpoint`, `vas-ros eval`, the
inference engine and the ROS node run like any other model (member logits averaged). It
scores every member and the ensemble on the validation split and writes OUT/report.json
and OUT/ensemble.png. `vas-ros ensemble` is the command line for it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from vas_ros.errors import VasError
from vas_ros.models.spec import STREAMS

MEMBER_DONE_FILE = 'member.json'


def member_streams(family: str, arch, flow: bool) -> list[tuple[object, list[str]]]:
    """The member(s) one architecture gives: itself on its own streams, or with `flow`
    its RGB and its optical-flow variant (genomes that can switch stream: EvaNet, TVN)."""
    from vas_ros.models.registry import ModelArch

    own = list(arch.input_spec().streams)
    if not flow:
        return [(arch, own)]
    pair = []
    for stream in STREAMS:
        genome = arch.genome.with_streams((stream,))
        if genome is None:
            raise VasError(f'--flow trains each member on RGB and on optical flow; a '
                           f'{family} genome cannot switch to the {stream} stream')
        pair.append((ModelArch(family, genome, f'{arch.name}_{stream}'), [stream]))
    return pair


def train_member(arch, member_dir: Path, *, data: str | Path, epochs: int,
                 max_steps: int | None, batch_size: int, lr: float | None, device: str,
                 seed: int, progress: bool, cache_dir: str) -> dict:
    """Train one member into member_dir (or reuse a finished run with the same settings)."""
    from vas_ros.training.trainer import train

    settings = {'arch': arch.to_dict(), 'epochs': epochs, 'max_steps': max_steps,
                'batch_size': batch_size, 'lr': lr, 'seed': seed,
                'data': str(Path(data).resolve())}
    marker = member_dir / MEMBER_DONE_FILE
    if marker.is_file() and (member_dir / 'model.safetensors').is_file():
        try:
            done = json.loads(marker.read_text())
        except (OSError, json.JSONDecodeError):
            done = {}
        if done.get('settings') == settings:
            return done
    result = train(arch, data, out=member_dir, epochs=epochs, max_steps=max_steps,
                   batch_size=batch_size, lr=lr, device=device, seed=seed,
                   progress=progress, cache_dir=cache_dir)
    done = {'settings': settings, 'val_top1': result.val_top1, 'seconds': result.seconds,
            'steps': result.steps, 'checkpoint': str(result.checkpoint)}
    marker.write_text(json.dumps(done, indent=2, sort_keys=True))
    return done


def plot_report(report: dict, path: Path) -> None:
    """Bar chart: every member's and the ensemble's validation top-1, and chance."""
    from vas_ros.plotting import pyplot, save_figure

    plt = pyplot()

    names = [m['name'] for m in report['members']] + ['ensemble']
    values = [m['val_top1'] for m in report['members']] + [report['ensemble']['val_top1']]
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(names)), 3.5))
    colours = ['tab:blue'] * len(report['members']) + ['tab:orange']
    ax.bar(range(len(names)), values, color=colours)
    ax.set_xticks(range(len(names)), names, rotation=30, ha='right', fontsize=8)
    ax.axhline(1 / len(report['classes']), color='grey', linestyle='--', linewidth=1,
               label='chance')
    ax.set_ylabel('val top-1')
    ax.set_ylim(0, 1)
    ax.legend(loc='upper right', fontsize=8)
    ax.set_title('members vs ensemble (mean logits)', fontsize=10)
    save_figure(plt, fig, path, dpi=100)


def build_ensemble(*, family: str, candidates: Sequence, store: str | Path,
                   data: str | Path, out: str | Path, diverse: bool = False,
                   flow: bool = False, epochs: int = 3, max_steps: int | None = None,
                   batch_size: int = 8, lr: float | None = None, device: str = 'cpu',
                   seed: int = 0, cache_dir: str | None = None,
                   progress: bool = True) -> dict:
    """Train, assemble, save and evaluate; returns the report dict (also OUT/report.json).

    `candidates` are search-store records (`CandidateRecord`: id, genome, genome_hash,
    accuracy, latency_ms) of `family`, in member order; `store` is the store they came
    from (recorded in the checkpoint); `diverse` says whether they were chosen for
    diversity (recorded, and part of the ensemble's name). `cache_dir` defaults to
    OUT/cache.
    """
    import torch

    from vas_ros.data.datasets import open_dataset
    from vas_ros.models.checkpoint import load_checkpoint, save_checkpoint
    from vas_ros.models.ensemble import make_genome
    from vas_ros.models.registry import ModelArch
    from vas_ros.training.evaluate import evaluate

    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    cache_dir = cache_dir or str(out / 'cache')

    members = []  # (arch, streams, record, training summary)
    for rec in candidates:
        arch = ModelArch.from_dict({'family': family, 'genome': rec.genome,
                                    'name': f'{family}_{rec.genome_hash[:8]}'})
        for member_arch, streams in member_streams(family, arch, flow):
            done = train_member(member_arch, out / 'members' / member_arch.name, data=data,
                                epochs=epochs, max_steps=max_steps, batch_size=batch_size,
                                lr=lr, device=device, seed=seed, progress=progress,
                                cache_dir=cache_dir)
            members.append((member_arch, streams, rec, done))

    genome = make_genome([(a, s) for a, s, _, _ in members])
    arch = ModelArch('ensemble', genome, f'{family}_ensemble_top{len(candidates)}'
                                        f'{"_diverse" if diverse else ""}'
                                        f'{"_two_stream" if flow else ""}')
    spec = arch.input_spec()
    classes = None
    trained = []
    for member_arch, _, _, done in members:
        loaded = load_checkpoint(done['checkpoint'])
        if loaded.arch.genome != member_arch.genome:
            raise VasError(f'{done["checkpoint"]}: holds another architecture than member '
                           f'{member_arch.name}; delete {Path(done["checkpoint"]).parent}')
        if classes is not None and loaded.classes != classes:
            raise VasError(f'{done["checkpoint"]}: trained on classes {loaded.classes}, '
                           f'other members on {classes}')
        classes = loaded.classes
        trained.append(loaded.model)
    model = arch.build(len(classes))
    for slot, member in zip(model.members, trained):
        slot.load_state_dict(member.state_dict(), strict=True)
    model.eval()

    report_members = [{'name': a.name, 'streams': s, 'candidate_id': rec.id,
                       'genome_hash': rec.genome_hash, 'proxy_accuracy': rec.accuracy,
                       'latency_ms': rec.latency_ms, 'train_val_top1': done['val_top1']}
                      for a, s, rec, done in members]
    path = save_checkpoint(out / 'ensemble.safetensors', model, arch, classes, spec, extra={
        'source': 'vas-ros ensemble', 'store': str(Path(store).resolve()),
        'diverse': bool(diverse), 'members': report_members})

    dataset = open_dataset(data, 'val', spec, train=False, cache_dir=cache_dir,
                           classes=classes)
    with torch.no_grad():
        result = evaluate(model, dataset, device=device, batch_size=batch_size,
                          streams=spec.streams, progress=progress)
    for entry, scores in zip(report_members, result.get('members', [])):
        entry['val_top1'] = scores['top1']
    report = {'checkpoint': str(path), 'family': family, 'diverse': bool(diverse),
              'flow': bool(flow), 'classes': classes, 'n_val': result['n'],
              'members': report_members,
              'ensemble': {'val_top1': result['top1'], 'val_top5': result['top5']}}
    (out / 'report.json').write_text(json.dumps(report, indent=2, sort_keys=True))
    plot_report(report, out / 'ensemble.png')
    return report
