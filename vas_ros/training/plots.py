"""Training curves and confusion matrices as PNG files (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

from vas_ros.plotting import pyplot, save_figure

DPI = 110


def plot_curves(history: list[dict], path, title: str = '') -> Path:
    """Loss (train, val) and accuracy (train, val top-1, chance) per epoch."""
    plt = pyplot()
    epochs = [h['epoch'] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [h.get('train_loss') for h in history], 'o-', label='train')
    ax_loss.plot(epochs, [h.get('val_loss') for h in history], 's-', label='val')
    ax_loss.set_xlabel('epoch')
    ax_loss.set_ylabel('cross-entropy')
    ax_loss.set_title('loss')
    ax_loss.grid(alpha=0.3)
    ax_loss.legend()
    ax_acc.plot(epochs, [h.get('train_top1') for h in history], 'o-', label='train top-1')
    ax_acc.plot(epochs, [h.get('val_top1') for h in history], 's-', label='val top-1')
    chance = history[-1].get('chance') if history else None
    if chance:
        ax_acc.axhline(chance, color='grey', linestyle='--', label=f'chance {chance:.3f}')
    ax_acc.set_ylim(0, 1.02)
    ax_acc.set_xlabel('epoch')
    ax_acc.set_ylabel('accuracy')
    ax_acc.set_title('accuracy')
    ax_acc.grid(alpha=0.3)
    ax_acc.legend()
    if title:
        fig.suptitle(title)
    return save_figure(plt, fig, path, DPI)


def plot_confusion(confusion: list[list[int]], classes: list[str], path,
                   title: str = '') -> Path:
    """Rows: true class, columns: predicted class, counts written in each cell."""
    plt = pyplot()
    size = max(4.0, 0.6 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(confusion, cmap='Blues')
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha='right')
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel('predicted')
    ax.set_ylabel('true')
    peak = max((max(row) for row in confusion), default=0) or 1
    for i, row in enumerate(confusion):
        for j, count in enumerate(row):
            if count:
                ax.text(j, i, str(count), ha='center', va='center',
                        color='white' if count > peak / 2 else 'black', fontsize=8)
    fig.colorbar(image, ax=ax)
    if title:
        ax.set_title(title)
    return save_figure(plt, fig, path, DPI)


def plot_edge_ablation(result: dict, path, title: str = '',
                       prune_threshold: float | None = None) -> Path:
    """Learned edge weight against the loss increase when the edge is cut (one dot each)."""
    plt = pyplot()
    edges = result['edges']
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.scatter([e['weight'] for e in edges], [e['loss_increase'] for e in edges],
               s=24, alpha=0.8)
    ax.axhline(0, color='grey', linewidth=0.8)
    if prune_threshold is not None:
        ax.axvline(prune_threshold, color='tab:red', linestyle='--',
                   label=f'prune threshold {prune_threshold:g}')
        ax.legend(loc='upper left')
    ax.set_xlabel('learned edge weight (sigmoid)')
    ax.set_ylabel('val loss increase when cut')
    rho = result.get('spearman')
    ax.set_title(title or (f'{len(edges)} edges, Spearman rho '
                           f'{"n/a" if rho is None else f"{rho:.2f}"}'))
    ax.grid(alpha=0.3)
    return save_figure(plt, fig, path, DPI)
