"""Perceptually uniform, colour-blind-safe colour maps for probabilities, without matplotlib.

The stops are matplotlib's ``viridis`` and ``cividis`` at 0, 1/8, ..., 1 (importing matplotlib
costs half a second at start-up; PNG export uses matplotlib's own maps).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from rich.color import Color
from rich.style import Style

STOPS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "viridis": ((68, 1, 84), (71, 44, 123), (58, 82, 139), (44, 114, 142), (32, 144, 140),
                (40, 174, 127), (94, 201, 97), (173, 220, 48), (253, 231, 36)),
    "cividis": ((0, 34, 77), (26, 56, 111), (67, 78, 107), (97, 100, 111), (124, 123, 120),
                (155, 147, 118), (187, 173, 108), (222, 201, 87), (253, 231, 55)),
}
LEVELS = 32  # distinct shades: plenty for a terminal cell


@lru_cache(maxsize=None)
def shade(name: str, level: int) -> Style:
    """The style of shade ``level`` (0..LEVELS-1) of the colour map ``name``."""
    stops = STOPS[name]
    x = level / (LEVELS - 1) * (len(stops) - 1)
    i = min(int(x), len(stops) - 2)
    f = x - i
    rgb = tuple(round(a + (b - a) * f) for a, b in zip(stops[i], stops[i + 1]))
    return Style(bgcolor=Color.from_rgb(*rgb), color=Color.from_rgb(*rgb))


def cell_style(p: float, name: str = "viridis") -> Style:
    """The style of one heatmap cell holding probability p in 0..1."""
    return shade(name, int(levels(np.asarray(p))))


def levels(p: np.ndarray) -> np.ndarray:
    """The shade index (0..LEVELS-1) of probabilities in 0..1: [...] -> [...] int."""
    return np.rint(np.clip(p.astype(np.float64), 0.0, 1.0) * (LEVELS - 1)).astype(np.int64)
