"""AssembleNet: multi-stream RGB + optical-flow graphs with learned, sigmoid-weighted edges.

Genome (JSON; node id = its position in `nodes`, an optional "id" key must match it):

    {"frames": 8, "size": 64, "frame_stride": 2,
     "depth": [1, 2, 2, 1],            # bottleneck modules per node, by level 0..3
     "bottleneck_widths": null,        # per-level 3x3 width; null = the node's filters
     "stem_filters": null,             # null = 128 // number of stems (published rule)
     "freeze_edges": false,            # edge logits become fixed buffers
     "edge_lr_scale": 1.0,             # learning-rate multiplier for the edge logits
     "dropout": 0.0, "flow_method": "dis",
     "nodes": [
       {"type": "stem", "modality": "rgb", "temporal_dilation": 1},
       {"type": "stem", "modality": "flow", "temporal_dilation": 1},
       {"type": "block", "level": 0, "inputs": [0, 1], "filters": 8,
        "temporal_dilation": 2, "spatial_stride": 1, "edge_logits": [0.0, 0.0]},
       ...]}

Graph rules (checked by `AssembleGenome.from_dict`, each error names the field):
- at least one stem; every block has inputs, each an earlier node (smaller id, which
  rules out cycles) that exists, without repeats;
- an input is a stem or a block of the same or a lower level (levels never go down
  along an edge; the published graphs only use lower levels, same-level edges are kept
  legal because earlier ids already make them acyclic);
- level-3 blocks feed the head (there must be at least one, and they share `filters`
  because the head averages their features); every other node must have a path to a
  level-3 block, so a stem without consumers or a dead-end block is an error.

Time is never strided: every node keeps the clip's T frames (temporal dilation, not
stride, gives the streams their different temporal resolutions, as in the published
code), so fusion only has to align space; `WeightedFusion` would still align T.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from vas_ros.errors import GenomeError, VasError
from vas_ros.models.genome import (
    Genome,
    choice,
    dropout,
    flag,
    int_list,
    integer,
    join,
    json_object,
    number,
)
from vas_ros.models.layers.common import ConvNormAct
from vas_ros.models.layers.fusion import WeightedFusion, logit
from vas_ros.models.registry import Family, register_family
from vas_ros.models.spec import FLOW_METHODS, STREAMS, InputSpec

FAMILY = 'assemblenet'
LEVELS = (0, 1, 2, 3)
NAMED_DEPTHS = {26: [2, 2, 2, 2], 38: [2, 4, 4, 2], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3]}
PUBLISHED_BOTTLENECK_WIDTHS = [64, 128, 256, 512]
# Far above the published graphs (15 nodes, depth 23 at most): past these a genome is a
# typo, and its model would not fit any machine.
MAX_DEPTH = 64
MAX_NODES = 64

_TOP_KEYS = {'frames', 'size', 'frame_stride', 'depth', 'bottleneck_widths', 'stem_filters',
             'freeze_edges', 'edge_lr_scale', 'dropout', 'flow_method', 'nodes'}
_STEM_KEYS = {'id', 'type', 'modality', 'temporal_dilation'}
_BLOCK_KEYS = {'id', 'type', 'level', 'inputs', 'filters', 'temporal_dilation',
               'spatial_stride', 'edge_logits'}


# ----------------------------------------------------------------------------- genome


@dataclass(frozen=True)
class StemNode:
    is_stem: ClassVar[bool] = True

    id: int
    modality: str
    temporal_dilation: int = 1

    def to_dict(self) -> dict:
        return {'id': self.id, 'type': 'stem', 'modality': self.modality,
                'temporal_dilation': self.temporal_dilation}


@dataclass(frozen=True)
class BlockNode:
    is_stem: ClassVar[bool] = False

    id: int
    level: int
    inputs: tuple[int, ...]
    filters: int
    temporal_dilation: int = 1
    spatial_stride: int = 1
    edge_logits: tuple[float, ...] | None = None

    def to_dict(self) -> dict:
        return {'id': self.id, 'type': 'block', 'level': self.level,
                'inputs': list(self.inputs), 'filters': self.filters,
                'temporal_dilation': self.temporal_dilation,
                'spatial_stride': self.spatial_stride,
                'edge_logits': None if self.edge_logits is None else list(self.edge_logits)}


@dataclass(frozen=True)
class AssembleGenome(Genome):
    """A multi-stream graph plus clip and training settings (JSON in the module doc)."""

    family: ClassVar[str] = FAMILY

    nodes: tuple[StemNode | BlockNode, ...]
    frames: int = 8
    size: int = 64
    frame_stride: int = 1
    depth: tuple[int, int, int, int] = (1, 1, 1, 1)
    bottleneck_widths: tuple[int, int, int, int] | None = None
    stem_filters: int | None = None
    freeze_edges: bool = False
    edge_lr_scale: float = 1.0
    dropout: float = 0.0
    flow_method: str = 'dis'
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def stems(self) -> list[StemNode]:
        return [n for n in self.nodes if isinstance(n, StemNode)]

    @property
    def blocks(self) -> list[BlockNode]:
        return [n for n in self.nodes if isinstance(n, BlockNode)]

    @property
    def head_nodes(self) -> list[int]:
        return [n.id for n in self.blocks if n.level == 3]

    @property
    def streams(self) -> tuple[str, ...]:
        present = {n.modality for n in self.stems}
        return tuple(s for s in STREAMS if s in present)

    @property
    def stem_width(self) -> int:
        return self.stem_filters or max(1, 128 // len(self.stems))

    def edges(self) -> list[tuple[int, int]]:
        return [(src, n.id) for n in self.blocks for src in n.inputs]

    def to_dict(self) -> dict:
        return {
            'frames': self.frames, 'size': self.size, 'frame_stride': self.frame_stride,
            'depth': list(self.depth),
            'bottleneck_widths': (None if self.bottleneck_widths is None
                                  else list(self.bottleneck_widths)),
            'stem_filters': self.stem_filters, 'freeze_edges': self.freeze_edges,
            'edge_lr_scale': self.edge_lr_scale,
            'dropout': self.dropout, 'flow_method': self.flow_method,
            'nodes': [n.to_dict() for n in self.nodes],
        }

    @classmethod
    def from_dict(cls, data: dict) -> AssembleGenome:
        """Check the fields and the graph rules; errors name the field."""
        data = json_object(data, '', _TOP_KEYS)
        depth = data.get('depth', [1, 1, 1, 1])
        if isinstance(depth, int) and not isinstance(depth, bool):
            if depth not in NAMED_DEPTHS:
                raise GenomeError('depth', f'named depths are {sorted(NAMED_DEPTHS)}, '
                                           f'got {depth}')
            depth = NAMED_DEPTHS[depth]
        widths = data.get('bottleneck_widths')
        stem_filters = data.get('stem_filters')
        raw_nodes = data.get('nodes')
        if not isinstance(raw_nodes, list) or not raw_nodes:
            raise GenomeError('nodes', 'must be a non-empty list of stem and block nodes')
        if len(raw_nodes) > MAX_NODES:
            raise GenomeError('nodes', f'at most {MAX_NODES} nodes, got {len(raw_nodes)}')
        nodes = [_parse_node(raw, i) for i, raw in enumerate(raw_nodes)]
        _check_graph(nodes)
        return cls(
            nodes=tuple(nodes),
            frames=integer(data.get('frames', 8), 'frames', 1, 512),
            size=integer(data.get('size', 64), 'size', 16, 1024),
            frame_stride=integer(data.get('frame_stride', 1), 'frame_stride', 1, 64),
            depth=int_list(depth, 'depth', 4, 1, MAX_DEPTH),
            bottleneck_widths=(None if widths is None
                               else int_list(widths, 'bottleneck_widths', 4, 1, 4096)),
            stem_filters=(None if stem_filters is None
                          else integer(stem_filters, 'stem_filters', 1, 1024)),
            freeze_edges=flag(data.get('freeze_edges', False), 'freeze_edges'),
            edge_lr_scale=number(data.get('edge_lr_scale', 1.0), 'edge_lr_scale', 0, 1000,
                                 low_open=True),
            dropout=dropout(data.get('dropout', 0.0)),
            flow_method=choice(data.get('flow_method', 'dis'), 'flow_method', FLOW_METHODS))

    def input_spec(self) -> InputSpec:
        return InputSpec(frames=self.frames, size=self.size, frame_stride=self.frame_stride,
                         streams=self.streams, flow_method=self.flow_method)

    def build(self, num_classes: int) -> AssembleNet:
        return AssembleNet(self, num_classes)

    def param_groups(self, model: AssembleNet) -> list[dict]:
        """The edge logits apart from the rest: `edge_lr_scale` times the learning rate
        and no weight decay (decay would pull every weight back to 0.5, against the signal
        the search prunes on)."""
        edges = [f.edge_logits for f in model.fusions.values()
                 if isinstance(f.edge_logits, nn.Parameter)]
        ids = {id(p) for p in edges}
        groups = [{'params': [p for p in model.parameters() if id(p) not in ids]}]
        if edges:
            groups.append({'params': edges, 'lr_scale': self.edge_lr_scale,
                           'weight_decay': 0.0})
        return groups

    def artefacts(self, model: AssembleNet, out_dir: Path, name: str) -> list[Path]:
        """The graph with its learned connection weights, as a picture."""
        from vas_ros.models.assemblenet_plot import plot_graph

        return [plot_graph(self, model.edge_weights(), Path(out_dir) / 'best_graph.png',
                           title=f'{name}: learned connection weights (darker = larger)')]


def _parse_node(raw, index: int) -> StemNode | BlockNode:
    where = f'nodes[{index}]'
    if not isinstance(raw, dict):
        raise GenomeError(where, f'must be an object, got {type(raw).__name__}')
    if 'id' in raw and (isinstance(raw['id'], bool) or raw['id'] != index):
        raise GenomeError(f'{where}.id', f'must equal the node\'s position {index}, '
                          f'got {raw["id"]!r}')
    kind = raw.get('type')
    if kind == 'stem':
        unknown = set(raw) - _STEM_KEYS
        if unknown:
            raise GenomeError(where, f'unknown stem fields {sorted(unknown)}')
        modality = choice(raw.get('modality'), f'{where}.modality', STREAMS)
        return StemNode(index, modality, integer(raw.get('temporal_dilation', 1),
                                                 f'{where}.temporal_dilation', 1, 16))
    if kind != 'block':
        raise GenomeError(f'{where}.type', f'must be "stem" or "block", got {kind!r}')
    unknown = set(raw) - _BLOCK_KEYS
    if unknown:
        raise GenomeError(where, f'unknown block fields {sorted(unknown)}')
    for key in ('level', 'inputs', 'filters'):
        if key not in raw:
            raise GenomeError(f'{where}.{key}', 'is required for a block')
    level = integer(raw['level'], f'{where}.level', 0, 3)
    inputs = raw['inputs']
    if not isinstance(inputs, (list, tuple)) or not inputs:
        raise GenomeError(f'{where}.inputs', f'must be a non-empty list of node ids, '
                          f'got {inputs!r}')
    inputs = tuple(integer(v, f'{where}.inputs') for v in inputs)
    if len(set(inputs)) != len(inputs):
        raise GenomeError(f'{where}.inputs', f'repeats a node: {list(inputs)}')
    logits = raw.get('edge_logits')
    if logits is not None:
        if not isinstance(logits, (list, tuple)) or len(logits) != len(inputs):
            raise GenomeError(f'{where}.edge_logits', f'must be null or a list with one '
                              f'number per input ({len(inputs)}), got {logits!r}')
        logits = tuple(number(v, join(f'{where}.edge_logits', j), float('-inf'),
                              float('inf')) for j, v in enumerate(logits))
    return BlockNode(
        index, level, inputs,
        integer(raw['filters'], f'{where}.filters', 1, 4096),
        integer(raw.get('temporal_dilation', 1), f'{where}.temporal_dilation', 1, 16),
        integer(raw.get('spatial_stride', 1), f'{where}.spatial_stride', 1, 4),
        logits)


def _check_graph(nodes: list[StemNode | BlockNode]) -> None:
    if not any(isinstance(n, StemNode) for n in nodes):
        raise GenomeError('nodes', 'needs at least one stem (rgb or flow)')
    for node in nodes:
        if not isinstance(node, BlockNode):
            continue
        where = f'nodes[{node.id}].inputs'
        for src in node.inputs:
            if src < 0 or src >= len(nodes):
                raise GenomeError(where, f'refers to node {src}, which does not exist '
                                  f'(dangling input; ids are 0..{len(nodes) - 1})')
            if src >= node.id:
                raise GenomeError(where, f'node {src} is not earlier than node {node.id}: '
                                  f'inputs must have smaller ids (this also rules out cycles)')
            source = nodes[src]
            if isinstance(source, BlockNode) and source.level > node.level:
                raise GenomeError(where, f'level {node.level} node takes node {src} of level '
                                  f'{source.level}: levels out of order (inputs must be stems '
                                  f'or blocks of the same or a lower level)')
    heads = [n for n in nodes if isinstance(n, BlockNode) and n.level == 3]
    if not heads:
        raise GenomeError('nodes', 'needs at least one level-3 block (they feed the head)')
    if len({n.filters for n in heads}) > 1:
        raise GenomeError(f'nodes[{heads[-1].id}].filters',
                          'level-3 blocks feed one averaged head and must share filters, got '
                          + ', '.join(f'node {n.id}: {n.filters}' for n in heads))
    reaches = [False] * len(nodes)
    for node in reversed(nodes):  # consumers have larger ids: one backward sweep suffices
        if isinstance(node, BlockNode) and node.level == 3:
            reaches[node.id] = True
        if reaches[node.id] and isinstance(node, BlockNode):
            for src in node.inputs:
                reaches[src] = True
    consumers = {src for n in nodes if isinstance(n, BlockNode) for src in n.inputs}
    for node in nodes:
        if reaches[node.id]:
            continue
        if isinstance(node, StemNode) and node.id not in consumers:
            raise GenomeError(f'nodes[{node.id}]', f'{node.modality} stem has no consumers')
        raise GenomeError(f'nodes[{node.id}]', 'has no path to the head (no level-3 block '
                          'depends on it)')


def remove_nodes(genome: dict, drop: set[int]) -> dict:
    """Delete nodes and renumber; consumers lose those inputs (with their logits).

    A block left without inputs is not repaired here: callers decide (the RGB-only
    ablation rewires it to the RGB stems, the search drops it). Returns an unvalidated dict.
    """
    nodes = [dict(n) for n in genome['nodes']]
    new_id, kept = {}, []
    for i, node in enumerate(nodes):
        if i not in drop:
            new_id[i] = len(kept)
            kept.append(node)
    for node in kept:
        if node.get('type') != 'block':
            continue
        keep = [j for j, src in enumerate(node['inputs']) if src not in drop]
        node['inputs'] = [new_id[node['inputs'][j]] for j in keep]
        if node.get('edge_logits') is not None:
            node['edge_logits'] = [node['edge_logits'][j] for j in keep]
    for i, node in enumerate(kept):
        node['id'] = i
    return {**genome, 'nodes': kept}


def rgb_only(genome: dict) -> dict:
    """The RGB-only ablation: flow stems removed, blocks they alone fed take the RGB stems."""
    g = AssembleGenome.parse(genome)
    flow = {n.id for n in g.stems if n.modality == 'flow'}
    if not flow:
        return g.to_dict()
    if len(flow) == len(g.stems):
        raise GenomeError('nodes', 'has no RGB stem, so there is no RGB-only ablation')
    out = remove_nodes(g.to_dict(), flow)
    rgb_ids = [n['id'] for n in out['nodes'] if n['type'] == 'stem']
    for node in out['nodes']:
        if node['type'] == 'block' and not node['inputs']:
            node['inputs'] = list(rgb_ids)
            node['edge_logits'] = None
    return AssembleGenome.normalise(out)


# ----------------------------------------------------------------------------- layers


def _conv3d_bn_act(cin: int, cout: int, kernel, stride=1, padding=0, dilation=1,
                   act=True, zero_gamma=False) -> ConvNormAct:
    """Bias-free Conv3d with PyTorch's symmetric `padding` (as published), BN, ReLU.

    `zero_gamma` makes a residual branch start as the identity: deep graphs train from
    step one.
    """
    conv = nn.Conv3d(cin, cout, kernel, stride, padding, dilation, bias=False)
    return ConvNormAct(conv, cout, 3, act, zero_gamma=zero_gamma)


def _temporal_conv3d_bn_act(cin: int, cout: int, kernel: int, dilation: int) -> ConvNormAct:
    """k x 1 x 1 conv over time, dilated, 'same' padding, then BN + ReLU."""
    return _conv3d_bn_act(cin, cout, (kernel, 1, 1),
                          padding=(dilation * (kernel - 1) // 2, 0, 0), dilation=(dilation, 1, 1))


class RGBStem(nn.Module):
    """7x7/2 conv, BN, ReLU, dilated temporal conv (k=5), 3x3/2 max-pool: H/4, T kept."""

    def __init__(self, width: int, temporal_dilation: int):
        super().__init__()
        self.spatial = _conv3d_bn_act(3, width, (1, 7, 7), (1, 2, 2), (0, 3, 3))
        self.temporal = _temporal_conv3d_bn_act(width, width, 5, temporal_dilation)
        self.pool = nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))

    def forward(self, x):
        return self.pool(self.temporal(self.spatial(x)))


class FlowStem(nn.Module):
    """7x7/2 conv, BN, ReLU, 2x2/2 max-pool (no temporal conv, as published): H/4."""

    def __init__(self, width: int):
        super().__init__()
        self.spatial = _conv3d_bn_act(2, width, (1, 7, 7), (1, 2, 2), (0, 3, 3))
        self.pool = nn.MaxPool3d((1, 2, 2), (1, 2, 2), ceil_mode=True)

    def forward(self, x):
        return self.pool(self.spatial(x))


class Bottleneck(nn.Module):
    """ResNet bottleneck ending in 4*filters; `temporal` swaps the first 1x1 for a dilated
    k=3 temporal conv, making the module (2+1)D."""

    def __init__(self, cin: int, filters: int, inner: int, stride: int, temporal: bool,
                 dilation: int, project: bool):
        super().__init__()
        out = 4 * filters
        self.reduce = (_temporal_conv3d_bn_act(cin, filters, 3, dilation) if temporal
                       else _conv3d_bn_act(cin, filters, 1))
        self.spatial = _conv3d_bn_act(filters, inner, (1, 3, 3), (1, stride, stride), (0, 1, 1))
        self.expand = _conv3d_bn_act(inner, out, 1, act=False, zero_gamma=True)
        self.shortcut = (_conv3d_bn_act(cin, out, 1, (1, stride, stride), act=False) if project
                         else nn.Identity())
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        # in place: the expansion's output is fresh, so no new full-size tensor per sum
        return self.relu(self.expand(self.spatial(self.reduce(x))).add_(self.shortcut(x)))


def block_group(cin: int, node: BlockNode, modules: int, inner: int) -> nn.Sequential:
    """A node's modules: the first 2D with projection and stride, then (2+1)D and 2D alternate."""
    layers = []
    for step in range(modules):
        layers.append(Bottleneck(cin if step == 0 else 4 * node.filters, node.filters, inner,
                                 node.spatial_stride if step == 0 else 1,
                                 temporal=step % 2 == 1, dilation=node.temporal_dilation,
                                 project=step == 0))
    return nn.Sequential(*layers)


class AssembleNet(nn.Module):
    """The network for one genome; called as model(*streams) in `spec.streams` order."""

    def __init__(self, genome: AssembleGenome | dict, num_classes: int):
        super().__init__()
        g = AssembleGenome.parse(genome)
        self.streams = g.streams
        self.node_kinds = [('stem', n.modality) if isinstance(n, StemNode) else ('block', '')
                           for n in g.nodes]
        self.node_inputs = [tuple(n.inputs) if isinstance(n, BlockNode) else () for n in g.nodes]
        self.head_nodes = g.head_nodes
        # After which node each output is no longer needed (frees memory on big presets).
        last_use = {i: i for i in range(len(g.nodes))}
        for node in g.blocks:
            for src in node.inputs:
                last_use[src] = max(last_use[src], node.id)
        for i in self.head_nodes:
            last_use[i] = len(g.nodes)
        self.release_after = [[i for i, last in last_use.items() if last == step]
                              for step in range(len(g.nodes))]
        self.stems = nn.ModuleDict()
        self.fusions = nn.ModuleDict()
        self.groups = nn.ModuleDict()
        width = {}
        for node in g.nodes:
            key = str(node.id)
            if isinstance(node, StemNode):
                self.stems[key] = (RGBStem(g.stem_width, node.temporal_dilation)
                                   if node.modality == 'rgb' else FlowStem(g.stem_width))
                width[node.id] = g.stem_width
                continue
            fusion = WeightedFusion([width[s] for s in node.inputs],
                                    None if node.edge_logits is None else list(node.edge_logits),
                                    frozen=g.freeze_edges)
            self.fusions[key] = fusion
            inner = (g.bottleneck_widths[node.level] if g.bottleneck_widths else node.filters)
            self.groups[key] = block_group(fusion.out_channels, node, g.depth[node.level], inner)
            width[node.id] = 4 * node.filters
        self.feature_width = width[self.head_nodes[0]]
        self.dropout = nn.Dropout(g.dropout) if g.dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(self.feature_width, num_classes)
        self._init_weights()

    def _init_weights(self):
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode='fan_out', nonlinearity='relu')
        nn.init.normal_(self.classifier.weight, std=0.01)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, *inputs):
        if len(inputs) != len(self.streams):
            raise VasError(f'AssembleNet takes {len(self.streams)} input tensor(s) '
                           f'{list(self.streams)}, got {len(inputs)}')
        feeds = dict(zip(self.streams, inputs))
        outputs: dict[int, torch.Tensor] = {}
        for i, (kind, modality) in enumerate(self.node_kinds):
            key = str(i)
            if kind == 'stem':
                outputs[i] = self.stems[key](feeds[modality])
            else:
                fused = self.fusions[key]([outputs[s] for s in self.node_inputs[i]])
                outputs[i] = self.groups[key](fused)
            for done in self.release_after[i]:
                outputs.pop(done, None)
        # Per-frame global average pool, then mean over time and over the level-3 nodes.
        pooled = [outputs[i].mean(dim=(3, 4)).mean(dim=2) for i in self.head_nodes]
        features = pooled[0] if len(pooled) == 1 else torch.stack(pooled).mean(dim=0)
        return self.classifier(self.dropout(features))

    def edge_weights(self) -> dict[tuple[int, int], float]:
        """{(src, dst): sigmoid(logit)} for every edge; single-input edges are fixed at 1.0."""
        out = {}
        for key, fusion in self.fusions.items():
            dst = int(key)
            for src, weight in zip(self.node_inputs[dst], fusion.edge_weights().tolist()):
                out[(src, dst)] = float(weight)
        return out


# ----------------------------------------------------------------------------- presets

# (level, inputs, filters, temporal dilation, stride, published sigmoid edge weights)
_PUBLISHED_STEMS = [('rgb', 4), ('rgb', 4), ('flow', 1), ('flow', 1)]
_PUBLISHED_BLOCKS = [
    (0, [1], 32, 1, 1, None),
    (0, [0], 32, 4, 1, None),
    (0, [0, 1, 2, 3], 32, 1, 1, [.138, .847, .307, .287]),
    (0, [2, 3], 32, 2, 1, [.585, .607]),
    (1, [0, 4, 5, 6, 7], 64, 2, 2, [.164, .885, .404, .682, .533]),
    (1, [0, 2, 4, 7], 64, 1, 2, [.029, .103, .752, .926]),
    (1, [0, 5, 7], 64, 4, 2, [.288, .763, .405]),
    (1, [0, 5], 64, 1, 2, [.235, .784]),
    (2, [4, 8, 10, 11], 256, 1, 2, [.276, .951, .657, .955]),
    (2, [8, 9], 256, 4, 2, [.505, .888]),
    (3, [12, 13], 512, 2, 2, [.989, .845]),
]


def published_genome(variant: int = 50, *, freeze_edges: bool = False,
                     published_weights: bool = True, frames: int = 32, size: int = 224,
                     frame_stride: int = 2, depth=None) -> dict:
    """The published AssembleNet-50/101 graph (found on Moments in Time).

    `published_weights` starts each multi-input edge at the published sigmoid weight
    (stored as a logit); `freeze_edges` keeps those weights fixed during training.
    101 = the same graph with level-2 filters 192, level-3 filters 256 and depth
    [3, 4, 23, 3]. Frames 32 follow the published training config; size 224 and frame
    stride 2 are this project's defaults.
    """
    if variant not in (50, 101):
        raise GenomeError('variant', f'published AssembleNets are 50 and 101, got {variant}')
    level_filters = {0: 32, 1: 64, 2: 256, 3: 512} if variant == 50 else \
        {0: 32, 1: 64, 2: 192, 3: 256}
    nodes = [{'type': 'stem', 'modality': m, 'temporal_dilation': d} for m, d in _PUBLISHED_STEMS]
    for level, inputs, _filters, dil, stride, weights in _PUBLISHED_BLOCKS:
        logits = None
        if published_weights and weights is not None:
            logits = [round(logit(w), 6) for w in weights]
        nodes.append({'type': 'block', 'level': level, 'inputs': inputs,
                      'filters': level_filters[level], 'temporal_dilation': dil,
                      'spatial_stride': stride, 'edge_logits': logits})
    return AssembleGenome.normalise({
        'frames': frames, 'size': size, 'frame_stride': frame_stride,
        'depth': depth if depth is not None else variant,
        'bottleneck_widths': PUBLISHED_BOTTLENECK_WIDTHS, 'freeze_edges': freeze_edges,
        'dropout': 0.5, 'nodes': nodes})


TINY_GENOME = AssembleGenome.normalise({
    'frames': 8, 'size': 64, 'frame_stride': 2, 'depth': [1, 2, 2, 1], 'stem_filters': 16,
    'nodes': [
        {'type': 'stem', 'modality': 'rgb', 'temporal_dilation': 1},
        {'type': 'stem', 'modality': 'flow', 'temporal_dilation': 1},
        {'type': 'block', 'level': 0, 'inputs': [0], 'filters': 8, 'temporal_dilation': 1},
        {'type': 'block', 'level': 0, 'inputs': [0, 1], 'filters': 8, 'temporal_dilation': 2},
        {'type': 'block', 'level': 1, 'inputs': [2, 3], 'filters': 16, 'temporal_dilation': 1,
         'spatial_stride': 2},
        {'type': 'block', 'level': 1, 'inputs': [1, 3], 'filters': 16, 'temporal_dilation': 2,
         'spatial_stride': 2},
        {'type': 'block', 'level': 2, 'inputs': [4, 5], 'filters': 32, 'temporal_dilation': 1,
         'spatial_stride': 2},
        {'type': 'block', 'level': 3, 'inputs': [5, 6], 'filters': 32, 'temporal_dilation': 1,
         'spatial_stride': 2},
    ]})

PRESETS = {
    'assemblenet50': published_genome(50),
    'assemblenet101': published_genome(101),
    'assemblenet_tiny': TINY_GENOME,
    'assemblenet_tiny_rgb': rgb_only(TINY_GENOME),
}

DESCRIPTIONS = {
    'assemblenet50': 'AssembleNet-50, published RGB+flow graph and edge weights (32x224)',
    'assemblenet101': 'AssembleNet-101, published graph, depth [3,4,23,3] (32x224)',
    'assemblenet_tiny': 'small RGB+flow AssembleNet (8x64, 0.07 GMACs) for CPU training',
    'assemblenet_tiny_rgb': 'RGB-only ablation of assemblenet_tiny',
}

register_family(Family(FAMILY, AssembleGenome, PRESETS, DESCRIPTIONS))
