"""Export a trained model to ONNX or TorchScript, and check the export against eager.

The exported graph takes one input per stream (named after the stream, `[B, C, T, H, W]`,
batch dimension dynamic) and returns `logits`. Class names and the input spec travel in
the ONNX metadata (`vas_ros` key) so a consumer without vas_ros can still preprocess.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from vas_ros.errors import VasError
from vas_ros.models.introspect import example_inputs
from vas_ros.models.spec import InputSpec

FORMATS = ('onnx', 'torchscript')


@dataclass
class ExportCheck:
    max_abs_diff: float
    top1_agree: bool
    batch: int
    max_abs_logit: float = 1.0

    def passes(self, atol: float) -> bool:
        """Top-1 agrees and |eager - exported| <= atol, scaled by the largest eager logit
        when that is above 1: fp32 summation order moves logits of 4000 (a random-init
        EvaNet-A) by 1e-3 while their relative error stays near 1e-7."""
        return self.top1_agree and self.max_abs_diff <= atol * max(1.0, self.max_abs_logit)

    def to_dict(self) -> dict:
        return {'max_abs_diff': self.max_abs_diff, 'top1_agree': self.top1_agree,
                'batch': self.batch, 'max_abs_logit': self.max_abs_logit}


def export_onnx(model, spec: InputSpec, path, metadata: dict | None = None):
    """ONNX via the same exporter the `onnxruntime`/`int8` inference paths use."""
    import onnx

    from vas_ros.models.inference import export_onnx as trace_to_onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    trace_to_onnx(model, spec, path)
    if metadata:
        proto = onnx.load(str(path))
        entry = proto.metadata_props.add()
        entry.key, entry.value = 'vas_ros', json.dumps(metadata)
        onnx.save(proto, str(path))
    return path


def export_torchscript(model, spec: InputSpec, path, metadata: dict | None = None):
    """Trace `model` to TorchScript; metadata is stored as the `vas_ros.json` extra file."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        traced = torch.jit.trace(model.eval(), example_inputs(spec), check_trace=False)
    extra = {'vas_ros.json': json.dumps(metadata or {})}
    torch.jit.save(traced, str(path), _extra_files=extra)
    return path


def run_exported(path, fmt: str, inputs: tuple):
    """Run an exported file on numpy-convertible inputs; returns logits as a numpy array."""
    import torch

    if fmt == 'onnx':
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
        feeds = {i.name: t.cpu().numpy() for i, t in zip(session.get_inputs(), inputs)}
        return session.run(None, feeds)[0]
    module = torch.jit.load(str(path), map_location='cpu')
    with torch.no_grad():
        return module(*inputs).cpu().numpy()


def check_export(model, spec: InputSpec, path, fmt: str, batch: int = 2,
                 seed: int = 0) -> ExportCheck:
    """Compare the exported file with the eager model on the same random clips."""
    import torch

    torch.manual_seed(seed)
    inputs = example_inputs(spec, batch=batch)
    with torch.no_grad():
        eager = model.eval()(*inputs).cpu().numpy()
    exported = run_exported(path, fmt, inputs)
    diff = float(abs(eager - exported).max())
    agree = bool((eager.argmax(1) == exported.argmax(1)).all())
    return ExportCheck(diff, agree, batch, float(abs(eager).max()))


def export_checkpoint(checkpoint, fmt: str, out) -> tuple[Path, ExportCheck]:
    """Load a checkpoint, export it, and check the exported file against eager."""
    from vas_ros.models.checkpoint import load_checkpoint

    if fmt not in FORMATS:
        raise VasError(f'unknown export format {fmt!r}; choose one of {FORMATS}')
    loaded = load_checkpoint(checkpoint, device='cpu')
    metadata = {'arch': loaded.arch.to_dict(), 'classes': loaded.classes,
                'input': loaded.spec.to_dict()}
    exporter = export_onnx if fmt == 'onnx' else export_torchscript
    try:
        path = exporter(loaded.model, loaded.spec, out, metadata)
    except VasError:
        raise
    except Exception as exc:
        raise VasError(f'{checkpoint}: {fmt} export failed ({type(exc).__name__}: {exc})') from exc
    return path, check_export(loaded.model, loaded.spec, path, fmt)
