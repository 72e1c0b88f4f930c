"""What data a pack trains on, when not the sweep's own splits: one small interface.

A pack's ``view`` is ``None`` (the sweep's training and validation splits) or an object with
``data(splits)``, which returns the splits the pack trains on and, where its members form
groups (``packed_training.MemberGroups``), each group's rows. Two views exist, both the
refit's (``refit``): ``AllData`` (training and validation data as one training set, for a
refit that trains alone) and ``Restarts`` (the same, for a pack whose groups are one setting
from several seeds).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from mnist_core.data import Splits
from mnist_core.packed_training import MemberGroups


@dataclass(frozen=True)
class AllData:
    """Training + validation data as one training set; no validation split."""

    def data(self, splits: Splits) -> tuple[Splits, None]:
        return pooled(splits), None


@dataclass(frozen=True)
class Restarts:
    """Training + validation data as one training set for ``count`` groups of a pack's
    members, each group its own seed's: the refit's seeds in one pack."""

    count: int

    def data(self, splits: Splits) -> tuple[Splits, MemberGroups]:
        data = pooled(splits)
        rows = np.arange(len(data.y_train))
        return data, MemberGroups((rows,) * self.count, (rows[:0],) * self.count)


def view_data(view: AllData | Restarts | None,
              splits: Splits) -> tuple[Splits, MemberGroups | None]:
    """The data a pack with ``view`` trains on, and its groups' rows (None: no groups)."""
    return (splits, None) if view is None else view.data(splits)


def pooled(splits: Splits) -> Splits:
    """Training and validation data as one training set; no validation split."""
    return dataclasses.replace(
        splits, x_train=np.concatenate([splits.x_train, splits.x_val]),
        y_train=np.concatenate([splits.y_train, splits.y_val]),
        x_val=splits.x_val[:0], y_val=splits.y_val[:0])
