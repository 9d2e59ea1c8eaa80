"""Family `ensemble`: several trained networks behind one checkpoint, logits averaged.

Genome: `{"members": [{"arch": {"family": ..., "name": ..., "genome": {...}}, "streams":
["rgb"]}, ...]}`. Each member is any non-ensemble model; `streams` (optional) says which
input streams it reads and must agree with the member's own input spec, except that an
EvaNet member is switched to the stream asked for (its genome field `stream`), which is
how one EvaNet genome becomes the RGB and the optical-flow half of a two-stream pair, as
in the released EvaNet ensemble.

All members share one preprocessing: frames, size, frame_stride, mean/std and flow
settings must agree. The ensemble's input spec takes the union of the members' streams
(in canonical order, rgb before flow); `forward(*streams)` hands each member its own
streams and returns the mean of the member logits; `member_logits(*streams)` returns
them one by one (what `evaluate` reports per member).
"""

from __future__ import annotations

import torch
from torch import nn

from vas_ros.errors import GenomeError, VasError
from vas_ros.models.registry import (
    Family,
    ModelArch,
    build_model,
    input_spec_for,
    register_family,
)
from vas_ros.models.spec import STREAMS, InputSpec

MAX_MEMBERS = 16
SHARED_INPUT_FIELDS = ('frames', 'size', 'frame_stride', 'mean', 'std', 'flow_method',
                       'flow_scale')


def _member_arch(member, path: str) -> tuple[ModelArch, tuple[str, ...]]:
    if not isinstance(member, dict):
        raise GenomeError(path, f'must be an object {{"arch": ..., "streams": [...]}}, '
                                f'got {type(member).__name__}')
    unknown = set(member) - {'arch', 'streams'}
    if unknown:
        raise GenomeError(path, f'unknown fields {sorted(unknown)}')
    if 'arch' not in member:
        raise GenomeError(f'{path}.arch', 'missing: the member architecture '
                                          '{"family", "name", "genome"}')
    raw = member['arch']
    if isinstance(raw, dict) and raw.get('family') == 'ensemble':
        raise GenomeError(f'{path}.arch.family', 'an ensemble cannot contain an ensemble')
    try:
        arch = ModelArch.from_dict(raw)
    except GenomeError as exc:
        field = f'{path}.arch' if exc.field == 'arch' else f'{path}.arch.{exc.field}'
        raise GenomeError(field, exc.problem) from None
    streams = tuple(input_spec_for(arch).streams)
    wanted = member.get('streams')
    if wanted is None:
        return arch, streams
    if (not isinstance(wanted, list) or not wanted
            or any(s not in STREAMS for s in wanted) or len(set(wanted)) != len(wanted)):
        raise GenomeError(f'{path}.streams', f'must be a non-empty list of distinct streams '
                                             f'from {list(STREAMS)}, got {wanted!r}')
    wanted = tuple(wanted)
    if wanted == streams:
        return arch, streams
    if arch.family == 'evanet' and len(wanted) == 1:
        genome = dict(arch.genome, stream=wanted[0])
        arch = ModelArch.from_dict({'family': 'evanet', 'name': arch.name, 'genome': genome})
        return arch, wanted
    raise GenomeError(f'{path}.streams', f'{list(wanted)} does not match the inputs of '
                                         f'{arch.family} model {arch.name!r} '
                                         f'({list(streams)})')


def _members(genome) -> list[tuple[ModelArch, tuple[str, ...]]]:
    if not isinstance(genome, dict):
        raise GenomeError('genome', f'must be an object, got {type(genome).__name__}')
    unknown = set(genome) - {'members'}
    if unknown:
        raise GenomeError('genome', f'unknown fields {sorted(unknown)}; an ensemble genome '
                                    f'holds only "members"')
    raw = genome.get('members')
    if not isinstance(raw, list) or not raw:
        raise GenomeError('members', 'must be a non-empty list of members')
    if len(raw) > MAX_MEMBERS:
        raise GenomeError('members', f'at most {MAX_MEMBERS} members, got {len(raw)}')
    members = [_member_arch(m, f'members[{i}]') for i, m in enumerate(raw)]
    first = input_spec_for(members[0][0])
    for i, (arch, _) in enumerate(members[1:], start=1):
        spec = input_spec_for(arch)
        for key in SHARED_INPUT_FIELDS:
            if getattr(spec, key) != getattr(first, key):
                raise GenomeError(f'members[{i}].arch',
                                  f'input {key} {getattr(spec, key)!r} differs from member '
                                  f'0\'s {getattr(first, key)!r}; members share one '
                                  f'preprocessing')
    return members


def validate(genome: dict) -> dict:
    return {'members': [{'arch': arch.to_dict(), 'streams': list(streams)}
                        for arch, streams in _members(genome)]}


def input_spec(genome: dict) -> InputSpec:
    members = _members(genome)
    used = {s for _, streams in members for s in streams}
    first = input_spec_for(members[0][0])
    return InputSpec(**{k: getattr(first, k) for k in SHARED_INPUT_FIELDS},
                     streams=tuple(s for s in STREAMS if s in used))


class Ensemble(nn.Module):
    """Members behind one forward: each gets its streams; the output is the mean logit."""

    def __init__(self, members: list[nn.Module], member_streams: list[tuple[str, ...]],
                 streams: tuple[str, ...]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.streams = tuple(streams)
        self.member_streams = [tuple(s) for s in member_streams]
        self.routes = [tuple(self.streams.index(s) for s in ms) for ms in self.member_streams]

    def member_logits(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        if len(inputs) != len(self.streams):
            raise VasError(f'ensemble takes {len(self.streams)} input(s) '
                           f'{list(self.streams)}, got {len(inputs)}')
        return [member(*[inputs[j] for j in route])
                for member, route in zip(self.members, self.routes)]

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return torch.stack(self.member_logits(*inputs)).mean(dim=0)


def build(genome: dict, num_classes: int) -> Ensemble:
    members = _members(genome)
    streams = input_spec(genome).streams
    return Ensemble([build_model(arch, num_classes) for arch, _ in members],
                    [s for _, s in members], streams)


def make_genome(members: list[tuple[object, list[str] | None]]) -> dict:
    """Validated ensemble genome from (arch reference, streams or None) pairs."""
    from vas_ros.models.registry import resolve_arch

    raw = []
    for ref, streams in members:
        entry = {'arch': resolve_arch(ref).to_dict()}
        if streams:
            entry['streams'] = list(streams)
        raw.append(entry)
    return validate({'members': raw})


register_family(Family(
    name='ensemble', validate=validate, input_spec=input_spec, build=build,
    presets={}, descriptions={},
))
