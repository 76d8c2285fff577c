"""The thin dlib wrapper, against the real face_recognition models."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from recognition import models
from recognition.models import Box
from tests.support.faces import face_box, live_frame, photo


def test_the_models_load_without_running_face_recognition_models_init() -> None:
    # In a fresh interpreter: that __init__ imports pkg_resources and calls quit()
    # when it is missing, so importing it would be a silent exit with status 0.
    code = (
        "import sys; from recognition import models; m = models.load_models(); "
        "assert 'face_recognition_models' not in sys.modules; print(m.directory)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("face_recognition_models/models")


def test_load_models_is_cached_per_process() -> None:
    assert models.load_models() is models.load_models()


def test_detect_finds_one_face_and_encode_gives_128_numbers() -> None:
    frame = live_frame("biden_2.jpg")
    (box,) = models.detect(frame)
    encoding = models.encode(frame, box)
    assert encoding.shape == (128,) and encoding.dtype == np.float64
    points = models.landmarks(frame, box).points
    assert len(points) == 5
    assert all(
        box.left - 10 <= x <= box.right + 10 and box.top <= y <= box.bottom for x, y in points
    )


def test_the_same_person_is_near_and_different_people_are_far() -> None:
    def enc(name: str) -> np.ndarray:
        return models.encode(photo(name), face_box(name))

    biden_1, biden_2, obama_1 = enc("biden_1.jpg"), enc("biden_2.jpg"), enc("obama_1.jpg")
    assert models.distance(biden_1, biden_2) < 0.53
    assert models.distance(biden_1, obama_1) > 0.69
    both = models.distances(np.stack([biden_2, obama_1]), biden_1)
    assert both.shape == (2,) and both[0] < 0.6 < both[1]
    assert models.distances(np.zeros((0, 128)), biden_1).shape == (0,)


def test_a_frame_must_be_rgb() -> None:
    with pytest.raises(ValueError, match="RGB"):
        models.detect(np.zeros((10, 10), dtype=np.uint8))


def test_boxes_measure_overlap_and_scale() -> None:
    a = Box(0, 0, 100, 100)
    assert a.iou(a) == 1.0
    assert a.iou(Box(200, 200, 300, 300)) == 0.0
    assert a.iou(Box(50, 0, 150, 100)) == pytest.approx(1 / 3)
    assert a.scaled(2) == Box(0, 0, 200, 200)
    assert Box(-5, -5, 50, 700).clipped(40, 30) == Box(0, 0, 40, 30)
