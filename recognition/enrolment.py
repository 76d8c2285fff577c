"""Enrolment: the 128-d encoding of the one face on a visitor's ID-card photo.

Owns: the upload-time quality gate (exactly one face, big enough, sharp enough)
and its Chinese/English refusals, and the storable form of the encoding. The
encoding is computed once here and stored with the person; live frames are
compared against it and never cause it to be recomputed.

Must never: run on the event loop (a call costs 0.1–1 s on a phone photo; the
web layer runs it in the worker pool or a thread), or keep the photo.

Blur calibration (``MIN_SHARPNESS``): the sharpness is the variance of the
4-neighbour Laplacian over the face box, resized to 128×128 grey so it does not
depend on the photo's resolution. On the nine test photos (twelve faces) it is
107–425. Blurring those photos with a Gaussian of σ = 1 %, 1.5 %, 2 %, 3 %, 5 %
of the face size gives 15–32, 5.5–10, 2.9–5, 1.4–2, ~1; the distance to
another photo of the same person grows by ≤ 0.04 up to σ = 1.5 %, by up to
0.13 at 3 % (0.40 → 0.53 for Biden) and at 5 % the face is lost or matches no
longer (0.60–0.70). The threshold 10 refuses everything from σ ≈ 1.5–2 % up
(where matching starts to degrade) and keeps a 10× margin below the sharpest
real photo's worst case.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from recognition import images
from recognition.models import ENCODING_SIZE, Box, Encoding, Image, as_image, detect, encode
from sessions.errors import ValidationError

#: Shorter side of the face box, in pixels of the uploaded photo. Below ~80 px
#: the 150 px chip the encoder reads is mostly interpolation.
MIN_FACE_PX = 80
#: Variance of the Laplacian of the face resized to 128×128 (see the module doc).
MIN_SHARPNESS = 10.0
#: Photos are searched at this size at most (cost grows with the area); the
#: encoding is then taken from the full-resolution photo.
DETECT_MAX_SIDE = 1024
_SHARPNESS_SIDE = 128


@dataclass(frozen=True, slots=True)
class Quality:
    face_px: int
    sharpness: float
    image_width: int
    image_height: int


@dataclass(frozen=True, slots=True, eq=False)
class Enrolment:
    encoding: Encoding
    #: The face, in pixels of the (EXIF-upright) photo.
    box: Box
    quality: Quality

    def encoding_bytes(self) -> bytes:
        return encoding_to_bytes(self.encoding)


def encoding_to_bytes(encoding: Encoding) -> bytes:
    """128 little-endian float64 (1024 bytes): the stored form."""
    return struct.pack(f"<{ENCODING_SIZE}d", *np.asarray(encoding, dtype=np.float64))


def encoding_from_bytes(data: bytes) -> Encoding:
    if len(data) != ENCODING_SIZE * 8:
        raise ValueError(f"a stored encoding is {ENCODING_SIZE * 8} bytes, got {len(data)}")
    return np.frombuffer(data, dtype="<f8").astype(np.float64)


def sharpness(image: Image, box: Box) -> float:
    """Variance of the Laplacian of the face box, at a fixed 128×128 size."""
    face = images.resize(images.crop(image, box), _SHARPNESS_SIDE, _SHARPNESS_SIDE)
    g = images.grey(face)
    lap = -4 * g[1:-1, 1:-1] + g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:]
    return float(lap.var())


def _refuse(code: str, zh: str, en: str, field: str | None) -> ValidationError:
    return ValidationError(code, zh, en, field=field)


def enrol(
    photo: bytes | Image,
    *,
    field: str | None = None,
    min_face_px: int = MIN_FACE_PX,
    min_sharpness: float = MIN_SHARPNESS,
    jitters: int = 0,
) -> Enrolment:
    """Check an ID-card photo and encode its face, or raise ``ValidationError``
    (codes ``photo_unreadable``, ``no_face``, ``several_faces``,
    ``face_too_small``, ``too_blurred``) with ``field`` set for the form."""
    if isinstance(photo, bytes | bytearray | memoryview):
        try:
            image = images.decode(bytes(photo))
        except images.UnreadableImage:
            raise _refuse(
                "photo_unreadable",
                "照片无法读取，请上传JPEG或PNG格式的身份证照片",
                "The photo cannot be read; please upload the ID card as a JPEG or PNG image",
                field,
            ) from None
    else:
        image = as_image(photo)
    height, width = image.shape[:2]

    small, back = images.downscale(image, DETECT_MAX_SIDE)
    boxes = detect(small, 0) or detect(small, 1)
    if not boxes:
        raise _refuse(
            "no_face",
            "照片中未检测到人脸。请上传身份证人像面的清晰照片，人像完整、无遮挡、无反光",
            "No face was found in the photo. Please upload a clear photo of the ID card's "
            "portrait side, with the face whole, uncovered and free of glare",
            field,
        )
    if len(boxes) > 1:
        raise _refuse(
            "several_faces",
            f"照片中检测到{len(boxes)}张人脸，只能有一张。请单独拍摄本人身份证的人像面，不要拍到其他人或其他证件",
            f"The photo shows {len(boxes)} faces; it must show exactly one. Photograph only "
            "the portrait side of your own ID card, with no other people or cards in view",
            field,
        )
    box = boxes[0].scaled(back).clipped(width, height)
    if box.size < min_face_px:
        raise _refuse(
            "face_too_small",
            f"照片中的人脸太小（约{box.size}像素，至少需要{min_face_px}像素）。请让身份证占满画面后重新拍摄",
            f"The face in the photo is too small (about {box.size} px, at least {min_face_px} px "
            "needed). Fill the frame with the ID card and take the photo again",
            field,
        )
    sharp = sharpness(image, box)
    if sharp < min_sharpness:
        raise _refuse(
            "too_blurred",
            "照片中的人脸模糊不清。请在光线充足处对准焦点、拿稳手机后重新拍摄",
            "The face in the photo is blurred. Take the photo again in good light, "
            "focused and holding the phone still",
            field,
        )
    return Enrolment(
        encoding=encode(image, box, jitters=jitters),
        box=box,
        quality=Quality(face_px=box.size, sharpness=sharp, image_width=width, image_height=height),
    )
