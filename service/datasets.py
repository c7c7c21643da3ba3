"""Datasets are the folders under --data-root, each opened once with golf's Dataset."""

from __future__ import annotations

import logging
from pathlib import Path

from golf.data.shards import Dataset
from golf.spec.errors import DataError

log = logging.getLogger(__name__)


class Datasets:
    """Name → opened Dataset; folders added while serving are found on first use."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        self._open: dict[str, Dataset] = {}

    def get(self, name: str) -> Dataset | None:
        """The dataset folder `name` directly under the root, or None if there is none."""
        if name in self._open:
            return self._open[name]
        path = self.root / name
        if name != path.name or name.startswith(".") or not path.is_dir():
            return None  # only direct subfolders (symlinks allowed), never a path
        try:
            dataset = Dataset.open(path)
        except DataError as e:
            log.warning("skipping dataset folder %s: %s", path, e)
            return None
        self._open[name] = dataset
        return dataset

    def all(self) -> list[Dataset]:
        if not self.root.is_dir():
            return []
        found = (self.get(p.name) for p in sorted(self.root.iterdir()) if p.is_dir())
        return [dataset for dataset in found if dataset is not None]
