"""Family `ensemble`: several trained networks behind one checkpoint, logits averaged.

Genome: `{"members": [{"arch": {"family": ..., "name": ..., "genome": {...}}, "streams":
["rgb"]}, ...]}`. Each member is any non-ensemble model; `streams` (optional) says which
input streams it reads and must agree with the member's own input spec, unless the
member's genome can be switched to the streams asked for (`Genome.with_streams`: EvaNet
and TVN read one stream of either kind), which is how one EvaNet genome becomes the RGB
and the optical-flow half of a two-stream pair, as in the released EvaNet ensemble.

All members share one preprocessing: frames, size, frame_stride, mean/std and flow
settings must agree. The ensemble's input spec takes the union of the members' streams
(in canonical order, rgb before flow); `forward(*streams)` hands each member its own
streams and returns the mean of the member logits; `member_logits(*streams)` returns
them one by one (what `evaluate` reports per member).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from vas_ros.errors import GenomeError, VasError
from vas_ros.models.factory import resolve_arch
from vas_ros.models.genome import Genome, items, json_object
from vas_ros.models.registry import Family, ModelArch, register_family
from vas_ros.models.spec import STREAMS, InputSpec

MAX_MEMBERS = 16
SHARED_INPUT_FIELDS = ('frames', 'size', 'frame_stride', 'mean', 'std', 'flow_method',
                       'flow_scale')


def _member_arch(member, path: str) -> tuple[ModelArch, tuple[str, ...]]:
    member = json_object(member, path, ('arch', 'streams'), ('arch',))
    raw = member['arch']
    if isinstance(raw, dict) and raw.get('family') == 'ensemble':
        raise GenomeError(f'{path}.arch.family', 'an ensemble cannot contain an ensemble')
    try:
        arch = ModelArch.from_dict(raw)
    except GenomeError as exc:
        field = f'{path}.arch' if exc.field == 'arch' else f'{path}.arch.{exc.field}'
        raise GenomeError(field, exc.problem) from None
    streams = tuple(arch.input_spec().streams)
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
    switched = arch.genome.with_streams(wanted)
    if switched is not None:
        return ModelArch(arch.family, switched, arch.name), wanted
    raise GenomeError(f'{path}.streams', f'{list(wanted)} does not match the inputs of '
                                         f'{arch.family} model {arch.name!r} '
                                         f'({list(streams)})')


@dataclass(frozen=True)
class EnsembleGenome(Genome):
    """Member architectures and the streams each reads; they share one preprocessing."""

    family: ClassVar[str] = 'ensemble'

    members: tuple[tuple[ModelArch, tuple[str, ...]], ...]

    @classmethod
    def from_dict(cls, data: dict) -> EnsembleGenome:
        data = json_object(data, '', ('members',), ('members',))
        raw = items(data['members'], 'members', 1, MAX_MEMBERS)
        members = tuple(_member_arch(m, f'members[{i}]') for i, m in enumerate(raw))
        first = members[0][0].input_spec()
        for i, (arch, _) in enumerate(members[1:], start=1):
            spec = arch.input_spec()
            for key in SHARED_INPUT_FIELDS:
                if getattr(spec, key) != getattr(first, key):
                    raise GenomeError(f'members[{i}].arch',
                                      f'input {key} {getattr(spec, key)!r} differs from '
                                      f'member 0\'s {getattr(first, key)!r}; members share '
                                      f'one preprocessing')
        return cls(members)

    def to_dict(self) -> dict:
        return {'members': [{'arch': arch.to_dict(), 'streams': list(streams)}
                            for arch, streams in self.members]}

    def input_spec(self) -> InputSpec:
        used = {s for _, streams in self.members for s in streams}
        first = self.members[0][0].input_spec()
        return InputSpec(**{k: getattr(first, k) for k in SHARED_INPUT_FIELDS},
                         streams=tuple(s for s in STREAMS if s in used))

    def build(self, num_classes: int) -> Ensemble:
        return Ensemble([arch.build(num_classes) for arch, _ in self.members],
                        [s for _, s in self.members], self.input_spec().streams)


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


def make_genome(members: list[tuple[object, list[str] | None]]) -> dict:
    """Validated ensemble genome from (arch reference, streams or None) pairs."""
    raw = []
    for ref, streams in members:
        entry = {'arch': resolve_arch(ref).to_dict()}
        if streams:
            entry['streams'] = list(streams)
        raw.append(entry)
    return EnsembleGenome.normalise({'members': raw})


register_family(Family('ensemble', EnsembleGenome))
