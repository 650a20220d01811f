"""Suite-wide order: the longest tests start first.

``make test`` runs two workers that steal work from each other (``--dist worksteal``); a test of
several minutes that starts last keeps one worker busy after the other has finished, so the
tests marked ``longest`` go to the front of the collection (the order is otherwise unchanged).
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker("longest") is None)  # stable: the rest keep their order
