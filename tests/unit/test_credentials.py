"""Visit credentials: link token + 会见码, time window, lock-outs, revocation."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from sessions.clock import ManualClock
from sessions.credentials import IssuedSecrets, VisitCredential, token_digest
from sessions.errors import CredentialRejected
from sessions.events import EventName
from sessions.passwords import Argon2Hasher
from tests.unit._domain import has_cjk

VALID_FROM = datetime(2026, 3, 2, 0, 45, tzinfo=UTC)  # 08:45 Shanghai, 15 min early
VALID_UNTIL = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
ISSUED_AT = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def cheap_hash(code: str) -> str:
    return "h:" + code


def issue(hash_code=cheap_hash) -> tuple[VisitCredential, str, str]:  # type: ignore[no-untyped-def]
    shown = IssuedSecrets.generate()
    credential = VisitCredential.issue(
        id="c1",
        visit_id="v1",
        facility_id="f1",
        valid_from=VALID_FROM,
        valid_until=VALID_UNTIL,
        secrets=shown,
        code_hash=hash_code(shown.code),
        now=ISSUED_AT,
        actor="officer:o1",
    )
    return credential, shown.token, shown.code


def rejection(credential: VisitCredential, now: datetime, matched: bool | None = None) -> str:
    """The code of the CredentialRejected raised by check_usable (or by an attempt)."""
    with pytest.raises(CredentialRejected) as caught:
        if matched is None:
            credential.check_usable(now)
        else:
            credential.record_attempt(matched, now)
    assert has_cjk(caught.value.zh), caught.value.zh
    assert caught.value.status == 403
    return caught.value.code


def fail(credential: VisitCredential, now: datetime, times: int) -> None:
    for _ in range(times):
        assert rejection(credential, now, matched=False) == "code_wrong"


IN_WINDOW = VALID_FROM + timedelta(minutes=5)


# --- what is handed out and what is kept ---------------------------------------------------


def test_the_token_carries_at_least_128_random_bits_and_the_code_at_least_six_digits() -> None:
    _, token, code = issue()
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert len(raw) >= 16
    assert code.isdigit() and len(code) >= 6


def test_two_issues_never_hand_out_the_same_token() -> None:
    tokens = {issue()[1] for _ in range(50)}
    assert len(tokens) == 50


def test_neither_the_plain_token_nor_the_plain_code_is_stored_on_the_credential() -> None:
    credential, token, code = issue()
    for f in dataclasses.fields(credential):
        value = getattr(credential, f.name)
        assert value != token, f.name
        assert value != code, f.name
    assert credential.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert credential.token_hash == token_digest(token)
    assert credential.code_hash == "h:" + code
    assert token not in repr(credential)


def test_issuing_records_a_credential_issued_event_without_the_secrets() -> None:
    credential, token, code = issue()
    [event] = credential.events
    assert event.name is EventName.CREDENTIAL_ISSUED
    assert event.actor == "officer:o1"
    assert event.at == ISSUED_AT
    assert event.data["valid_from"] == VALID_FROM.isoformat()
    assert token not in str(event.data) and code not in str(event.data)


def test_the_real_argon2_hasher_stores_a_verifiable_hash_of_the_code() -> None:
    hasher = Argon2Hasher(time_cost=1, memory_cost=8 * 1024)
    credential, _, code = issue(hasher.hash)
    assert code not in credential.code_hash
    assert credential.code_hash.startswith("$argon2id$")
    assert hasher.verify(credential.code_hash, code) is True
    wrong = str((int(code) + 1) % 10 ** len(code)).zfill(len(code))
    assert hasher.verify(credential.code_hash, wrong) is False


# --- the time window -----------------------------------------------------------------------


def test_a_credential_is_not_usable_before_valid_from() -> None:
    credential, _, _ = issue()
    assert (
        rejection(credential, VALID_FROM - timedelta(microseconds=1)) == "credential_not_yet_valid"
    )
    credential.check_usable(VALID_FROM)


def test_a_credential_is_not_usable_at_or_after_valid_until() -> None:
    credential, _, _ = issue()
    credential.check_usable(VALID_UNTIL - timedelta(microseconds=1))
    assert rejection(credential, VALID_UNTIL) == "credential_expired"
    assert rejection(credential, VALID_UNTIL + timedelta(days=1)) == "credential_expired"


def test_a_right_code_outside_the_window_is_still_rejected_and_not_counted() -> None:
    credential, _, _ = issue()
    assert rejection(credential, VALID_UNTIL, matched=True) == "credential_expired"
    assert credential.first_used_at is None


# --- attempts and locks --------------------------------------------------------------------


def test_a_right_code_is_accepted_and_the_first_use_remembered() -> None:
    credential, _, _ = issue()
    credential.record_attempt(True, IN_WINDOW)
    credential.record_attempt(True, IN_WINDOW + timedelta(minutes=3))
    assert credential.first_used_at == IN_WINDOW
    assert (credential.consecutive_failures, credential.total_failures) == (0, 0)


def test_each_wrong_code_is_counted_and_says_how_many_tries_are_left() -> None:
    credential, _, _ = issue()
    with pytest.raises(CredentialRejected) as caught:
        credential.record_attempt(False, IN_WINDOW)
    assert caught.value.code == "code_wrong"
    assert caught.value.field == "code"
    assert "9" in caught.value.zh and "9" in caught.value.en
    fail(credential, IN_WINDOW, 2)
    assert (credential.consecutive_failures, credential.total_failures) == (3, 3)
    failed = [e for e in credential.events if e.name is EventName.CREDENTIAL_FAILED]
    assert [e.data["total_failures"] for e in failed] == [1, 2, 3]


def test_five_wrong_codes_in_a_row_lock_for_15_minutes_even_for_the_right_code() -> None:
    clock = ManualClock(IN_WINDOW)
    credential, _, _ = issue()
    fail(credential, clock.now(), 4)
    credential.check_usable(clock.now())  # four is not yet a lock
    fail(credential, clock.now(), 1)
    assert credential.locked_until == IN_WINDOW + timedelta(minutes=15)
    locked = [e for e in credential.events if e.name is EventName.CREDENTIAL_LOCKED]
    assert len(locked) == 1 and locked[0].data["permanent"] is False

    assert rejection(credential, clock.now(), matched=True) == "credential_locked_temporarily"
    clock.advance(timedelta(minutes=14, seconds=59))
    assert rejection(credential, clock.now(), matched=True) == "credential_locked_temporarily"
    assert credential.first_used_at is None
    assert credential.total_failures == 5  # attempts during the lock are not counted

    clock.advance(timedelta(seconds=1))
    credential.record_attempt(True, clock.now())
    assert credential.first_used_at == clock.now()
    assert credential.locked_until is None


def test_the_temporary_lock_message_says_how_many_minutes_remain() -> None:
    credential, _, _ = issue()
    fail(credential, IN_WINDOW, 5)
    with pytest.raises(CredentialRejected) as caught:
        credential.check_usable(IN_WINDOW + timedelta(minutes=5))
    assert "请于10分钟后再试" in caught.value.zh  # exactly 10:00 left
    assert "in 10 minutes" in caught.value.en
    with pytest.raises(CredentialRejected) as caught:
        credential.check_usable(IN_WINDOW + timedelta(minutes=5, seconds=59))
    assert "请于10分钟后再试" in caught.value.zh  # 9:01 left rounds up
    with pytest.raises(CredentialRejected) as caught:
        credential.check_usable(IN_WINDOW + timedelta(minutes=14, seconds=30))
    assert "请于1分钟后再试" in caught.value.zh  # 0:30 left


def test_a_right_code_resets_the_consecutive_count() -> None:
    credential, _, _ = issue()
    fail(credential, IN_WINDOW, 4)
    credential.record_attempt(True, IN_WINDOW)
    assert credential.consecutive_failures == 0
    fail(credential, IN_WINDOW, 4)
    credential.check_usable(IN_WINDOW)  # 4 in a row again, 8 in all: still usable
    assert (credential.consecutive_failures, credential.total_failures) == (4, 8)


def test_ten_wrong_codes_in_all_lock_the_credential_for_good() -> None:
    clock = ManualClock(IN_WINDOW)
    credential, _, _ = issue()
    for _ in range(3):  # 3 + 3 + 3 wrong with right codes in between: never 5 in a row
        fail(credential, clock.now(), 3)
        credential.record_attempt(True, clock.now())
    assert credential.total_failures == 9
    with pytest.raises(CredentialRejected) as caught:
        credential.record_attempt(False, clock.now())
    assert caught.value.code == "code_wrong"
    assert "锁定" in caught.value.zh
    assert credential.permanently_locked
    locked = [e for e in credential.events if e.name is EventName.CREDENTIAL_LOCKED]
    assert locked[-1].data["permanent"] is True

    clock.advance(timedelta(minutes=16))  # the 15-minute lock has passed, the credential has not
    assert rejection(credential, clock.now(), matched=True) == "credential_locked"


def test_five_then_five_more_after_the_lock_is_ten_and_permanent() -> None:
    clock = ManualClock(IN_WINDOW)
    credential, _, _ = issue()
    fail(credential, clock.now(), 5)
    clock.advance(timedelta(minutes=15))
    fail(credential, clock.now(), 5)
    assert credential.total_failures == 10
    clock.advance(timedelta(minutes=15))
    assert rejection(credential, clock.now()) == "credential_locked"


# --- revocation ----------------------------------------------------------------------------


def test_a_revoked_credential_is_rejected_with_credential_revoked() -> None:
    credential, _, _ = issue()
    credential.record_attempt(True, IN_WINDOW)
    credential.revoke("visit ended", IN_WINDOW + timedelta(minutes=30), actor="officer:o2")
    assert rejection(credential, IN_WINDOW + timedelta(minutes=31)) == "credential_revoked"
    assert rejection(credential, IN_WINDOW + timedelta(minutes=31), matched=True) == (
        "credential_revoked"
    )
    [event] = [e for e in credential.events if e.name is EventName.CREDENTIAL_REVOKED]
    assert event.actor == "officer:o2" and event.data["reason"] == "visit ended"


def test_revoking_twice_keeps_the_first_revocation() -> None:
    credential, _, _ = issue()
    first = IN_WINDOW
    credential.revoke("会见结束", first)
    credential.revoke("again", first + timedelta(minutes=1))
    assert (credential.revoked_at, credential.revoked_reason) == (first, "会见结束")
    assert sum(e.name is EventName.CREDENTIAL_REVOKED for e in credential.events) == 1


def test_revocation_beats_every_other_reason_for_rejection() -> None:
    credential, _, _ = issue()
    fail(credential, IN_WINDOW, 5)
    credential.revoke("reissued", IN_WINDOW)
    assert rejection(credential, IN_WINDOW) == "credential_revoked"
    assert rejection(credential, VALID_UNTIL) == "credential_revoked"
