"""When each item was interacted with, queryable "as of" any moment.

Every time-aware signal of the pipeline (trending, item age, a person's recent activity) must
only see interactions from before the moment it is asked about: offline that moment is each
person's split point, online it is now. Sorting ``(item, second)`` keys once makes every such
question two binary searches, for any number of (item, moment) pairs at once.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt

from persona.clock import DAY_S
from persona.recommend.dataset import IntArray, Interactions

_SHIFT = 34  # seconds fit in 34 bits until the year 2514; item indices get the upper 29 bits


class ItemTimeline:
    def __init__(self, data: Interactions) -> None:
        seconds = data.timestamps_ms // 1000
        self._keys = np.sort((data.items.astype(np.int64) << _SHIFT) | seconds)
        self.n_items = data.n_items
        counts = np.bincount(data.items, minlength=data.n_items)
        self.total_counts = counts.astype(np.float32)
        first = np.full(data.n_items, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first, data.items, seconds)
        self.first_seen_s = first
        self._every_item = np.arange(data.n_items, dtype=np.int64)
        # Serving asks about "now" for every request: within a second the answer is the same.
        self._cached_window_counts = lru_cache(maxsize=64)(self._window_counts)

    def count_between(
        self, items: IntArray, start_s: npt.ArrayLike, end_s: npt.ArrayLike
    ) -> npt.NDArray[np.float32]:
        """How many interactions each item had in ``[start_s, end_s)`` (element-wise)."""
        base = items.astype(np.int64) << _SHIFT
        start = np.clip(np.asarray(start_s, dtype=np.int64), 0, (1 << _SHIFT) - 1)
        end = np.clip(np.asarray(end_s, dtype=np.int64), 0, (1 << _SHIFT) - 1)
        hi = np.searchsorted(self._keys, base | end, side="left")
        lo = np.searchsorted(self._keys, base | start, side="left")
        return (hi - lo).astype(np.float32)

    def count_before(
        self, items: IntArray, as_of_s: npt.ArrayLike, window_days: float
    ) -> npt.NDArray[np.float32]:
        as_of = np.asarray(as_of_s, dtype=np.int64)
        return self.count_between(items, as_of - int(window_days * DAY_S), as_of)

    def window_counts(self, as_of_s: int, window_days: float) -> npt.NDArray[np.float32]:
        """Every item's interactions in the window before ``as_of_s`` (read-only, memoized)."""
        return self._cached_window_counts(int(as_of_s), float(window_days))

    def _window_counts(self, as_of_s: int, window_days: float) -> npt.NDArray[np.float32]:
        counts = self.count_before(self._every_item, as_of_s, window_days)
        counts.flags.writeable = False
        return counts

    def trending(self, as_of_s: IntArray, windows_days: tuple[float, ...]) -> np.ndarray:
        """A rows x items trending score: interactions in recent windows before each row's moment.

        Shorter windows weigh more: each window's count is divided by its length, so the score
        approximates a decayed rate of interactions per day.
        """
        scores = np.zeros((len(as_of_s), self.n_items), dtype=np.float32)
        for row, moment in enumerate(as_of_s):
            for days in windows_days:
                scores[row] += self.window_counts(moment, days) / np.float32(days)
        return scores
