"""Turning uploads and frames into the arrays ``recognition.models`` takes.

Owns: decoding photo bytes (with the EXIF orientation applied, since phones
store portrait shots sideways), downscaling, cropping and enlarging regions.
Must never: keep an image around or touch the network or the disk.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps

from recognition.models import Box, Image


class UnreadableImage(ValueError):
    """The bytes are not an image Pillow can decode."""


def decode(data: bytes) -> Image:
    """Photo bytes (JPEG/PNG...) → RGB array, upright per its EXIF orientation."""
    try:
        with PILImage.open(io.BytesIO(data)) as opened:
            upright = ImageOps.exif_transpose(opened)
            return np.asarray(upright.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError, PILImage.DecompressionBombError) as exc:
        raise UnreadableImage(str(exc)) from exc


def resize(image: Image, width: int, height: int) -> Image:
    pil = PILImage.fromarray(image).resize((width, height), PILImage.Resampling.BILINEAR)
    return np.asarray(pil, dtype=np.uint8)


def downscale(image: Image, max_side: int) -> tuple[Image, float]:
    """Shrink so the longer side is at most ``max_side``; never enlarge.
    Returns the image and the factor that maps its coordinates back
    (multiply a box by it to get original pixels)."""
    h, w = image.shape[:2]
    longest = max(h, w)
    if longest <= max_side:
        return image, 1.0
    scale = max_side / longest
    return resize(image, max(1, round(w * scale)), max(1, round(h * scale))), longest / max_side


def crop(image: Image, box: Box) -> Image:
    h, w = image.shape[:2]
    b = box.clipped(w, h)
    return np.ascontiguousarray(image[b.top : b.bottom, b.left : b.right])


def enlarge(image: Image, factor: int) -> Image:
    h, w = image.shape[:2]
    return resize(image, w * factor, h * factor)


def grey(image: Image) -> np.ndarray:
    """Luma (ITU-R BT.601) as float64."""
    rgb = image.astype(np.float64)
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
