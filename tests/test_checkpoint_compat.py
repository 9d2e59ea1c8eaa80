"""Checkpoints written by earlier versions still load (strictly) and give the same logits.

tests/data/checkpoints_v1 holds one small checkpoint per family with reference inputs
and logits (`NAME.expected.safetensors`: `input_0`, `input_1`, ..., `logits`); a layer
refactor that renames a state_dict key or changes numerics fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vas_ros.models.checkpoint import load_checkpoint

DATA = Path(__file__).parent / 'data' / 'checkpoints_v1'
CHECKPOINTS = sorted(p for p in DATA.glob('*.safetensors')
                     if not p.name.endswith('.expected.safetensors'))


def test_every_family_has_a_reference_checkpoint():
    assert {p.stem for p in CHECKPOINTS} >= {'tvn_tiny', 'evanet_tiny', 'assemblenet_tiny'}


@pytest.mark.parametrize('path', CHECKPOINTS, ids=lambda p: p.stem)
def test_old_checkpoint_loads_and_matches_its_logits(path):
    expected = load_file(str(path.with_name(f'{path.stem}.expected.safetensors')))
    inputs = [expected[f'input_{i}'] for i in range(len(expected) - 1)]
    model = load_checkpoint(path).model
    with torch.no_grad():
        logits = model(*inputs)
    assert logits.shape == expected['logits'].shape
    assert torch.allclose(logits, expected['logits'], atol=1e-5, rtol=0)
