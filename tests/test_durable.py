"""Flushing files to the disk: one file-system sync for many paths, one fsync each for few."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from persona import durable


def _written(directory: Path, count: int) -> list[Path]:
    paths = []
    for n in range(count):
        path = directory / f"day-{n}" / "part.parquet"
        path.parent.mkdir()
        path.write_bytes(b"rows")
        paths.extend([path, path.parent])
    return paths


def _count_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = os.fsync

    def counting(descriptor: int) -> None:
        calls.append(descriptor)
        real(descriptor)

    monkeypatch.setattr(durable.os, "fsync", counting)
    return calls


def test_many_paths_take_one_file_system_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if durable._syncfs is None:
        pytest.skip("this platform has no syncfs")
    fsyncs = _count_fsyncs(monkeypatch)
    durable.fsync_paths(_written(tmp_path, durable.MANY_PATHS))
    assert fsyncs == []


def test_few_paths_or_no_syncfs_take_an_fsync_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    few, many = tmp_path / "few", tmp_path / "many"
    few.mkdir()
    many.mkdir()
    fsyncs = _count_fsyncs(monkeypatch)
    durable.fsync_paths(_written(few, 3))
    assert len(fsyncs) == 6
    monkeypatch.setattr(durable, "_syncfs", None)
    many_paths = _written(many, durable.MANY_PATHS)
    durable.fsync_paths(many_paths)
    assert len(fsyncs) == 6 + len(many_paths)
