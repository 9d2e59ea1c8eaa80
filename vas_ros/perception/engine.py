"""Checkpoint in, top-k labels out: the model half of the robot runtime, without ROS.

`InferenceEngine` loads a vas-ros checkpoint (a path, or the name of a model shipped in
`vas_ros/shipped/`), picks the device, prepares the chosen inference path and turns a
uint8 RGB clip into a `Prediction` through the same `clip_to_inputs` preprocessing that
training used, timing each stage so a node can report where its latency goes.

In stream mode (`mode='stream'`, causal TVNs only, see `vas_ros.models.stream`)
`infer_stream` takes the same clips but runs only the frames the model has not seen
yet, one at a time, so a result per frame costs one frame of compute. Its paths: 'eager'
(the step traced with TorchScript), 'onnxruntime' (the step run by ONNX Runtime) and
'auto' (the faster of the two, measured at start-up).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vas_ros.errors import CheckpointError, VasError

SHIPPED_DIR = Path(__file__).resolve().parent.parent / 'shipped'
DEFAULT_MODEL = 'tvn_tiny_synth'
INFERENCE_MODES = ('clip', 'stream', 'auto')
# The inference paths stream mode takes, and what runs each step (vas_ros.models.stream).
STREAM_RUNNER_OF_PATH = {'eager': 'torchscript', 'onnxruntime': 'onnxruntime'}


@dataclass
class Prediction:
    label: str
    score: float
    top_k: list[tuple[str, float]]
    latency_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {'label': self.label, 'score': round(self.score, 6),
                'top_k': [{'label': name, 'score': round(score, 6)} for name, score in self.top_k],
                'latency_ms': {k: round(v, 3) for k, v in self.latency_ms.items()}}


def shipped_models() -> list[str]:
    return sorted(p.stem for p in SHIPPED_DIR.glob('*.safetensors'))


def resolve_model_path(model: str | Path) -> Path:
    """A checkpoint path or a shipped model name -> an existing checkpoint path."""
    text = str(model).strip()
    if not text:
        raise CheckpointError('model: empty; give a checkpoint path or a shipped model name '
                              f'({", ".join(shipped_models()) or "none shipped"})')
    shipped = SHIPPED_DIR / f'{text}.safetensors'
    if '/' not in text and not text.endswith('.safetensors') and shipped.is_file():
        return shipped
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if '/' not in text and not text.endswith('.safetensors'):
        from vas_ros.models.registry import presets

        if text in presets():
            raise CheckpointError(f'model {text!r} is an untrained preset; give a trained '
                                  f'checkpoint (vas-ros train --model {text} ...) or a shipped '
                                  f'model ({", ".join(shipped_models()) or "none shipped"})')
        raise CheckpointError(f'model {text!r}: no such checkpoint file or shipped model '
                              f'({", ".join(shipped_models()) or "none shipped"})')
    raise CheckpointError(f'{path}: checkpoint file does not exist')


def resolve_device(device: str) -> str:
    """auto|cpu|cuda|cuda:N -> a torch device string that exists on this machine (the one
    resolver, `vas_ros.training.devices.resolve_device`, as a string)."""
    from vas_ros.training.devices import resolve_device as resolve

    return str(resolve(device))


class InferenceEngine:
    """A loaded model ready to classify clips.

    `infer(frames)` takes uint8 RGB `[T, H, W, 3]` (any size; preprocessing resizes) and
    returns the top-k labels with softmax scores (of the logits divided by the checkpoint's
    calibrated temperature, when it has one) and a latency breakdown in milliseconds:
    `preprocess` (resize/normalise), `flow` (optical flow, flow models only), `model`, `total`.
    """

    def __init__(self, model: str | Path = DEFAULT_MODEL, device: str = 'auto',
                 num_threads: int = 0, path: str = 'eager', flow_method: str = '',
                 mode: str = 'clip', stream_phases: int = 0):
        import torch

        from vas_ros.models.checkpoint import load_checkpoint

        self.device = resolve_device(device)
        if num_threads and int(num_threads) > 0:
            torch.set_num_threads(int(num_threads))
        # Denormal floats (trained weights make them) take a slow CPU path: flushing them
        # to zero made tvn_tiny's clip 1.4x and a stream step 1.5x faster on a Xeon
        # (docs/tvn.md, stream mode), at no cost in top-1. Process-wide, as the node is.
        torch.set_flush_denormal(True)
        self.checkpoint_path = resolve_model_path(model)
        self.model_ref = str(model)
        loaded = load_checkpoint(self.checkpoint_path, device=self.device)
        self.model = loaded.model
        self.arch = loaded.arch
        self.classes = list(loaded.classes)
        self.metadata = loaded.metadata
        self.temperature = loaded.temperature
        self.spec = loaded.spec
        self.trained_flow_method = loaded.spec.flow_method
        if flow_method:
            self.set_flow_method(flow_method)
        self.path = path or 'eager'
        self.mode = self._choose_mode(mode)
        # A stream runs its own prepared copy (vas_ros.models.stream), so only clip mode
        # prepares a path (auto measures them: seconds, cached after the first time).
        self._forward = self._prepare(self.path) if self.mode == 'clip' else self.model
        if self.mode == 'clip' and self.path == 'auto':
            self.path = getattr(self._forward, 'path', self.path)
        self.streams = None
        self.stream_choice: dict[str, float] = {}  # runner -> median ms per step (auto)
        if self.mode == 'stream':
            from vas_ros.perception.clip_streams import ClipStreams

            # One stream per sampling phase: with frame stride s, clips interleave s phases.
            # BN folded either way; 'eager' steps run traced (TorchScript); 'auto' times
            # both runners here (about a second).
            runner = 'auto' if self.path == 'auto' else STREAM_RUNNER_OF_PATH[self.path]
            self.streams = ClipStreams(self.model, stream_phases or self.spec.frame_stride,
                                       device=self.device, runner=runner)
            self.stream_choice = self.streams.choice
            self.path = next(p for p, r in STREAM_RUNNER_OF_PATH.items()
                             if r == self.streams.runner)

    def _choose_mode(self, mode: str) -> str:
        """'clip' or 'stream' for the requested mode ('auto': stream when the model can)."""
        from vas_ros.models.stream import stream_refusal

        if mode not in INFERENCE_MODES:
            raise VasError(f'inference_mode {mode!r}: expected one of '
                           f'{", ".join(INFERENCE_MODES)}')
        if mode == 'clip':
            return 'clip'
        from vas_ros.models.inference import PATHS

        if self.path not in (*PATHS, 'auto'):
            raise VasError(f'unknown inference path {self.path!r}; choose from '
                           f'{list(PATHS)} or auto')
        reason = stream_refusal(self.model)
        if reason is None and self.path not in (*STREAM_RUNNER_OF_PATH, 'auto'):
            reason = (f'inference_path {self.path!r} prepares whole clips; stream mode runs '
                      f'{" or ".join(STREAM_RUNNER_OF_PATH)}')
        if reason is None and self.path == 'onnxruntime' and self.device != 'cpu':
            reason = f'inference_path onnxruntime runs on the CPU only, not {self.device!r}'
        if reason is None:
            return 'stream'
        if mode == 'auto':
            return 'clip'
        raise VasError(f'inference_mode stream: {reason}')

    @property
    def name(self) -> str:
        """Short model name for messages: the shipped name or the checkpoint file stem."""
        return self.checkpoint_path.stem

    def set_flow_method(self, method: str) -> None:
        """Use another optical-flow method; '' goes back to the one the model was trained with."""
        from vas_ros.models.spec import FLOW_METHODS

        method = method or self.trained_flow_method
        if method not in FLOW_METHODS:
            raise VasError(f'flow_method {method!r}: expected one of {", ".join(FLOW_METHODS)}')
        self.spec = dataclasses.replace(self.spec, flow_method=method)

    def _prepare(self, path: str):
        if path == 'eager':
            return self.model
        try:
            from vas_ros.models.path_choice import prepare_path
        except ImportError:
            raise VasError(f'inference path {path!r} needs vas_ros.models.inference, '
                           f'which is not installed; use eager') from None
        return prepare_path(self.model, self.spec, path=path, device=self.device)

    def preprocess(self, frames: np.ndarray) -> tuple[list, dict[str, float]]:
        """uint8 clip -> model inputs (batch of one, on the device) and stage timings."""
        from vas_ros.data.transforms import clip_to_inputs

        timings = {}
        tensors = {}
        start = time.perf_counter()
        other = tuple(s for s in self.spec.streams if s != 'flow')
        if other:
            tensors.update(clip_to_inputs(frames, dataclasses.replace(self.spec, streams=other)))
        timings['preprocess'] = (time.perf_counter() - start) * 1e3
        start = time.perf_counter()
        if self.spec.needs_flow:
            tensors.update(clip_to_inputs(frames, dataclasses.replace(self.spec,
                                                                      streams=('flow',))))
        timings['flow'] = (time.perf_counter() - start) * 1e3
        inputs = [tensors[s].unsqueeze(0).to(self.device, non_blocking=True)
                  for s in self.spec.streams]
        return inputs, timings

    def infer(self, frames: np.ndarray, top_k: int = 5) -> Prediction:
        import torch

        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise VasError(f'clip must be uint8 [T, H, W, 3], got {frames.dtype} '
                           f'{list(frames.shape)}')
        total_start = time.perf_counter()
        inputs, timings = self.preprocess(frames)
        start = time.perf_counter()
        with torch.inference_mode():
            logits = self._forward(*inputs)
            if self.device.startswith('cuda'):
                torch.cuda.synchronize()
        timings['model'] = (time.perf_counter() - start) * 1e3
        return self._prediction(logits, top_k, timings, total_start)

    def _prediction(self, logits, top_k: int, timings: dict, total_start: float) -> Prediction:
        """Calibrated softmax of a batch-of-one's logits -> the top-k Prediction."""
        import torch

        probs = torch.softmax(logits.float() / self.temperature, dim=-1)[0]
        k = max(1, min(int(top_k), len(self.classes)))
        scores, indices = torch.topk(probs.cpu(), k)
        ranked = [(self.classes[int(i)], float(s)) for s, i in zip(scores, indices)]
        timings['total'] = (time.perf_counter() - total_start) * 1e3
        return Prediction(label=ranked[0][0], score=ranked[0][1], top_k=ranked,
                          latency_ms=timings)

    def infer_stream(self, frames: list, stamps: list[float], top_k: int = 5) -> Prediction:
        """The clip's prediction, running only the frames after those its stream has seen.

        `frames` (uint8 [H, W, 3] each) and `stamps` are a clip's, oldest first, as a
        `FrameBuffer` makes them. The whole clip runs after a reset, else the new frames;
        `streams.frames_run` and `streams.resets` count them.
        """
        import torch

        if self.streams is None:
            raise VasError('infer_stream needs an engine made with mode stream')
        frames, stamps = list(frames), list(stamps)
        if len(frames) != len(stamps) or not frames:
            raise VasError(f'a stream clip needs one stamp per frame, got {len(frames)} '
                           f'frames and {len(stamps)} stamps')
        shapes = {getattr(f, 'shape', None) for f in frames}
        if len(shapes) != 1:
            raise VasError(f'a stream clip\'s frames must all have one size, got '
                           f'{sorted(map(str, shapes))}')
        total_start = time.perf_counter()
        phase, first = self.streams.plan(stamps, frames)
        new = frames[first:]
        timings = {'preprocess': 0.0, 'flow': 0.0, 'model': 0.0}
        logits = self.streams.last_logits(phase)
        if new:
            inputs, timings = self.preprocess(np.stack(new))
            stream = self.streams.stream(phase)
            start = time.perf_counter()
            with torch.inference_mode():
                clip = inputs[0]
                for t in range(clip.shape[2]):
                    logits = stream.step(clip[:, :, t])
                if self.device.startswith('cuda'):
                    torch.cuda.synchronize()
            timings['model'] = (time.perf_counter() - start) * 1e3
            self.streams.advance(phase, stamps[-1], logits, len(new), frames[-1])
        return self._prediction(logits, top_k, timings, total_start)

    def describe(self) -> dict:
        return {'model': self.name, 'checkpoint': str(self.checkpoint_path),
                'family': self.arch.family, 'arch': self.arch.name, 'device': self.device,
                'path': self.path, 'mode': self.mode, 'classes': self.classes,
                'input': self.spec.to_dict(),
                'temperature': self.temperature,
                'stream_runner_ms': {r: ms for r, ms in self.stream_choice.items()
                                     if ms != float('inf')}}
