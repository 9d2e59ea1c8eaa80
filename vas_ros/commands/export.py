"""`vas-ros export`: a checkpoint to ONNX or TorchScript, verified against eager."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        'export', help='export a checkpoint to ONNX or TorchScript',
        description='Export a trained checkpoint, then run the exported file (ONNX Runtime '
                    'or torch.jit) on random clips and compare its logits with the eager '
                    'model. Exits 1 if they disagree beyond --atol.')
    parser.add_argument('checkpoint', help='a .safetensors checkpoint written by vas-ros')
    parser.add_argument('--format', choices=('onnx', 'torchscript'), required=True)
    parser.add_argument('--out', required=True, help='output file (.onnx or .pt)')
    parser.add_argument('--atol', type=float, default=1e-3,
                        help='largest accepted |eager - exported| logit difference, times '
                             'the largest logit when that is above 1 (default 1e-3)')
    parser.add_argument('--json', action='store_true', help='print the check as JSON')
    parser.set_defaults(func=run, outputs={'out': ('file', ('checkpoint',))})


def run(args) -> int:
    import json

    from vas_ros.models.export import export_checkpoint

    path, check = export_checkpoint(args.checkpoint, args.format, args.out)
    ok = check.passes(args.atol)
    report = {'out': str(path), 'format': args.format, **check.to_dict(), 'ok': ok}
    if args.json:
        print(json.dumps(report))
    else:
        print(f'wrote {path} ({args.format}); max |eager - exported| = '
              f'{check.max_abs_diff:.2e}, top-1 agrees: {check.top1_agree}')
    return 0 if ok else 1
