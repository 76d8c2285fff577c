"""Synthetic camera frames composed from the real test photos.

The recognition tests (and later the benchmark) import the composers from here.
A "live" face is a head-and-shoulders crop of one photo; a "card" is a
200×126 px light card with a portrait of another photo on its right third,
as on a resident ID card, which puts a ~45 px face on it.
"""

from __future__ import annotations

import functools

import numpy as np

from recognition import images
from recognition.models import Box, Image, detect
from tests.support.testdata import face

FRAME_W, FRAME_H = 640, 480
CARD_W, CARD_H = 200, 126


@functools.cache
def photo(name: str) -> Image:
    return images.decode(face(name).read_bytes())


@functools.cache
def face_box(name: str) -> Box:
    """The single (largest) face of a test photo, in its pixels."""
    small, back = images.downscale(photo(name), 800)
    return max(detect(small, 0) or detect(small, 1), key=lambda b: b.area).scaled(back)


def head(name: str, face_px: int, *, width_faces: float, height_faces: float) -> Image:
    """A crop around the photo's face, scaled so the face is ``face_px`` wide."""
    image, box = photo(name), face_box(name)
    cx, cy = box.center
    half_w, half_h = box.size * width_faces / 2, box.size * height_faces / 2
    region = Box(round(cx - half_w), round(cy - half_h), round(cx + half_w), round(cy + half_h))
    crop = images.crop(image, region)
    scale = face_px / box.size
    return images.resize(crop, round(crop.shape[1] * scale), round(crop.shape[0] * scale))


def background() -> Image:
    """A dim wall: a smooth gradient, no features HOG could take for a face."""
    y = np.linspace(70, 110, FRAME_H)[:, None]
    x = np.linspace(0, 30, FRAME_W)[None, :]
    grey = (y + x).astype(np.uint8)
    return np.ascontiguousarray(np.stack([grey, grey + 5, grey + 10], axis=2))


def paste(frame: Image, patch: Image, left: int, top: int) -> None:
    h = min(patch.shape[0], frame.shape[0] - top)
    w = min(patch.shape[1], frame.shape[1] - left)
    frame[top : top + h, left : left + w] = patch[:h, :w]


def card(name: str) -> Image:
    """A 200×126 card: light background, the portrait (~45 px face) on the right."""
    out = np.empty((CARD_H, CARD_W, 3), dtype=np.uint8)
    out[:] = (226, 232, 238)
    out[8:12, 10:110] = (120, 130, 150)  # printed lines of text, as on a real card
    out[30:34, 10:100] = (120, 130, 150)
    out[52:56, 10:120] = (120, 130, 150)
    portrait = head(name, 46, width_faces=1.45, height_faces=1.85)
    paste(out, portrait, CARD_W - portrait.shape[1] - 8, (CARD_H - portrait.shape[0]) // 2)
    return out


def live_frame(name: str, *, face_px: int = 170, left: int = 90) -> Image:
    """A phone-camera-like frame of one person, face ``face_px`` wide."""
    frame = background()
    person = head(name, face_px, width_faces=1.8, height_faces=2.6)
    paste(frame, person, left, max(0, (FRAME_H - person.shape[0]) // 2))
    return frame


def card_frame(live: str, on_card: str) -> Image:
    """The gate's picture: ``live`` looking at the camera, holding a card of ``on_card``."""
    frame = live_frame(live)
    paste(frame, card(on_card), 410, 300)
    return frame


def blank_photo() -> Image:
    """A landscape-like gradient (sky over ground): a photo with no face."""
    h, w = 600, 900
    sky = np.linspace(200, 120, h // 2)[:, None] * np.ones((1, w))
    ground = np.linspace(60, 90, h - h // 2)[:, None] * np.ones((1, w))
    grey = np.concatenate([sky, ground]).astype(np.uint8)
    return np.ascontiguousarray(np.stack([grey // 2, grey, grey // 3 + 40], axis=2))


# --- the composers produce what the other modules rely on -------------------------------------


# --- a real head turn: the video clip's lead ---------------------------------------------------

#: The clip's lead (Lin-Manuel Miranda) faces the camera at frame 96 and turns to his right
#: (yaw 0.53 → 0.24) by frame 111; frames 84–111 are one shot without a cut.
CLIP_FRONT, CLIP_TURNED = 96, 111
CLIP_LEAD = "lin_manuel_miranda.png"


@functools.cache
def clip_frames() -> tuple[Image, ...]:
    """Every frame of the clip (640×360, RGB)."""
    import av

    from tests.support.testdata import VIDEO

    with av.open(str(VIDEO / "short_hamilton_clip.mp4")) as container:
        return tuple(
            np.ascontiguousarray(f.to_ndarray(format="rgb24"), dtype=np.uint8)
            for f in container.decode(video=0)
        )


def with_card(frame: Image, on_card: str) -> Image:
    """The frame with an ID card of ``on_card`` held up at its right edge."""
    out = frame.copy()
    paste(out, card(on_card), out.shape[1] - CARD_W - 12, out.shape[0] - CARD_H - 20)
    return out


def _clip(index: int, mirrored: bool) -> Image:
    frame = clip_frames()[index]
    return np.ascontiguousarray(frame[:, ::-1]) if mirrored else frame


def head_turn(*, mirrored: bool = False, repeat: int = 2) -> list[Image]:
    """The lead turning to his right and back (the reversed footage), each frame shown
    ``repeat`` times (a slower turn, as a visitor asked to turn slowly makes). Mirrored,
    it is a turn to his left."""
    there = list(range(CLIP_FRONT, CLIP_TURNED + 1))
    return [_clip(i, mirrored) for i in there + there[::-1] for _ in range(repeat)]


def gate_sequence(
    on_card: str = CLIP_LEAD, *, direction: str = "right", card_frames: int = 90
) -> list[Image]:
    """What a visitor's camera shows at the gate, at 30 fps: the lead facing the camera
    with a card of ``on_card`` (3 s), then a second without it, then turning his head to
    ``direction`` and back, then facing the camera (1 s). ``direction`` "left" is the
    whole scene mirrored."""
    mirrored = direction == "left"
    front = _clip(CLIP_FRONT, mirrored)
    return (
        [with_card(front, on_card)] * card_frames
        + [front] * 30
        + head_turn(mirrored=mirrored)
        + [front] * 30
    )
