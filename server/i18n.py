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
    # -- the relative's application form and status page (server/public.py) --
    "apply_title": ("申请视频会见", "Apply for a video visit"),
    "apply_intro": (
        "请如实填写。申请人及同行会见人须为被会见人的近亲属，每次会见不超过3人；每人须上传本人身份证照片，照片中的人像将用于会见时核验身份。",
        "Please answer truthfully. The applicant and anyone joining must be close relatives "
        "of the person held; at most 3 people per visit. Each person uploads a photo of their "
        "own ID card; its portrait is used to check identity during the visit.",
    ),
    "apply_errors": (
        "提交未成功，请按红色提示修改后重新提交（照片需重新选择）。",
        "Not submitted: please correct the items marked in red and submit again "
        "(choose the photos again).",
    ),
    "apply_visit": ("会见信息", "The visit"),
    "apply_facility": ("监所", "Facility"),
    "apply_choose": ("请选择", "Please choose"),
    "apply_detainee": ("被会见人姓名", "Name of the person held"),
    "apply_reason": ("申请视频会见的原因", "Reason for a video visit"),
    "apply_reason_detail": (
        "原因说明（选择“其他”时必填）",
        "Explanation (required for 'other')",
    ),
    "apply_visitor_1": ("申请人（本人）", "Applicant (you)"),
    "apply_visitor_2": ("同行会见人二（可不填）", "Second visitor (optional)"),
    "apply_visitor_3": ("同行会见人三（可不填）", "Third visitor (optional)"),
    "apply_optional_hint": (
        "如无同行会见人，本栏全部留空即可。",
        "Leave this section entirely empty if nobody else joins.",
    ),
    "apply_name": ("姓名", "Name"),
    "apply_id_number": ("身份证号码（18位）", "ID number (18 characters)"),
    "apply_phone": ("手机号码", "Mobile phone"),
    "apply_relationship": ("与被会见人关系", "Relationship to the person held"),
    "apply_photo": ("身份证人像面照片", "Photo of the ID card (portrait side)"),
    "apply_photo_hint": (
        "JPEG或PNG格式，不超过8MB；请在光线充足处拍摄，证件完整、字迹和人像清晰。",
        "JPEG or PNG, at most 8 MB; take it in good light with the whole card, "
        "its text and the portrait sharp.",
    ),
    "apply_submit": ("提交申请", "Submit the application"),
    "apply_check_link": ("查询申请进度", "Check an application"),
    "done_title": ("申请已提交", "Application submitted"),
    "done_number": ("申请编号", "Application number"),
    "done_keep": (
        "请记下申请编号。凭申请编号和身份证号码可随时查询办理进度。",
        "Write down the application number. With it and your ID number you can check "
        "the progress at any time.",
    ),
    "done_deadline": ("审核答复期限", "Answer due by"),
    "done_deadline_note": (
        "监所将在5个工作日内（法定节假日除外）答复。",
        "The facility answers within 5 working days (public holidays excluded).",
    ),
    "done_missing": (
        "未找到该申请的提交记录，请通过“查询申请进度”查看。",
        "This submission is not known here; use 'Check an application' instead.",
    ),
    "status_title": ("查询申请进度", "Check an application"),
    "status_intro": (
        "请输入申请编号和申请人或任一会见人的身份证号码。",
        "Enter the application number and the ID number of the applicant or any visitor.",
    ),
    "status_number": ("申请编号", "Application number"),
    "status_id_number": ("身份证号码", "ID number"),
    "status_submit": ("查询", "Look up"),
    "status_missing_number": ("请填写申请编号", "Please enter the application number"),
    "status_missing_id": ("请填写身份证号码", "Please enter the ID number"),
    "status_rate_limited": (
        "查询过于频繁，请稍后再试",
        "Too many look-ups; please try again later",
    ),
    "status_state": ("办理状态", "State"),
    "status_submitted_on": ("提交日期", "Submitted on"),
    "status_reason": ("理由", "Reason"),
    "status_appointment": ("会见安排", "Your visit"),
    "status_link": ("会见链接", "Visit link"),
    "status_code": ("会见码", "Visit code"),
    "status_how_to_join": ("如何参加会见", "How to join"),
    "status_join_steps": (
        "用手机或电脑浏览器打开会见链接，输入会见码。可在预约时间前15分钟内进入；会见开始时请将本人身份证对准摄像头出示5至10秒，核验通过后开始会见。请勿将链接和会见码告诉他人。",
        "Open the visit link in a phone or computer browser and enter the visit code. You can "
        "enter from 15 minutes before the appointment; when the visit starts, hold your ID card "
        "to the camera for 5 to 10 seconds; the visit begins once it is verified. Do not share "
        "the link or the code.",
    ),
    "status_no_secrets": (
        "会见链接和会见码已通过短信发送；如未收到，请联系监所。",
        "The visit link and code were sent by text message; contact the facility if you "
        "did not receive them.",
    ),
    "status_visit_state": ("会见状态", "Visit state"),
    "status_again": ("查询其他申请", "Check another application"),
    "app_state_submitted": ("已提交，待受理", "Submitted, awaiting intake"),
    "app_state_returned": ("材料不全，已退回", "Returned: details missing"),
    "app_state_accepted": ("已受理，待审核", "Accepted, under review"),
    "app_state_approved": ("审核通过，待预约", "Approved, awaiting a time"),
    "app_state_rejected": ("不予会见", "Refused"),
    "app_state_scheduled": ("已预约", "Scheduled"),
    "csrf_failed": (
        "页面已过期或请求无效，请刷新页面后重新提交",
        "The page has expired or the request is not valid; reload the page and submit again",
    ),
    "form_too_large": (
        "提交的内容过大，请压缩照片后重新提交（每张不超过8MB）",
        "The submission is too large; make the photos smaller (8 MB each at most)",
    ),
    "form_invalid": ("提交的表单无效，请刷新页面后重新填写", "The form is not valid; reload it"),
    "field_too_long": ("内容过长", "Too long"),
    # -- the officers' console (server/console.py, server/auth.py) --
    "c_console": ("民警工作台", "Officer console"),
    "c_login_title": ("民警登录", "Officer sign-in"),
    "c_username": ("用户名", "Username"),
    "c_password": ("密码", "Password"),
    "c_login": ("登录", "Sign in"),
    "c_logout": ("退出登录", "Sign out"),
    "c_dashboard": ("工作台", "Dashboard"),
    "c_ledger": ("台账", "Ledger"),
    "c_admin": ("系统管理", "Administration"),
    "c_queue_empty": ("暂无", "Nothing here"),
    "c_today": ("今日会见", "Today's visits"),
    "c_number": ("申请编号", "Application no."),
    "c_detainee": ("被会见人", "Detainee"),
    "c_applicant": ("申请人", "Applicant"),
    "c_state": ("状态", "State"),
    "c_deadline": ("审核截止日期", "Review deadline"),
    "c_days_left": ("剩余", "Left"),
    "c_working_days": ("个工作日", " working days"),
    "c_overdue_by": ("已超期", "Overdue by "),
    "c_estimate": ("（估算）", "(estimate)"),
    "c_time": ("时间", "Time"),
    "c_kiosk": ("会见终端", "Kiosk"),
    "c_application": ("会见申请", "Application"),
    "c_secrets_title": ("会见链接和会见码", "Visit link and code"),
    "c_secrets_once": (
        "仅显示这一次，请告知申请人（系统也会以短信发送）。",
        "Shown only this once: tell the applicant (they also receive it by SMS).",
    ),
    "c_visit_link": ("会见链接", "Visit link"),
    "c_visit_code": ("会见码", "Visit code"),
    "c_reason": ("申请原因", "Reason"),
    "c_submitted": ("提交时间", "Submitted"),
    "c_decision_reason": ("决定理由", "Reason for the decision"),
    "c_decided_by": ("办理民警", "Decided by"),
    "c_appointment": ("预约时间", "Appointment"),
    "c_exception": ("所领导例外", "Leader's exception"),
    "c_review_brief": ("审核要点", "Review brief"),
    "c_brief_clear": (
        "未发现不予会见情形，会见次数和人数均在规定之内。",
        "No reason to refuse; within the limits.",
    ),
    "c_ineligible": ("不安排视频会见的情形：", "Reasons that rule out a video visit:"),
    "c_quota_issues": ("超出规定的情况：", "Limits exceeded:"),
    "c_needs": ("需所领导批准：", "needs a leader's exception: "),
    "c_name": ("姓名", "Name"),
    "c_id_number": ("身份证号码", "ID number"),
    "c_relationship": ("关系", "Relationship"),
    "c_phone": ("手机号码", "Phone"),
    "c_id_photo": ("身份证照片", "ID-card photo"),
    "c_actions": ("办理", "Actions"),
    "c_accept": ("受理", "Accept"),
    "c_return_reason": ("退回理由（须填写）", "Why it is returned (required)"),
    "c_return": ("材料不全，退回", "Return as incomplete"),
    "c_approve": ("审核通过", "Approve"),
    "c_reject_reason": ("不予会见的理由（须填写）", "Why it is refused (required)"),
    "c_reject": ("不予会见", "Reject"),
    "c_exception_kind": ("例外类型", "Kind of exception"),
    "c_exception_reason": ("批准理由（须填写）", "Reason (required)"),
    "c_extra_minutes": ("延长分钟数", "Extra minutes"),
    "c_extra_people": ("增加人数", "Extra people"),
    "c_grant": ("批准例外", "Grant the exception"),
    "c_date": ("日期", "Date"),
    "c_schedule": ("预约会见", "Schedule"),
    "c_no_actions": ("当前没有您可以办理的事项。", "Nothing for your post to do here now."),
    "c_notices": ("短信通知", "Notices"),
    "c_notice_kind": ("通知", "Notice"),
    "c_created": ("生成时间", "Created"),
    "c_delivery": ("发送情况", "Delivery"),
    "c_none": ("无", "None"),
    "c_history": ("办理记录", "History"),
    "c_actor": ("操作人", "By"),
    "c_event": ("事项", "Event"),
    "c_details": ("详情", "Details"),
    "c_date_from": ("提交日期自", "Submitted from"),
    "c_date_to": ("至", "to"),
    "c_all_states": ("全部状态", "All states"),
    "c_filter": ("查询", "Filter"),
    "c_verify": ("校验台账完整性", "Verify the ledger chain"),
    "c_export_csv": ("导出CSV（Excel）", "Export CSV (Excel)"),
    "c_chain_ok": (
        "台账校验通过，未发现篡改，已校验记录数",
        "The ledger chain is intact; records checked",
    ),
    "c_chain_broken": ("台账校验未通过，问题记录", "The ledger chain is broken at record"),
    "c_people": ("人数", "People"),
    "c_end_reason": ("结束原因", "How it ended"),
    "c_kiosk_added": ("已添加会见终端", "Kiosk added"),
    "c_kiosk_token_once": (
        "终端令牌只显示这一次，请立即在终端上打开下面的链接，不要外传。",
        "The device token is shown only this once: open the link on the kiosk now and keep it private.",
    ),
    "c_device_token": ("终端令牌", "Device token"),
    "c_kiosk_link": ("终端链接", "Kiosk link"),
    "c_rules": ("会见规则", "Visit rules"),
    "c_visits_per_period": ("会见次数上限", "Visits allowed"),
    "c_period": ("计算周期", "Counted per"),
    "c_max_minutes": ("每次会见时长（分钟）", "Minutes per visit"),
    "c_max_people": ("每次会见人数上限", "People per visit"),
    "c_face_policy": ("出现非登记人员时", "When an unexpected face appears"),
    "c_opening_hours": (
        "开放时段（如 08:30-12:00,14:00-17:00）",
        "Opening hours (e.g. 08:30-12:00,14:00-17:00)",
    ),
    "c_save": ("保存", "Save"),
    "c_kiosks": ("会见终端", "Kiosks"),
    "c_kiosk_name": ("终端名称", "Kiosk name"),
    "c_add_kiosk": ("添加终端", "Add a kiosk"),
    "c_officers": ("民警账号", "Officers"),
    "c_posts": ("岗位", "Posts"),
    "c_status": ("状态", "Status"),
    "c_active": ("启用", "Active"),
    "c_inactive": ("已停用", "Disabled"),
    "c_activate": ("启用", "Enable"),
    "c_deactivate": ("停用", "Disable"),
    "c_initial_password": ("初始密码", "Initial password"),
    "c_add_officer": ("添加民警", "Add an officer"),
    "c_detainees": ("被羁押人员", "Detainees"),
    "c_admitted_on": ("入所日期", "Admitted on"),
    "c_eligibility_facts": ("影响视频会见的情况", "Facts that affect video visits"),
    "c_released_on": ("离所日期", "Released on"),
    "c_detainee_photo": ("本人照片", "Photo"),
    "c_detainee_photo_hint": (
        "正面免冠、只有本人一张人脸、面部清晰且占画面大部分；JPEG或PNG，不超过8MB。"
        "用于会见时核验终端一侧的人员。",
        "Frontal and bareheaded, only this person's face, sharp and filling most of the "
        "frame; JPEG or PNG, at most 8 MB. Used to check who is at the kiosk during a visit.",
    ),
    "c_face_enrolled": (
        "已录入人脸，会见时可核验终端一侧的人员",
        "Face enrolled: the kiosk side can be checked during a visit",
    ),
    "c_face_not_enrolled": (
        "尚未录入人脸，会见时无法核验终端一侧的人员",
        "No face enrolled yet: the kiosk side cannot be checked during a visit",
    ),
    "c_face_enrolled_short": ("已录入", "Enrolled"),
    "c_face_not_enrolled_short": ("未录入", "Not enrolled"),
    "c_upload_photo": ("上传照片", "Upload a photo"),
    "c_replace_photo": ("更换照片", "Replace the photo"),
    "c_upload": ("上传并录入", "Upload and enrol"),
    "c_add_detainee": ("登记", "Register"),
    "c_calendar": ("节假日与调休", "Holidays and make-up working days"),
    "c_day_kind": ("当天为", "That day is"),
    "c_workday": ("工作日", "a working day"),
    "c_holiday": ("休息日", "a day off"),
    "c_note": ("备注", "Note"),
}


def pick_language(request: web.Request, default: Language) -> Language:
    wanted = request.query.get("lang") or request.cookies.get("lang")
    return wanted if wanted in ("zh", "en") else default  # type: ignore[return-value]


def translator(lang: Language) -> dict[str, str]:
    index = 0 if lang == "zh" else 1
    return {key: pair[index] for key, pair in TEXTS.items()}
