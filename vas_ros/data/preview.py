"""A PNG showing what a data set's clips look like, and the optical flow a model gets."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vas_ros.data.flow import compute_flow, flow_to_rgb


def write_preview(source, out, *, split: str = 'train', size: int = 112, frames: int = 16,
                  flow_method: str = 'dis', columns: int = 4) -> Path:
    """One row per class (its first clip): `columns` frames, then their flow pictures."""
    from vas_ros.data.datasets import open_dataset
    from vas_ros.models.spec import InputSpec
    from vas_ros.plotting import pyplot, save_figure

    plt = pyplot()

    spec = InputSpec(frames=frames, size=size)
    data = open_dataset(source, split, spec)
    firsts = {}
    for index, label in enumerate(data.labels):
        firsts.setdefault(label, index)
    rows = sorted(firsts)
    fig, axes = plt.subplots(len(rows), 2 * columns, squeeze=False,
                             figsize=(2 * columns * 1.3, len(rows) * 1.4))
    for row, label in enumerate(rows):
        clip = data.clip(firsts[label])
        flow = compute_flow(clip, flow_method)
        picks = np.linspace(0, len(clip) - 1, columns).round().astype(int)
        top = max(float(np.percentile(np.linalg.norm(flow, axis=-1), 99)), 1e-3)
        for col, t in enumerate(picks):
            axes[row, col].imshow(clip[t])
            axes[row, columns + col].imshow(flow_to_rgb(flow[min(t, len(clip) - 2)], top))
            if row == 0:
                axes[row, col].set_title(f'frame {t}', fontsize=7)
                axes[row, columns + col].set_title(f'flow {t}', fontsize=7)
        axes[row, 0].set_ylabel(data.classes[label], fontsize=7)
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f'{source} [{split}]: frames and {flow_method} flow '
                 f'(hue = direction, brightness = speed)', fontsize=8)
    return save_figure(plt, fig, out, dpi=110)
