"""Fake camera and microphone files for Chromium's fake capture devices.

Chromium reads a raw YUV4MPEG2 file (``--use-file-for-fake-video-capture=X.y4m``, looped)
and a WAV file (``--use-file-for-fake-audio-capture=X.wav``). They are built here with
PyAV from the shared test material: the relative's camera shows frames of the Hamilton
clip or a face photo, the kiosk's another face, so each side's picture is recognisable on
the screenshots.
"""

from __future__ import annotations

import fractions
import math
import struct
import wave
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from tests.support.testdata import VIDEO, face

WIDTH, HEIGHT = 640, 480
FPS = 15
SAMPLE_RATE = 48_000


def _still_frames(photo: Path, count: int) -> Iterator[av.VideoFrame]:
    """A slow pan over a still photo, so consecutive frames differ."""
    with av.open(str(photo)) as src:
        image = next(src.decode(video=0)).to_image().convert("RGB")
    # Scale to cover 680x520, then crop a 640x480 window that moves a pixel or two per frame.
    scale = max((WIDTH + 40) / image.width, (HEIGHT + 40) / image.height)
    big = image.resize((math.ceil(image.width * scale), math.ceil(image.height * scale)))
    for n in range(count):
        phase = 2 * math.pi * n / count
        x = int(20 + 20 * math.sin(phase))
        y = int(20 + 20 * math.cos(phase))
        crop = big.crop((x, y, x + WIDTH, y + HEIGHT))
        yield av.VideoFrame.from_image(crop).reformat(format="yuv420p")


def _clip_frames(clip: Path, count: int) -> Iterator[av.VideoFrame]:
    produced = 0
    while produced < count:
        with av.open(str(clip)) as src:
            for frame in src.decode(video=0):
                if produced >= count:
                    return
                yield frame.reformat(width=WIDTH, height=HEIGHT, format="yuv420p")
                produced += 1


def write_y4m(path: Path, source: Path, seconds: float = 5.0) -> Path:
    """A 640x480 yuv420p Y4M of ``source`` (a photo, or a video's first frames)."""
    count = int(seconds * FPS)
    frames = (
        _clip_frames(source, count)
        if source.suffix.lower() in (".mp4", ".webm", ".mkv")
        else _still_frames(source, count)
    )
    with av.open(str(path), "w", format="yuv4mpegpipe") as out:
        stream = out.add_stream("rawvideo", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for n, frame in enumerate(frames):
            frame.pts = n
            frame.time_base = fractions.Fraction(1, FPS)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def write_tone(path: Path, seconds: float = 5.0, hz: float = 440.0) -> Path:
    """A 16-bit 48 kHz mono sine tone."""
    count = int(seconds * SAMPLE_RATE)
    samples = (int(12_000 * math.sin(2 * math.pi * hz * n / SAMPLE_RATE)) for n in range(count))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return path


def relative_camera(directory: Path) -> Path:
    """The relative's phone camera: the Hamilton clip."""
    return write_y4m(directory / "relative.y4m", VIDEO / "short_hamilton_clip.mp4")


def kiosk_camera(directory: Path) -> Path:
    """The kiosk's camera: a slow pan over obama_1.jpg."""
    return write_y4m(directory / "kiosk.y4m", face("obama_1.jpg"))


def write_frames_y4m(path: Path, frames: list[npt.NDArray[np.uint8]], fps: int = 30) -> Path:
    """A 640x480 yuv420p Y4M of composed RGB frames (``tests.support.faces``), each
    letterboxed into 640x480 (the clip is 640x360: stretching would distort the faces)."""
    with av.open(str(path), "w", format="yuv4mpegpipe") as out:
        stream = out.add_stream("rawvideo", rate=fps)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for n, picture in enumerate(frames):
            canvas = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
            h, w = min(HEIGHT, picture.shape[0]), min(WIDTH, picture.shape[1])
            top, left = (HEIGHT - h) // 2, (WIDTH - w) // 2
            canvas[top : top + h, left : left + w] = picture[:h, :w]
            frame = av.VideoFrame.from_ndarray(canvas, format="rgb24").reformat(format="yuv420p")
            frame.pts = n
            frame.time_base = fractions.Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path
