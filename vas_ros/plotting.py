"""The one way this package makes and saves matplotlib figures.

Headless (Agg), and every PNG is written through a temp file beside it (a reader, e.g. a
dashboard polling a run folder, never sees half an image) with the figure freed whatever
happens.
"""

from __future__ import annotations

from pathlib import Path

from vas_ros.atomic import atomic_path


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    return plt


def save_figure(plt, fig, path, dpi=None) -> Path:
    """Lay out `fig`, write it to `path` atomically and close it; `dpi=None` keeps the
    figure's own. The format follows the file extension (PNG when there is none)."""
    path = Path(path)
    try:
        fig.tight_layout()
        with atomic_path(path, suffix='.tmp' + path.suffix) as tmp:
            fig.savefig(tmp, dpi=dpi or 'figure', format=path.suffix[1:] or 'png')
    finally:
        plt.close(fig)
    return path
