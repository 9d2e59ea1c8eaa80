"""The picture of a search: accuracy vs latency, the Pareto front and the budget line."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from vas_ros.search.records import Status


def pareto_front(points: Iterable[tuple[float, float, int]]) -> list[tuple[float, float, int]]:
    """(latency, accuracy, id) points no other point beats on both (faster AND at least as
    accurate), sorted by latency."""
    front: list[tuple[float, float, int]] = []
    best_acc = float('-inf')
    for lat, acc, cid in sorted(points, key=lambda p: (p[0], -p[1], p[2])):
        if acc > best_acc:
            front.append((lat, acc, cid))
            best_acc = acc
    return front


def plot_pareto(records, budget_ms: float, path, *, best_id: int | None = None,
                title: str = 'accuracy vs latency') -> Path:
    """Trained candidates as dots, rejected ones as crosses on the floor, the front as a
    step line, the budget as a vertical line, the best as a star. Written atomically."""
    from vas_ros.plotting import pyplot, save_figure

    plt = pyplot()
    done = [r for r in records if r.status == Status.DONE and r.latency_ms is not None]
    rejected = [r for r in records if r.status == Status.REJECTED and r.latency_ms is not None]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    if done:
        ax.scatter([r.latency_ms for r in done], [r.accuracy for r in done], s=22,
                   c=[r.id for r in done], cmap='viridis', label='trained (colour = order)',
                   zorder=3)
        front = pareto_front((r.latency_ms, r.accuracy, r.id) for r in done)
        ax.step([p[0] for p in front], [p[1] for p in front], where='post', color='tab:red',
                lw=1.5, label='Pareto front', zorder=2)
    if rejected:
        ax.scatter([r.latency_ms for r in rejected], [0.0] * len(rejected), marker='x',
                   color='grey', s=22, label='rejected (over budget)', zorder=2)
    best = next((r for r in done if r.id == best_id), None)
    if best is not None:
        ax.scatter([best.latency_ms], [best.accuracy], marker='*', s=220, color='gold',
                   edgecolor='black', label=f'best (#{best.id})', zorder=4)
    ax.axvline(budget_ms, color='black', ls='--', lw=1, label=f'budget {budget_ms:g} ms')
    latencies = [r.latency_ms for r in done + rejected] + [budget_ms]
    if max(latencies) / max(min(latencies), 1e-6) > 30:
        from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

        ax.set_xscale('log')
        # Plain 1, 2, 5, 10, 20, ... labels; matplotlib's minor labels collide on short axes.
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel('latency per clip (ms, median, batch 1)')
    ax.set_ylabel('validation top-1 after proxy training')
    top = max([r.accuracy for r in done], default=1.0)
    ax.set_ylim(-0.03, min(1.05, top + 0.1))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc='best')
    return save_figure(plt, fig, path)
