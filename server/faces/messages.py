"""What people are told about face checks, and the snapshots officers see.

Owns: the relative's instructions for each gate step (Chinese first, plain words for
anxious, often elderly relatives on a phone), the officers' notices, and the JPEG snapshot
with the face box drawn (CPU work: callers run it in a thread).
"""

from __future__ import annotations

import base64
import io
import math

from PIL import Image as PILImage
from PIL import ImageDraw

from recognition.models import Box, Image
from sessions.errors import Language

#: Snapshots fit in this box.
SNAPSHOT_SIDE = 320

_STEPS: dict[str, tuple[str, str]] = {
    "face": ("请正对摄像头，保持面部完整清晰", "Face the camera, with your whole face visible"),
    "card": (
        "请将身份证人像面举在脸旁，保持5至10秒",
        "Hold the photo side of your ID card next to your face for 5–10 seconds",
    ),
    "hold_still": ("已检测到身份证，请保持不动", "ID card detected, hold still"),
    "mismatch": (
        "人脸与身份证或登记信息不符，请本人手持本人身份证重试",
        "The face does not match the ID card or the application; hold up your own card",
    ),
    "turn_left": (
        "请放下身份证，缓慢向左转头，再转回正面",
        "Put the card down, slowly turn your head to your left, then face the camera again",
    ),
    "turn_right": (
        "请放下身份证，缓慢向右转头，再转回正面",
        "Put the card down, slowly turn your head to your right, then face the camera again",
    ),
    "turn_back": ("请转回正面，看向摄像头", "Now face the camera again"),
    "too_fast": (
        "动作太快或画面中断，请正对摄像头后重新缓慢转头",
        "Too fast, or the picture broke off: face the camera and turn slowly again",
    ),
    "matched": ("本人核验通过，请下一位会见人持身份证", "Confirmed; next visitor, please"),
    "passed": ("身份核验通过，会见即将开始", "Identity confirmed; the visit is starting"),
    "failed": ("身份核验未通过，请等待民警处理", "Identity not confirmed; the officer decides"),
}

_NOTICES: dict[str, tuple[str, str]] = {
    "alert": ("画面中出现未经核准的人员", "An unapproved person is in view"),
    "absent": (
        "核准的会见人已离开画面或无法核验",
        "An approved person is out of view or unverified",
    ),
    "back": ("核准的会见人已回到画面", "The approved person is back in view"),
    "gate_passed": ("身份核验通过", "Identity gate passed"),
    "gate_failed": ("身份核验未通过，请决定准许或结束会见", "Identity gate failed: admit or end"),
}


def step_message(step: str, lang: Language) -> str:
    zh, en = _STEPS[step]
    return zh if lang == "zh" else en


def notice(kind: str, lang: Language) -> str:
    zh, en = _NOTICES[kind]
    return zh if lang == "zh" else en


def snapshot_jpeg(image: Image, boxes: list[Box]) -> bytes:
    """A small JPEG of the frame with the face boxes drawn (CPU: run it in a thread)."""
    picture = PILImage.fromarray(image)
    draw = ImageDraw.Draw(picture)
    for box in boxes:
        draw.rectangle(
            (box.left, box.top, box.right - 1, box.bottom - 1), outline=(255, 40, 40), width=3
        )
    picture.thumbnail((SNAPSHOT_SIDE, SNAPSHOT_SIDE))
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=70)
    return out.getvalue()


def data_url(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def finite(value: float) -> float | None:
    return round(value, 4) if math.isfinite(value) else None


def box_list(box: Box | None) -> list[int] | None:
    return None if box is None else [box.left, box.top, box.right, box.bottom]
