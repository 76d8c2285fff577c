"""Enrolment from an ID-card photo: one clear face, or a clear refusal in Chinese."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageFilter

from recognition import images
from recognition.enrolment import MIN_SHARPNESS, encoding_from_bytes, enrol
from recognition.models import distance
from sessions.errors import ValidationError
from tests.support.faces import blank_photo, photo
from tests.support.testdata import face


def jpeg(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, "JPEG", quality=92)
    return out.getvalue()


def test_an_id_card_photo_with_one_clear_face_is_enrolled_from_its_bytes() -> None:
    enrolment = enrol(face("biden_1.jpg").read_bytes())
    assert enrolment.encoding.shape == (128,)
    assert enrolment.quality.face_px >= 300
    assert enrolment.quality.sharpness > 100
    assert (enrolment.quality.image_width, enrolment.quality.image_height) == (970, 2204)
    stored = enrolment.encoding_bytes()
    assert len(stored) == 1024
    assert np.array_equal(encoding_from_bytes(stored), enrolment.encoding)
    assert distance(enrolment.encoding, enrol(photo("biden_2.jpg")).encoding) < 0.53


def refusal(photo_data: bytes | np.ndarray) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        enrol(photo_data, field="id_photo")
    assert caught.value.field == "id_photo"
    assert caught.value.status == 422
    return caught.value


def test_a_photo_without_a_face_is_refused() -> None:
    error = refusal(jpeg(blank_photo()))
    assert error.code == "no_face"
    assert "未检测到人脸" in error.zh and "No face" in error.en


def test_a_photo_with_two_people_is_refused() -> None:
    error = refusal(face("two_people.jpg").read_bytes())
    assert error.code == "several_faces"
    assert "检测到2张人脸" in error.zh and "2 faces" in error.en


def test_a_face_too_small_is_refused() -> None:
    tiny, _ = images.downscale(photo("obama_small.jpg"), 160)  # a ~54 px face
    error = refusal(jpeg(tiny))
    assert error.code == "face_too_small"
    assert "人脸太小" in error.zh and "至少需要80像素" in error.zh


def test_a_blurred_face_is_refused() -> None:
    # σ = 3 % of the 335 px face: the level where matching starts to suffer.
    blurred = Image.fromarray(photo("biden_1.jpg")).filter(ImageFilter.GaussianBlur(10))
    error = refusal(np.asarray(blurred))
    assert error.code == "too_blurred"
    assert "模糊" in error.zh
    assert MIN_SHARPNESS == 10.0


def test_bytes_that_are_no_image_are_refused() -> None:
    assert refusal(b"not a photo").code == "photo_unreadable"
