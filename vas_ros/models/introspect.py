"""Parameter and multiply-accumulate counts, measured by running the model once."""

from __future__ import annotations

from vas_ros.models.spec import InputSpec


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def example_inputs(spec: InputSpec, batch: int = 1, device='cpu', dtype=None):
    """Random inputs in the order the model takes them (one tensor per stream)."""
    import torch

    return tuple(torch.randn(spec.shape(s, batch), device=device, dtype=dtype)
                 for s in spec.streams)


def count_macs(model, spec: InputSpec) -> int:
    """MACs of one batch-1 forward pass (FLOP counter / 2), counted by running the model."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(*example_inputs(spec))
    model.train(was_training)
    return int(counter.get_total_flops() // 2)
