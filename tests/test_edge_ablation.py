"""Edge ablation: cutting each learned AssembleNet connection and scoring the model."""

import json

import pytest
import torch

from vas_ros.data.synth import CLASSES, write_synthetic_dataset
from vas_ros.errors import VasError
from vas_ros.models.layers.fusion import logit
from vas_ros.models.registry import ModelArch
from vas_ros.training.edge_ablation import edge_ablation, rank_correlation

# Block 2 fuses both stems (flow edge nearly cut already), block 3 has one input (no weight),
# block 4 fuses blocks 2 and 3.
GENOME = {
    'frames': 4, 'size': 32, 'frame_stride': 2, 'depth': [1, 1, 1, 1], 'stem_filters': 8,
    'nodes': [
        {'type': 'stem', 'modality': 'rgb'},
        {'type': 'stem', 'modality': 'flow'},
        {'type': 'block', 'level': 0, 'inputs': [0, 1], 'filters': 4,
         'edge_logits': [logit(0.9), -30.0]},
        {'type': 'block', 'level': 1, 'inputs': [2], 'filters': 4, 'spatial_stride': 2},
        {'type': 'block', 'level': 3, 'inputs': [2, 3], 'filters': 4, 'spatial_stride': 2,
         'edge_logits': [logit(0.6), logit(0.8)]},
    ]}


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp('edges') / 'data', per_class=1,
                                   seed=0, splits=('val',), size=32, frames=8, progress=False)


def _model():
    torch.manual_seed(0)
    arch = ModelArch('assemblenet', GENOME, 'edge_test')
    model = arch.build(len(CLASSES))
    with torch.no_grad():  # wake the zero-initialised last BN of each module
        for name, param in model.named_parameters():
            if name.endswith('weight') and param.dim() == 1 and param.abs().sum() == 0:
                param.fill_(1.0)
    return arch, model


def test_rank_correlation():
    assert rank_correlation([1, 2, 3, 4], [10, 20, 30, 45]) == pytest.approx(1.0)
    assert rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert rank_correlation([1, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9487, abs=1e-4)
    assert rank_correlation([1, 2, 3], [5, 5, 5]) is None
    assert rank_correlation([1], [2]) is None


def test_cutting_edges_measures_their_effect_and_restores_the_model(tiny_data):
    from vas_ros.data.datasets import open_dataset

    arch, model = _model()
    spec = arch.input_spec()
    dataset = open_dataset(tiny_data, 'val', spec)
    before = model.edge_weights()
    model.train()
    result = edge_ablation(model, dataset, batch_size=4)
    assert model.training and model.edge_weights() == before  # left as it came
    assert result['n'] == len(CLASSES) and 0 <= result['top1'] <= 1
    edges = {(e['src'], e['dst']): e for e in result['edges']}
    assert set(edges) == {(0, 2), (1, 2), (2, 4), (3, 4)}  # (2, 3) is a lone input
    assert [e['weight'] for e in result['edges']] == sorted(e['weight'] for e in edges.values())
    assert edges[(1, 2)]['weight'] < 1e-6
    assert edges[(1, 2)]['loss_increase'] == pytest.approx(0.0, abs=1e-5)  # already cut
    assert abs(edges[(0, 2)]['loss_increase']) > 1e-4  # the RGB stem's only path
    assert abs(edges[(3, 4)]['loss_increase']) > 1e-4
    assert result['spearman'] is not None

    with pytest.raises(VasError, match='AssembleNet'):
        edge_ablation(torch.nn.Linear(2, 2), dataset)


def test_edges_command_writes_json_and_png(tiny_data, tmp_path, capsys):
    from vas_ros.cli import main
    from vas_ros.models.checkpoint import save_checkpoint

    arch, model = _model()
    path = save_checkpoint(tmp_path / 'an.safetensors', model, arch, CLASSES,
                           arch.input_spec())
    png = tmp_path / 'edges.png'
    assert main(['edges', str(path), '--data', str(tiny_data), '--json',
                 '--png', str(png)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result['edges']) == 4
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert main(['edges', str(path), '--data', str(tiny_data), '--quiet']) == 0
    assert 'Spearman' in capsys.readouterr().out

    from vas_ros.models.factory import resolve_arch

    tvn_arch = resolve_arch('tvn_tiny')
    tvn_path = save_checkpoint(tmp_path / 'tvn.safetensors', tvn_arch.build(8),
                               tvn_arch, CLASSES, tvn_arch.input_spec())
    assert main(['edges', str(tvn_path), '--data', str(tiny_data)]) == 2
    assert 'needs a checkpoint of the assemblenet family' in capsys.readouterr().err
