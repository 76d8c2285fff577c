"""Page texts in Simplified Chinese (default) and English.

Domain errors carry their own two messages; this table holds only what the
pages themselves say.
"""

from __future__ import annotations

from aiohttp import web

from sessions.errors import Language

TEXTS: dict[str, tuple[str, str]] = {
    "product": ("亲属网上视频会见", "Family video visits"),
    "switch_language": ("English", "中文"),
    "home_intro": (
        "本系统供被羁押人员的近亲属在线申请并进行视频会见。会见链接和会见码由监所在预约成功后发送给申请人。",
        "Close relatives of people held here apply for and take part in video visits. "
        "The facility sends the visit link and code once a visit is scheduled.",
    ),
    "join_title": ("进入视频会见", "Join the video visit"),
    "join_when": ("预约时间", "Appointment"),
    "join_facility": ("监所", "Facility"),
    "join_code_label": (
        "请输入短信中的8位会见码",
        "Enter the 8-digit visit code from your message",
    ),
    "join_submit": ("进入会见", "Join"),
    "join_hint": (
        "请在预约时间前15分钟内进入。会见开始时，请将本人身份证对准摄像头出示5至10秒。",
        "You can enter from 15 minutes before the appointment. When the visit starts, "
        "hold your ID card to the camera for 5 to 10 seconds.",
    ),
    "lobby_title": ("已进入等候室", "You are in the waiting room"),
    "lobby_body": (
        "会见码验证通过。请保持本页面打开，等待民警开机联线。",
        "Your code was accepted. Keep this page open until the officer connects the visit.",
    ),
    "visit_state": ("会见状态", "Visit state"),
    "remaining": ("剩余时间", "Time left"),
    "minutes": ("分钟", "minutes"),
    "kiosk_title": ("会见终端", "Visit kiosk"),
    "kiosk_today": ("今日会见", "Today's visits"),
    "kiosk_none": ("今日暂无会见安排", "No visits today"),
    "visitors": ("会见人", "Visitors"),
    "error_title": ("无法完成操作", "Something went wrong"),
    "not_found": ("页面不存在", "Page not found"),
}


def pick_language(request: web.Request, default: Language) -> Language:
    wanted = request.query.get("lang") or request.cookies.get("lang")
    return wanted if wanted in ("zh", "en") else default  # type: ignore[return-value]


def translator(lang: Language) -> dict[str, str]:
    index = 0 if lang == "zh" else 1
    return {key: pair[index] for key, pair in TEXTS.items()}
