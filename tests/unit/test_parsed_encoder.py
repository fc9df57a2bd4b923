"""ParsedEncoder: parsed sources' lines -> pieces whose end offsets never pass a held line."""

from __future__ import annotations

from typing import Any

import orjson

from agent.config import SourceConfig
from agent.encode import Encoded
from agent.encode.parsed import ParsedEncoder
from agent.parse.settings import needs_parsing
from agent.records import FileId
from agent.state.acks import AckTracker
from agent.tail.handoff import Link

NOW = 1_780_000_000.0  # 2026-05-28T20:26:40Z: the wall clock of every test here
ACCESS = b'203.0.113.9 - - [28/May/2026:20:00:00 +0000] "GET /a HTTP/1.1" 200 12 "-" "curl/8"\n'


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def source(**options: Any) -> SourceConfig:
    return SourceConfig.model_validate({"name": "s", "include": ["/x/*.log"], **options})


def encoder(
    clock: Clock | None = None, piece_bytes: int = 1 << 16, **options: Any
) -> ParsedEncoder:
    return ParsedEncoder(
        source(**options),
        path="/var/log/app.log",
        identity=lambda: "f00d",
        max_event_bytes=100_000,
        piece_bytes=piece_bytes,
        now=lambda: NOW,
        clock=clock or Clock(),
    )


def events(encoded: Encoded) -> list[dict[str, Any]]:
    return [orjson.loads(line) for p in encoded.pieces for line in p.data.splitlines()]


def test_only_sources_with_parsing_options_leave_the_fast_path() -> None:
    assert not needs_parsing(source(format="text", fields={"a": 1}, time_field="t"))
    assert needs_parsing(source(parser="nginx"))
    assert needs_parsing(source(late_window="30d"))  # written out: the user wants it applied
    assert needs_parsing(source(charset="latin-1"))
    assert not needs_parsing(source(charset="UTF8"))


def test_access_line_becomes_fields_with_a_normalized_time_and_static_fields() -> None:
    encoded = encoder(parser="nginx", fields={"env": "prod"}).encode(ACCESS, 500)
    [event] = events(encoded)
    assert event["remote_addr"] == "203.0.113.9" and event["status"] in (200, "200")
    assert event["timestamp"] == "2026-05-28T20:00:00.000Z" and event["env"] == "prod"
    assert [(p.end_offset, p.offsets) for p in encoded.pieces] == [(500 + len(ACCESS), [500])]


def test_unmatched_line_is_shipped_as_message_and_counted() -> None:
    parsed = encoder(parser={"type": "regex", "pattern": r"^(?P<level>[A-Z]+) (?P<msg>.*)$"})
    encoded = parsed.encode(b"INFO ok\nnot matching at all\n", 0)
    assert [e.get("level", e.get("message")) for e in events(encoded)] == [
        "INFO",
        "not matching at all",
    ]
    assert parsed.take_counts() == {"unmatched": 1, "time_missing": 2}
    assert parsed.take_counts() == {}  # increments, not totals


def test_forty_day_old_event_is_rejected_too_late_with_its_offset() -> None:
    old = b'{"timestamp":"2026-04-18T20:00:00Z","msg":"old"}\n'
    fresh = b'{"timestamp":"2026-05-28T20:00:00Z","msg":"new"}\n'
    parsed = encoder(parser="json")
    encoded = parsed.encode(fresh + old, 10)
    [rejected] = encoded.rejected
    assert (rejected.reason, rejected.offset) == ("too_late", 10 + len(fresh))
    assert b'"old"' in rejected.data and "30 days" in rejected.detail
    assert [e["msg"] for e in events(encoded)] == ["new"]
    assert parsed.take_counts()["too_late"] == 1


def test_held_traceback_keeps_the_piece_end_before_it_until_released() -> None:
    clock = Clock()
    multiline = {"start_pattern": r"^\d{4}-\d\d-\d\d ", "flush_timeout": 2}
    parsed = encoder(clock, format="text", multiline=multiline)
    head = b"2026-05-28 20:00:00 INFO first event\n"
    trace = (
        b"2026-05-28 20:00:01 ERROR boom\nTraceback (most recent call last):\n"
        b'  File "x.py", line 1, in <module>\nValueError: bad\n'
    )
    encoded = parsed.encode(head + trace, 0)
    assert [e["message"] for e in events(encoded)] == [head.decode().rstrip("\n")]
    # The traceback's first line is still held: the checkpoint may cover "first event" only.
    assert encoded.pieces[-1].end_offset == len(head) == parsed.pending_offset
    assert parsed.flush().pieces[-1].events == 0
    assert parsed.next_flush() == 102.0
    clock.now = 102.5
    released = parsed.flush()
    [event] = events(released)
    assert event["message"] == trace.decode().rstrip("\n")
    assert released.pieces[-1].end_offset == len(head + trace) and parsed.pending_offset is None


def test_out_of_order_streams_never_let_a_piece_end_pass_a_later_record() -> None:
    parsed = encoder(piece_bytes=10, format="text", kubernetes={"format": "cri"})
    lines = [
        b"2026-05-28T20:00:00Z stdout P part one, ",
        b"2026-05-28T20:00:01Z stderr F error line",
        b"2026-05-28T20:00:02Z stdout F part two",
    ]
    encoded = parsed.encode(b"\n".join(lines) + b"\n", 0)
    assert [e["message"] for e in events(encoded)] == ["error line", "part one, part two"]
    # Two pieces (piece_bytes=10): the first ("error line", starting at line 2) must not end
    # after the start of the joined record, which starts at 0.
    assert [(p.offsets, p.end_offset) for p in encoded.pieces] == [
        ([len(lines[0]) + 1], 0),
        ([0], sum(len(x) + 1 for x in lines)),
    ]


def test_rotation_state_moves_and_pins_the_new_file_at_its_start() -> None:
    cri = {"format": "cri"}
    old = encoder(format="text", kubernetes=cri)
    assert (
        old.encode(b"2026-05-28T20:00:00Z stdout P before rotation, \n", 4000).pieces[0].events == 0
    )
    assert old.pending_offset == 4000
    new = encoder(format="text", kubernetes=cri)
    new.restore(old.hand_over())
    assert old.pending_offset is None and new.pending_offset == 0
    [event] = events(new.encode(b"2026-05-28T20:00:01Z stdout F after\n", 0))
    assert event["message"] == "before rotation, after"
    assert event["timestamp"] == "2026-05-28T20:00:00.000Z"  # the first fragment's time


def test_bom_and_invalid_bytes_ship_clean_and_are_counted() -> None:
    parsed = encoder(format="text", late_window="30d")
    encoded = parsed.encode(b"\xef\xbb\xbfhello\nbad \xff byte\n", 0)
    assert [e["message"] for e in events(encoded)] == ["hello", "bad \ufffd byte"]
    assert parsed.take_counts() == {"bom_stripped": 1, "invalid_bytes": 1, "time_missing": 2}


def test_latin1_source_is_decoded() -> None:
    encoded = encoder(format="text", charset="latin-1").encode("café\n".encode("latin-1"), 0)
    assert events(encoded)[0]["message"] == "café"


def test_event_ids_depend_on_identity_and_offset_only() -> None:
    def ids() -> list[str]:
        parsed = encoder(format="text", event_id=True)
        return [e["event_id"] for e in events(parsed.encode(b"a\nb\n", 0))]

    first, again = ids(), ids()
    assert first == again and len(set(first)) == 2


def test_line_limits_and_blank_lines_behave_like_the_fast_path() -> None:
    parsed = encoder(format="text", parser="logfmt", max_line_bytes=20)
    encoded = parsed.encode(b"a=1\n\n" + b"x" * 30 + b"\n", 0)
    assert [(r.reason, r.offset) for r in encoded.rejected] == [("line_too_long", 5)]
    assert encoded.blank == 1 and [e["a"] for e in events(encoded)] == ["1"]
    assert encoded.pieces[-1].end_offset == 36


def test_a_rotated_files_link_is_safe_only_after_the_heirs_record_carrying_its_lines() -> None:
    acks = AckTracker()
    old, heir = FileId(1), FileId(2)
    acks.track(old, 4000)
    acks.track(heir, 0)
    link = Link(acks.issue(old, 4100), heir, at=0)
    other_stream = acks.issue(heir, 0)  # the heir's lines of another stream went out first
    link.observe(other_stream)
    link.released(0)  # the inherited fragment is still held at 0
    joined = acks.issue(heir, 250)
    link.observe(joined)
    link.released(None)  # ...and now released, in `joined`
    link.observe(acks.issue(heir, 300))  # later tickets do not matter to the old file
    acks.complete(other_stream)
    assert not link.safe and acks.committed(old) == 4000
    acks.complete(joined)
    assert link.safe
    acks.complete(link.ticket)
    assert acks.committed(old) == 4100
