"""The snapshot store: content-named JPEGs under the data directory, private files,
and references that can never lead out of their facility's folder."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import pytest
from PIL import Image

from server.snapshots import SnapshotStore

FACILITY = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
VISIT = "a1b2c3d4e5f60718293a4b5c6d7e8f90"


def jpeg(colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 24), colour).save(out, format="JPEG")
    return out.getvalue()


@pytest.fixture
def store(tmp_path: Path) -> SnapshotStore:
    return SnapshotStore(tmp_path / "snapshots")


def test_a_snapshot_is_stored_privately_under_its_facility_and_visit(
    store: SnapshotStore, tmp_path: Path
) -> None:
    picture = jpeg()
    ref = store.save(FACILITY, VISIT, picture)
    visit, name = ref.split("/")
    assert visit == VISIT and len(name) == len("0123456789abcdef.jpg")
    path = tmp_path / "snapshots" / FACILITY / VISIT / name
    assert path.read_bytes() == picture
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert store.read(FACILITY, ref) == picture
    assert store.save(FACILITY, VISIT, picture) == ref  # the same picture: one file
    assert store.save(FACILITY, VISIT, jpeg((0, 0, 200))) != ref
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp files


async def test_save_async_writes_in_a_thread_and_returns_the_same_reference(
    store: SnapshotStore,
) -> None:
    picture = jpeg()
    ref = await store.save_async(FACILITY, VISIT, picture)
    assert ref == store.save(FACILITY, VISIT, picture)
    assert await store.read_async(FACILITY, ref) == picture


@pytest.mark.parametrize(
    "ref",
    [
        "../secret.key",
        f"{VISIT}/../../../secret.jpg",
        f"../{VISIT}/0123456789abcdef.jpg",
        "/etc/passwd",
        f"{VISIT}/0123456789ABCDEF.jpg",
        f"{VISIT}/0123456789abcdef.png",
        f"{VISIT}\\0123456789abcdef.jpg",
        f"{VISIT}/0123456789abcdef.jpg/..",
        "",
    ],
)
def test_references_that_could_leave_the_store_are_refused(store: SnapshotStore, ref: str) -> None:
    with pytest.raises(ValueError):
        store.read(FACILITY, ref)


def test_ids_are_checked_before_any_path_is_built(store: SnapshotStore) -> None:
    for facility, visit in (("..", VISIT), (FACILITY, ".."), ("a/b", VISIT), (FACILITY, "")):
        with pytest.raises(ValueError):
            store.save(facility, visit, jpeg())
    ref = store.save(FACILITY, VISIT, jpeg())
    with pytest.raises(ValueError):
        store.read("../" + FACILITY, ref)


def test_only_jpegs_of_snapshot_size_are_stored(store: SnapshotStore) -> None:
    with pytest.raises(ValueError):
        store.save(FACILITY, VISIT, b"<svg onload=alert(1)>")
    with pytest.raises(ValueError):
        store.save(FACILITY, VISIT, b"\xff\xd8\xff" + b"0" * (2 * 1024 * 1024))


def test_an_unknown_snapshot_is_not_found_and_a_planted_link_cannot_escape(
    store: SnapshotStore, tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError):
        store.read(FACILITY, f"{VISIT}/0123456789abcdef.jpg")
    outside = tmp_path / "secret.key"
    outside.write_bytes(b"secret")
    folder = tmp_path / "snapshots" / FACILITY / VISIT
    folder.mkdir(parents=True)
    (folder / "fedcba9876543210.jpg").symlink_to(outside)
    with pytest.raises(ValueError):
        store.read(FACILITY, f"{VISIT}/fedcba9876543210.jpg")
