"""The facility's photo of a detainee, uploaded on the console's detainee page or
through the API, over the real app, a real SQLite file and the real dlib
models: a good photo is enrolled (its encoding matches another photo of the
same person) and stored 0600; two faces, none, a small or blurred face are
refused next to the field in Chinese with nothing stored; only admins of the
detainee's facility may upload, and only its officers see the photo."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import pytest
from aiohttp import ClientResponse, FormData
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request
from PIL import Image, ImageFilter

from recognition.enrolment import encoding_from_bytes, enrol
from recognition.models import Encoding, distance
from server.demo import DEMO_PASSWORD
from server.uploads import PHOTOS
from sessions.detainees import Detainee
from sessions.facilities import FacilityKind
from sessions.officers import Role
from tests.integration.test_console import log_in_as, service_of
from tests.support.testdata import face

Client = TestClient[Request, Application]


@pytest.fixture(scope="module")
def obama_2() -> Encoding:
    """An enrolment of a different photo of the same person."""
    return enrol(face("obama_2.jpg").read_bytes()).encoding


# -- photos -----------------------------------------------------------------------------------
def jpeg_of(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, format="JPEG", quality=92)
    return out.getvalue()


def no_face() -> bytes:
    return jpeg_of(Image.linear_gradient("L").resize((600, 400)))


def small_face() -> bytes:
    image = Image.open(face("obama_1.jpg"))
    return jpeg_of(image.resize((image.width * 3 // 10, image.height * 3 // 10)))


def blurred_face() -> bytes:
    return jpeg_of(Image.open(face("obama_1.jpg")).filter(ImageFilter.GaussianBlur(6)))


REFUSED = [
    pytest.param(
        lambda: face("two_people.jpg").read_bytes(), "several_faces", "多张人脸", id="two"
    ),
    pytest.param(no_face, "no_face", "未检测到人脸", id="none"),
    pytest.param(small_face, "face_too_small", "人脸太小", id="small"),
    pytest.param(blurred_face, "too_blurred", "模糊不清", id="blurred"),
]


# -- helpers ----------------------------------------------------------------------------------
async def demo_detainee(client: Client) -> Detainee:
    async with service_of(client).uow() as uow:
        [facility] = await uow.facilities.list()
        [detainee] = await uow.detainees.find_by_name(facility.id, "张伟")
    return detainee


async def stored(client: Client, detainee_id: str) -> Detainee:
    return await service_of(client).detainee(detainee_id)


async def other_facility_admin(client: Client) -> None:
    service = service_of(client)
    other = await service.create_facility("另一市拘留所", FacilityKind.DETENTION_HOUSE)
    await service.create_officer(
        facility_id=other.id,
        username="other-admin",
        display_name="外所管理员",
        password=DEMO_PASSWORD,
        roles=frozenset({Role.ADMIN}),
    )


def stored_photos(client: Client) -> list[Path]:
    root = client.app[PHOTOS].root
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def form_with(photo: bytes, csrf: str | None = None, filename: str = "photo.jpg") -> FormData:
    form = FormData()
    if csrf is not None:
        form.add_field("_csrf", csrf)
    form.add_field("photo", photo, filename=filename, content_type="image/jpeg")
    return form


async def console_upload(
    client: Client, csrf: str | None, detainee_id: str, photo: bytes
) -> ClientResponse:
    return await client.post(
        f"/console/admin/detainees/{detainee_id}/photo",
        data=form_with(photo, csrf),
        allow_redirects=False,
    )


async def api_login(client: Client, username: str) -> str:
    client.session.cookie_jar.clear()
    response = await client.post(
        "/api/v1/session", json={"username": username, "password": DEMO_PASSWORD}
    )
    assert response.status == 200, await response.text()
    token: str = (await response.json())["csrf_token"]
    return token


async def api_upload(
    client: Client, token: str | None, detainee_id: str, photo: bytes
) -> ClientResponse:
    headers = {"X-CSRF-Token": token} if token else {}
    return await client.post(
        f"/api/v1/detainees/{detainee_id}/photo", data=form_with(photo), headers=headers
    )


def assert_enrolled_as_obama(detainee: Detainee, obama_2: Encoding, client: Client) -> None:
    assert detainee.face_encoding is not None and len(detainee.face_encoding) == 1024
    assert distance(encoding_from_bytes(detainee.face_encoding), obama_2) < 0.6
    biden = enrol(face("biden_1.jpg").read_bytes()).encoding
    assert distance(encoding_from_bytes(detainee.face_encoding), biden) > 0.6
    assert detainee.photo_ref is not None
    path = client.app[PHOTOS].path_of(detainee.photo_ref)
    assert detainee.photo_ref.startswith(f"{detainee.facility_id}/")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with Image.open(path) as image:
        assert not image.getexif()


# -- the console ------------------------------------------------------------------------------
async def test_an_admin_uploads_a_photo_on_the_detainee_page_and_its_face_is_enrolled(
    client: Client, obama_2: Encoding
) -> None:
    detainee = await demo_detainee(client)
    csrf = await log_in_as(client, "admin")
    admin_page = await (await client.get("/console/admin")).text()
    assert f'href="/console/admin/detainees/{detainee.id}"' in admin_page and "未录入" in admin_page
    page = await client.get(f"/console/admin/detainees/{detainee.id}")
    html = await page.text()
    assert page.status == 200
    assert 'enctype="multipart/form-data"' in html and 'name="_csrf"' in html
    assert "尚未录入人脸" in html

    response = await console_upload(client, csrf, detainee.id, face("obama_1.jpg").read_bytes())

    assert response.status == 303, await response.text()
    assert response.headers["Location"] == f"/console/admin/detainees/{detainee.id}"
    enrolled = await stored(client, detainee.id)
    assert_enrolled_as_obama(enrolled, obama_2, client)
    assert await service_of(client).detainee_encoding(detainee.id) == enrolled.face_encoding
    html = await (await client.get(f"/console/admin/detainees/{detainee.id}")).text()
    assert f'src="/console/photos/{enrolled.photo_ref}"' in html
    assert "已录入人脸" in html and "已录入 张伟 的照片" in html
    served = await client.get(f"/console/photos/{enrolled.photo_ref}")
    assert served.status == 200 and served.headers["Content-Type"] == "image/jpeg"
    async with service_of(client).uow() as uow:
        [record] = [
            r
            for r in await uow.audit.records()
            if r.event == "detainee.updated" and r.subject_id == detainee.id
        ]
    assert record.data == {
        "photo_ref_before": None,
        "photo_ref": enrolled.photo_ref,
        "face_enrolled": True,
    }


@pytest.mark.parametrize(("photo", "code", "words"), REFUSED)
async def test_a_refused_photo_is_explained_next_to_the_field_and_nothing_is_stored(
    client: Client, photo: object, code: str, words: str
) -> None:
    detainee = await demo_detainee(client)
    csrf = await log_in_as(client, "admin")
    assert callable(photo)

    response = await console_upload(client, csrf, detainee.id, photo())

    html = await response.text()
    assert response.status == 422
    assert 'id="err-photo"' in html and words in html
    assert 'aria-invalid="true"' in html
    assert "身份证" not in html  # worded for a detainee's photo, not an ID card
    after = await stored(client, detainee.id)
    assert after.photo_ref is None and after.face_encoding is None
    assert stored_photos(client) == []


async def test_a_missing_file_is_asked_for(client: Client) -> None:
    detainee = await demo_detainee(client)
    csrf = await log_in_as(client, "admin")
    response = await client.post(
        f"/console/admin/detainees/{detainee.id}/photo",
        data={"_csrf": csrf},
        allow_redirects=False,
    )
    assert response.status == 422
    assert "请选择被羁押人员的正面照片" in await response.text()


async def test_an_upload_without_the_csrf_token_is_refused(client: Client) -> None:
    detainee = await demo_detainee(client)
    await log_in_as(client, "admin")
    response = await console_upload(client, None, detainee.id, face("obama_1.jpg").read_bytes())
    assert response.status == 403
    assert (await stored(client, detainee.id)).face_encoding is None


async def test_an_officer_who_is_not_admin_cannot_upload_but_sees_the_photo(
    client: Client,
) -> None:
    detainee = await demo_detainee(client)
    admin_csrf = await log_in_as(client, "admin")
    uploaded = await console_upload(
        client, admin_csrf, detainee.id, face("obama_1.jpg").read_bytes()
    )
    assert uploaded.status == 303
    ref = (await stored(client, detainee.id)).photo_ref
    before = stored_photos(client)

    csrf = await log_in_as(client, "zhiban")
    refused = await console_upload(client, csrf, detainee.id, face("obama_2.jpg").read_bytes())
    assert refused.status == 403
    assert (await client.get(f"/console/admin/detainees/{detainee.id}")).status == 403
    assert (await stored(client, detainee.id)).photo_ref == ref
    assert stored_photos(client) == before
    assert (await client.get(f"/console/photos/{ref}")).status == 200


async def test_an_admin_of_another_facility_can_neither_see_nor_replace_the_photo(
    client: Client,
) -> None:
    detainee = await demo_detainee(client)
    admin_csrf = await log_in_as(client, "admin")
    await console_upload(client, admin_csrf, detainee.id, face("obama_1.jpg").read_bytes())
    ref = (await stored(client, detainee.id)).photo_ref
    await other_facility_admin(client)

    csrf = await log_in_as(client, "other-admin")
    assert (await client.get(f"/console/admin/detainees/{detainee.id}")).status == 404
    refused = await console_upload(client, csrf, detainee.id, face("biden_1.jpg").read_bytes())
    assert refused.status == 404
    assert (await client.get(f"/console/photos/{ref}")).status == 403
    assert (await stored(client, detainee.id)).photo_ref == ref
    assert len(stored_photos(client)) == 1


async def test_updating_the_facts_on_the_admin_page_keeps_the_photo(client: Client) -> None:
    detainee = await demo_detainee(client)
    csrf = await log_in_as(client, "admin")
    await console_upload(client, csrf, detainee.id, face("obama_1.jpg").read_bytes())
    enrolled = await stored(client, detainee.id)
    facts = await client.post(
        f"/console/admin/detainees/{detainee.id}",
        data={"_csrf": csrf, "strict_management": "1"},
        allow_redirects=False,
    )
    assert facts.status == 303
    after = await stored(client, detainee.id)
    assert after.strict_management
    assert after.photo_ref == enrolled.photo_ref
    assert after.face_encoding == enrolled.face_encoding


# -- the API ----------------------------------------------------------------------------------
async def test_the_api_enrols_an_uploaded_photo(client: Client, obama_2: Encoding) -> None:
    detainee = await demo_detainee(client)
    token = await api_login(client, "admin")

    response = await api_upload(client, token, detainee.id, face("obama_1.jpg").read_bytes())

    body = await response.json()
    assert response.status == 200, body
    enrolled = await stored(client, detainee.id)
    assert body["face_enrolled"] is True and body["photo_ref"] == enrolled.photo_ref
    assert "face_encoding" not in body
    assert_enrolled_as_obama(enrolled, obama_2, client)


@pytest.mark.parametrize(("photo", "code", "words"), REFUSED)
async def test_the_api_refuses_a_bad_photo_with_the_chinese_message(
    client: Client, photo: object, code: str, words: str
) -> None:
    detainee = await demo_detainee(client)
    token = await api_login(client, "admin")
    assert callable(photo)

    response = await api_upload(client, token, detainee.id, photo())

    body = await response.json()
    assert response.status == 422
    assert body["code"] == code and body["field"] == "photo" and words in body["message"]
    after = await stored(client, detainee.id)
    assert after.photo_ref is None and after.face_encoding is None
    assert stored_photos(client) == []


async def test_the_api_refuses_other_posts_other_facilities_and_missing_tokens(
    client: Client,
) -> None:
    detainee = await demo_detainee(client)
    photo = face("obama_1.jpg").read_bytes()
    await other_facility_admin(client)

    duty = await api_upload(client, await api_login(client, "zhiban"), detainee.id, photo)
    assert duty.status == 403 and (await duty.json())["code"] == "role_required"
    stranger = await api_upload(client, await api_login(client, "other-admin"), detainee.id, photo)
    assert stranger.status == 404 and (await stranger.json())["code"] == "detainee_not_found"
    token = await api_login(client, "admin")
    unknown = await api_upload(client, token, "no-such-detainee", photo)
    assert unknown.status == 404
    no_token = await api_upload(client, None, detainee.id, photo)
    assert no_token.status == 403
    as_json = await client.post(
        f"/api/v1/detainees/{detainee.id}/photo",
        json={"photo": "x"},
        headers={"X-CSRF-Token": token},
    )
    assert as_json.status == 422 and (await as_json.json())["code"] == "multipart_required"

    after = await stored(client, detainee.id)
    assert after.photo_ref is None and after.face_encoding is None
    assert stored_photos(client) == []
