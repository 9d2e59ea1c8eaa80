"""One frame at a time through a causal model: each new frame costs one frame of compute.

A clip model rerun every `hop` frames pushes each frame through the network
`frames / hop` times. A causal TVN (`"causal": true`, temporal stride 1) computes frame
t's features from frames <= t only, so its clip forward unrolls over time (as MoViNet's
stream buffers do for 3-D nets): the per-frame 2-D layers run on the new frame alone,
each temporal layer keeps the k-1 frames before it (its stream buffer), and the head
averages the features of the last `frames` frames, as the clip forward averages over
its frames.

From a reset, the result after t frames is the clip forward's on those frames (the
buffers start as the clip's padding does), so after exactly `frames` frames it is the
model's own clip forward; after that the buffers hold real past frames where a clip
forward would see padding. `tests/test_stream.py` checks both against the clip forward.
"""

from __future__ import annotations

import torch
from torch import nn

from vas_ros.errors import DataError

STREAM_RUNNERS = ('python', 'torchscript', 'onnxruntime')


def fast_stream_model(model: nn.Module) -> nn.Module:
    """A copy of `model` for stepping: BatchNorm folded into the convs and weights in
    channels-last memory (a stream runs one frame per op, so every op it saves counts;
    about 1.2x faster per frame than the model as is on a Xeon, one thread)."""
    import copy

    from vas_ros.models.inference import fuse_conv_bn, to_channels_last

    return to_channels_last(fuse_conv_bn(copy.deepcopy(model).eval()))


def stream_refusal(model: nn.Module) -> str | None:
    """Why `model` cannot run one frame at a time, or None when it can."""
    from vas_ros.models.evanet import EvaNet
    from vas_ros.models.tvn import TinyVideoNet

    if isinstance(model, EvaNet):
        return ('EvaNet\'s stem conv and first max pool stride 2 in time, so past them the '
                'network runs at half the frame rate (even with "causal": true); stream mode '
                'runs causal TVNs, use inference_mode clip')
    if not isinstance(model, TinyVideoNet):
        return (f'stream mode runs causal TVNs; a {type(model).__name__} classifies whole '
                f'clips (use inference_mode clip)')
    if model.streams != ('rgb',):
        return ('the model reads optical flow, which the clip path computes over the whole '
                'clip; stream mode takes RGB models')
    return model.genome.stream_refusal()


class _Step(nn.Module):
    """One frame through the model as a pure function of the state: (frame, frames seen,
    feature ring, pasts...) -> (logits, ring, pasts...). Shapes never change, so
    `torch.jit.trace` can take it whole and run it without Python between the ops."""

    def __init__(self, model: nn.Module, layers: list, window: int):
        super().__init__()
        self.model, self.layers, self.window = model, layers, window

    def forward(self, frame, seen, ring, *pasts):
        for layer, past in zip(self.layers, pasts):
            layer.stream_state = {'past': past, 'seen': seen}
        try:
            x = self.model.blocks(frame.contiguous(memory_format=torch.channels_last))
            new_pasts = [layer.stream_state['past'] for layer in self.layers]
        finally:
            for layer in self.layers:
                layer.stream_state = None
        ring = torch.cat([ring[:, 1:], x.mean(dim=(2, 3))[:, None]], dim=1)
        # The ring starts as zeros, so its sum over the real features divided by their
        # number is the clip forward's mean over the frames so far.
        logits = self.model.head(ring.sum(dim=1) / seen.clamp(max=self.window))
        return (logits, ring, *new_pasts)


class _OnnxStep:
    """The step exported to ONNX (fixed shapes) and run by ONNX Runtime on the CPU; takes
    and returns torch tensors like the step itself, sharing memory with NumPy."""

    def __init__(self, step: nn.Module, inputs: tuple):
        import io

        from vas_ros.models.inference import ort_cpu_session

        buffer = io.BytesIO()
        # PRESERVE: export every module in the mode it is in (the model is in eval mode;
        # the wrapper's own flag would otherwise export BatchNorm and dropout as training).
        torch.onnx.export(step, inputs, buffer, dynamo=False, opset_version=17,
                          training=torch.onnx.TrainingMode.PRESERVE)
        self.session = ort_cpu_session(buffer.getvalue())
        self.names = [i.name for i in self.session.get_inputs()]

    def __call__(self, *inputs):
        feed = {name: x.detach().contiguous().numpy() for name, x in zip(self.names, inputs)}
        return tuple(torch.from_numpy(out) for out in self.session.run(None, feed))


class FrameStream:
    """A causal TVN's state between frames: `step(frame)` -> logits, `reset()` to start over.

    `frame` is one normalised frame per clip, [B, C, size, size], on the model's device, as
    `clip_to_inputs` makes them. Memory is fixed: k-1 frames per temporal layer and
    `frames` feature vectors. Give it `fast_stream_model(model)` to run faster; several
    streams can share one model. `runner` says what runs the step:

    - 'python': the modules, op by op;
    - 'torchscript': the step traced once per batch size and frozen, so no Python runs
      between the ops (the larger saving for a model this small);
    - 'onnxruntime': the step exported to ONNX once per batch size and run by ONNX
      Runtime's CPU provider (CPU models only), whose per-op cost is lower still (about
      2.9x faster than 'torchscript' per step on an AMD EPYC, 1 thread).

    Streams of one model can share what the runner prepared (`compiled`).
    """

    def __init__(self, model: nn.Module, runner: str = 'python', compiled: dict | None = None):
        reason = stream_refusal(model)
        if reason is not None:
            raise DataError(f'stream mode: {reason}')
        if runner not in STREAM_RUNNERS:
            raise DataError(f'stream runner {runner!r}: expected one of '
                            f'{", ".join(STREAM_RUNNERS)}')
        if runner == 'onnxruntime' and next(model.parameters()).device.type != 'cpu':
            raise DataError('stream runner onnxruntime runs CPU models only; this one is on '
                            f'{next(model.parameters()).device}')
        from vas_ros.models.tvn import TemporalLayer

        self.model = model
        self.layers = [m for m in model.modules() if isinstance(m, TemporalLayer)]
        self.window = int(model.frames_out)
        self.shape = (model.in_channels, model.size, model.size)
        self.runner = runner
        self._step = _Step(model, self.layers, self.window)
        self.compiled: dict = {} if compiled is None else compiled  # batch size -> step
        self.reset()

    def reset(self) -> None:
        """Forget every past frame: the next step is the first of a new clip."""
        self.state: tuple | None = None  # (ring, pasts), made at the first step
        self.frames_seen = 0

    def warm_up(self, batch: int = 1, device='cpu') -> None:
        """Prepare the runner (trace or export) and run one step now, so the first real
        frame does not pay for it; the stream is reset afterwards."""
        with torch.inference_mode():
            self.step(torch.zeros(batch, *self.shape, device=device,
                                  dtype=self.model.classifier.weight.dtype))
        self.reset()

    def _initial(self, frame: torch.Tensor) -> tuple:
        batch, dtype, device = frame.shape[0], frame.dtype, frame.device
        ring = torch.zeros(batch, self.window, self.model.classifier.in_features,
                           dtype=dtype, device=device)
        return ring, [layer.initial_past(batch, dtype, device) for layer in self.layers]

    def _function(self, inputs: tuple):
        if self.runner == 'python':
            return self._step
        batch = inputs[0].shape[0]
        if batch not in self.compiled:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter('ignore')  # TracerWarnings about constant shapes
                if self.runner == 'torchscript':
                    traced = torch.jit.trace(self._step, inputs, check_trace=False)
                    self.compiled[batch] = torch.jit.freeze(traced.eval())
                else:
                    self.compiled[batch] = _OnnxStep(self._step, inputs)
        return self.compiled[batch]

    def step(self, frame: torch.Tensor) -> torch.Tensor:
        """The logits [B, classes] of the clip that ends with `frame`."""
        if not isinstance(frame, torch.Tensor):
            raise DataError(f'stream frame must be a torch tensor, got {type(frame).__name__}')
        dtype = self.model.classifier.weight.dtype
        if frame.dtype != dtype:
            raise DataError(f'stream frame must be {dtype} (normalised, as clip_to_inputs '
                            f'makes it), got {frame.dtype}')
        if frame.dim() != 4 or tuple(frame.shape[1:]) != self.shape:
            raise DataError(f'stream frame must be [B, {", ".join(map(str, self.shape))}], '
                            f'got {list(frame.shape)}')
        if self.state is None:
            self.state = self._initial(frame)
        elif self.state[0].shape[0] != frame.shape[0]:
            raise DataError(f'stream batch changed from {self.state[0].shape[0]} to '
                            f'{frame.shape[0]} without a reset')
        ring, pasts = self.state
        seen = torch.tensor(float(self.frames_seen + 1), dtype=frame.dtype,
                            device=frame.device)
        inputs = (frame, seen, ring, *pasts)
        logits, ring, *pasts = self._function(inputs)(*inputs)
        self.state = (ring, list(pasts))
        self.frames_seen += 1
        return logits


def choose_stream_runner(model: nn.Module, candidates=('torchscript', 'onnxruntime'),
                         steps: int = 24, rounds: int = 3,
                         compiled: dict | None = None) -> tuple[str, dict[str, float]]:
    """The fastest of `candidates` for stepping `model` here, and each one's median ms per
    step. Measured, not guessed (which runner wins depends on the CPU), on one sequence of
    random frames in interleaved rounds; a runner whose logits leave the first
    candidate's by more than 1e-3 of their scale is dropped. About a second for a
    tvn_tiny-sized model. On a GPU only the torch runners take part. `compiled` (runner
    -> FrameStream's `compiled`) receives what each runner prepared, for the caller's
    streams to reuse."""
    import statistics
    import time

    device = next(model.parameters()).device
    if device.type != 'cpu':
        candidates = [c for c in candidates if c != 'onnxruntime'] or ['torchscript']
    compiled = {} if compiled is None else compiled
    streams = {c: FrameStream(model, runner=c, compiled=compiled.setdefault(c, {}))
               for c in candidates}
    gen = torch.Generator().manual_seed(0)
    frames = torch.randn(steps, 1, *streams[candidates[0]].shape, generator=gen).to(device)
    times: dict[str, list[float]] = {c: [] for c in candidates}
    reference, disagree = None, set()
    with torch.inference_mode():
        for stream in streams.values():
            stream.warm_up(device=device)
        for _ in range(rounds):
            for name, stream in streams.items():
                stream.reset()
                start = time.perf_counter()
                logits = torch.stack([stream.step(f) for f in frames])
                if device.type == 'cuda':
                    torch.cuda.synchronize()
                times[name].append((time.perf_counter() - start) * 1e3 / steps)
                if reference is None:
                    reference = logits
                elif (logits - reference).abs().max() > 1e-3 * reference.abs().max():
                    disagree.add(name)
    medians = {c: float('inf') if c in disagree else round(statistics.median(v), 3)
               for c, v in times.items()}
    return min(medians, key=medians.get), medians
