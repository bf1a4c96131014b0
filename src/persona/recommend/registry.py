"""Versioned model sets in the home directory, with their offline metrics.

A version is a directory ``models/<version>/`` holding only safe formats: a JSON manifest,
numpy ``.npz`` arrays (loaded with ``allow_pickle=False``), and LightGBM's text model.
``models/champion`` names the version in service. A challenger is promoted only when its
validation NDCG@10 is not worse than the champion's.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from persona.clock import utc
from persona.durable import fsync_path
from persona.errors import NotFoundError
from persona.recommend.dataset import CONTEXT_FIELDS, ContextColumns, Interactions, ItemTable
from persona.recommend.shortlists import ShortlistTable

CHAMPION = "champion"
PREVIOUS = "previous-champion"
SHORTLISTS = "shortlists.npz"
KEEP_VERSIONS = 3  # model sets are large (an EASE matrix is items^2 floats): keep a few


@dataclass(frozen=True)
class ModelVersion:
    version: str
    path: Path
    manifest: dict[str, Any]

    @property
    def metrics(self) -> dict[str, float]:
        return dict(self.manifest.get("metrics", {}))

    @property
    def validation_ndcg(self) -> float | None:
        value = self.metrics.get("ndcg@10")
        return None if value is None else float(value)


class ModelRegistry:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._in_use: Callable[[], Collection[str]] | None = None  # see ``keep_in_use``

    def versions(self) -> list[ModelVersion]:
        if not self.root.exists():
            return []
        found = []
        for path in sorted(self.root.iterdir()):
            manifest = path / "manifest.json"
            if path.is_dir() and manifest.exists():
                found.append(ModelVersion(path.name, path, json.loads(manifest.read_text())))
        return found

    def get(self, version: str) -> ModelVersion | None:
        return next((v for v in self.versions() if v.version == version), None)

    def new_version_name(self, now_ms: int) -> str:
        """``v<UTC time>``, with a counter when that name is taken (a fast or frozen clock)."""
        base = utc(now_ms).strftime("v%Y%m%dT%H%M%S%fZ")
        name, n = base, 1
        while (self.root / name).exists():
            n += 1
            name = f"{base}-{n}"
        return name

    def champion(self) -> ModelVersion | None:
        pointer = self.root / CHAMPION
        if not pointer.exists():
            return None
        return self.get(pointer.read_text().strip())

    def save(
        self,
        version: str,
        manifest: dict[str, Any],
        data: Interactions,
        source_arrays: dict[str, dict[str, np.ndarray]],
        ranker_text: str | None,
        shortlists: ShortlistTable | None = None,
    ) -> ModelVersion:
        """Write a version atomically: into a temporary directory, then renamed into place."""
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=self.root))
        try:
            _save_interactions(staging / "interactions.npz", data)
            (staging / "items.json").write_text(json.dumps(_item_table_json(data.item_table)))
            for name, arrays in source_arrays.items():
                _savez(staging / f"source-{name}.npz", arrays)
            if ranker_text is not None:
                (staging / "ranker.txt").write_text(ranker_text)
            if shortlists is not None:
                _savez(staging / SHORTLISTS, shortlists.to_arrays())
            (staging / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
            _fsync_tree(staging)
            staging.rename(self.root / version)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return ModelVersion(version, self.root / version, manifest)

    def stamp(self, version: ModelVersion) -> int:
        """When the version's files last changed (an erasure rewrites them in place)."""
        return max((p.stat().st_mtime_ns for p in version.path.iterdir()), default=0)

    def promote(self, version: str) -> None:
        pointer = self.root / CHAMPION
        temporary = self.root / f".{CHAMPION}.tmp"
        before = self.champion()
        if before is not None and before.version != version:
            # The champion it replaces, for a rollback (written before the switch: a crash
            # between the two leaves a note of a champion that still serves, never none).
            previous = self.root / f".{PREVIOUS}.tmp"
            previous.write_text(before.version)
            os.replace(previous, self.root / PREVIOUS)
        temporary.write_text(version)
        os.replace(temporary, pointer)
        self.prune()

    def previous_champion(self) -> ModelVersion | None:
        """The champion before the present one, while it is stored (a rollback's target)."""
        pointer = self.root / PREVIOUS
        if not pointer.exists():
            return None
        found = self.get(pointer.read_text().strip())
        champion = self.champion()
        if found is None or (champion is not None and found.version == champion.version):
            return None
        return found

    def promote_stored(self, version: str) -> ModelVersion:
        """Make a stored version the champion, whatever its metrics: a rollback, or a
        promotion by hand. Servers follow the champion within a second (``follow_champion``);
        the next scheduled training compares its challenger with this one."""
        found = self.get(version)
        if found is None:
            raise NotFoundError(f"no model set {version!r}")
        self.promote(found.version)
        return found

    def keep_in_use(self, in_use: Callable[[], Collection[str]]) -> None:
        """Where the versions still in use come from (the model sets that placements' arms
        name): pruning keeps them."""
        self._in_use = in_use

    def prune(self, keep: int = KEEP_VERSIONS) -> list[str]:
        """Delete all but the newest ``keep`` versions; the champion, the one before it (a
        rollback's target) and those in use (``keep_in_use``) are always kept."""
        kept = {v.version for v in (self.champion(), self.previous_champion()) if v is not None}
        if self._in_use is not None:
            kept |= set(self._in_use())
        versions = self.versions()
        doomed = [v for v in versions[: max(0, len(versions) - keep)] if v.version not in kept]
        for v in doomed:
            shutil.rmtree(v.path, ignore_errors=True)
        return [v.version for v in doomed]

    def erase_people(self, profile_keys: Collection[str]) -> tuple[int, int]:
        """Rewrite every model set without these people: their interactions and their
        shortlist. Returns the model sets rewritten and the interaction rows removed."""
        rewritten = removed = 0
        names = sorted(profile_keys)
        for version in self.versions():
            path = version.path / "interactions.npz"
            if not path.exists():
                continue
            with np.load(path, allow_pickle=False) as stored:
                arrays = {k: stored[k] for k in stored.files}
            user_ids = arrays["user_ids"]
            doomed = np.flatnonzero(np.isin(user_ids, names))
            if doomed.size == 0:
                continue
            keep_users = np.setdiff1d(np.arange(len(user_ids)), doomed)
            new_index = np.full(len(user_ids), -1, dtype=np.int64)
            new_index[keep_users] = np.arange(len(keep_users))
            rows = ~np.isin(arrays["users"], doomed)
            removed += int((~rows).sum())
            users_dtype = arrays["users"].dtype
            arrays["user_ids"] = user_ids[keep_users]
            arrays["users"] = new_index[arrays["users"][rows]].astype(users_dtype)
            for name in ("items", "timestamps_ms", "weights", "values", *_context_codes(arrays)):
                arrays[name] = arrays[name][rows]
            _replace_npz(path, arrays)
            shortlists = self.load_shortlists(version)
            if shortlists is not None:
                _replace_npz(version.path / SHORTLISTS, shortlists.without(names).to_arrays())
            rewritten += 1
        return rewritten, removed

    def load_interactions(self, version: ModelVersion) -> Interactions:
        with np.load(version.path / "interactions.npz", allow_pickle=False) as arrays:
            table = _item_table_from_json(json.loads((version.path / "items.json").read_text()))
            return Interactions(
                user_ids=[str(u) for u in arrays["user_ids"]],
                item_ids=[str(i) for i in arrays["item_ids"]],
                users=arrays["users"],
                items=arrays["items"],
                timestamps_ms=arrays["timestamps_ms"],
                weights=arrays["weights"],
                values=arrays["values"],
                item_table=table,
                context=_load_context(arrays),
            )

    def load_source_arrays(self, version: ModelVersion) -> dict[str, dict[str, np.ndarray]]:
        found = {}
        for path in version.path.glob("source-*.npz"):
            with np.load(path, allow_pickle=False) as arrays:
                found[path.stem.removeprefix("source-")] = {k: arrays[k] for k in arrays.files}
        return found

    def load_shortlists(self, version: ModelVersion) -> ShortlistTable | None:
        """The batch ranking of the version; None for a version saved without one."""
        path = version.path / SHORTLISTS
        if not path.exists():
            return None
        with np.load(path, allow_pickle=False) as arrays:
            return ShortlistTable.from_arrays({k: arrays[k] for k in arrays.files})

    def load_ranker_text(self, version: ModelVersion) -> str | None:
        path = version.path / "ranker.txt"
        return path.read_text() if path.exists() else None


def _replace_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` durably, replacing the file in one step."""
    descriptor, staging = tempfile.mkstemp(prefix=".rewrite-", suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            np.savez(handle, allow_pickle=False, **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise


def _savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with path.open("wb") as handle:
        np.savez(handle, allow_pickle=False, **arrays)


def _save_interactions(path: Path, data: Interactions) -> None:
    arrays = {
        "user_ids": np.asarray(data.user_ids, dtype=str),
        "item_ids": np.asarray(data.item_ids, dtype=str),
        "users": data.users,
        "items": data.items,
        "timestamps_ms": data.timestamps_ms,
        "weights": data.weights,
        "values": data.values,
    }
    if data.context is not None:
        for name in CONTEXT_FIELDS:
            arrays[f"context_{name}_values"] = np.asarray(data.context.values[name], dtype=str)
            arrays[f"context_{name}_codes"] = data.context.codes[name]
    _savez(path, arrays)


def _context_codes(arrays: Mapping[str, np.ndarray]) -> list[str]:
    """The names of the saved arrays that hold a code per interaction."""
    return [f"context_{name}_codes" for name in CONTEXT_FIELDS if f"context_{name}_codes" in arrays]


def _load_context(arrays: Mapping[str, np.ndarray]) -> ContextColumns | None:
    """The interactions' context (None in a model set saved before it was kept)."""
    if not _context_codes(arrays):
        return None
    return ContextColumns(
        {name: [str(v) for v in arrays[f"context_{name}_values"]] for name in CONTEXT_FIELDS},
        {name: np.asarray(arrays[f"context_{name}_codes"]) for name in CONTEXT_FIELDS},
    )


def _item_table_json(table: ItemTable) -> dict[str, Any]:
    return {
        "titles": table.titles,
        "categories": table.categories,
        "tags": table.tags,
        "created_at_ms": table.created_at_ms.tolist(),
        "available": table.available.tolist(),
    }


def _item_table_from_json(raw: dict[str, Any]) -> ItemTable:
    return ItemTable(
        titles=list(raw["titles"]),
        categories=[list(c) for c in raw["categories"]],
        tags=[list(t) for t in raw["tags"]],
        created_at_ms=np.asarray(raw["created_at_ms"], dtype=np.int64),
        available=np.asarray(raw["available"], dtype=np.bool_),
    )


def _fsync_tree(directory: Path) -> None:
    for path in directory.iterdir():
        fsync_path(path)
    fsync_path(directory)
