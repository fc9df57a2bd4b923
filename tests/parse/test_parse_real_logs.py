"""Each parser driven with fail2ban's real sample lines: the right fields and the right times.

fail2ban's ``# failJSON:`` comment above a line is the expectation: its ``time`` is the event
time as a Europe/Zurich wall time (fail2ban's test zone) and its ``host`` the client address.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

import orjson
import pytest

from agent.parse.assemble import Record
from agent.parse.event import EventBuilder
from agent.parse.settings import SourceParsing
from tests.support.f2b_samples import FAIL2BAN_NOW, Sample, samples

KNOWN_WRONG_EXPECTATIONS = {
    # fail2ban's comment says 2014, the line says "Fri Dec 06 09:29:34 2013" (a Friday in 2013).
    ("apache-botsearch", "2014-12-06T08:29:34"),
}


@dataclass(slots=True)
class Run:
    events: list[dict[str, Any] | None]  # None: the parser did not match
    builder: EventBuilder


def run(parser: dict[str, str], lines: list[Sample], time: dict[str, str] | None = None) -> Run:
    options = SourceParsing.model_validate(
        {
            "parser": parser,
            "time": {"timezone": "Europe/Zurich", **(time or {})},
            "late_window": "36500d",  # the samples are years old; windows are tested elsewhere
            "early_window": "36500d",
        }
    )
    builder = EventBuilder(options, path="/var/log/sample.log", now=lambda: FAIL2BAN_NOW)
    events: list[dict[str, Any] | None] = []
    for offset, sample in enumerate(lines):
        unmatched = builder.counters.unmatched
        built = builder.build(Record(sample.line, offset, offset + 1))
        assert isinstance(built, bytes), built
        events.append(None if builder.counters.unmatched > unmatched else orjson.loads(built))
    return Run(events, builder)


def utc_seconds(sample: Sample) -> str:
    assert sample.time is not None
    return sample.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def assert_times(lines: list[Sample], result: Run) -> int:
    """Every matched line's normalized time is fail2ban's; returns how many matched."""
    matched = 0
    for sample, event in zip(lines, result.events, strict=True):
        if event is None:
            continue
        matched += 1
        if (sample.file, utc_seconds(sample)) in KNOWN_WRONG_EXPECTATIONS:
            continue
        stamp = event["timestamp"]
        assert stamp[:19] == utc_seconds(sample), sample.line
        assert stamp[19] == "." and stamp.endswith("Z") and len(stamp) == 24
    return matched


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("nginx-botsearch", 12),
        ("nginx-bad-request", 8),
        ("nginx-http-auth", 12),
        ("nginx-limit-req", 4),
    ],
)
def test_nginx_access_and_error_lines(fail2ban_logs: Path, name: str, expected: int) -> None:
    lines = samples(fail2ban_logs, name)
    result = run({"type": "nginx"}, lines)
    assert assert_times(lines, result) == expected == len(lines)
    for sample, event in zip(lines, result.events, strict=True):
        assert event is not None
        if "remote_addr" in event:  # access log
            assert event["remote_addr"] == sample.host
            assert isinstance(event["status"], int) and isinstance(event["body_bytes"], int)
            assert "method" in event or "request" in event
        else:  # error log
            assert event["level"] in ("error", "crit") and "client" in event
            assert sample.host is None or sample.host in event["message"]
        assert "time" not in event  # the written time became the normalized one


def test_nginx_combined_line_fields(fail2ban_logs: Path) -> None:
    line = samples(fail2ban_logs, "nginx-botsearch")[0]
    event = run({"type": "nginx"}, [line]).events[0]
    assert event == {
        "remote_addr": "12.34.56.78",
        "method": "GET",
        "path": "//phpMyAdmin-2.8.2.3/scripts/setup.php",
        "protocol": "HTTP/1.1",
        "status": 404,
        "body_bytes": 47,
        "extra": '"-"',
        "timestamp": "2015-01-20T18:53:28.000Z",  # 19:53:28 +0100
    }


def test_apache_combined_line_keeps_referer_and_agent(fail2ban_logs: Path) -> None:
    line = samples(fail2ban_logs, "apache-badbots")[0]
    event = run({"type": "apache"}, [line]).events[0]
    assert event is not None
    assert event["referer"] == "http://www.mydomain.tld/123.html/trackback"
    assert event["user_agent"] == "TrackBack/1.02"
    assert (event["method"], event["status"], event["body_bytes"]) == ("POST", 301, 459)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("apache-badbots", 3),
        ("apache-pass", 1),
        ("apache-auth", 38),  # 4 lines are Apache errors relayed through syslog
        ("apache-noscript", 11),
        ("apache-botsearch", 19),
        ("apache-overflows", 8),
        ("apache-nohome", 2),
        ("apache-shellshock", 2),
        ("apache-modsecurity", 4),
        ("apache-fakegooglebot", 0),  # a custom LogFormat: shipped as {"message": ...}
    ],
)
def test_apache_access_and_error_lines(fail2ban_logs: Path, name: str, expected: int) -> None:
    lines = samples(fail2ban_logs, name)
    result = run({"type": "apache"}, lines)
    assert assert_times(lines, result) == expected
    assert result.builder.counters.unmatched == len(lines) - expected
    for sample, event in zip(lines, result.events, strict=True):
        if event is None:
            continue
        address = event.get("remote_addr") or event["client"]
        assert sample.host is not None and sample.host in address  # [v6]:port, v4:port


def test_apache_24_error_line_fields(fail2ban_logs: Path) -> None:
    line = next(s for s in samples(fail2ban_logs, "apache-shellshock"))
    event = run({"type": "apache"}, [line]).events[0]
    assert event is not None
    assert (event["module"], event["level"], event["pid"]) == ("cgi", "error", 16860)
    assert event["client"] == "89.207.132.76:59635"
    assert event["message"].startswith("AH01215: /bin/bash")
    assert event["timestamp"] == "2014-09-25T07:27:18.813Z"  # microseconds cut to ms, CEST


@pytest.mark.parametrize(
    ("name", "expected", "app"),
    [
        ("sshd", 104, "sshd"),
        ("postfix", 50, "postfix"),
        ("haproxy-http-auth", 3, "haproxy"),
        ("dropbear", 7, "dropbear"),
        ("pam-generic", 9, ""),
        ("dovecot", 50, ""),  # 5 lines are dovecot's own format
        ("named-refused", 9, "named"),  # 3 lines are named's own format
    ],
)
def test_syslog_lines_with_inferred_years(
    fail2ban_logs: Path, name: str, expected: int, app: str
) -> None:
    lines = samples(fail2ban_logs, name)
    result = run({"type": "syslog"}, lines)  # now = fail2ban's 2005-08-14: years from there
    assert assert_times(lines, result) == expected
    for sample, event in zip(lines, result.events, strict=True):
        if event is None:
            continue
        if sample.host is not None and sample.host in sample.line:  # else it is on a later line
            assert sample.host in event["message"]
        assert app in event.get("app", app)  # "Mar  3 00:17:22 [sshd]: ..." has no tag


def test_syslog_3164_fields(fail2ban_logs: Path) -> None:
    line = samples(fail2ban_logs, "sshd")[0]
    event = run({"type": "syslog"}, [line]).events[0]
    assert event == {
        "host": "digital-mlhhyiqscv",
        "app": "sshd",
        "pid": 13709,
        "message": "error: PAM: Authentication failure for myhlj1374 from 192.030.0.6",
        "timestamp": "2005-06-21T14:47:48.000Z",  # Jun 21 16:47:48 in Zurich, year from now
    }


def test_syslog_5424_fields(fail2ban_logs: Path) -> None:
    line = next(
        s for s in samples(fail2ban_logs, "sshd") if s.line.startswith("<38>1 ") and "[" in s.line
    )
    event = run({"type": "syslog"}, [line]).events[0]
    assert event is not None
    assert (event["facility"], event["severity"], event["version"]) == (4, 6, 1)
    assert (event["host"], event["app"], event["procid"]) == (
        "hostname.example.com",
        "sshd",
        "55555",
    )
    assert "msgid" not in event  # "-" is nil
    assert event["structured_data"] == {
        "timeQuality": {"tzKnown": "1", "isSynced": "0"},
        "xxx@123": {"test": "[brackets]"},
    }
    assert event["message"].startswith("Failed unknown for invalid user redmond")
    assert event["timestamp"] == "2019-07-08T21:40:17.954Z"  # -04:00 honoured


def test_logfmt_lines(fail2ban_logs: Path) -> None:
    lines = samples(fail2ban_logs, "grafana")
    result = run({"type": "logfmt"}, lines, time={"field": "t"})
    assert assert_times(lines, result) == len(lines) == 2
    event = result.events[0]
    assert event is not None
    assert event["remote_addr"] == lines[0].host
    assert (event["lvl"], event["msg"], event["uname"]) == (
        "eror",
        "Invalid username or password",
        "",
    )
    assert event["t"] == "2020-10-19T17:44:33+0200"  # the source field stays; the time is added


def test_json_lines(fail2ban_logs: Path) -> None:
    """No JSON sample ships with fail2ban: grafana's real events, re-encoded as JSON objects."""
    lines = samples(fail2ban_logs, "grafana")
    logfmt = run({"type": "logfmt"}, lines, time={"field": "t"}).events
    as_json = [
        Sample(
            s.file,
            orjson.dumps({k: v for k, v in e.items() if k != "timestamp"}).decode(),
            s.time,
            s.host,
        )
        for s, e in zip(lines, logfmt, strict=True)
        if e is not None
    ]
    not_objects = [Sample("-", text, None, None) for text in ("[1, 2]", '"text"', "{broken")]
    result = run({"type": "json"}, as_json + not_objects, time={"field": "t"})
    assert assert_times(as_json, Run(result.events[:2], result.builder)) == 2
    assert result.builder.counters.unmatched == 3
    assert result.events[0] is not None and result.events[0]["remote_addr"] == "182.56.23.12"


def test_regex_with_strptime_pattern(fail2ban_logs: Path) -> None:
    lines = samples(fail2ban_logs, "bitwarden")
    pattern = r"^(?P<time>\S+ \S+ [+-]\d\d:\d\d) \[(?P<level>\w+)\] (?P<message>.*)$"
    result = run(
        {"type": "regex", "pattern": pattern}, lines, time={"format": "%Y-%m-%d %H:%M:%S.%f %z"}
    )
    assert assert_times(lines, result) == 3  # one sample is another format
    assert result.builder.counters.unmatched == 1
    event = result.events[0]
    assert event is not None and event["level"] == "WRN" and "time" not in event
    assert event["timestamp"] == "2019-11-25T17:04:49.008Z"  # 01:04:49.008 +08:00


def test_regex_with_iso8601_time(fail2ban_logs: Path) -> None:
    lines = samples(fail2ban_logs, "mongodb-auth")
    pattern = r"^(?P<time>\S+) \[(?P<thread>\w+)\] (?P<message>.*)$"
    result = run({"type": "regex", "pattern": pattern}, lines, time={"format": "iso8601"})
    assert assert_times(lines, result) == len(lines) == 5
