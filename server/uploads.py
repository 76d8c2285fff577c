"""Face photos: relatives' ID-card photos and the facility's photos of
detainees. Each is checked by content, enrolled (the one face's 128-d encoding,
``recognition.enrolment``), re-encoded without metadata and stored under the
data directory (never under a served path). Both kinds go through the same
checks; only the wording of a refusal depends on whose photo it is
(``PhotoKind``), because "photograph your own ID card" means nothing to the
admin photographing a detainee.

A photo is referred to by ``"<facility_id>/<uuid4hex>.jpg|png"``; only that
exact shape maps back to a file, so a stored reference can never point
outside the store. Serving a photo is the officer console's job, for officers
of the facility named in the reference (``facility_of``).
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import tempfile
import uuid
import warnings
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path

from aiohttp import web
from PIL import Image, ImageOps

from recognition.enrolment import MIN_FACE_PX, enrol
from sessions.detainees import Detainee
from sessions.errors import NotFound, ValidationError
from sessions.officers import Officer
from sessions.services import VisitGateService

MAX_PHOTO_BYTES = 8 * 1024 * 1024
MIN_WIDTH = 200
MIN_HEIGHT = 120
MAX_SIDE = 8000
JPEG_QUALITY = 92
ALLOWED_FORMATS = {"JPEG": "jpg", "PNG": "png"}

_REF = re.compile(r"^([0-9A-Za-z_-]{1,64})/([0-9a-f]{32})\.(jpg|png)$")
_FACILITY = re.compile(r"^[0-9A-Za-z_-]{1,64}$")


class PhotoKind(StrEnum):
    """Whose photo it is: decides the wording of a refusal, never the checks."""

    #: A relative's ID card, photographed with a phone for the application.
    ID_CARD = "id_card"
    #: The facility's own photo of a detainee, for checking the kiosk side.
    DETAINEE = "detainee"


#: The refusals of ``_open_checked`` and ``recognition.enrolment.enrol`` that
#: speak of an ID card, re-worded for a detainee's photo (same code and field).
_DETAINEE_WORDING: Mapping[str, tuple[str, str]] = {
    "photo_dimensions_small": (
        f"照片太小（至少{MIN_WIDTH}×{MIN_HEIGHT}像素）。请使用清晰的原图",
        f"The photo is too small (at least {MIN_WIDTH}×{MIN_HEIGHT} pixels); use the clear original",
    ),
    "photo_unreadable": (
        "照片无法读取，请上传JPEG或PNG格式的照片",
        "The photo cannot be read; please upload a JPEG or PNG image",
    ),
    "no_face": (
        "照片中未检测到人脸。请上传被羁押人员本人的正面免冠照片，面部完整、无遮挡、光线均匀",
        "No face was found in the photo. Upload a frontal photo of the detainee, "
        "bareheaded, with the face whole, uncovered and evenly lit",
    ),
    "several_faces": (
        "照片中检测到多张人脸，只能有一张。请单独拍摄被羁押人员本人，画面中不要有其他人或其他照片",
        "The photo shows more than one face; it must show exactly one. Photograph the "
        "detainee alone, with no other people or pictures in view",
    ),
    "face_too_small": (
        f"照片中的人脸太小（至少需要{MIN_FACE_PX}像素）。请靠近拍摄，让面部占画面的大部分",
        f"The face in the photo is too small (at least {MIN_FACE_PX} px needed). "
        "Come closer so the face fills most of the frame",
    ),
    "too_blurred": (
        "照片中的人脸模糊不清。请在光线充足处对准焦点、拿稳相机后重新拍摄",
        "The face in the photo is blurred. Take the photo again in good light, "
        "focused and holding the camera still",
    ),
}


def _worded(error: ValidationError, kind: PhotoKind) -> ValidationError:
    """``error`` in the words for ``kind`` (the code and field unchanged)."""
    if kind is PhotoKind.ID_CARD or error.code not in _DETAINEE_WORDING:
        return error
    zh, en = _DETAINEE_WORDING[error.code]
    return ValidationError(error.code, zh, en, field=error.field)


def _invalid(code: str, zh: str, en: str) -> ValidationError:
    return ValidationError(code, zh, en)


def _missing(kind: PhotoKind) -> ValidationError:
    if kind is PhotoKind.DETAINEE:
        return _invalid(
            "photo_missing",
            "请选择被羁押人员的正面照片（JPEG或PNG）",
            "Choose a frontal photo of the detainee (JPEG or PNG)",
        )
    return _invalid(
        "id_photo_missing",
        "请上传清晰的身份证照片",
        "Please upload a clear photo of the ID card",
    )


def _open_checked(data: bytes, kind: PhotoKind = PhotoKind.ID_CARD) -> Image.Image:
    """Open and fully decode ``data``; raise ``ValidationError`` (worded for
    ``kind``) unless it is a sane JPEG or PNG. The caller sets ``field``."""
    if len(data) > MAX_PHOTO_BYTES:
        raise _invalid(
            "photo_too_large",
            "照片不能超过8MB，请压缩后重新上传",
            "The photo must not exceed 8 MB",
        )
    if not data:
        raise _missing(kind)
    not_image = _invalid(
        "photo_format",
        "照片须为JPEG或PNG格式的图片",
        "The photo must be a JPEG or PNG image",
    )
    corrupt = _invalid(
        "photo_corrupt",
        "照片文件已损坏或不完整，请重新拍摄或选择",
        "The photo file is damaged or incomplete; please take or choose it again",
    )
    too_big = _invalid(
        "photo_dimensions_large",
        f"照片尺寸过大（每边不超过{MAX_SIDE}像素）",
        f"The photo is too large (at most {MAX_SIDE} pixels a side)",
    )
    with warnings.catch_warnings():
        # A decompression-bomb warning becomes an error; the side limit below
        # rejects such images anyway, before any pixel is decoded.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            probe = Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise too_big from None
        except Image.UnidentifiedImageError:
            raise not_image from None
        except Exception:  # a recognised header with broken contents
            raise corrupt from None
        if probe.format not in ALLOWED_FORMATS:
            raise not_image
        width, height = probe.size
        if width > MAX_SIDE or height > MAX_SIDE:
            raise too_big
        if min(width, height) < MIN_HEIGHT or max(width, height) < MIN_WIDTH:
            raise _worded(
                _invalid(
                    "photo_dimensions_small",
                    f"照片太小，看不清证件（至少{MIN_WIDTH}×{MIN_HEIGHT}像素）",
                    f"The photo is too small to read the card (at least {MIN_WIDTH}×{MIN_HEIGHT} pixels)",
                ),
                kind,
            )
        try:
            probe.verify()
            # verify() only checks the structure (and for JPEG hardly that):
            # decode every pixel so a truncated file is caught here.
            image = Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS))
            image.load()
        except Exception:  # Pillow raises many types for broken files
            raise corrupt from None
    return image


def _reencode(data: bytes) -> tuple[bytes, str]:
    """Orientation applied, every metadata block (EXIF, XMP, ICC, comments) dropped."""
    image = _open_checked(data)
    source_format = image.format or "JPEG"
    upright = ImageOps.exif_transpose(image)
    out = io.BytesIO()
    if source_format == "PNG":
        upright.info = {}
        upright.save(out, format="PNG", optimize=False)
        return out.getvalue(), "png"
    if upright.mode not in ("RGB", "L"):
        upright = upright.convert("RGB")
    upright.info = {}
    upright.save(out, format="JPEG", quality=JPEG_QUALITY)
    return out.getvalue(), "jpg"


#: Decoding a large photo takes up to ~200 MB and a good share of a core (and
#: enrolling it 0.1–1 s of one); at most this many decode or enrol at once per
#: process, the others wait their turn.
CONCURRENT_DECODES = 2


def enrol_face(data: bytes, field: str | None = None, kind: PhotoKind = PhotoKind.ID_CARD) -> bytes:
    """The stored form (1024 bytes) of the one face on a photo that passed
    ``check_image``, or ``ValidationError`` (``no_face``, ``several_faces``,
    ``face_too_small``, ``too_blurred``) worded for ``kind``, with ``field`` set.
    CPU-bound (dlib): call it through ``PhotoStore.enrol``."""
    try:
        return enrol(data, field=field).encoding_bytes()
    except ValidationError as error:
        raise _worded(error, kind) from None


class PhotoStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._decoding = asyncio.Semaphore(CONCURRENT_DECODES)

    # -- checking -----------------------------------------------------------------
    @staticmethod
    def check_image(data: bytes, kind: PhotoKind = PhotoKind.ID_CARD) -> str:
        """The format ("JPEG" or "PNG") judged from the bytes, never the file
        name; raises ``ValidationError`` (without ``field``: the caller sets it).
        CPU-bound: call it through ``asyncio.to_thread``."""
        image = _open_checked(data, kind)
        return image.format or "JPEG"

    async def check(self, data: bytes, kind: PhotoKind = PhotoKind.ID_CARD) -> str:
        """``check_image`` in a worker thread, a bounded number at a time."""
        async with self._decoding:
            return await asyncio.to_thread(self.check_image, data, kind)

    async def enrol(
        self, data: bytes, field: str | None = None, kind: PhotoKind = PhotoKind.ID_CARD
    ) -> bytes:
        """``enrol_face`` in a worker thread, sharing the decode limit: dlib
        releases the GIL, so the event loop keeps serving meanwhile."""
        async with self._decoding:
            return await asyncio.to_thread(enrol_face, data, field, kind)

    # -- storing ------------------------------------------------------------------
    async def save(self, facility_id: str, data: bytes) -> str:
        if not _FACILITY.match(facility_id):
            raise ValueError("not a facility id")
        async with self._decoding:
            return await asyncio.to_thread(self._save_sync, facility_id, data)

    def _save_sync(self, facility_id: str, data: bytes) -> str:
        encoded, extension = _reencode(data)
        folder = self.root / facility_id
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = f"{uuid.uuid4().hex}.{extension}"
        # mkstemp creates the file with mode 0600 in the target folder, so the
        # rename below is atomic and never exposes a half-written photo.
        fd, temp = tempfile.mkstemp(dir=folder, prefix=".upload-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(encoded)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temp, 0o600)
            os.replace(temp, folder / name)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        return f"{facility_id}/{name}"

    async def delete(self, ref: str) -> None:
        path = self.path_of(ref)
        await asyncio.to_thread(path.unlink, True)

    async def read(self, ref: str) -> bytes:
        return await asyncio.to_thread(self.path_of(ref).read_bytes)

    # -- references -----------------------------------------------------------------
    @staticmethod
    def facility_of(ref: str) -> str:
        match = _REF.match(ref)
        if match is None:
            raise ValueError("not a photo reference")
        return match.group(1)

    def path_of(self, ref: str) -> Path:
        match = _REF.match(ref)
        if match is None:
            raise ValueError("not a photo reference")
        path = self.root / match.group(1) / f"{match.group(2)}.{match.group(3)}"
        if not path.resolve().is_relative_to(self.root.resolve()):
            raise ValueError("photo reference escapes the store")
        return path


PHOTOS = web.AppKey("photos", PhotoStore)

#: The form field (console) and multipart part (API) carrying a detainee's photo.
DETAINEE_PHOTO_FIELD = "photo"


async def posted_photo(form: Mapping[str, object], name: str = DETAINEE_PHOTO_FIELD) -> bytes:
    """The bytes of the file posted as ``name`` (read in a thread: aiohttp
    spools large parts to disk), or ``b""`` when there is none, which
    ``check`` refuses as a missing photo. At most one byte past the size limit
    is read, enough for ``check`` to refuse it as too large."""
    part = form.get(name)
    if not isinstance(part, web.FileField):
        return b""
    part.file.seek(0)
    return await asyncio.to_thread(part.file.read, MAX_PHOTO_BYTES + 1)


async def replace_detainee_photo(
    service: VisitGateService,
    store: PhotoStore,
    admin: Officer,
    detainee_id: str,
    data: bytes,
) -> Detainee:
    """Judge, enrol and store a new photo of a detainee and record it with its
    encoding: the one path the console and the API share.

    Another facility's detainee is ``NotFound`` before any work is done (its
    existence is not revealed); the service checks the admin and the facility
    again. A refused photo leaves nothing stored; a photo the service then
    refuses is deleted again. The photo it replaces stays on disk: the audit
    event names it, and which face a past visit was checked against must stay
    answerable."""
    detainee = await service.detainee(detainee_id)
    if detainee.facility_id != admin.facility_id:
        raise NotFound("detainee_not_found", "被羁押人员不存在", "No such detainee")
    try:
        await store.check(data, PhotoKind.DETAINEE)
    except ValidationError as error:
        error.field = DETAINEE_PHOTO_FIELD
        raise
    encoding = await store.enrol(data, DETAINEE_PHOTO_FIELD, PhotoKind.DETAINEE)
    ref = await store.save(detainee.facility_id, data)
    try:
        return await service.set_detainee_photo(admin.id, detainee.id, ref, encoding)
    except BaseException:
        await asyncio.shield(store.delete(ref))
        raise
