"""Face-check snapshots: the small JPEGs the gate, the unexpected-face watch and the
presence checks take as evidence, kept so an officer can look at them later (the
watch page's history, the ledger's ``snapshot_ref``).

Owns ``<data_dir>/snapshots/<facility_id>/<visit_id>/<sha256-16>.jpg``, files of mode
0600 in folders of mode 0700. The data directory is never served: officers get a
snapshot only through the console route, which checks that the visit belongs to their
facility. A snapshot is named by its content, so saving the same picture twice keeps
one file, and a reference (``"<visit_id>/<hex16>.jpg"``) is meaningful only together
with the facility it was saved for.

Must never: accept a reference or id that could leave its folder (``..``, slashes,
anything but the exact shapes below), or touch the disk on the event loop (``save``
and ``read`` are blocking; the ``*_async`` wrappers run them in a thread).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from pathlib import Path

from aiohttp import web

from .keys import SETTINGS

#: Facility and visit ids (uuid4 hex today; the shape allows a little more).
_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")
#: ``<visit_id>/<first 16 hex digits of the SHA-256>.jpg``
_REF = re.compile(r"^([0-9A-Za-z_-]{1,64})/([0-9a-f]{16})\.jpg$")
#: A snapshot is at most 320 px a side at quality 70: a few tens of KB.
MAX_SNAPSHOT_BYTES = 512 * 1024
_JPEG_MAGIC = b"\xff\xd8\xff"


def snapshot_ref(visit_id: str, name: str) -> str:
    """The reference of the file ``name`` of ``visit_id`` (what the console route gets)."""
    return f"{visit_id}/{name}"


class SnapshotStore:
    """Snapshots on disk, by facility and visit."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def save(self, facility_id: str, visit_id: str, jpeg: bytes) -> str:
        """Store ``jpeg`` and return its reference. Blocking (fsync): call it through
        ``save_async`` or ``asyncio.to_thread``. ``ValueError`` for a malformed id or
        bytes that are not a JPEG of sane size; ``OSError`` when the disk refuses."""
        if not _ID.match(facility_id) or not _ID.match(visit_id):
            raise ValueError("not a facility or visit id")
        if not jpeg.startswith(_JPEG_MAGIC) or len(jpeg) > MAX_SNAPSHOT_BYTES:
            raise ValueError("not a snapshot JPEG")
        name = f"{hashlib.sha256(jpeg).hexdigest()[:16]}.jpg"
        folder = self.root / facility_id / visit_id
        for level in (self.root, self.root / facility_id, folder):
            level.mkdir(exist_ok=True, mode=0o700, parents=level is self.root)
        target = folder / name
        if target.exists():  # the same picture again (a still camera): one file
            return snapshot_ref(visit_id, name)
        # mkstemp creates the file 0600 in the target folder, so the rename is
        # atomic and a reader never sees half a picture.
        fd, temp = tempfile.mkstemp(dir=folder, prefix=".snapshot-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(jpeg)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temp, 0o600)
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        return snapshot_ref(visit_id, name)

    async def save_async(self, facility_id: str, visit_id: str, jpeg: bytes) -> str:
        """``save`` in a worker thread: the event loop never waits on the disk."""
        return await asyncio.to_thread(self.save, facility_id, visit_id, jpeg)

    def read(self, facility_id: str, ref: str) -> bytes:
        """The JPEG of ``ref`` saved for ``facility_id``. ``ValueError`` for a
        reference of the wrong shape (path traversal included), ``FileNotFoundError``
        for one that was never saved. Blocking: see ``read_async``."""
        return self.path_of(facility_id, ref).read_bytes()

    async def read_async(self, facility_id: str, ref: str) -> bytes:
        return await asyncio.to_thread(self.read, facility_id, ref)

    def path_of(self, facility_id: str, ref: str) -> Path:
        match = _REF.match(ref)
        if match is None or not _ID.match(facility_id):
            raise ValueError("not a snapshot reference")
        path = self.root / facility_id / match.group(1) / f"{match.group(2)}.jpg"
        # The patterns already forbid "..", "/" and "\\"; a symlink planted inside the
        # store must not lead out of it either.
        if not path.resolve().is_relative_to(self.root.resolve()):
            raise ValueError("snapshot reference escapes the store")
        return path

    @staticmethod
    def visit_of(ref: str) -> str:
        """The visit a reference belongs to (``ValueError`` if malformed)."""
        match = _REF.match(ref)
        if match is None:
            raise ValueError("not a snapshot reference")
        return match.group(1)


SNAPSHOTS = web.AppKey("snapshots", SnapshotStore)


def setup(app: web.Application) -> None:
    """Before the face checks: they save into ``app[SNAPSHOTS]`` when it is there."""
    app[SNAPSHOTS] = SnapshotStore(app[SETTINGS].data_dir / "snapshots")
