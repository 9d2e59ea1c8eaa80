"""Edge ablation: how much each learned AssembleNet connection matters on held-out clips.

The connection-learning rule of the AssembleNet search prunes edges by their learned
sigmoid weight. Whether that is sound can be checked directly: cut one edge (weight 0),
score the model again, restore it, and repeat for every fused edge. The rank correlation
between learned weight and loss increase says how well the weight predicts importance.
Edges that are a block's only input have no weight (they pass through) and are skipped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from vas_ros.errors import VasError


@dataclass
class EdgeEffect:
    src: int
    dst: int
    weight: float  # learned sigmoid weight
    loss_increase: float  # cross-entropy with the edge cut minus with it
    top1_change: float  # top-1 with the edge cut minus with it


def rank_correlation(xs, ys) -> float | None:
    """Spearman's rho (average ranks for ties); None when either side is constant."""
    import numpy as np

    def ranks(values):
        values = np.asarray(values, dtype=float)
        order = np.argsort(values, kind='stable')
        out = np.empty(len(values))
        out[order] = np.arange(len(values))
        for value in np.unique(values):  # ties share their mean rank
            tied = values == value
            out[tied] = out[tied].mean()
        return out

    if len(xs) < 2:
        return None
    rx, ry = ranks(xs), ranks(ys)
    if rx.std() == 0 or ry.std() == 0:
        return None
    return float(np.corrcoef(rx, ry)[0, 1])


def edge_ablation(model, dataset, *, device='cpu', batch_size=16, streams=None,
                  progress=False) -> dict:
    """Cut each weighted edge of an AssembleNet in turn and score `dataset`.

    Returns {"loss", "top1", "n", "edges": [EdgeEffect as dict, ...] (weakest first),
    "spearman": rho(weight, loss increase)}. The model is left as it came.
    """
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from vas_ros.training.evaluate import stream_order

    fusions = getattr(model, 'fusions', None)
    if fusions is None or not callable(getattr(model, 'edge_weights', None)):
        raise VasError(f'edge ablation needs an AssembleNet model, got {type(model).__name__}')
    device = torch.device(device)
    order = stream_order(dataset, streams)
    # Decode (and compute flow) once; every cut is then a forward pass over the same tensors.
    batches = [([inputs[s] for s in order], torch.as_tensor(labels).long())
               for inputs, labels in DataLoader(dataset, batch_size=batch_size, shuffle=False)]
    if not batches:
        raise VasError('edge ablation: the data set holds no clips')

    def score() -> tuple[float, float]:
        loss, hits, count = 0.0, 0, 0
        with torch.no_grad():
            for args, labels in batches:
                logits = model(*[a.to(device) for a in args]).float().cpu()
                loss += float(F.cross_entropy(logits, labels, reduction='sum'))
                hits += int((logits.argmax(dim=1) == labels).sum())
                count += len(labels)
        return loss / count, hits / count

    was_training = model.training
    model.eval()
    try:
        base_loss, base_top1 = score()
        cuts = [(int(key), j, fusion) for key, fusion in fusions.items()
                if fusion.edge_logits is not None for j in range(len(fusion.edge_logits))]
        effects = []
        for dst, j, fusion in tqdm(cuts, desc='edges', leave=False, disable=not progress):
            src = model.node_inputs[dst][j]
            with torch.no_grad():
                saved = fusion.edge_logits[j].clone()
                fusion.edge_logits[j] = float('-inf')  # sigmoid(-inf) = 0: the edge is cut
            try:
                loss, top1 = score()
            finally:
                with torch.no_grad():
                    fusion.edge_logits[j] = saved
            effects.append(EdgeEffect(src, dst, float(torch.sigmoid(saved)),
                                      loss - base_loss, top1 - base_top1))
    finally:
        model.train(was_training)
    effects.sort(key=lambda e: e.weight)
    return {'loss': base_loss, 'top1': base_top1, 'n': sum(len(b[1]) for b in batches),
            'edges': [asdict(e) for e in effects],
            'spearman': rank_correlation([e.weight for e in effects],
                                         [e.loss_increase for e in effects])}
