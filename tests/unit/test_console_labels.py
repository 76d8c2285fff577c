"""The ledger page names every event in Chinese: a new event without a label
would show its raw code to officers."""

from server.console import EVENT_LABELS
from sessions.events import EventName


def test_every_event_has_a_chinese_label_in_the_ledger() -> None:
    missing = {e.value for e in EventName} - set(EVENT_LABELS)
    assert missing == set()
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in label) for label in EVENT_LABELS.values())
