"""The relative's public side over the real app and a real SQLite file: the
application form with ID-card photos, the "submitted" page, the status look-up
(with its rate limit), as a browser sees them."""

from __future__ import annotations

import io
import re
from datetime import date, datetime, time, timedelta
from pathlib import Path

import numpy as np
import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request
from PIL import ExifTags, Image
from pytest_aiohttp.plugin import AiohttpClient

from recognition.enrolment import enrol
from recognition.models import distance
from server.app import create_app
from server.demo import DemoSeed, demo_id_number, seed
from server.keys import SERVICE
from server.public import CSRF_COOKIE
from server.ratelimit import SlidingWindowLimiter
from server.settings import Settings
from server.uploads import PhotoStore
from sessions.applications import Application as VisitApplication
from sessions.clock import ManualClock
from sessions.errors import ValidationError
from sessions.services import VisitGateService
from tests.support.domain import SHANGHAI
from tests.support.testdata import face

START = datetime(2026, 3, 2, 9, 0, tzinfo=SHANGHAI)
APPLICANT_ID = demo_id_number("110101", date(1980, 1, 1), "123")
SECOND_ID = demo_id_number("320102", date(1985, 6, 30), "456")
PhotoFile = tuple[str, bytes, str]  # file name, bytes, content type


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_sources({"data_dir": str(tmp_path / "data")}, environ={})


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def demo(settings: Settings, clock: ManualClock) -> DemoSeed:
    return await seed(settings, clock)


@pytest.fixture
async def client(
    aiohttp_client: AiohttpClient, settings: Settings, clock: ManualClock, demo: DemoSeed
) -> TestClient[Request, Application]:
    return await aiohttp_client(create_app(settings, clock=clock))


def _service(client: TestClient) -> VisitGateService:
    app = client.app
    assert app is not None
    return app[SERVICE]


def _photo_with_gps_exif() -> bytes:
    """biden_1.jpg stored sideways (as a phone does) with an orientation tag
    that turns it upright again, and GPS coordinates."""
    # ROTATE_90 turns it counter-clockwise; orientation 6 tells viewers to turn
    # it back clockwise, so the face is upright only if the tag is applied.
    image = Image.open(face("biden_1.jpg")).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # rotate 90° to display upright
    exif[ExifTags.Base.Make] = "TestPhone"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (31.0, 14.0, 5.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (121.0, 28.0, 7.0)
    out = io.BytesIO()
    image.convert("RGB").save(out, format="JPEG", exif=exif, quality=90)
    data = out.getvalue()
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(ExifTags.IFD.GPSInfo)
    return data


def _jpeg(name: str = "biden_1.jpg") -> PhotoFile:
    return (name, face(name).read_bytes(), "image/jpeg")


def _visitor(index: int, **override: str) -> dict[str, str]:
    values = {
        "name": "李明" if index == 0 else "李华",
        "id_number": APPLICANT_ID if index == 0 else SECOND_ID,
        "phone": "13912345678" if index == 0 else "13712345678",
        "relationship": "child" if index == 0 else "sibling",
    }
    values.update(override)
    return {f"visitors.{index}.{k}": v for k, v in values.items()}


async def _csrf(client: TestClient, path: str = "/apply") -> str:
    page = await client.get(path)
    assert page.status == 200
    match = re.search(r'name="csrf" value="([^"]+)"', await page.text())
    assert match is not None
    return match.group(1)


async def _post_application(
    client: TestClient,
    *,
    visitors: list[dict[str, str]] | None = None,
    photos: dict[int, PhotoFile] | None = None,
    csrf: str | None = "fetch",
    **fields: str,
) -> tuple[int, str, str]:
    """Returns (status, body, Location)."""
    if csrf == "fetch":
        csrf = await _csrf(client)
    facility_id = await _facility_id(client)
    form = FormData()
    if csrf is not None:
        form.add_field("csrf", csrf)
    values = {
        "facility_id": facility_id,
        "detainee_name": "张伟",
        "reason": "distance_hardship",
        "reason_detail": "",
        **fields,
    }
    for key, value in values.items():
        form.add_field(key, value)
    for visitor in visitors if visitors is not None else [_visitor(0)]:
        for key, value in visitor.items():
            form.add_field(key, value)
    for index, (name, data, content_type) in (photos or {0: _jpeg()}).items():
        form.add_field(f"visitors.{index}.id_photo", data, filename=name, content_type=content_type)
    response = await client.post("/apply", data=form, allow_redirects=False)
    return response.status, await response.text(), response.headers.get("Location", "")


async def _facility_id(client: TestClient) -> str:
    async with _service(client).uow() as uow:
        (facility,) = await uow.facilities.list()
    return facility.id


async def _applications(client: TestClient) -> list[VisitApplication]:
    facility_id = await _facility_id(client)
    async with _service(client).uow() as uow:
        return await uow.applications.list(facility_id)


def _stored_photos(settings: Settings) -> list[Path]:
    root = settings.data_dir / "photos"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def _error_next_to(html: str, field: str) -> str:
    match = re.search(rf'<p class="field-error" id="err-{re.escape(field)}"[^>]*>([^<]*)</p>', html)
    assert match is not None, f"no error shown next to {field}"
    return match.group(1)


# -- the form -------------------------------------------------------------------------
async def test_the_form_offers_three_visitors_with_labels_in_chinese(client: TestClient) -> None:
    page = await client.get("/apply")
    html = await page.text()
    assert page.status == 200
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "same-origin"
    assert (
        "演示市看守所" in html and "兄弟姐妹" in html and "因病、年老体弱、伤残等行动不便" in html
    )
    assert html.count('accept="image/jpeg,image/png"') == 3
    assert "capture" not in html
    assert 'name="visitors.3.name"' not in html
    cookie = page.cookies[CSRF_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict"


async def test_a_valid_application_stores_a_clean_photo_outside_static(
    client: TestClient, settings: Settings
) -> None:
    facility_id = await _facility_id(client)
    status, _body, location = await _post_application(
        client,
        visitors=[_visitor(0), _visitor(1)],
        photos={
            0: ("IMG_0001.JPG", _photo_with_gps_exif(), "image/jpeg"),
            1: _jpeg("obama_480p.jpg"),
        },
    )
    assert status == 303
    assert location.startswith("/apply/done/")
    number = location.rsplit("/", 1)[1]

    (application,) = [a for a in await _applications(client) if a.number == number]
    assert [v.name for v in application.visitors] == ["李明", "李华"]
    stored = _stored_photos(settings)
    assert len(stored) == 2
    store = PhotoStore(settings.data_dir / "photos")
    applicant_photo = store.path_of(application.applicant.id_photo_ref)
    assert applicant_photo in stored
    assert applicant_photo.parent == settings.data_dir / "photos" / facility_id
    assert store.facility_of(application.applicant.id_photo_ref) == facility_id
    assert applicant_photo.stat().st_mode & 0o777 == 0o600
    with Image.open(applicant_photo) as image:
        assert image.format == "JPEG"
        assert not image.getexif()
        assert "exif" not in image.info
        image.load()
        # The EXIF orientation was applied before it was dropped: the sideways
        # (landscape) pixels are the upright portrait again.
        assert image.size == (970, 2204)

    # Each visitor's face was enrolled at upload and stored with the person, in order.
    applicant, second = application.visitors
    assert applicant.face_encoding is not None and len(applicant.face_encoding) == 1024
    assert second.face_encoding is not None and len(second.face_encoding) == 1024
    biden_2 = enrol(face("biden_2.jpg").read_bytes()).encoding
    assert distance(np.frombuffer(applicant.face_encoding, dtype="<f8"), biden_2) < 0.6
    assert distance(np.frombuffer(second.face_encoding, dtype="<f8"), biden_2) > 0.6  # Obama

    for path in (
        f"/static/{application.applicant.id_photo_ref}",
        f"/static/photos/{application.applicant.id_photo_ref}",
        f"/static/../../{settings.data_dir.name}/photos/{application.applicant.id_photo_ref}",
    ):
        assert (await client.get(path)).status in (403, 404)

    done = await client.get(location)
    assert done.status == 200
    html = await done.text()
    assert number in html and application.deadline.due.isoformat() in html
    assert done.headers["Cache-Control"] == "no-store"


async def test_the_done_page_is_only_for_the_browser_that_submitted(client: TestClient) -> None:
    status, _body, location = await _post_application(client)
    assert status == 303
    client.session.cookie_jar.clear(lambda cookie: cookie.key == "apply_done")
    again = await client.get(location)
    assert again.status == 404


async def test_a_png_is_accepted_and_stays_png(client: TestClient, settings: Settings) -> None:
    status, _body, _location = await _post_application(
        client,
        photos={0: ("card.png", face("lin_manuel_miranda.png").read_bytes(), "image/png")},
    )
    assert status == 303
    (stored,) = _stored_photos(settings)
    assert stored.suffix == ".png"
    with Image.open(stored) as image:
        assert image.format == "PNG" and "icc_profile" not in image.info


async def test_a_text_file_named_jpg_is_refused_and_nothing_is_stored(
    client: TestClient, settings: Settings
) -> None:
    before = await _applications(client)
    status, html, _location = await _post_application(
        client, photos={0: ("photo.jpg", "这不是图片\n".encode() * 100, "image/jpeg")}
    )
    assert status == 422
    assert _error_next_to(html, "visitors.0.id_photo") == "照片须为JPEG或PNG格式的图片"
    assert 'value="李明"' in html  # typed values are kept
    assert await _applications(client) == before
    assert _stored_photos(settings) == []


async def test_a_truncated_jpeg_is_refused(client: TestClient, settings: Settings) -> None:
    data = face("biden_1.jpg").read_bytes()
    status, html, _location = await _post_application(
        client, photos={0: ("cut.jpg", data[: len(data) // 2], "image/jpeg")}
    )
    assert status == 422
    assert "损坏或不完整" in _error_next_to(html, "visitors.0.id_photo")
    assert _stored_photos(settings) == []


async def test_a_photo_over_8_mib_is_refused_while_streaming(
    client: TestClient, settings: Settings
) -> None:
    before = await _applications(client)
    # 11 MiB: over the photo limit and over the app's client_max_size (10 MiB),
    # which request.multipart() does not apply; the per-file limit does.
    big = face("biden_1.jpg").read_bytes() + b"\0" * (11 * 1024 * 1024)
    status, html, _location = await _post_application(
        client,
        visitors=[_visitor(0, id_number="11010119800101123X")],
        photos={0: ("big.jpg", big, "image/jpeg")},
    )
    assert status == 422
    assert _error_next_to(html, "visitors.0.id_photo") == "照片不能超过8MB，请压缩后重新上传"
    # The fields after the oversized photo were still read and judged.
    assert _error_next_to(html, "visitors.0.id_number").startswith("身份证号码")
    assert await _applications(client) == before
    assert _stored_photos(settings) == []


def _gradient_jpeg() -> PhotoFile:
    """A smooth grey ramp: a valid 900×600 photo with no face in it."""
    out = io.BytesIO()
    Image.linear_gradient("L").resize((900, 600)).convert("RGB").save(out, format="JPEG")
    return ("gradient.jpg", out.getvalue(), "image/jpeg")


async def test_a_photo_with_two_faces_is_refused_next_to_that_visitors_photo(
    client: TestClient, settings: Settings
) -> None:
    before = await _applications(client)
    status, html, _location = await _post_application(
        client,
        visitors=[_visitor(0), _visitor(1)],
        photos={0: _jpeg(), 1: _jpeg("two_people.jpg")},
    )
    assert status == 422
    message = _error_next_to(html, "visitors.1.id_photo")
    assert message.startswith("照片中检测到") and "张人脸，只能有一张" in message
    assert 'id="err-visitors.0.id_photo"' not in html  # the applicant's photo was fine
    # One visitor failed: nothing is stored, not even the applicant's good photo.
    assert await _applications(client) == before
    assert _stored_photos(settings) == []


async def test_a_photo_without_a_face_is_refused(client: TestClient, settings: Settings) -> None:
    before = await _applications(client)
    status, html, _location = await _post_application(client, photos={0: _gradient_jpeg()})
    assert status == 422
    assert _error_next_to(html, "visitors.0.id_photo").startswith("照片中未检测到人脸")
    assert await _applications(client) == before
    assert _stored_photos(settings) == []


async def test_a_bad_check_digit_is_shown_next_to_the_id_number(
    client: TestClient, settings: Settings
) -> None:
    before = await _applications(client)
    wrong = APPLICANT_ID[:17] + ("0" if APPLICANT_ID[17] != "0" else "1")
    status, html, _location = await _post_application(
        client, visitors=[_visitor(0, id_number=wrong, phone="12345")]
    )
    assert status == 422
    assert (
        _error_next_to(html, "visitors.0.id_number") == "身份证号码校验位不正确，请核对后重新输入"
    )
    assert _error_next_to(html, "visitors.0.phone") == "请输入11位手机号码"  # all errors at once
    assert await _applications(client) == before
    assert _stored_photos(settings) == []


async def test_missing_fields_and_an_unknown_detainee_are_all_reported(
    client: TestClient, settings: Settings
) -> None:
    status, html, _location = await _post_application(
        client,
        visitors=[_visitor(0, relationship="friend"), _visitor(2, name="", phone="")],
        photos={0: _jpeg()},
        detainee_name="不存在",
        reason="other",
    )
    assert status == 422
    assert "近亲属" in _error_next_to(html, "visitors.0.relationship")
    assert _error_next_to(html, "visitors.2.name") == "姓名应为2至40个字符"
    assert _error_next_to(html, "visitors.2.id_photo") == "请上传清晰的身份证照片"
    assert _error_next_to(html, "detainee_name") == "未找到该被会见人，请核对姓名和监所"
    assert _error_next_to(html, "reason_detail") == "选择“其他”时请说明具体原因"
    assert 'id="err-visitors.1.name"' not in html  # the 2nd fieldset, left empty, is ignored
    assert _stored_photos(settings) == []


async def test_the_same_id_number_twice_is_refused(client: TestClient, settings: Settings) -> None:
    before = await _applications(client)
    status, html, _location = await _post_application(
        client,
        visitors=[_visitor(0), _visitor(1, id_number=APPLICANT_ID)],
        photos={0: _jpeg(), 1: _jpeg("biden_2.jpg")},
    )
    assert status == 422
    assert _error_next_to(html, "visitors") == "同一身份证号码不能重复填写"
    assert await _applications(client) == before
    assert _stored_photos(settings) == []


async def test_without_the_csrf_token_the_form_is_refused(
    client: TestClient, settings: Settings
) -> None:
    await _csrf(client)  # the cookie is there, the hidden field is not
    status, html, _location = await _post_application(client, csrf=None)
    assert status == 403
    assert "页面已过期或请求无效" in html
    status, _html, _location = await _post_application(client, csrf="forged-token-of-some-length")
    assert status == 403
    assert _stored_photos(settings) == []


async def test_english_form_errors(client: TestClient) -> None:
    await client.get("/apply?lang=en")
    status, html, _location = await _post_application(
        client, photos={0: ("x.jpg", b"not an image", "image/jpeg")}
    )
    assert status == 422
    assert _error_next_to(html, "visitors.0.id_photo") == "The photo must be a JPEG or PNG image"


# -- the status page -------------------------------------------------------------------
async def _lookup(client: TestClient, number: str, id_number: str) -> tuple[int, str]:
    csrf = await _csrf(client, "/status")
    response = await client.post(
        "/status", data={"csrf": csrf, "number": number, "id_number": id_number}
    )
    return response.status, await response.text()


async def test_the_status_page_from_submitted_to_scheduled(
    client: TestClient, settings: Settings
) -> None:
    status, _body, location = await _post_application(client)
    assert status == 303
    number = location.rsplit("/", 1)[1]

    status, html = await _lookup(client, number, SECOND_ID)
    assert status == 404
    assert "未找到申请，请核对申请编号和身份证号码" in html

    status, html = await _lookup(client, number, APPLICANT_ID.lower())
    assert status == 200
    assert "已提交，待受理" in html
    (application,) = [a for a in await _applications(client) if a.number == number]
    assert application.deadline.due.isoformat() in html

    service = _service(client)
    async with service.uow() as uow:
        intake = await uow.officers.get_by_username("shouli")
        reviewer = await uow.officers.get_by_username("shenhe")
        duty = await uow.officers.get_by_username("zhiban")
        (kiosk,) = await uow.kiosks.list_by_facility(application.facility_id)
    assert intake and reviewer and duty
    await service.accept(intake.id, application.id)
    await service.approve(reviewer.id, application.id)
    starts_at = datetime.combine(START.date() + timedelta(days=1), time(10, 0), SHANGHAI)
    scheduled = await service.schedule(duty.id, application.id, kiosk.id, starts_at)

    status, html = await _lookup(client, number, APPLICANT_ID)
    assert status == 200
    assert "已预约" in html
    assert "2026-03-03 10:00" in html
    link = f"{settings.base_url()}/v/{scheduled.secrets.token}"
    assert f'href="{link}"' in html
    assert scheduled.secrets.code in html
    assert "15分钟" in html and "5至10秒" in html


async def test_a_rejection_shows_its_reason(client: TestClient) -> None:
    _status, _body, location = await _post_application(client)
    number = location.rsplit("/", 1)[1]
    (application,) = [a for a in await _applications(client) if a.number == number]
    service = _service(client)
    async with service.uow() as uow:
        intake = await uow.officers.get_by_username("shouli")
        reviewer = await uow.officers.get_by_username("shenhe")
    assert intake and reviewer
    await service.accept(intake.id, application.id)
    await service.reject(reviewer.id, application.id, "被会见人本人拒绝会见")
    status, html = await _lookup(client, number, APPLICANT_ID)
    assert status == 200
    assert "不予会见" in html and "被会见人本人拒绝会见" in html


async def test_the_sixth_failed_lookup_from_one_client_is_rate_limited(
    client: TestClient, demo: DemoSeed
) -> None:
    for _ in range(5):
        status, html = await _lookup(client, demo.application_number, SECOND_ID)
        assert status == 404
    status, html = await _lookup(client, demo.application_number, SECOND_ID)
    assert status == 429
    assert "查询过于频繁，请稍后再试" in html


async def test_a_status_post_without_csrf_is_refused(client: TestClient, demo: DemoSeed) -> None:
    await _csrf(client, "/status")
    response = await client.post(
        "/status", data={"number": demo.application_number, "id_number": APPLICANT_ID}
    )
    assert response.status == 403


# -- the pieces on their own ----------------------------------------------------------------
def test_photo_references_cannot_escape_the_store(tmp_path: Path) -> None:
    store = PhotoStore(tmp_path / "photos")
    good = "0123456789abcdef0123456789abcdef/" + "a" * 32 + ".jpg"
    assert store.path_of(good) == tmp_path / "photos" / good
    for bad in (
        "../" + "a" * 32 + ".jpg",
        "/etc/" + "a" * 32 + ".jpg",
        "fac/../" + "a" * 32 + ".jpg",
        "fac/" + "a" * 32 + ".gif",
        "fac/sub/" + "a" * 32 + ".jpg",
        "demo/no-photo",
    ):
        with pytest.raises(ValueError):
            store.path_of(bad)


def test_check_image_judges_by_content() -> None:
    assert PhotoStore.check_image(face("biden_1.jpg").read_bytes()) == "JPEG"
    assert PhotoStore.check_image(face("lin_manuel_miranda.png").read_bytes()) == "PNG"
    gif = io.BytesIO()
    Image.new("RGB", (400, 300)).save(gif, format="GIF")
    tiny = io.BytesIO()
    Image.new("RGB", (100, 80)).save(tiny, format="PNG")
    for data, zh in (
        (gif.getvalue(), "JPEG或PNG"),
        (tiny.getvalue(), "照片太小"),
        (b"GIF89a" + b"\0" * 100, "JPEG或PNG"),
        (b"\0" * (8 * 1024 * 1024 + 1), "8MB"),
    ):
        with pytest.raises(ValidationError) as raised:
            PhotoStore.check_image(data)
        assert zh in raised.value.zh


def test_the_limiter_slides_and_stays_bounded() -> None:
    now = [0.0]
    limiter = SlidingWindowLimiter(2, 10, max_keys=3, now=lambda: now[0])
    assert limiter.attempt("a") and limiter.attempt("a")
    assert not limiter.attempt("a")
    now[0] = 10.5
    assert limiter.attempt("a")
    for key in "bcdef":
        limiter.hit(key)
    assert len(limiter) == 3
