"""The blob store's batch mode: one sync for a batch, and nothing half-done after an error."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mailbot.store import blobs as blobs_module
from mailbot.store.blobs import BlobStore


def test_batch_defers_fsync_to_one_sync_at_the_end(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    store = BlobStore(tmp_path)
    fsyncs: list[int] = []
    synced: list[list[Path]] = []
    monkeypatch.setattr(os, "fsync", lambda fd: fsyncs.append(fd))
    real_sync = store.sync
    monkeypatch.setattr(store, "sync", lambda paths: (synced.append(list(paths)),
                                                      real_sync(paths)))
    with store.batch():
        shas = [store.put_raw(f"message {n}".encode()) for n in range(3)]
        store.put_attachment(b"%PDF", "plan.pdf")
        assert fsyncs == [] and synced == []
    assert len(synced) == 1 and len(synced[0]) == 4
    assert [store.get_raw(sha) for sha in shas] == [f"message {n}".encode() for n in range(3)]
    store.put_raw(b"outside a batch")
    assert len(fsyncs) == 1  # back to one fsync per file


def test_an_error_in_the_batch_skips_the_sync_and_ends_batch_mode(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = BlobStore(tmp_path)
    synced: list[list[Path]] = []
    monkeypatch.setattr(store, "sync", lambda paths: synced.append(list(paths)))
    with pytest.raises(RuntimeError), store.batch():
        store.put_raw(b"half a batch")
        raise RuntimeError("the transaction failed")
    assert synced == []
    fsyncs: list[int] = []
    monkeypatch.setattr(os, "fsync", lambda fd: fsyncs.append(fd))
    store.put_raw(b"next write")
    assert len(fsyncs) == 1


def test_sync_falls_back_to_fsync_per_file_without_syncfs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = BlobStore(tmp_path)
    monkeypatch.setattr(blobs_module, "_SYNCFS", None)
    fsyncs: list[int] = []
    with store.batch():
        store.put_raw(b"one")
        store.put_raw(b"two")
        monkeypatch.setattr(os, "fsync", lambda fd: fsyncs.append(fd))
    assert len(fsyncs) == 2
