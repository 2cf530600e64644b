"""The limits' pure parts: stream slots, refusal counts per source and window, member names
of media in an export, and secret comparison that cannot raise."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.exporter.archive import safe_member
from services.intake.limits import OTHER_SOURCES, AuthFailureTally, StreamSlots
from shared.compare import same_secret

pytestmark = pytest.mark.unit


def test_a_holder_gets_its_cap_of_streams_and_a_slot_back_when_one_ends() -> None:
    slots = StreamSlots({"key": 2, "link": 1})
    assert slots.take("key", "k1") and slots.take("key", "k1")
    assert not slots.take("key", "k1")
    assert slots.take("key", "k2") and slots.take("link", "k1")  # holders and kinds apart
    slots.give_back("key", "k1")
    assert slots.open("key", "k1") == 1 and slots.take("key", "k1")


def test_refusals_are_counted_per_source_and_window() -> None:
    now = [120.0]
    tally = AuthFailureTally(60, 2, clock=lambda: now[0])
    for _ in range(5):
        tally.note("10.0.0.1", "no API key")
    tally.note("10.0.0.1", "unknown or revoked API key")
    tally.note("10.0.0.2", "no API key")
    tally.note("10.0.0.3", "no API key")  # past the cap of 2 sources: counted as "*"
    tally.note("10.0.0.4", "no API key")
    assert tally.closed() == []  # the window is still open
    now[0] = 185.0
    tally.note("10.0.0.1", "no API key")  # the next window
    closed = {t.source: t for t in tally.closed()}
    assert set(closed) == {"10.0.0.1", "10.0.0.2", OTHER_SOURCES}
    one = closed["10.0.0.1"]
    assert one.count == 6 and one.reasons == {"no API key": 5, "unknown or revoked API key": 1}
    assert one.window_start == datetime.fromtimestamp(120, UTC)
    assert closed[OTHER_SOURCES].count == 2
    rest = tally.closed(everything=True)
    assert [(t.source, t.count) for t in rest] == [("10.0.0.1", 1)]
    tally.put_back(rest)
    assert [(t.source, t.count) for t in tally.closed(everything=True)] == [("10.0.0.1", 1)]


@pytest.mark.parametrize(
    "key",
    ["../../etc/passwd", "/abs/x.bin", "a\\..\\..\\b.png", "ev\til\x01.txt", "..", "a/./b"],
)
def test_media_member_names_stay_inside_the_media_folder(key: str) -> None:
    name = safe_member("media", key)
    assert name.startswith("media/") and not name.startswith("media//")
    assert ".." not in name.split("/") and "\\" not in name
    assert all(ch.isprintable() for ch in name)


def test_plain_keys_keep_their_name_and_cleaned_ones_never_collide() -> None:
    assert safe_member("media", "org/a/b.jpg") == "media/org/a/b.jpg"
    assert safe_member("media", "../b.jpg") != safe_member("media", "b.jpg")
    assert safe_member("media", "../b.jpg").endswith(".jpg")


def test_secrets_compare_without_raising_on_non_ascii() -> None:
    assert same_secret("abc", "abc") and not same_secret("abc", "abd")
    assert not same_secret("ключ", "abc") and not same_secret("abc", "ключ")
    assert same_secret("ключ", "ключ") and same_secret(b"x", "x")
