"""AssembleNet search space: connection-learning-guided evolution of multi-stream graphs.

Random genomes are over-connected graphs: RGB and flow stems, 4 levels of blocks, each
block wired to many earlier nodes. Mutations split a block, merge two blocks of a level,
add or remove a connection, change a temporal dilation or a level's filters. After a
candidate's proxy training, `after_training` reads the learned sigmoid edge weights and

- prunes every edge whose weight is below `prune_threshold` (default 0.2), weakest first,
  except an edge that is the last input of its destination or the last consumer of its
  source (so no node is ever left without inputs or without a path to the head);
- proposes `propose_edges` (default 2) new random edges, so the graph keeps exploring.

For the weights to say anything after a proxy of ~100 steps, random genomes carry
`edge_lr_scale` = 100: the trainer gives the edge logits 100x the learning rate and no
weight decay. At 1x (AdamW, lr 1e-3) a logit moves about 1e-3 per step and every weight is
still 0.49-0.51 after 100 steps; at 100x they spread to 0.14-0.94 (docs/assemblenet.md).

Surviving edges keep their learned logits in the genome (for the record and the graph
picture); `mutate` clears all logits, so every child relearns its connection weights from
sigmoid(~0) = 0.5 (one-shot connection learning, as published). Every genome this module
returns has been checked by the family, reached through the registry.
"""

from __future__ import annotations

import random

from vas_ros.errors import VasError
from vas_ros.models.registry import get_family
from vas_ros.models.spec import STREAMS
from vas_ros.search.space import SearchSpace, genome_hash, register_space

FAMILY = 'assemblenet'

DILATIONS = (1, 2, 4, 8)
DEFAULTS = {
    'frames': 8,
    'size': 64,
    'frame_stride': 2,
    'depth': [1, 1, 1, 1],
    'stem_filters': 16,
    'base_filters': [8, 16],          # level-0 filters drawn from this; x2 per level after
    'max_filters': 64,
    'max_blocks': 14,
    'modalities': list(STREAMS),
    'connect_prob': 0.6,              # chance of each eligible edge in a random graph
    'prune_threshold': 0.2,
    'propose_edges': 2,
    'edge_lr_scale': 100.0,           # edge logits learn this much faster (see module doc)
}


# ----------------------------------------------------------------------------- graph edits
# Work on a list of node dicts whose `inputs` name other nodes by a stable `key`; `_finish`
# sorts (stems, then blocks by level, stable), renumbers and validates.


def _graph(genome: dict) -> tuple[dict, list[dict]]:
    top = {k: v for k, v in genome.items() if k != 'nodes'}
    nodes = []
    for node in genome['nodes']:
        node = dict(node)
        node['key'] = node.pop('id')
        if node['type'] == 'block':
            node['inputs'] = list(node['inputs'])
            logits = node.get('edge_logits')
            node['edge_logits'] = None if logits is None else list(logits)
        nodes.append(node)
    return top, nodes


def _finish(top: dict, nodes: list[dict], keep_logits: bool = True) -> dict:
    order = sorted(nodes, key=lambda n: (n['type'] != 'stem', n.get('level', -1)))
    new_id = {n['key']: i for i, n in enumerate(order)}
    out = []
    for node in order:
        node = {k: v for k, v in node.items() if k != 'key'}
        if node['type'] == 'block':
            node['inputs'] = [new_id[s] for s in node['inputs']]
            if not keep_logits or node.get('edge_logits') is None \
                    or len(node['edge_logits']) != len(node['inputs']):
                node['edge_logits'] = None
        out.append(node)
    return get_family(FAMILY).validate({**top, 'nodes': out})


def _level(node: dict) -> int:
    return -1 if node['type'] == 'stem' else node['level']


def _can_feed(src: dict, dst: dict) -> bool:
    """Edges the search creates: stems feed any block, blocks feed higher levels."""
    return dst['type'] == 'block' and _level(src) < dst['level']


def _consumers(nodes: list[dict], key) -> list[dict]:
    return [n for n in nodes if n['type'] == 'block' and key in n['inputs']]


def _add_input(node: dict, src_key, logit: float | None = None) -> None:
    node['inputs'].append(src_key)
    if node.get('edge_logits') is not None:
        node['edge_logits'].append(0.0 if logit is None else logit)


def _drop_input(node: dict, src_key) -> None:
    j = node['inputs'].index(src_key)
    node['inputs'].pop(j)
    if node.get('edge_logits') is not None:
        node['edge_logits'].pop(j)


def _repair(nodes: list[dict], rng: random.Random) -> None:
    """Give every block an input and every node a consumer (hence a path to the head)."""
    for node in nodes:
        if node['type'] == 'block' and not node['inputs']:
            sources = [n for n in nodes if _can_feed(n, node)]
            _add_input(node, rng.choice(sources)['key'])
    # Higher levels first: when a node is handled, every possible consumer already
    # reaches the head, so one new edge suffices.
    for node in sorted(nodes, key=_level, reverse=True):
        if _level(node) == 3 or _consumers(nodes, node['key']):
            continue
        targets = [n for n in nodes if _can_feed(node, n)]
        _add_input(rng.choice(targets), node['key'])


# ----------------------------------------------------------------------------- the space


class AssembleNetSpace(SearchSpace):
    """Random graphs, mutations and the learned-weight pruning rule, with options."""

    family = FAMILY
    description = 'multi-stream RGB+flow graphs; learned edge weights prune and grow edges'
    DEFAULTS = DEFAULTS

    def check_options(self, options: dict) -> dict:
        mods = options['modalities']
        if not mods or any(m not in STREAMS for m in mods):
            raise VasError(f'assemblenet search space: modalities must be a non-empty subset '
                           f'of rgb, flow, got {mods!r}')
        if int(options['max_blocks']) < 4:
            raise VasError('assemblenet search space: max_blocks must be >= 4 (one per level)')
        if not 0 <= float(options['prune_threshold']) < 1:
            raise VasError('assemblenet search space: prune_threshold must be in [0, 1)')
        if not 0 < float(options['edge_lr_scale']) <= 1000:
            raise VasError('assemblenet search space: edge_lr_scale must be in (0, 1000]')
        return options

    # -- random graphs

    def _level_filters(self, rng: random.Random) -> list[int]:
        base = rng.choice(self.options['base_filters'])
        return [min(base * 2 ** level, self.options['max_filters']) for level in range(4)]

    def draw(self, rng: random.Random) -> dict:
        opts = self.options
        nodes, key = [], 0
        for modality in opts['modalities']:
            for _ in range(rng.randint(1, 2)):
                dil = rng.choice(DILATIONS[:3]) if modality == 'rgb' else 1
                nodes.append({'key': key, 'type': 'stem', 'modality': modality,
                              'temporal_dilation': dil})
                key += 1
        filters = self._level_filters(rng)
        budget = opts['max_blocks']
        counts = [rng.randint(2, 4), rng.randint(2, 4), rng.randint(1, 3), rng.randint(1, 2)]
        while sum(counts) > budget:
            counts[counts.index(max(counts))] -= 1
        for level, count in enumerate(counts):
            for _ in range(count):
                node = {'key': key, 'type': 'block', 'level': level, 'inputs': [],
                        'filters': filters[level], 'temporal_dilation': rng.choice(DILATIONS),
                        'spatial_stride': 1 if level == 0 else 2, 'edge_logits': None}
                for src in nodes:
                    if _can_feed(src, node) and rng.random() < opts['connect_prob']:
                        node['inputs'].append(src['key'])
                nodes.append(node)
                key += 1
        _repair(nodes, rng)
        top = {'frames': opts['frames'], 'size': opts['size'],
               'frame_stride': opts['frame_stride'], 'depth': list(opts['depth']),
               'stem_filters': opts['stem_filters'],
               'edge_lr_scale': float(opts['edge_lr_scale'])}
        return _finish(top, nodes, keep_logits=False)

    # -- mutations

    def _split(self, nodes, rng):
        blocks = [n for n in nodes if n['type'] == 'block']
        if len(blocks) >= self.options['max_blocks']:
            return False
        node = rng.choice(blocks)
        twin = {**node, 'key': max(n['key'] for n in nodes) + 1, 'edge_logits': None}
        if len(node['inputs']) >= 2:
            inputs = list(node['inputs'])
            rng.shuffle(inputs)
            cut = rng.randint(1, len(inputs) - 1)
            twin['inputs'] = inputs[:cut]
            node['inputs'] = inputs[cut:]
            node['edge_logits'] = None
        else:
            twin['inputs'] = list(node['inputs'])
        twin['temporal_dilation'] = rng.choice(DILATIONS)
        for consumer in _consumers(nodes, node['key']):
            if consumer['level'] > node['level']:
                _add_input(consumer, twin['key'])
        nodes.append(twin)
        return True

    def _merge(self, nodes, rng):
        by_level = {}
        for n in nodes:
            if n['type'] == 'block':
                by_level.setdefault(n['level'], []).append(n)
        levels = [lv for lv, group in by_level.items() if len(group) >= 2]
        if not levels:
            return False
        keep, gone = rng.sample(by_level[rng.choice(levels)], 2)
        keep['inputs'] = [s for s in dict.fromkeys(keep['inputs'] + gone['inputs'])
                          if s not in (keep['key'], gone['key'])]
        keep['filters'] = max(keep['filters'], gone['filters'])
        keep['temporal_dilation'] = rng.choice([keep['temporal_dilation'],
                                                gone['temporal_dilation']])
        keep['edge_logits'] = None
        for consumer in _consumers(nodes, gone['key']):
            _drop_input(consumer, gone['key'])
            if keep['key'] not in consumer['inputs']:
                _add_input(consumer, keep['key'])
        nodes.remove(gone)
        return True

    def _add_edge(self, nodes, rng):
        pairs = [(s, d) for d in nodes for s in nodes
                 if _can_feed(s, d) and s['key'] not in d['inputs']]
        if not pairs:
            return False
        src, dst = rng.choice(pairs)
        _add_input(dst, src['key'])
        return True

    def _remove_edge(self, nodes, rng):
        removable = [(s, d) for d in nodes if d['type'] == 'block' and len(d['inputs']) >= 2
                     for s in d['inputs']
                     if len(_consumers(nodes, s)) >= 2 or _level(self._by_key(nodes, s)) == 3]
        if not removable:
            return False
        src, dst = rng.choice(removable)
        _drop_input(dst, src)
        return True

    @staticmethod
    def _by_key(nodes, key):
        return next(n for n in nodes if n['key'] == key)

    def _dilation(self, nodes, rng):
        candidates = [n for n in nodes if n['type'] == 'block' or n['modality'] == 'rgb']
        node = rng.choice(candidates)
        node['temporal_dilation'] = rng.choice(
            [d for d in DILATIONS if d != node['temporal_dilation']])
        return True

    def _filters(self, nodes, rng):
        node = rng.choice([n for n in nodes if n['type'] == 'block'])
        choices = sorted({max(4, node['filters'] // 2), min(node['filters'] * 2,
                                                             self.options['max_filters'])}
                         - {node['filters']})
        if not choices:
            return False
        new = rng.choice(choices)
        group = ([n for n in nodes if n.get('level') == 3] if node['level'] == 3 else [node])
        for n in group:
            n['filters'] = new
        return True

    MUTATIONS = ('split', 'merge', 'add_edge', 'remove_edge', 'dilation', 'filters')

    def edit(self, genome: dict, rng: random.Random, kind: str | None = None) -> dict | None:
        """One mutation (`kind`, or one drawn) of a graph without logits, or None."""
        top, nodes = _graph(genome)
        top['edge_lr_scale'] = float(self.options['edge_lr_scale'])  # seeds from presets too
        op = kind or rng.choice(self.MUTATIONS)
        if not getattr(self, f'_{op}')(nodes, rng):
            if kind:
                raise VasError(f'mutation {kind!r} does not apply to this graph')
            return None
        _repair(nodes, rng)
        return _finish(top, nodes, keep_logits=False)

    def mutate(self, genome: dict, rng: random.Random, kind: str | None = None) -> dict:
        """One structural or parameter change; retried until the graph actually changes.

        The comparison is against the parent without its logits, since every child
        relearns its connection weights."""
        if kind is not None and kind not in self.MUTATIONS:
            raise VasError(f'unknown mutation {kind!r}; known: {", ".join(self.MUTATIONS)}')
        base = _finish(*_graph(self.validate(genome)), keep_logits=False)
        for _ in range(20):
            child = self.edit(base, rng, kind)
            if child is not None and child != base:
                return child
        raise VasError('could not find a mutation that changes this AssembleNet graph')

    # -- connection-learning guidance

    def after_training(self, genome: dict, model) -> dict:
        """Prune weak edges by their learned sigmoid weight, then propose new ones."""
        weights = model.edge_weights()
        threshold = float(self.options['prune_threshold'])
        genome = self.validate(genome)
        top, nodes = _graph(genome)
        by_key = {n['key']: n for n in nodes}
        for node in nodes:  # keep what was learned, so the record and picture can show it
            if node['type'] == 'block':
                node['edge_logits'] = ([_logit(weights.get((s, node['key']), 0.5))
                                        for s in node['inputs']]
                                       if len(node['inputs']) > 1 else None)
        weak = sorted((w, s, d) for (s, d), w in weights.items()
                      if w < threshold and d in by_key and s in by_key[d]['inputs'])
        for _w, src, dst in weak:
            if len(by_key[dst]['inputs']) < 2:
                continue
            if _level(by_key[src]) != 3 and len(_consumers(nodes, src)) < 2:
                continue
            _drop_input(by_key[dst], src)
        rng = random.Random(genome_hash(genome))
        for _ in range(int(self.options['propose_edges'])):
            self._add_edge(nodes, rng)
        return _finish(top, nodes, keep_logits=True)


def _logit(p: float) -> float:
    from vas_ros.models.layers.fusion import logit

    return round(logit(p), 6)


register_space(AssembleNetSpace())
