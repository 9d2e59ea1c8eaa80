"""`vas-ros models list|info`: what can be built, and how big it is."""

from __future__ import annotations

import json


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        'models', help='list presets of every family; parameters and MACs of a model',
        description='Inspect the model families: list every preset, or build one model '
                    '(preset, genome JSON or checkpoint) and count its parameters and '
                    'multiply-accumulates on one clip.')
    sub = parser.add_subparsers(dest='models_command', metavar='ACTION')
    listing = sub.add_parser('list', help='every preset: name, family, description',
                             description='List the presets of all registered families.')
    listing.add_argument('--json', action='store_true', help='print a JSON list')
    listing.set_defaults(func=run_list)
    info = sub.add_parser('info', help='parameters, MACs and input of one model',
                          description='Build a model and count its parameters and the MACs '
                                      'of one batch-1 clip (counted by running it).')
    info.add_argument('model', metavar='NAME_OR_GENOME',
                      help='preset name, genome .json file or .safetensors checkpoint')
    info.add_argument('--classes', type=int, default=None,
                      help='classifier outputs (default: the checkpoint\'s classes, else 400 '
                           'like the published Kinetics figures)')
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


def describe_model(ref, classes: int | None = None) -> dict:
    """{"name","family","params","macs","input": {...}} for a preset, genome or checkpoint."""
    from pathlib import Path

    from vas_ros.errors import VasError
    from vas_ros.models.introspect import count_macs, count_params
    from vas_ros.models.registry import build_model, input_spec_for, resolve_arch

    arch = resolve_arch(ref)
    spec = input_spec_for(arch)
    if classes is None:
        classes = 400
        if Path(str(ref)).suffix == '.safetensors':
            from vas_ros.models.checkpoint import read_metadata

            classes = len(read_metadata(ref)['classes'])
    if classes < 1:
        raise VasError(f'--classes must be >= 1, got {classes}')
    model = build_model(arch, classes)
    return {'name': arch.name, 'family': arch.family, 'params': count_params(model),
            'macs': count_macs(model, spec),
            'input': {'frames': spec.frames, 'size': spec.size, 'streams': list(spec.streams)}}


def run_info(args) -> int:
    info = describe_model(args.model, args.classes)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    inp = info['input']
    print(f'name    {info["name"]}\nfamily  {info["family"]}\n'
          f'params  {info["params"]:,} ({info["params"] / 1e6:.2f} M)\n'
          f'MACs    {info["macs"]:,} ({info["macs"] / 1e9:.2f} G per clip)\n'
          f'input   {"+".join(inp["streams"])}, {inp["frames"]} frames x '
          f'{inp["size"]}x{inp["size"]}')
    return 0
