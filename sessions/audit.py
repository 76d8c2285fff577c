"""The ledger (台账) as a hash chain.

Every event is sealed with the hash of the one before it, so editing or
deleting any record (or reordering them) breaks the chain from that point on
and ``verify_chain`` says where. This detects tampering by someone with write
access to the database; it does not prevent it — export and countersign the
head hash to a place they cannot reach for that.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .events import Event, Json

GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    at: datetime
    facility_id: str | None
    actor: str
    event: str
    subject_type: str
    subject_id: str
    data: dict[str, Json] = field(default_factory=dict)
    prev_hash: str = GENESIS_HASH
    hash: str = ""


def canonical_json(value: Json) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def compute_hash(
    *,
    seq: int,
    at: datetime,
    facility_id: str | None,
    actor: str,
    event: str,
    subject_type: str,
    subject_id: str,
    data: dict[str, Json],
    prev_hash: str,
) -> str:
    body = canonical_json(
        {
            "seq": seq,
            "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
            "facility_id": facility_id,
            "actor": actor,
            "event": event,
            "subject_type": subject_type,
            "subject_id": subject_id,
            "data": data,
            "prev_hash": prev_hash,
        }
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def seal(event: Event, previous: AuditRecord | None) -> AuditRecord:
    """The record that follows ``previous`` in the chain."""
    seq = 1 if previous is None else previous.seq + 1
    prev_hash = GENESIS_HASH if previous is None else previous.hash
    fields = {
        "seq": seq,
        "at": event.at.astimezone(UTC),
        "facility_id": event.facility_id,
        "actor": event.actor,
        "event": event.name.value,
        "subject_type": event.subject_type.value,
        "subject_id": event.subject_id,
        "data": dict(event.data),
        "prev_hash": prev_hash,
    }
    return AuditRecord(**fields, hash=compute_hash(**fields))  # type: ignore[arg-type]


@dataclass(frozen=True)
class ChainVerdict:
    ok: bool
    checked: int
    broken_at: int | None = None
    problem: str | None = None


def verify_chain(records: Iterable[AuditRecord]) -> ChainVerdict:
    """Walk the chain from the first record; report the first sequence number that fails."""
    expected_prev, expected_seq, checked = GENESIS_HASH, 1, 0
    for record in records:
        if record.seq != expected_seq:
            return ChainVerdict(False, checked, expected_seq, f"record {expected_seq} is missing")
        if record.prev_hash != expected_prev:
            return ChainVerdict(False, checked, record.seq, "link to the previous record is broken")
        recomputed = compute_hash(
            seq=record.seq,
            at=record.at,
            facility_id=record.facility_id,
            actor=record.actor,
            event=record.event,
            subject_type=record.subject_type,
            subject_id=record.subject_id,
            data=record.data,
            prev_hash=record.prev_hash,
        )
        if recomputed != record.hash:
            return ChainVerdict(False, checked, record.seq, "record content was changed")
        expected_prev, expected_seq, checked = record.hash, record.seq + 1, checked + 1
    return ChainVerdict(True, checked)
