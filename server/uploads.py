"""ID-card photos uploaded by relatives: checked by content, enrolled (the one
face's 128-d encoding, ``recognition.enrolment``), re-encoded without metadata,
stored under the data directory (never under a served path).

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
from pathlib import Path

from aiohttp import web
from PIL import Image, ImageOps

from recognition.enrolment import enrol
from sessions.errors import ValidationError

MAX_PHOTO_BYTES = 8 * 1024 * 1024
MIN_WIDTH = 200
MIN_HEIGHT = 120
MAX_SIDE = 8000
JPEG_QUALITY = 92
ALLOWED_FORMATS = {"JPEG": "jpg", "PNG": "png"}

_REF = re.compile(r"^([0-9A-Za-z_-]{1,64})/([0-9a-f]{32})\.(jpg|png)$")
_FACILITY = re.compile(r"^[0-9A-Za-z_-]{1,64}$")


def _invalid(code: str, zh: str, en: str) -> ValidationError:
    return ValidationError(code, zh, en)


def _open_checked(data: bytes) -> Image.Image:
    """Open and fully decode ``data``; raise ``ValidationError`` unless it is a
    sane JPEG or PNG. The caller sets ``field`` on the error."""
    if len(data) > MAX_PHOTO_BYTES:
        raise _invalid(
            "photo_too_large",
            "照片不能超过8MB，请压缩后重新上传",
            "The photo must not exceed 8 MB",
        )
    if not data:
        raise _invalid(
            "id_photo_missing",
            "请上传清晰的身份证照片",
            "Please upload a clear photo of the ID card",
        )
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
            raise _invalid(
                "photo_dimensions_small",
                f"照片太小，看不清证件（至少{MIN_WIDTH}×{MIN_HEIGHT}像素）",
                f"The photo is too small to read the card (at least {MIN_WIDTH}×{MIN_HEIGHT} pixels)",
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


def enrol_face(data: bytes, field: str | None = None) -> bytes:
    """The stored form (1024 bytes) of the one face on an ID-card photo that
    passed ``check_image``, or ``ValidationError`` (``no_face``,
    ``several_faces``, ``face_too_small``, ``too_blurred``) with ``field`` set.
    CPU-bound (dlib): call it through ``PhotoStore.enrol``."""
    return enrol(data, field=field).encoding_bytes()


class PhotoStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._decoding = asyncio.Semaphore(CONCURRENT_DECODES)

    # -- checking -----------------------------------------------------------------
    @staticmethod
    def check_image(data: bytes) -> str:
        """The format ("JPEG" or "PNG") judged from the bytes, never the file
        name; raises ``ValidationError`` (without ``field``: the caller sets it).
        CPU-bound: call it through ``asyncio.to_thread``."""
        image = _open_checked(data)
        return image.format or "JPEG"

    async def check(self, data: bytes) -> str:
        """``check_image`` in a worker thread, a bounded number at a time."""
        async with self._decoding:
            return await asyncio.to_thread(self.check_image, data)

    async def enrol(self, data: bytes, field: str | None = None) -> bytes:
        """``enrol_face`` in a worker thread, sharing the decode limit: dlib
        releases the GIL, so the event loop keeps serving meanwhile."""
        async with self._decoding:
            return await asyncio.to_thread(enrol_face, data, field)

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
