"""A picture of an AssembleNet graph: which streams feed which blocks, and how strongly.

Nodes sit in columns by level (stems in the left column, then levels 0-3, the head at the
right), coloured by the modalities they descend from (RGB only, flow only, or mixed);
each edge is drawn darker and thicker the larger its sigmoid connection weight.

It takes a parsed `AssembleGenome` and tells stems from blocks by `node.is_stem`, so it needs
nothing from the family module, which calls it from its `artefacts` hook.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vas_ros.models.assemblenet import AssembleGenome

COLOURS = {'rgb': '#d9534f', 'flow': '#3b7dd8', 'mixed': '#8e5bb5'}


def _ancestry(genome) -> list[str]:
    kinds: list[set[str]] = []
    for node in genome.nodes:
        if node.is_stem:
            kinds.append({node.modality})
        else:
            kinds.append(set().union(*(kinds[s] for s in node.inputs)))
    return [next(iter(k)) if len(k) == 1 else 'mixed' for k in kinds]


def genome_edge_weights(g: AssembleGenome) -> dict[tuple[int, int], float]:
    """Edge weights stored in the genome (sigmoid of `edge_logits`; 0.5 where unset,
    1.0 for a block's only input)."""
    out = {}
    for node in g.blocks:
        for j, src in enumerate(node.inputs):
            if len(node.inputs) == 1:
                out[(src, node.id)] = 1.0
            elif node.edge_logits is None:
                out[(src, node.id)] = 0.5
            else:
                out[(src, node.id)] = 1 / (1 + math.exp(-node.edge_logits[j]))
    return out


def plot_graph(g: AssembleGenome, weights: dict[tuple[int, int], float] | None, path,
               title: str | None = None) -> Path:
    """Write a PNG of genome `g` to `path`; `weights` is {(src, dst): sigmoid weight}
    (e.g. `model.edge_weights()`), or None to use the genome's own edge logits."""
    from matplotlib.lines import Line2D

    from vas_ros.plotting import pyplot, save_figure

    plt = pyplot()

    weights = {**genome_edge_weights(g), **(weights or {})}
    kinds = _ancestry(g)
    columns: dict[int, list[int]] = {}
    for node in g.nodes:
        col = 0 if node.is_stem else node.level + 1
        columns.setdefault(col, []).append(node.id)
    pos = {}
    for col, ids in columns.items():
        for row, nid in enumerate(ids):
            pos[nid] = (col, (row - (len(ids) - 1) / 2) * 1.2)
    head = (5.2, 0.0)

    tallest = max(len(ids) for ids in columns.values())
    fig, ax = plt.subplots(figsize=(10, max(4.0, 1.0 + 0.9 * tallest)), dpi=110)
    cmap = plt.get_cmap('Greys')
    for (src, dst), w in sorted(weights.items(), key=lambda item: item[1]):
        if src not in pos or dst not in pos:
            continue
        (x0, y0), (x1, y1) = pos[src], pos[dst]
        ax.annotate('', xy=(x1 - 0.17, y1), xytext=(x0 + 0.17, y0),
                    arrowprops={'arrowstyle': '-|>', 'color': cmap(0.15 + 0.85 * w),
                                'lw': 0.5 + 2.5 * w, 'shrinkA': 0, 'shrinkB': 0,
                                'connectionstyle': 'arc3,rad=0.08'},
                    zorder=1)
        if 0 < w < 1:
            ax.text(x0 + 0.62 * (x1 - x0), y0 + 0.62 * (y1 - y0), f'{w:.2f}', fontsize=6,
                    color='#444444', ha='center', va='center', zorder=2,
                    bbox={'boxstyle': 'round,pad=0.1', 'fc': 'white', 'ec': 'none',
                          'alpha': 0.7})
    for nid in g.head_nodes:
        x, y = pos[nid]
        ax.annotate('', xy=(head[0] - 0.25, head[1]), xytext=(x + 0.17, y),
                    arrowprops={'arrowstyle': '-|>', 'color': 'black', 'lw': 1.2})
    for node in g.nodes:
        x, y = pos[node.id]
        ax.scatter([x], [y], s=900, color=COLOURS[kinds[node.id]], zorder=3,
                   marker='s' if node.is_stem else 'o', edgecolors='black')
        if not node.is_stem:
            label = f'{node.id}\n{node.filters}f d{node.temporal_dilation}'
        else:
            label = f'{node.id}\n{node.modality} d{node.temporal_dilation}'
        ax.text(x, y, label, ha='center', va='center', fontsize=6.5, color='white',
                zorder=4, fontweight='bold')
    ax.scatter([head[0]], [head[1]], s=1100, color='#555555', marker='D', zorder=3)
    ax.text(head[0], head[1], 'head', ha='center', va='center', color='white', fontsize=7,
            zorder=4)
    ax.set_xticks(range(5), ['stems', 'level 0', 'level 1', 'level 2', 'level 3'])
    ax.set_yticks([])
    ax.set_xlim(-0.6, 5.8)
    span = max(abs(y) for _, y in pos.values()) + 0.8
    ax.set_ylim(-span, span)
    for side in ('top', 'right', 'left'):
        ax.spines[side].set_visible(False)
    handles = [Line2D([], [], marker='o', linestyle='', color=c, markersize=10, label=k)
               for k, c in COLOURS.items()]
    ax.legend(handles=handles, title='ancestry', loc='lower right', fontsize=7,
              title_fontsize=7, frameon=False)
    ax.set_title(title or f'AssembleNet graph: {len(g.stems)} stems, {len(g.blocks)} blocks; '
                 'darker edge = larger learned weight', fontsize=9)
    return save_figure(plt, fig, path)
