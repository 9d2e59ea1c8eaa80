"""`vas-ros models list|info`: what can be built, and how big it is."""

from __future__ import annotations

import json


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        'models', help='list presets of every family; parameters, MACs and memory of a model',
        description='Inspect the model families: list every preset, or cost one model '
                    '(preset, genome JSON or checkpoint): parameters, multiply-accumulates '
                    'on one clip and peak memory, without allocating it.')
    sub = parser.add_subparsers(dest='models_command', metavar='ACTION')
    listing = sub.add_parser('list', help='every preset: name, family, description',
                             description='List the presets of all registered families.')
    listing.add_argument('--json', action='store_true', help='print a JSON list')
    listing.set_defaults(func=run_list)
    info = sub.add_parser('info', help='parameters, MACs, memory and input of one model',
                          description='Count a model\'s parameters and the MACs of one '
                                      'batch-1 clip, and estimate its peak memory for '
                                      'inference and training, on PyTorch\'s meta device: '
                                      'nothing of the size of the model is allocated, so '
                                      'huge genomes are safe to inspect.')
    info.add_argument('model', metavar='NAME_OR_GENOME',
                      help='preset name, genome .json file or .safetensors checkpoint')
    info.add_argument('--classes', type=int, default=None,
                      help='classifier outputs (default: the checkpoint\'s classes, else 400 '
                           'like the published Kinetics figures)')
    info.add_argument('--batch-size', type=int, default=8,
                      help='batch size of the training-memory estimate (default 8)')
    info.add_argument('--json', action='store_true', help='print one JSON object')
    info.set_defaults(func=run_info)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def run_list(args) -> int:
    from vas_ros.models.registry import preset_description, presets

    rows = [{'name': name, 'family': arch.family, 'description': preset_description(name)}
            for name, arch in sorted(presets().items(), key=lambda kv: (kv[1].family, kv[0]))]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max([len(r['name']) for r in rows] + [4])
    fam_width = max([len(r['family']) for r in rows] + [6])
    print(f'{"name":<{width}}  {"family":<{fam_width}}  description')
    for r in rows:
        print(f'{r["name"]:<{width}}  {r["family"]:<{fam_width}}  {r["description"]}')
    return 0


def describe_model(ref, classes: int | None = None, batch_size: int = 8) -> dict:
    """{"name","family","params","macs","memory": {...},"input": {...}} for a preset, genome
    or checkpoint, costed on the meta device (see `vas_ros.models.footprint`)."""
    from pathlib import Path

    from vas_ros.errors import VasError
    from vas_ros.models.factory import resolve_arch
    from vas_ros.models.footprint import estimate_footprint

    arch = resolve_arch(ref)
    spec = arch.input_spec()
    if classes is None:
        classes = 400
        if Path(str(ref)).suffix == '.safetensors':
            from vas_ros.models.checkpoint import read_metadata

            classes = len(read_metadata(ref)['classes'])
    if classes < 1:
        raise VasError(f'--classes must be >= 1, got {classes}')
    if batch_size < 1:
        raise VasError(f'--batch-size must be >= 1, got {batch_size}')
    cost = estimate_footprint(arch, classes)
    return {'name': arch.name, 'family': arch.family, 'params': cost.params,
            'macs': cost.macs,
            'memory': {'inference_mb': round(cost.inference_bytes() / 2**20, 1),
                       'train_mb': round(cost.training_bytes(batch_size) / 2**20, 1),
                       'train_batch': batch_size},
            'input': {'frames': spec.frames, 'size': spec.size, 'streams': list(spec.streams)}}


def run_info(args) -> int:
    info = describe_model(args.model, args.classes, args.batch_size)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    inp, mem = info['input'], info['memory']
    print(f'name    {info["name"]}\nfamily  {info["family"]}\n'
          f'params  {info["params"]:,} ({info["params"] / 1e6:.2f} M)\n'
          f'MACs    {info["macs"]:,} ({info["macs"] / 1e9:.2f} G per clip)\n'
          f'memory  {mem["inference_mb"]:,.0f} MB to infer one clip, {mem["train_mb"]:,.0f} MB '
          f'to train at batch {mem["train_batch"]} (AdamW; estimated)\n'
          f'input   {"+".join(inp["streams"])}, {inp["frames"]} frames x '
          f'{inp["size"]}x{inp["size"]}')
    return 0
