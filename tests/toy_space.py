"""A search space over plain functions and genomes no family checks, for engine tests."""

from __future__ import annotations

from vas_ros.search.space import SearchSpace


class ToySpace(SearchSpace):
    """`draw(rng)` and `edit(genome, rng)` given as functions; every genome is accepted."""

    family = 'toy'

    def __init__(self, draw, edit):
        super().__init__()
        self._draw, self._edit = draw, edit

    def validate(self, genome: dict) -> dict:
        return genome

    def draw(self, rng):
        return self._draw(rng)

    def edit(self, genome, rng):
        return self._edit(genome, rng)
