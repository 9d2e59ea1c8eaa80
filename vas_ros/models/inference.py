"""Fast inference paths for any vas_ros model, chosen by name (CLI option, ROS parameter).

`prepare_inference(model, spec, path)` returns a callable `runner(*inputs) -> logits`
(float32 torch tensor) that leaves the caller's model untouched. Paths:

- `eager`: the model as is, in eval mode under `torch.inference_mode`.
- `channels_last`: BatchNorm folded into the preceding convolutions, iTGM kernels
  inflated once (`freeze_for_inference`), weights and inputs in channels-last memory
  (NHWC / NDHWC), which oneDNN convolutions prefer on x86.
- `bf16`: `channels_last` with weights and activations in bfloat16. Worth it only where
  the CPU has native bf16 (AVX512-BF16 or AMX); refused elsewhere. Logits change at the
  ~1e-2 level.
- `compile`: `torch.compile` (Inductor) with freezing, so weights are constants and
  conv+BN+ReLU are fused; the first call compiles (tens of seconds on a small CPU).
- `compile_bf16`: `compile` of the BN-folded model cast to bfloat16 (weights and
  activations, no autocast casts per call), native-bf16 CPUs and GPUs only. It gains
  most on models of many small ops (TVN-1 about 1.5x over `bf16` on an AMX Xeon) and
  can lose on 3-D nets, so measure it (`vas-ros latency --path compile_bf16`).
- `onnxruntime`: exported to ONNX and run by ONNX Runtime's CPU provider (fp32).
- `auto` (`path_choice.prepare_path`, which takes every path above too): the fastest
  of them that agrees with eager, measured on this machine and cached.
- `int8`: the ONNX graph statically quantised by ONNX Runtime (QDQ, per-channel int8
  weights, uint8 activations calibrated on a few clips), fast on CPUs with VNNI. Pass
  real `calibration` clips for best accuracy; random clips are used otherwise.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
import warnings
import weakref
from pathlib import Path

from vas_ros.errors import VasError
from vas_ros.models.spec import InputSpec

PATHS = ('eager', 'channels_last', 'bf16', 'compile', 'compile_bf16', 'int8', 'onnxruntime')
CPU_ONLY_PATHS = ('int8', 'onnxruntime')
# Raised whenever a path's implementation changes speed, so `--path auto` measures again
# instead of trusting choices cached before (2: bf16 without autocast, window max pools).
PATHS_REVISION = 2
# Ops quantised by the int8 path. Pad (max pooling pads with -inf) and the sigmoid gates
# stay in float: quantising them costs accuracy for no speed. Max pooling stays in float
# too: ONNX Runtime's uint8 MaxPool is a plain loop, 12x slower than its float one on a
# [256, 113, 113] map (AMD EPYC), which cost TVN-1 a fifth of its int8 time.
INT8_OPS = ('Conv', 'MatMul', 'Gemm', 'Relu', 'AveragePool', 'Add', 'Mul')
# ... and without this optimiser ONNX Runtime moves the neighbours' Q/DQ pairs across each
# MaxPool and runs it in uint8 anyway.
INT8_DISABLED_OPTIMIZERS = ('QDQPropagationTransformer',)


def bf16_supported(device: str = 'cpu') -> bool:
    """True when the device runs bfloat16 convolutions natively."""
    import torch

    if str(device).startswith('cuda'):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def available_paths(device: str = 'cpu') -> list[str]:
    """Paths that can run on this machine and device."""
    out = ['eager', 'channels_last']
    if bf16_supported(device):
        out.append('bf16')
    out.append('compile')
    if 'bf16' in out:
        out.append('compile_bf16')
    if not str(device).startswith('cuda'):
        out += ['int8', 'onnxruntime']
    return out


def fuse_conv_bn(model):
    """Fold every BatchNorm that directly follows a conv inside an nn.Sequential, and the
    middle BatchNorm of every (2+1)D conv (eval only, in place)."""
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    from vas_ros.models.layers.spacetime import Conv2Plus1d

    pairs = ((nn.Conv1d, nn.BatchNorm1d), (nn.Conv2d, nn.BatchNorm2d),
             (nn.Conv3d, nn.BatchNorm3d))
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for first, second in zip(names, names[1:]):
            conv, bn = seq._modules[first], seq._modules[second]
            if any(isinstance(conv, c) and isinstance(bn, b) for c, b in pairs) \
                    and bn.track_running_stats and bn.running_mean is not None:
                seq._modules[first] = fuse_conv_bn_eval(conv, bn)
                seq._modules[second] = nn.Identity()
    for module in model.modules():
        if isinstance(module, Conv2Plus1d):
            module.fold_bn_()
    return model


def freeze_for_inference(model):
    """`fuse_conv_bn`, and every iTGM conv turned into a plain conv holding its inflated
    kernel, so nothing that depends on the weights alone is recomputed per call (in place,
    eval only; the same function to float tolerance)."""
    from vas_ros.models.layers.spacetime import ITGMConv3d

    fuse_conv_bn(model)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, ITGMConv3d):
                parent._modules[name] = child.as_conv3d()
    return model


def to_channels_last(model):
    """Put 4D parameters/buffers in channels_last and 5D ones in channels_last_3d."""
    import torch

    def convert(t):
        if t.dim() == 4:
            return t.contiguous(memory_format=torch.channels_last)
        if t.dim() == 5:
            return t.contiguous(memory_format=torch.channels_last_3d)
        return t

    return model._apply(convert)


def _channels_last_input(x):
    import torch

    if x.dim() == 5:
        return x.contiguous(memory_format=torch.channels_last_3d)
    if x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


class InferenceRunner:
    """`runner(*inputs) -> logits`; holds whatever the path prepared (module, ORT session)."""

    def __init__(self, path: str, device: str, forward, note: str = ''):
        self.path = path
        self.device = device
        self._forward = forward
        self.note = note

    def __call__(self, *inputs):
        import torch

        with torch.inference_mode():
            return self._forward(*inputs)

    def __repr__(self):
        return f'InferenceRunner(path={self.path!r}, device={self.device!r})'


def _check_inputs(inputs, spec: InputSpec):
    if len(inputs) != len(spec.streams):
        raise VasError(f'model takes {len(spec.streams)} input(s) {list(spec.streams)}, '
                       f'got {len(inputs)}')


def prepare_inference(model, spec: InputSpec, path: str = 'eager', device: str = 'cpu', *,
                      threads: int | None = None, calibration=None) -> InferenceRunner:
    """A callable running `model` (never modified) on `device` the `path` way.

    `threads` sets ONNX Runtime's intra-op threads (default: torch's current count).
    `calibration`: iterable of input tuples (like the model's `*inputs`) for `int8`.
    """
    import torch

    if path not in PATHS:
        hint = ' (auto: vas_ros.models.path_choice.prepare_path)' if path == 'auto' else ''
        raise VasError(f'unknown inference path {path!r}; choose from {list(PATHS)}{hint}')
    device = str(device)
    if device.startswith('cuda') and not torch.cuda.is_available():
        raise VasError(f'device {device!r} requested but CUDA is not available here')
    if path in CPU_ONLY_PATHS and device != 'cpu':
        raise VasError(f'inference path {path!r} runs on the CPU only, not {device!r}')
    if path in ('bf16', 'compile_bf16') and not bf16_supported(device):
        raise VasError(f'inference path "{path}" needs native bfloat16 (AVX512-BF16/AMX CPU '
                       f'or a recent GPU); {device} has none, it would be slower than fp32')
    model = copy.deepcopy(model).eval().to(device)
    for p in model.parameters():
        p.requires_grad_(False)

    if path == 'eager':
        def forward(*inputs):
            _check_inputs(inputs, spec)
            return model(*(x.to(device) for x in inputs)).float()
        return InferenceRunner(path, device, forward)

    if path in ('channels_last', 'bf16'):
        model = to_channels_last(freeze_for_inference(model))
        # bf16: weights cast once here, not by autocast on every call (autocast caches
        # no casts of weights that need no grad: a tenth of EvaNet-A's time on AMX).
        dtype = torch.bfloat16 if path == 'bf16' else None
        if dtype is not None:
            model = model.to(dtype)

        def forward(*inputs):
            _check_inputs(inputs, spec)
            xs = [_channels_last_input(x.to(device, dtype)) for x in inputs]
            return model(*xs).float()
        return InferenceRunner(path, device, forward)

    if path in ('compile', 'compile_bf16'):
        dtype = torch.bfloat16 if path == 'compile_bf16' else None  # None: inputs as given
        if dtype is not None:
            # BN folded in fp32 first: folding in bf16 would round the scaled weights twice.
            model = to_channels_last(freeze_for_inference(model)).to(dtype)
        else:
            model = to_channels_last(model)
        compiled = torch.compile(model, dynamic=False, options={'freezing': True})

        def forward(*inputs):
            _check_inputs(inputs, spec)
            xs = [_channels_last_input(x.to(device, dtype)) for x in inputs]
            return compiled(*xs).float()
        return InferenceRunner(path, device, forward, note='first call compiles')

    return _onnxruntime_runner(model, spec, path, threads, calibration)


# ---------------------------------------------------------------- ONNX Runtime


def export_onnx(model, spec: InputSpec, out_path) -> Path:
    """Export `model` (fp32, batch axis dynamic) with one named input per stream."""
    import torch

    from vas_ros.models.introspect import example_inputs

    out_path = Path(out_path)
    model = copy.deepcopy(model).eval().cpu()
    names = list(spec.streams)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter('ignore')  # tracer and legacy-exporter deprecation chatter
        try:
            torch.onnx.export(model, example_inputs(spec), str(out_path), dynamo=False,
                              input_names=names, output_names=['logits'], opset_version=17,
                              dynamic_axes={n: {0: 'batch'} for n in [*names, 'logits']})
        except Exception as exc:
            raise VasError(f'ONNX export failed for this model: {exc}') from exc
    _inline_initializer_aliases(out_path)
    return out_path


def _inline_initializer_aliases(path: Path) -> None:
    """Point consumers of `Identity(initializer)` nodes at the initializer itself.

    The TorchScript exporter shares equal constants through Identity nodes; a conv whose
    bias arrives that way is left unquantised by ONNX Runtime's quantiser.
    """
    import onnx

    proto = onnx.load(str(path))
    graph = proto.graph
    constants = {init.name for init in graph.initializer}
    outputs = {o.name for o in graph.output}
    alias = {n.output[0]: n.input[0] for n in graph.node
             if n.op_type == 'Identity' and n.input[0] in constants
             and n.output[0] not in outputs}
    if not alias:
        return
    kept = [n for n in graph.node if not (n.op_type == 'Identity' and n.output[0] in alias)]
    for node in kept:
        for i, name in enumerate(node.input):
            if name in alias:
                node.input[i] = alias[name]
    del graph.node[:]
    graph.node.extend(kept)
    onnx.save(proto, str(path))


class _CalibrationReader:
    """Feeds calibration clips to ONNX Runtime's quantiser."""

    def __init__(self, names, batches):
        self._items = iter([{n: x.detach().cpu().float().numpy() for n, x in zip(names, b)}
                            for b in batches])

    def get_next(self):
        return next(self._items, None)


def ort_cpu_session(model, threads: int | None = None, disabled_optimizers=(), *,
                    profile_prefix: str | None = None):
    """An ONNX Runtime CPU session for `model` (a file path or the serialised bytes):
    `threads` intra-op threads (torch's count by default), one inter-op thread, every
    graph optimisation but `disabled_optimizers`, warnings and errors logged only.
    `profile_prefix`: record every node's run time (`session.end_profiling()` writes
    the trace, whose file name starts with the prefix)."""
    import onnxruntime as ort
    import torch

    options = ort.SessionOptions()
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = str(profile_prefix)
    options.intra_op_num_threads = int(threads or torch.get_num_threads())
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=['CPUExecutionProvider'],
                                disabled_optimizers=list(disabled_optimizers) or None)


def _onnxruntime_runner(model, spec, path, threads, calibration):
    import torch

    from vas_ros.models.introspect import example_inputs

    workdir = Path(tempfile.mkdtemp(prefix='vas_ros_onnx_'))
    fp32 = export_onnx(model, spec, workdir / 'model.onnx')
    model_file = fp32
    if path == 'int8':
        from onnxruntime.quantization import (
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )
        from onnxruntime.quantization.shape_inference import quant_pre_process

        if calibration is None:
            gen = torch.Generator().manual_seed(0)
            calibration = [tuple(torch.randn(x.shape, generator=gen)
                                 for x in example_inputs(spec)) for _ in range(8)]
        prepped = workdir / 'model.pre.onnx'
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            try:
                quant_pre_process(str(fp32), str(prepped), skip_symbolic_shape=True)
            except Exception:  # pre-processing is an optimisation only
                prepped = fp32
            model_file = workdir / 'model.int8.onnx'
            quantize_static(str(prepped), str(model_file),
                            _CalibrationReader(list(spec.streams), calibration),
                            quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            op_types_to_quantize=list(INT8_OPS),
                            calibrate_method=CalibrationMethod.MinMax)
    session = ort_cpu_session(str(model_file), threads,
                              INT8_DISABLED_OPTIMIZERS if path == 'int8' else ())
    names = [i.name for i in session.get_inputs()]

    def forward(*inputs):
        _check_inputs(inputs, spec)
        feed = {n: x.detach().cpu().float().numpy() for n, x in zip(names, inputs)}
        return torch.from_numpy(session.run(None, feed)[0])

    runner = InferenceRunner(path, 'cpu', forward, note=str(model_file))
    runner.session = session
    # The exported files live as long as the runner (`note` names the model it runs).
    weakref.finalize(runner, shutil.rmtree, workdir, ignore_errors=True)
    return runner


# ---------------------------------------------------------------- accuracy check


def compare_logits(reference, candidate) -> dict:
    """How far a path's logits are from eager fp32: max |diff|, relative diff, top-1 match."""
    import torch

    reference, candidate = reference.float().cpu(), candidate.float().cpu()
    diff = (reference - candidate).abs().max().item()
    scale = reference.abs().max().item() or 1.0
    agree = (reference.argmax(1) == candidate.argmax(1)).float().mean().item()
    return {'max_abs_diff': diff, 'rel_diff': diff / scale, 'top1_agree': agree,
            'n': int(reference.shape[0]), 'finite': bool(torch.isfinite(candidate).all())}
