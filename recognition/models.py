"""The one thin wrapper around dlib and the face_recognition project's model files.

Owns: locating the model files, loading the HOG detector, the 5-point and
68-point shape predictors and the ResNet face encoder once per process, and the
calls the rest of ``recognition/`` builds on (detect, landmarks, landmarks68,
encode, distance). The 5-point shape feeds the encoder (what it was trained
with); the 68-point shape (~2 ms a face) gives the jaw line, nose and eyes the
liveness challenge measures.

Must never: import the ``face_recognition`` package (it forces the from-source
dlib build) or run ``face_recognition_models.__init__`` (it imports
``pkg_resources`` and calls ``quit()`` when setuptools >= 82 removed it, which
exits the process with status 0). ``importlib.util.find_spec`` gives the
package's folder without executing it. Nothing is loaded at import time:
``load_models()`` loads on first use and caches per process, so each worker
process pays the ~1 s load once.

Images are ``numpy`` arrays, ``uint8``, shape ``(height, width, 3)``, RGB.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlib
import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]
Encoding = npt.NDArray[np.float64]

ENCODING_SIZE = 128

_PREDICTOR_MODEL = "shape_predictor_5_face_landmarks.dat"
_PREDICTOR68_MODEL = "shape_predictor_68_face_landmarks.dat"
_ENCODER_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
_MODELS = (_PREDICTOR_MODEL, _PREDICTOR68_MODEL, _ENCODER_MODEL)


class ModelsUnavailable(RuntimeError):
    """The face-recognition-models package or one of its files is missing."""


@dataclass(frozen=True, slots=True)
class Box:
    """A face rectangle in pixel coordinates of the image it was found in
    (``right`` and ``bottom`` exclusive)."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def size(self) -> int:
        """The face's size in pixels: the shorter side of the box."""
        return min(self.width, self.height)

    @property
    def area(self) -> int:
        return max(0, self.width) * max(0, self.height)

    @property
    def center(self) -> tuple[float, float]:
        return ((self.left + self.right) / 2, (self.top + self.bottom) / 2)

    def scaled(self, factor: float) -> Box:
        return Box(
            round(self.left * factor),
            round(self.top * factor),
            round(self.right * factor),
            round(self.bottom * factor),
        )

    def shifted(self, dx: int, dy: int) -> Box:
        return Box(self.left + dx, self.top + dy, self.right + dx, self.bottom + dy)

    def clipped(self, width: int, height: int) -> Box:
        return Box(
            max(0, self.left), max(0, self.top), min(width, self.right), min(height, self.bottom)
        )

    def iou(self, other: Box) -> float:
        """Intersection over union: 1 for the same box, 0 for disjoint ones."""
        inter = Box(
            max(self.left, other.left),
            max(self.top, other.top),
            min(self.right, other.right),
            min(self.bottom, other.bottom),
        )
        if inter.width <= 0 or inter.height <= 0:
            return 0.0
        union = self.area + other.area - inter.area
        return inter.area / union if union else 0.0

    def to_dlib(self) -> Any:
        return dlib.rectangle(self.left, self.top, self.right, self.bottom)

    @classmethod
    def from_dlib(cls, rect: Any) -> Box:
        # dlib rectangles are inclusive on the right and bottom edges.
        return cls(int(rect.left()), int(rect.top()), int(rect.right()) + 1, int(rect.bottom()) + 1)


@dataclass(frozen=True, slots=True)
class Landmarks:
    """The 5-point landmarks (two corners of each eye, the base of the nose)."""

    points: tuple[tuple[int, int], ...]
    box: Box


@dataclass(frozen=True, slots=True)
class Models:
    detector: Any
    predictor: Any
    predictor68: Any
    encoder: Any
    directory: Path


def model_directory() -> Path:
    """The folder holding the ``.dat`` files, found without importing the package."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelsUnavailable(
            "face-recognition-models is not installed (pip install face-recognition-models)"
        )
    for location in spec.submodule_search_locations:
        directory = Path(location) / "models"
        if all((directory / m).is_file() for m in _MODELS):
            return directory
    raise ModelsUnavailable(
        f"face-recognition-models has no {' / '.join(_MODELS)} under "
        f"{list(spec.submodule_search_locations)}"
    )


@functools.cache
def load_models() -> Models:
    """Load the four models once per process (~1.5 s, ~130 MB)."""
    directory = model_directory()
    return Models(
        detector=dlib.get_frontal_face_detector(),
        predictor=dlib.shape_predictor(str(directory / _PREDICTOR_MODEL)),
        predictor68=dlib.shape_predictor(str(directory / _PREDICTOR68_MODEL)),
        encoder=dlib.face_recognition_model_v1(str(directory / _ENCODER_MODEL)),
        directory=directory,
    )


def as_image(array: npt.ArrayLike) -> Image:
    """A C-contiguous ``uint8`` RGB array, which is what dlib accepts."""
    image = np.ascontiguousarray(array, dtype=np.uint8)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image of shape (h, w, 3), got {image.shape}")
    return image


def detect(image: Image, upsample: int = 0) -> list[Box]:
    """HOG face detection. At ``upsample=0`` faces below ~80 px are missed;
    each upsample step doubles the image (and roughly quadruples the cost)."""
    rects = load_models().detector(as_image(image), upsample)
    h, w = image.shape[:2]
    return [Box.from_dlib(r).clipped(w, h) for r in rects]


def _shape(image: Image, box: Box) -> Any:
    return load_models().predictor(image, box.to_dlib())


def landmarks(image: Image, box: Box) -> Landmarks:
    shape = _shape(as_image(image), box)
    points = tuple((int(shape.part(i).x), int(shape.part(i).y)) for i in range(shape.num_parts))
    return Landmarks(points=points, box=box)


def landmarks68(image: Image, box: Box) -> npt.NDArray[np.float64]:
    """The 68-point landmarks (iBUG 300-W order: jaw 0–16, nose tip 30, eyes
    36–47) as a ``(68, 2)`` array of x, y."""
    shape = load_models().predictor68(as_image(image), box.to_dlib())
    return np.array([(shape.part(i).x, shape.part(i).y) for i in range(68)], dtype=np.float64)


def encode(image: Image, box: Box, *, jitters: int = 0) -> Encoding:
    """The 128-d encoding of the face in ``box``. ``jitters`` > 0 averages over
    that many randomly jittered copies (slower, slightly steadier): worth it for
    an enrolment, not for a live frame."""
    image = as_image(image)
    shape = _shape(image, box)
    descriptor = load_models().encoder.compute_face_descriptor(image, shape, jitters)
    return np.asarray(descriptor, dtype=np.float64)


def distance(a: Encoding, b: Encoding) -> float:
    """Euclidean distance between two encodings; the face_recognition models are
    trained so that the same person is below ~0.6."""
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)))


def distances(known: npt.ArrayLike, encoding: Encoding) -> npt.NDArray[np.float64]:
    """Distances from ``encoding`` to each row of ``known`` (shape ``(n, 128)``)."""
    rows = np.asarray(known, dtype=np.float64).reshape(-1, ENCODING_SIZE)
    if rows.shape[0] == 0:
        return np.zeros(0, dtype=np.float64)
    return np.asarray(np.linalg.norm(rows - encoding, axis=1), dtype=np.float64)
