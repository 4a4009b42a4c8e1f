"""Folder fsyncs: a file renamed (or linked) into a folder survives a power cut only once
the folder itself is fsynced. :func:`sync_folder` does that as a group commit shared by
the writers of one folder.
"""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path


class _FolderSync:
    """Group commit of one folder's fsyncs: a writer that renamed a file into the folder
    waits for an fsync of it that started after its rename; writers arriving while one
    runs share the next one. Four writer threads then pay about one folder fsync per
    batch of renames instead of one each."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._requested = 0  # renames that asked for a sync, numbered
        self._done = 0  # every rename numbered up to this one is durable
        self._running = False

    def sync(self, folder: str) -> None:
        with self._cond:
            self._requested += 1
            ticket = self._requested
            while self._running and self._done < ticket:
                self._cond.wait()
            if self._done >= ticket:
                return  # an fsync that started after our rename has finished
            self._running = True
            covers = self._requested  # each of these renamed before this fsync starts
        synced = False
        try:
            _fsync_folder(folder)
            synced = True
        finally:
            with self._cond:
                self._running = False
                if synced:
                    self._done = max(self._done, covers)
                self._cond.notify_all()


_FOLDER_SYNCS: dict[str, _FolderSync] = {}
_FOLDER_SYNCS_LOCK = threading.Lock()


def sync_folder(folder: Path) -> None:
    """Make the renames and links into ``folder`` so far durable (fsync of the folder,
    shared with concurrent writers to it)."""
    key = str(folder)
    with _FOLDER_SYNCS_LOCK:
        syncer = _FOLDER_SYNCS.setdefault(key, _FolderSync())
    syncer.sync(key)


def _fsync_folder(folder: str) -> None:
    if os.name == "nt":  # pragma: no cover - folders cannot be opened (or fsynced) there
        return
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:  # a file system without folder fsyncs: nothing more to do
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    finally:
        os.close(fd)
