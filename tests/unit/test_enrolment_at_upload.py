"""Enrolment at upload (server.uploads): the face of an ID-card photo becomes
1024 stored bytes, in a worker thread, at most ``CONCURRENT_DECODES`` at once."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recognition.enrolment import Enrolment, encoding_from_bytes, enrol
from server import uploads
from server.uploads import CONCURRENT_DECODES, PhotoStore
from sessions.errors import ValidationError
from tests.support.testdata import face


async def test_enrol_returns_the_stored_form_of_the_photos_one_face(tmp_path: Path) -> None:
    data = face("obama_480p.jpg").read_bytes()
    stored = await PhotoStore(tmp_path).enrol(data, "visitors.0.id_photo")
    assert type(stored) is bytes and len(stored) == 1024
    assert np.array_equal(encoding_from_bytes(stored), enrol(data).encoding)


async def test_a_refusal_names_the_photo_field(tmp_path: Path) -> None:
    out = io.BytesIO()
    Image.linear_gradient("L").resize((600, 400)).convert("RGB").save(out, format="PNG")
    with pytest.raises(ValidationError) as raised:
        await PhotoStore(tmp_path).enrol(out.getvalue(), "visitors.2.id_photo")
    assert raised.value.code == "no_face"
    assert raised.value.field == "visitors.2.id_photo"


async def test_enrolment_runs_off_the_loop_a_bounded_number_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop_thread = threading.get_ident()
    threads: set[int] = set()
    running = 0
    most = 0
    lock = threading.Lock()

    def slow_enrol(data: bytes, *, field: str | None = None) -> Enrolment:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            threads.add(threading.get_ident())
        time.sleep(0.02)
        with lock:
            running -= 1
        raise ValidationError("no_face", "无", "none", field=field)

    monkeypatch.setattr(uploads, "enrol", slow_enrol)
    store = PhotoStore(tmp_path)
    results = await asyncio.gather(
        *(store.enrol(b"x", f"visitors.{i}.id_photo") for i in range(6)), return_exceptions=True
    )
    assert all(isinstance(r, ValidationError) for r in results)
    assert loop_thread not in threads
    assert most == CONCURRENT_DECODES
