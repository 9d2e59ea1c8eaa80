"""WeightedFusion: sigmoid edge weights, alignment of space/time/width, learnable vs frozen."""

import math

import pytest
import torch

from vas_ros.models.layers.fusion import WeightedFusion, logit


def test_logit_inverts_sigmoid():
    for p in (0.029, 0.5, 0.989):
        assert torch.sigmoid(torch.tensor(logit(p))).item() == pytest.approx(p, abs=1e-6)


def test_single_input_passes_through_without_parameters():
    fusion = WeightedFusion([8])
    x = torch.randn(2, 8, 3, 5, 5)
    assert fusion([x]) is x
    assert list(fusion.parameters()) == []
    assert fusion.edge_weights().tolist() == [1.0]


def test_inputs_of_different_size_time_and_width_are_aligned():
    fusion = WeightedFusion([8, 16, 16])
    a = torch.randn(2, 8, 4, 16, 16)
    b = torch.randn(2, 16, 4, 8, 8)
    c = torch.randn(2, 16, 2, 8, 8)
    out = fusion([a, b, c])
    assert out.shape == (2, 16, 2, 8, 8)
    # Odd sizes from repeated ceil-halving (15 -> 8 -> 4) still line up.
    fusion2 = WeightedFusion([4, 4])
    out2 = fusion2([torch.randn(1, 4, 3, 15, 15), torch.randn(1, 4, 3, 4, 4)])
    assert out2.shape == (1, 4, 3, 4, 4)


def test_output_is_sigmoid_weighted_sum_of_max_pooled_inputs():
    fusion = WeightedFusion([4, 4], initial_logits=[logit(0.2), logit(0.9)], frozen=True)
    a = torch.randn(1, 4, 2, 8, 8)
    b = torch.randn(1, 4, 2, 4, 4)
    pooled = torch.nn.functional.max_pool3d(a, (1, 2, 2))
    expected = 0.2 * pooled + 0.9 * b
    assert torch.allclose(fusion([a, b]), expected, atol=1e-5)


def test_learnable_edge_logits_receive_gradients():
    fusion = WeightedFusion([4, 8])
    assert isinstance(fusion.edge_logits, torch.nn.Parameter)
    assert any(p is fusion.edge_logits for p in fusion.parameters())
    out = fusion([torch.randn(2, 4, 2, 4, 4), torch.randn(2, 8, 2, 4, 4)])
    out.square().mean().backward()
    assert fusion.edge_logits.grad is not None
    assert fusion.edge_logits.grad.abs().sum() > 0
    # Starts near sigmoid 0.5 (one-shot connection learning).
    assert all(abs(w - 0.5) < 0.05 for w in fusion.edge_weights().tolist())


def test_frozen_edge_logits_stay_fixed_through_an_optimizer_step():
    start = [logit(0.3), logit(0.7)]
    fusion = WeightedFusion([4, 8], initial_logits=start, frozen=True)
    assert not any(p is fusion.edge_logits for p in fusion.parameters())
    assert 'edge_logits' in fusion.state_dict()  # still saved with the checkpoint
    before = {n: p.detach().clone() for n, p in fusion.named_parameters()}
    optimizer = torch.optim.SGD(fusion.parameters(), lr=0.5)
    out = fusion([torch.randn(2, 4, 2, 4, 4), torch.randn(2, 8, 2, 4, 4)])
    out.square().mean().backward()
    optimizer.step()
    assert fusion.edge_logits.grad is None
    assert fusion.edge_logits.tolist() == pytest.approx(start)
    assert [round(w, 6) for w in fusion.edge_weights().tolist()] == [0.3, 0.7]
    # ... while the projection did learn, so the step really happened.
    assert any(not torch.equal(before[n], p) for n, p in fusion.named_parameters())


def test_wrong_number_of_inputs_is_reported():
    fusion = WeightedFusion([4, 4])
    with pytest.raises(ValueError, match='expected 2 inputs'):
        fusion([torch.randn(1, 4, 1, 2, 2)])
    with pytest.raises(ValueError, match='initial logits'):
        WeightedFusion([4, 4], initial_logits=[0.0])
    assert math.isfinite(logit(1.0)) and math.isfinite(logit(0.0))
