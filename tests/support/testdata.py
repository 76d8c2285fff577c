"""The shared test material (real face photos, a real video) beside the repo.

CI clones the project with ``shared/`` next to it; a missing folder is a
broken checkout, so tests fail loudly rather than skip.
"""

from __future__ import annotations

from pathlib import Path

TESTDATA = Path(__file__).resolve().parents[3] / "shared" / "testdata"
FACES = TESTDATA / "faces"
VIDEO = TESTDATA / "video"


def face(name: str) -> Path:
    path = FACES / name
    if not path.is_file():
        raise FileNotFoundError(f"test material missing: {path} (expected ../shared/testdata)")
    return path
