"""``visitgate demo``: a throw-away facility with everything needed to try a
visit, seeded through the same service calls an officer's clicks make (so the
demo also shows the flow works), then the server.

Its data lives in ``.demo-data/`` (or ``--data-dir``) and is reseeded on every
start unless ``--keep``; a directory is only wiped if it carries our marker.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sessions.adapters.sql import SqlUnitOfWorkFactory, create_engine, upgrade
from sessions.clock import Clock, SystemClock
from sessions.detainees import Detainee
from sessions.facilities import FacilityKind, FacilityRules, OpeningHours
from sessions.identity import check_digit
from sessions.ids import new_id
from sessions.officers import Role
from sessions.passwords import Argon2Hasher
from sessions.services import VisitGateService, VisitorInput

from .secrets import FernetSealer, load_or_create_key
from .settings import Settings
from .uploads import PhotoStore

MARKER = ".visitgate-demo"
DEMO_PASSWORD = "demo-2026-visit"
OFFICERS = (
    ("shouli", "王敏", Role.INTAKE),
    ("shenhe", "陈刚", Role.REVIEWER),
    ("zhiban", "刘洋", Role.DUTY),
    ("lingdao", "赵建国", Role.LEADER),
    ("admin", "系统管理员", Role.ADMIN),
)


def demo_id_number(region: str, born: date, sequence: str) -> str:
    first17 = f"{region}{born:%Y%m%d}{sequence}"
    return first17 + check_digit(first17)


@dataclass(frozen=True)
class DemoSeed:
    facility_name: str
    application_number: str
    starts_at: datetime
    visit_token: str
    visit_code: str
    kiosk_token: str


def _next_slot(now: datetime) -> datetime:
    """Ten minutes from now on a five-minute boundary: the link opens at once."""
    start = now + timedelta(minutes=10)
    return start.replace(
        minute=start.minute - start.minute % 5, second=0, microsecond=0
    ) + timedelta(minutes=5)


async def seed(
    settings: Settings, clock: Clock | None = None, *, id_photo: bytes | None = None
) -> DemoSeed:
    """``id_photo``: the demo visitor's ID-card photo (e.g. your own), enrolled so the
    face gate runs; without it the visitor has none and the officer admits by hand."""
    clock = clock or SystemClock()
    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)
        service = VisitGateService(
            SqlUnitOfWorkFactory(engine),
            clock,
            Argon2Hasher(),
            sealer=FernetSealer(load_or_create_key(settings.data_dir, settings.secret_key)),
        )
        # Open all day so the demo works whenever it is started.
        rules = FacilityRules.default_for(FacilityKind.DETENTION_CENTRE).with_changes(
            opening_hours=OpeningHours(((time(0, 0), time(23, 59)),))
        )
        facility = await service.create_facility(
            "演示市看守所", FacilityKind.DETENTION_CENTRE, actor="demo", rules=rules
        )
        officers = {}
        for username, name, role in OFFICERS:
            officers[role] = await service.create_officer(
                facility_id=facility.id,
                username=username,
                display_name=name,
                password=DEMO_PASSWORD,
                roles=frozenset({role}),
                actor="demo",
            )
        today = facility.local_date(clock.now())
        detainee = await service.register_detainee(
            Detainee(new_id(), facility.id, "张伟", admitted_on=today - timedelta(days=90)),
            actor="demo",
        )
        kiosk, kiosk_token = await service.register_kiosk(facility.id, "一号会见终端", actor="demo")
        photo_ref, encoding = "demo/no-photo", None
        if id_photo is not None:
            photos = PhotoStore(settings.data_dir / "photos")
            encoding = await photos.enrol(id_photo, "id_photo")
            photo_ref = await photos.save(facility.id, id_photo)
        application = await service.submit_application(
            facility_id=facility.id,
            detainee_name=detainee.name,
            visitors=[
                VisitorInput(
                    name="李秀英",
                    id_number=demo_id_number("331102", date(1965, 5, 15), "122"),
                    phone="13800138000",
                    relationship="parent",
                    id_photo_ref=photo_ref,
                    face_encoding=encoding,
                )
            ],
            reason="distance_hardship",
        )
        await service.accept(officers[Role.INTAKE].id, application.id)
        await service.approve(officers[Role.REVIEWER].id, application.id)
        starts_at = _next_slot(clock.now())
        if not rules.opening_hours.contains(starts_at, starts_at + timedelta(hours=1), facility.tz):
            # Close to midnight: book tomorrow morning instead.
            tomorrow = facility.local_date(clock.now()) + timedelta(days=1)
            starts_at = datetime.combine(tomorrow, time(9, 0), facility.tz)
        scheduled = await service.schedule(
            officers[Role.DUTY].id, application.id, kiosk.id, starts_at
        )
        return DemoSeed(
            facility.name,
            application.number,
            scheduled.appointment.starts_at.astimezone(facility.tz),
            scheduled.secrets.token,
            scheduled.secrets.code,
            kiosk_token,
        )
    finally:
        await engine.dispose()


def describe(settings: Settings, demo: DemoSeed) -> str:
    base = settings.base_url()
    officer_lines = "\n".join(
        f"    {username:<8} {name}（{role.label_zh}）" for username, name, role in OFFICERS
    )
    return f"""
================ VisitGate 演示 / demo ================
监所 facility:        {demo.facility_name}（看守所，每次会见不超过60分钟）
申请编号 application: {demo.application_number}（已受理、已审核通过、已预约）
会见时间 visit at:    {demo.starts_at:%Y-%m-%d %H:%M}（可提前15分钟进入）

家属会见链接 relative's link:
    {base}/v/{demo.visit_token}
会见码 visit code:    {demo.visit_code}

会见终端 kiosk page:
    {base}/kiosk?token={demo.kiosk_token}

民警账号 officers (密码 password: {DEMO_PASSWORD}):
{officer_lines}
健康检查 health:      {base}/healthz
监控指标 metrics:     {base}/metrics
=======================================================
"""


def prepare_data_dir(settings: Settings, keep: bool) -> bool:
    """Returns True when the demo must be seeded."""
    data_dir = settings.data_dir
    if data_dir.exists() and any(data_dir.iterdir()):
        if not (data_dir / MARKER).exists():
            raise SystemExit(
                f"{data_dir} 不是演示数据目录，拒绝覆盖 / not a demo directory; refusing to wipe it"
            )
        if keep:
            return False
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / MARKER).write_text("VisitGate demo data; deleted on each `visitgate demo`\n")
    return True


def run_demo(raw_args: Mapping[str, object]) -> int:
    from .cli import serve

    args = dict(raw_args)
    if args.get("data_dir") is None:
        args["data_dir"] = ".demo-data"
    settings = Settings.from_sources(args)
    if prepare_data_dir(settings, bool(args.get("keep"))):
        demo = asyncio.run(seed(settings))
        print(describe(settings, demo), flush=True)
    else:
        print("使用已有的演示数据（--keep）/ reusing the demo data", flush=True)
    serve(settings)
    return 0
