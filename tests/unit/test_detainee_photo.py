"""The facility's photo of a detainee in the service layer: only an admin of the
detainee's facility records it with its enrolment, the audit says what changed
but never holds the encoding, and updating the facts keeps the photo."""

from __future__ import annotations

import pytest

from sessions.detainees import Detainee
from sessions.errors import NotFound, PermissionDenied, ValidationError
from sessions.events import EventName
from sessions.memory import MemoryUnitOfWorkFactory
from sessions.officers import Role
from tests.support.domain import PASSWORD, World, build_world

ENCODING = bytes(range(256)) * 4


@pytest.fixture
async def world() -> World:
    return await build_world(MemoryUnitOfWorkFactory())


def ref_of(world: World, name: str = "a" * 32) -> str:
    return f"{world.facility.id}/{name}.jpg"


async def test_an_admin_records_the_photo_and_its_encoding(world: World) -> None:
    admin = world.officers[Role.ADMIN]
    assert await world.service.detainee_encoding(world.detainee.id) is None

    updated = await world.service.set_detainee_photo(
        admin.id, world.detainee.id, ref_of(world), ENCODING
    )

    assert updated.photo_ref == ref_of(world) and updated.face_encoding == ENCODING
    stored = await world.service.detainee(world.detainee.id)
    assert stored == updated
    assert await world.service.detainee_encoding(world.detainee.id) == ENCODING


async def test_the_audit_names_the_photos_but_never_holds_the_encoding(world: World) -> None:
    admin = world.officers[Role.ADMIN]
    await world.service.set_detainee_photo(admin.id, world.detainee.id, ref_of(world), ENCODING)
    second = ref_of(world, "b" * 32)
    await world.service.set_detainee_photo(admin.id, world.detainee.id, second, b"\1" * 1024)

    async with world.service.uow() as uow:
        records = [r for r in await uow.audit.records() if r.event == EventName.DETAINEE_UPDATED]
    assert [r.data for r in records] == [
        {"photo_ref_before": None, "photo_ref": ref_of(world), "face_enrolled": True},
        {"photo_ref_before": ref_of(world), "photo_ref": second, "face_enrolled": True},
    ]
    assert all(
        r.actor == f"officer:{admin.id}" and r.subject_id == world.detainee.id for r in records
    )


async def test_only_an_admin_may_set_the_photo(world: World) -> None:
    for role in (Role.DUTY, Role.REVIEWER, Role.LEADER):
        with pytest.raises(PermissionDenied):
            await world.service.set_detainee_photo(
                world.officers[role].id, world.detainee.id, ref_of(world), ENCODING
            )
    assert await world.service.detainee_encoding(world.detainee.id) is None


async def test_an_admin_of_another_facility_is_refused(world: World) -> None:
    other = await world.service.create_facility("另一看守所", world.facility.kind)
    stranger = await world.service.create_officer(
        facility_id=other.id,
        username="other-admin",
        display_name="外所管理员",
        password=PASSWORD,
        roles=frozenset({Role.ADMIN}),
    )
    with pytest.raises(PermissionDenied):
        await world.service.set_detainee_photo(
            stranger.id, world.detainee.id, f"{other.id}/{'c' * 32}.jpg", ENCODING
        )
    assert (await world.service.detainee(world.detainee.id)).photo_ref is None


async def test_a_photo_stored_under_another_facility_or_a_wrong_encoding_is_refused(
    world: World,
) -> None:
    admin = world.officers[Role.ADMIN]
    with pytest.raises(ValidationError) as foreign:
        await world.service.set_detainee_photo(
            admin.id, world.detainee.id, f"elsewhere/{'d' * 32}.jpg", ENCODING
        )
    assert foreign.value.field == "photo"
    with pytest.raises(ValidationError) as short:
        await world.service.set_detainee_photo(
            admin.id, world.detainee.id, ref_of(world), ENCODING[:512]
        )
    assert short.value.code == "face_encoding_invalid"
    assert await world.service.detainee_encoding(world.detainee.id) is None


async def test_an_unknown_detainee_is_not_found(world: World) -> None:
    with pytest.raises(NotFound):
        await world.service.detainee("nobody")
    with pytest.raises(NotFound):
        await world.service.detainee_encoding("nobody")
    with pytest.raises(NotFound):
        await world.service.set_detainee_photo(
            world.officers[Role.ADMIN].id, "nobody", ref_of(world), ENCODING
        )


async def test_updating_the_facts_keeps_the_photo_and_its_encoding(world: World) -> None:
    admin = world.officers[Role.ADMIN]
    await world.service.set_detainee_photo(admin.id, world.detainee.id, ref_of(world), ENCODING)
    # What the API's PUT sends: the facts, without photo or encoding.
    facts_only = Detainee(
        world.detainee.id,
        world.facility.id,
        world.detainee.name,
        world.detainee.admitted_on,
        strict_management=True,
    )
    await world.service.update_detainee(admin.id, facts_only)

    stored = await world.service.detainee(world.detainee.id)
    assert stored.strict_management
    assert stored.photo_ref == ref_of(world) and stored.face_encoding == ENCODING
