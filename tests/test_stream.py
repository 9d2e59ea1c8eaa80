"""Stream mode: a causal TVN run one frame at a time gives the clip forward's logits."""

from __future__ import annotations

import dataclasses
import random

import pytest
import torch

from vas_ros.errors import DataError, GenomeError
from vas_ros.models.factory import build_model, resolve_arch
from vas_ros.models.registry import get_family
from vas_ros.models.stream import STREAM_RUNNERS, FrameStream, stream_refusal
from vas_ros.models.tvn import TVNGenome
from vas_ros.search.space import genome_hash, get_space

STREAMABLE = {'max_filters': 32, 'min_filters': 8, 'sizes': [32, 48], 'frames': [2, 6],
              'max_repeats': 2, 'max_expand': 3, 'streams': ['rgb'], 'causal': True,
              'max_temporal_stride': 1}


def _model(genome: TVNGenome, classes: int = 5, seed: int = 0):
    """A built model with non-trivial BatchNorm statistics (eval mode)."""
    torch.manual_seed(seed)
    model = genome.build(classes).eval()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0.0, 0.2)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.normal_(0.0, 0.2)
    return model


def _streamable_genomes(count: int) -> list[TVNGenome]:
    space = get_space('tvn').with_options(STREAMABLE)
    rng = random.Random(3)
    genomes = [TVNGenome.from_dict(space.random_genome(rng)) for _ in range(count)]
    genomes.append(resolve_arch('tvn_tiny_causal').genome)
    return genomes


def _per_frame_reference(model, genome: TVNGenome, clip: torch.Tensor) -> torch.Tensor:
    """Logits [B, T, classes] of the clip forward on the whole clip, at each frame t, with
    the head's mean over the `genome.frames` positions up to t (a model built for T
    frames with the same weights)."""
    frames = clip.shape[2]
    long = dataclasses.replace(genome, frames=frames).build(model.classifier.out_features)
    long.load_state_dict(model.state_dict())
    long.eval()
    feats = long.frame_features(clip)
    out = []
    for t in range(frames):
        window = feats[:, max(0, t - genome.frames + 1):t + 1].mean(dim=1)
        out.append(long.head(window))
    return torch.stack(out, dim=1)


@pytest.mark.parametrize('runner', STREAM_RUNNERS)
@pytest.mark.parametrize('index', range(7))
def test_stream_after_frames_steps_equals_the_clip_forward(index, runner):
    genome = _streamable_genomes(6)[index]
    model = _model(genome, seed=index)
    clip = torch.randn(2, 3, genome.frames, genome.size, genome.size)
    stream = FrameStream(model, runner=runner)
    with torch.inference_mode():
        expected = model(clip)
        for t in range(genome.frames):
            got = stream.step(clip[:, :, t])
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert stream.frames_seen == genome.frames


@pytest.mark.parametrize('runner', STREAM_RUNNERS)
@pytest.mark.parametrize('index', [0, 1, 3, 6])
def test_stream_over_a_long_sequence_matches_the_clip_forward_at_every_frame(index, runner):
    genome = _streamable_genomes(6)[index]
    model = _model(genome, seed=10 + index)
    clip = torch.randn(1, 3, genome.frames * 3 + 1, genome.size, genome.size)
    stream = FrameStream(model, runner=runner)
    with torch.inference_mode():
        expected = _per_frame_reference(model, genome, clip)
        got = torch.stack([stream.step(clip[:, :, t]) for t in range(clip.shape[2])], dim=1)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    # The state is fixed in size: k - 1 frames per temporal layer, `frames` features.
    ring, pasts = stream.state
    assert ring.shape[1] == genome.frames
    assert all(p.shape[2] == layer.kernel - 1 for p, layer in zip(pasts, stream.layers))


def test_reset_starts_a_new_clip():
    genome = resolve_arch('tvn_tiny_causal').genome
    model = _model(genome)
    first = torch.randn(1, 3, 12, 64, 64)
    clip = torch.randn(1, 3, 8, 64, 64)
    stream = FrameStream(model)
    with torch.inference_mode():
        for t in range(12):
            stream.step(first[:, :, t])
        carried = [stream.step(clip[:, :, t]) for t in range(8)][-1]
        stream.reset()
        fresh = [stream.step(clip[:, :, t]) for t in range(8)][-1]
        expected = model(clip)
    torch.testing.assert_close(fresh, expected, rtol=1e-4, atol=1e-5)
    # Without the reset the earlier frames are still in the buffers.
    assert not torch.allclose(carried, expected, rtol=1e-4, atol=1e-5)


def test_a_causal_model_never_looks_at_later_frames_and_a_plain_one_does():
    base = resolve_arch('tvn_tiny_causal').genome
    for causal in (True, False):
        genome = dataclasses.replace(base, causal=causal)
        model = _model(genome)
        clip = torch.randn(1, 3, 8, 64, 64)
        later = clip.clone()
        later[:, :, 5:] = torch.randn_like(later[:, :, 5:])
        with torch.inference_mode():
            a, b = model.frame_features(clip), model.frame_features(later)
        same_past = torch.allclose(a[:, :5], b[:, :5], atol=1e-6)
        assert same_past == causal
        assert not torch.allclose(a[:, 5:], b[:, 5:], atol=1e-6)


def test_models_that_cannot_stream_are_refused_with_the_reason():
    plain = build_model(resolve_arch('tvn_tiny'), 5)
    assert 'not causal' in stream_refusal(plain)
    strided = dataclasses.replace(resolve_arch('tvn_tiny').genome, causal=True).build(5)
    assert 'temporal stride 2' in stream_refusal(strided)
    assert 'blocks[1]' in stream_refusal(strided)
    with pytest.raises(DataError, match='stream mode: .*temporal stride'):
        FrameStream(strided)
    evanet = build_model(resolve_arch('evanet_tiny'), 5)
    assert 'EvaNet' in stream_refusal(evanet)
    flow = dataclasses.replace(resolve_arch('tvn_tiny_causal').genome, stream='flow').build(5)
    assert 'optical flow' in stream_refusal(flow)
    assert stream_refusal(build_model(resolve_arch('tvn_tiny_causal'), 5)) is None
    causal = build_model(resolve_arch('tvn_tiny_causal'), 5)
    with pytest.raises(DataError, match="stream runner 'tensorrt': expected one of python"):
        FrameStream(causal, runner='tensorrt')


def test_stream_refuses_a_wrong_frame_and_a_batch_change():
    stream = FrameStream(_model(resolve_arch('tvn_tiny_causal').genome))
    with torch.inference_mode():
        with pytest.raises(DataError, match=r'\[B, 3, 64, 64\]'):
            stream.step(torch.zeros(1, 3, 32, 32))
        with pytest.raises(DataError, match='stream frame'):
            stream.step(torch.zeros(3, 64, 64))
        with pytest.raises(DataError, match='must be torch.float32'):
            stream.step(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
        with pytest.raises(DataError, match='must be a torch tensor'):
            stream.step([[0.0]])
        stream.step(torch.zeros(2, 3, 64, 64))
        with pytest.raises(DataError, match='batch changed from 2 to 1'):
            stream.step(torch.zeros(1, 3, 64, 64))
    # A failed step leaves no layer in stream mode: the clip forward still works.
    assert all(layer.stream_state is None for layer in stream.layers)


def test_causal_flag_is_typed_and_left_out_when_off():
    validate = get_family('tvn').validate
    plain = resolve_arch('tvn_tiny').genome.to_dict()
    assert 'causal' not in plain
    # Old genomes keep their hash: the flag at its default changes nothing.
    assert genome_hash(validate({**plain, 'causal': False})) == genome_hash(validate(plain))
    assert validate({**plain, 'causal': True})['causal'] is True
    with pytest.raises(GenomeError, match="'causal'"):
        validate({**plain, 'causal': 'yes'})


def test_the_causal_space_draws_only_causal_genomes_and_keeps_them_causal():
    space = get_space('tvn').with_options(STREAMABLE)
    rng = random.Random(1)
    genomes = [space.random_genome(rng) for _ in range(20)]
    children = [space.mutate(g, rng) for g in genomes]
    for genome in genomes + children:
        assert genome['causal'] is True
        assert TVNGenome.from_dict(genome).stream_refusal() is None
    with pytest.raises(Exception, match="'causal' must be true or false"):
        get_space('tvn').with_options({'causal': 'yes'})


@pytest.mark.parametrize('conv', ['3d', 'itgm', '2plus1d'])
def test_causal_evanet_never_looks_at_later_frames(conv):
    """Every EvaNet conv type and its pools, causal: changing frames >= 4 of 16 leaves
    the first stage's output at position 0 (the stem's and pool's windows end on frames 1,
    3, ... and 3, 7, ...) as it was; SAME padding lets it see them."""
    tiny = resolve_arch('evanet_tiny').genome.to_dict()
    block = {'repeats': 1, 'branches': [{'kind': 'conv', 'type': conv, 'time': 3},
                                        {'kind': 'maxpool', 'time': 3}]}
    genome = {**tiny, 'frames': 16, 'stem': {'type': conv, 'time': 3},
              'pool_times': {'mp1': 3, 'mp3': 3, 'mp4': 3}, 'blocks': [block] * 4}
    for causal in (True, False):
        model = get_family('evanet').genome.from_dict({**genome, 'causal': causal}).build(4)
        model.eval()
        clip = torch.randn(1, 3, 16, 64, 64)
        later = clip.clone()
        later[:, :, 4:] = torch.randn_like(later[:, :, 4:])
        with torch.inference_mode():
            outs = []
            for x in (clip, later):
                x = model.stages[0](model.pools[0](model.stem(x)))  # T: 16 -> 8 -> 4 -> 4
                outs.append(x)
        same_past = torch.allclose(outs[0][:, :, :1], outs[1][:, :, :1], atol=1e-6)
        assert same_past == causal, (conv, causal)
        assert model(clip).shape == (1, 4)
    assert 'stride 2 in time' in stream_refusal(model)
    assert get_family('evanet').genome.from_dict(genome).to_dict().get('causal') is None


def test_the_fast_stream_model_gives_the_same_logits_and_leaves_the_model_alone():
    from vas_ros.models.stream import fast_stream_model

    genome = resolve_arch('tvn_tiny_causal').genome
    model = _model(genome, seed=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = fast_stream_model(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    clip = torch.randn(1, 3, 12, 64, 64)
    slow_stream, fast_stream = FrameStream(model), FrameStream(fast, runner='torchscript')
    with torch.inference_mode():
        for t in range(12):
            a, b = slow_stream.step(clip[:, :, t]), fast_stream.step(clip[:, :, t])
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_choose_stream_runner_times_each_candidate_and_takes_the_fastest():
    from vas_ros.models.stream import choose_stream_runner

    model = _model(resolve_arch('tvn_tiny_causal').genome, seed=5)
    runner, medians = choose_stream_runner(model, ('python', 'torchscript'), steps=4, rounds=2)
    assert set(medians) == {'python', 'torchscript'} and runner == min(medians, key=medians.get)
    assert all(0 < ms < float('inf') for ms in medians.values())  # they agree
