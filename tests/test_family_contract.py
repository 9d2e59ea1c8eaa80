"""The genome contract, held for every registered preset and for random genomes of every
search space, so a new family or preset is covered the day it is registered (no per-family
list here). Checkpoint round trips and exports of the presets are in
test_registry_contract.py.

Everything that can be checked without weights runs on PyTorch's meta device, so even the
published 224 px models are checked at full size in a moment; real weights and forward
passes are used for the models under `REAL_CAP_MACS`.
"""

from __future__ import annotations

import json
import random

import pytest
import torch

from vas_ros.models.checkpoint import load_checkpoint, save_checkpoint
from vas_ros.models.footprint import estimate_footprint
from vas_ros.models.genome import Genome
from vas_ros.models.introspect import count_macs, count_params, example_inputs
from vas_ros.models.registry import ModelArch, families, presets
from vas_ros.search.space import available_families, get_space

NUM_CLASSES = 5
# Above this a real forward pass (and a checkpoint of real weights) is too slow for a test.
REAL_CAP_MACS = 2 * 10**9
REAL_CAP_PARAMS = 30 * 10**6
DRAWS = 40


def _random_archs() -> list[pytest.param]:
    """Per space: two random genomes small enough to run for real, one that may not be."""
    out = []
    for family in available_families():
        rng, small, other = random.Random(family), [], []
        space = get_space(family)
        for _ in range(DRAWS):
            arch = ModelArch(family, space.random_genome(rng), f'random_{family}')
            cost = estimate_footprint(arch, NUM_CLASSES, training=False)
            fits = cost.macs <= REAL_CAP_MACS and cost.params <= REAL_CAP_PARAMS
            (small if fits else other).append(arch)
            if len(small) >= 2 and (other or len(small) >= 3):
                break
        assert small, f'{family}: no random genome under the cost cap in {DRAWS} draws'
        chosen = small[:2] + other[:1]
        out += [pytest.param(a, id=f'{family}-{i}') for i, a in enumerate(chosen)]
    return out


PRESETS = presets()
ARCHS = ([pytest.param(a, id=name) for name, a in sorted(PRESETS.items())]
         + _random_archs())


def _small(arch: ModelArch) -> bool:
    cost = estimate_footprint(arch, NUM_CLASSES, training=False)
    return cost.macs <= REAL_CAP_MACS and cost.params <= REAL_CAP_PARAMS


def test_every_family_registers_a_genome_class_and_presets_of_it():
    for name, family in families().items():
        assert issubclass(family.genome, Genome) and family.genome.family == name
        for preset in family.presets:
            assert isinstance(PRESETS[preset].genome, family.genome)


@pytest.mark.parametrize('arch', ARCHS)
def test_validation_is_idempotent_and_json_round_trips(arch):
    genome_type = type(arch.genome)
    data = arch.genome.to_dict()
    assert genome_type.normalise(data) == data
    assert genome_type.normalise(genome_type.normalise(data)) == data
    again = genome_type.from_dict(json.loads(json.dumps(data)))
    assert again == arch.genome and again.to_dict() == data
    assert genome_type.from_json(arch.genome.to_json()) == arch.genome
    assert ModelArch.from_dict(json.loads(arch.to_json())) == arch
    assert arch.genome.distance(again) == 0


@pytest.mark.parametrize('arch', ARCHS)
def test_input_spec_matches_the_forward_pass(arch):
    """Meta tensors of exactly the spec's shapes, one per stream, give [B, classes]."""
    spec = arch.input_spec()
    with torch.device('meta'):
        model = arch.build(NUM_CLASSES).eval()
        inputs = example_inputs(spec, batch=2, device='meta')
        with torch.no_grad():
            out = model(*inputs)
    assert tuple(out.shape) == (2, NUM_CLASSES)
    assert len(inputs) == len(spec.streams)
    for stream, x in zip(spec.streams, inputs):
        assert tuple(x.shape) == spec.shape(stream, 2)


@pytest.mark.parametrize('arch', ARCHS)
def test_cost_estimate_matches_the_built_model(arch, tmp_path):
    """The pre-allocation estimate against a real model: parameters exactly, MACs within
    5 % of the FLOP counter (models past the cap: against a meta build only)."""
    estimate = estimate_footprint(arch, NUM_CLASSES, training=False)
    if not _small(arch):
        with torch.device('meta'):
            assert count_params(arch.build(NUM_CLASSES)) == estimate.params
        return
    torch.manual_seed(0)
    model = arch.build(NUM_CLASSES).eval()
    assert count_params(model) == estimate.params
    measured = count_macs(model, arch.input_spec())
    assert measured == pytest.approx(estimate.macs, rel=0.05)


@pytest.mark.parametrize('arch', [a for a in ARCHS if a.id not in PRESETS])
def test_random_genomes_survive_a_checkpoint_round_trip(arch, tmp_path):
    if not _small(arch):
        pytest.skip('past the real-weights cap; its costs are checked on the meta device')
    torch.manual_seed(0)
    model = arch.build(NUM_CLASSES).eval()
    spec = arch.input_spec()
    path = save_checkpoint(tmp_path / 'random.safetensors', model, arch,
                           [f'c{i}' for i in range(NUM_CLASSES)], spec)
    loaded = load_checkpoint(path)
    assert loaded.arch == arch and loaded.spec == spec
    inputs = example_inputs(spec, batch=1)
    with torch.no_grad():
        assert torch.equal(model(*inputs), loaded.model(*inputs))


def test_a_genome_of_one_family_is_refused_by_another():
    from vas_ros.errors import GenomeError

    tvn = PRESETS['tvn_tiny'].genome
    with pytest.raises(GenomeError, match='a tvn genome is not a genome of family evanet'):
        ModelArch('evanet', tvn)


def _with(name: str, **changes) -> dict:
    return {**PRESETS[name].genome.to_dict(), **changes}


@pytest.mark.parametrize('family, genome, field', [
    ('assemblenet', _with('assemblenet_tiny', depth=[10**30, 1, 1, 1]), 'depth[0]'),
    ('assemblenet', _with('assemblenet_tiny', bottleneck_widths=[10**6] * 4),
     'bottleneck_widths[0]'),
    ('assemblenet', _with('assemblenet_tiny', nodes=[{'type': 'stem', 'modality': 'rgb'}] * 65),
     'nodes'),
    ('tvn', _with('tvn_tiny', dropout=10**400), 'dropout'),
    ('evanet', _with('evanet_tiny', width=10**400), 'width'),
])
def test_absurd_values_are_refused_before_anything_is_built(family, genome, field):
    from vas_ros.errors import GenomeError

    with pytest.raises(GenomeError) as info:
        ModelArch(family, genome)
    assert info.value.field == field


def test_normal_form_is_canonical_and_architectures_are_checked():
    from vas_ros.errors import GenomeError

    eva = _with('evanet_tiny')
    eva['blocks'][0]['branches'][0]['time'] = 3.0
    assert ModelArch('evanet', eva).genome.to_dict() == PRESETS['evanet_tiny'].genome.to_dict()
    tvn = PRESETS['tvn_tiny'].genome
    with pytest.raises(AttributeError):
        tvn.frames = 10**30  # genomes are frozen: a parsed genome stays a checked one
    assert hash(PRESETS['tvn_tiny']) == hash(ModelArch('tvn', tvn.to_dict(), 'tvn_tiny'))
    for bad, field in (({'family': ['tvn'], 'genome': {}}, 'family'),
                       ({'family': 'tvn', 'genome': tvn.to_dict(), 'name': None}, 'name'),
                       ({'family': 'tvn', 'genome': tvn.to_dict(), 'nmae': 'x'}, 'nmae')):
        with pytest.raises(GenomeError) as info:
            ModelArch.from_dict(bad)
        assert info.value.field == field


@pytest.mark.parametrize('options, problem', [
    ({'blocks': [1, 10**9]}, "'blocks' must lie within"),
    ({'sizes': [32, 10**30]}, "'sizes' must lie within"),
    ({'frames': '28'}, "'frames' must be \\[min, max\\]"),
    ({'max_kernel': float('inf')}, 'bad options'),
])
def test_tvn_space_options_outside_the_genome_limits_are_refused(options, problem):
    from vas_ros.errors import VasError

    with pytest.raises(VasError, match=problem):
        get_space('tvn').with_options(options)


def test_unreadable_genome_json_is_one_error(tmp_path):
    from vas_ros.errors import VasError
    from vas_ros.models.factory import resolve_arch

    for name, text in (('deep.json', '[' * 100000 + ']' * 100000),
                       ('digits.json', '{"family": "tvn", "genome": {"frames": 1' + '0' * 5000
                        + '}}')):
        (tmp_path / name).write_text(text)
        with pytest.raises(VasError, match='not a readable genome JSON file'):
            resolve_arch(tmp_path / name)


def test_a_model_past_the_memory_left_is_refused_before_it_is_built():
    """Valid by its genome's own limits, but 36 GB to infer: refused from the estimate."""
    from vas_ros.errors import VasError
    from vas_ros.models.footprint import check_fits
    from vas_ros.search.latency import measure_arch_latency

    wide = ModelArch('tvn', {'frames': 8, 'size': 64, 'blocks': [
        {'spatial_type': 'std', 'filters': 4096, 'expand': 16, 'repeats': 8}]}, 'wide')
    with pytest.raises(VasError, match='wide: inference at batch 1 needs about'):
        measure_arch_latency(wide)
    with pytest.raises(VasError, match='training at batch 8 needs about'):
        check_fits(wide, 8, batch=8, training=True)
    assert check_fits(PRESETS['tvn_tiny'], 8, batch=8, training=True).params > 0
    with pytest.raises(VasError, match='num_classes must be a whole number'):
        PRESETS['tvn_tiny'].build(10**21)
