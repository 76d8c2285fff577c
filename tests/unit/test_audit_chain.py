"""The audit ledger as a hash chain: any edit, deletion or reordering is detected."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessions.audit import (
    GENESIS_HASH,
    AuditRecord,
    canonical_json,
    compute_hash,
    seal,
    verify_chain,
)
from sessions.events import Event, EventName, SubjectType

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
N = 6


def events(n: int = N) -> list[Event]:
    return [
        Event.of(
            EventName.APPLICATION_REJECTED if i % 2 else EventName.APPLICATION_SUBMITTED,
            SubjectType.APPLICATION,
            f"app-{i}",
            actor=f"officer:o{i}",
            at=T0 + timedelta(minutes=i),
            facility_id="f1",
            reason="被会见人拒绝会见",
            index=i,
            nested={"names": ["张三", "李四"], "ok": True},
        )
        for i in range(n)
    ]


def chain(evs: list[Event] | None = None) -> list[AuditRecord]:
    records: list[AuditRecord] = []
    for event in evs if evs is not None else events():
        records.append(seal(event, records[-1] if records else None))
    return records


def reseal(record: AuditRecord) -> AuditRecord:
    """What a careful forger would do: recompute this record's own hash after editing it."""
    body = {f.name: getattr(record, f.name) for f in dataclasses.fields(record) if f.name != "hash"}
    return dataclasses.replace(record, hash=compute_hash(**body))


def test_a_sealed_sequence_verifies() -> None:
    records = chain()
    verdict = verify_chain(records)
    assert (verdict.ok, verdict.checked, verdict.broken_at, verdict.problem) == (
        True,
        N,
        None,
        None,
    )


def test_records_are_numbered_from_one_and_linked_from_the_genesis_hash() -> None:
    records = chain()
    assert [r.seq for r in records] == list(range(1, N + 1))
    assert records[0].prev_hash == GENESIS_HASH == "0" * 64
    for before, after in zip(records, records[1:], strict=False):
        assert after.prev_hash == before.hash
    assert len({r.hash for r in records}) == N


def test_an_empty_chain_is_trivially_intact() -> None:
    assert verify_chain([]).ok


def test_sealing_stores_utc_and_keeps_chinese_text_as_written() -> None:
    records = chain()
    assert records[0].at == T0.astimezone(UTC)
    assert records[0].at.tzinfo is UTC
    assert records[0].data["reason"] == "被会见人拒绝会见"
    assert records[0].data["nested"] == {"names": ["张三", "李四"], "ok": True}
    assert "被会见人拒绝会见" in canonical_json(records[0].data)  # not \\u escapes


def test_the_hash_does_not_depend_on_the_time_zone_the_instant_is_written_in() -> None:
    record = chain()[0]
    shifted = dataclasses.replace(record, at=record.at.astimezone(ZoneInfo("Asia/Shanghai")))
    assert verify_chain([shifted]).ok


TAMPERS = {
    "data": lambda r: dataclasses.replace(r, data={**r.data, "reason": "本人同意"}),
    "data_removed_key": lambda r: dataclasses.replace(
        r, data={k: v for k, v in r.data.items() if k != "index"}
    ),
    "actor": lambda r: dataclasses.replace(r, actor="officer:someone-else"),
    "at": lambda r: dataclasses.replace(r, at=r.at + timedelta(microseconds=1)),
    "event": lambda r: dataclasses.replace(r, event="application.approved"),
    "facility_id": lambda r: dataclasses.replace(r, facility_id="f2"),
    "subject_id": lambda r: dataclasses.replace(r, subject_id="app-x"),
    "subject_type": lambda r: dataclasses.replace(r, subject_type="visit"),
    "prev_hash": lambda r: dataclasses.replace(r, prev_hash="f" * 64),
    "hash": lambda r: dataclasses.replace(r, hash="f" * 64),
}


@pytest.mark.parametrize("field", sorted(TAMPERS))
@pytest.mark.parametrize("index", range(N))
def test_editing_any_field_of_any_record_breaks_the_chain_at_that_record(
    field: str, index: int
) -> None:
    records = chain()
    records[index] = TAMPERS[field](records[index])
    verdict = verify_chain(records)
    assert verdict.ok is False
    assert verdict.broken_at == index + 1
    assert verdict.checked == index


@pytest.mark.parametrize("index", range(N - 1))
def test_an_edit_with_a_recomputed_hash_still_breaks_the_link_to_the_next_record(
    index: int,
) -> None:
    records = chain()
    records[index] = reseal(dataclasses.replace(records[index], actor="officer:forger"))
    verdict = verify_chain(records)
    assert (verdict.ok, verdict.broken_at) == (False, index + 2)
    assert verdict.problem == "link to the previous record is broken"


@pytest.mark.parametrize("index", range(1, N - 1))
def test_deleting_a_middle_record_is_detected_where_it_is_missing(index: int) -> None:
    records = chain()
    del records[index]
    verdict = verify_chain(records)
    assert (verdict.ok, verdict.broken_at) == (False, index + 1)
    assert verdict.problem == f"record {index + 1} is missing"


def test_deleting_the_first_record_is_detected() -> None:
    verdict = verify_chain(chain()[1:])
    assert (verdict.ok, verdict.broken_at) == (False, 1)


def test_deleting_a_middle_record_and_renumbering_the_rest_is_still_detected() -> None:
    records = chain()
    del records[2]
    renumbered = [records[0], records[1]] + [
        reseal(dataclasses.replace(r, seq=r.seq - 1)) for r in records[2:]
    ]
    verdict = verify_chain(renumbered)
    assert (verdict.ok, verdict.broken_at) == (False, 3)


@pytest.mark.parametrize("index", range(N - 1))
def test_swapping_two_neighbouring_records_is_detected(index: int) -> None:
    records = chain()
    records[index], records[index + 1] = records[index + 1], records[index]
    verdict = verify_chain(records)
    assert (verdict.ok, verdict.broken_at) == (False, index + 1)


@settings(max_examples=50)
@given(st.permutations(list(range(N))))
def test_any_reordering_other_than_the_original_is_detected(order: list[int]) -> None:
    records = chain()
    verdict = verify_chain([records[i] for i in order])
    assert verdict.ok == (order == list(range(N)))
    if not verdict.ok:
        first_moved = next(i for i, j in enumerate(order) if i != j)
        assert verdict.broken_at == first_moved + 1


@settings(max_examples=50)
@given(
    st.lists(
        st.dictionaries(
            st.text(min_size=1, max_size=5),
            st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10)),
            max_size=4,
        ),
        min_size=1,
        max_size=5,
    )
)
def test_any_event_data_seals_into_a_verifiable_chain(payloads: list[dict[str, object]]) -> None:
    evs = [
        Event(EventName.VISIT_ENDED, SubjectType.VISIT, "v1", "system", T0, "f1", payload)  # type: ignore[arg-type]
        for payload in payloads
    ]
    records = chain(evs)
    assert verify_chain(records).ok
    assert [r.data for r in records] == payloads
