"""Choosing ensemble members from a search store: the best, or the best diverse, candidates.

`select_candidates` takes K distinct finished candidates: the most accurate (ties: faster)
or, with `diverse`, the best one and then repeatedly the one farthest in genome distance
from those already picked, within the best `pool`. `genome_distance` is the family's own
(`Genome.distance`).
`vas-ros ensemble` (vas_ros.commands.ensemble) uses these, then trains and assembles the
members with vas_ros.training.ensemble_build.
"""

from __future__ import annotations

from pathlib import Path

from vas_ros.errors import VasError
from vas_ros.models.registry import get_family
from vas_ros.search.records import Status
from vas_ros.search.store import SearchStore


def genome_distance(family: str, a: dict, b: dict) -> float:
    """How unalike two genomes of `family` are: the family's own `Genome.distance` (EvaNet
    counts branches added or removed, repeats, stem and pool sizes; the default counts
    differing JSON leaves). No family is named here."""
    return float(get_family(family).distance(a, b))


def select_candidates(records: list, k: int, family: str, *, diverse: bool = False,
                      pool: int | None = None) -> list:
    """K distinct finished candidates: the most accurate (ties: faster) or, with `diverse`,
    the best one and then repeatedly the one farthest (max of min genome distance) from
    those picked, among the best `pool` (ties: more accurate)."""
    done = [r for r in records if r.status == Status.DONE and r.accuracy is not None]
    done.sort(key=lambda r: (-r.accuracy, r.latency_ms if r.latency_ms is not None
                             else float('inf'), r.id))
    distinct, seen = [], set()
    for rec in done:
        if rec.genome_hash not in seen:
            seen.add(rec.genome_hash)
            distinct.append(rec)
    if len(distinct) < k:
        raise VasError(f'the store holds {len(distinct)} distinct trained candidate(s); '
                       f'--top {k} needs at least {k}')
    if not diverse:
        return distinct[:k]
    pool = max(k, pool if pool is not None else 3 * k)
    choices = distinct[:pool]
    picked = [choices.pop(0)]
    while len(picked) < k:
        def spread(rec):
            return min(genome_distance(family, rec.genome, p.genome) for p in picked)

        best = max(range(len(choices)), key=lambda i: (spread(choices[i]), -i))
        picked.append(choices.pop(best))
    return picked


def select_from_store(store: str | Path, k: int, *, diverse: bool = False,
                      pool: int | None = None) -> tuple[str, list]:
    """The search store's family and its K chosen candidates (see `select_candidates`)."""
    with SearchStore.open(store) as opened:
        family = opened.header()['family']
        records = opened.candidates()
    return family, select_candidates(records, k, family, diverse=diverse, pool=pool)
