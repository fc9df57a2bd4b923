"""The event stage: pod metadata, late/early windows, event ids; and the options' validation."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from agent.config import key_path
from agent.parse.assemble import Record
from agent.parse.event import TOO_EARLY, TOO_LATE, EventBuilder, Rejection, event_id
from agent.parse.kubernetes import container_key, metadata_from_path
from agent.parse.settings import SourceParsing

NOW = 1_780_000_000.0  # 2026-05-28T20:26:40Z
DAY = 86_400
POD_LOG = "/var/log/pods/shop_checkout-7d9f_0f1e2d3c-aaaa-bbbb-cccc-123456789abc/app/0.log"
CONTAINER_ID = "5c1d" * 16
CONTAINER_LOG = f"/var/log/containers/checkout-7d9f_shop_app-{CONTAINER_ID}.log"


def builder(path: str = "/var/log/app.log", **options: Any) -> EventBuilder:
    parsing = SourceParsing.model_validate(options)
    return EventBuilder(parsing, path=path, now=lambda: NOW, environ={})


def event(built: bytes | Rejection) -> dict[str, Any]:
    assert isinstance(built, bytes), built
    value: dict[str, Any] = orjson.loads(built)
    return value


def test_metadata_from_pods_path() -> None:
    cri = builder(POD_LOG, kubernetes={"format": "cri"})
    built = event(cri.build(Record("hello", 0, 6, "stdout", "2026-05-28T20:00:00.123456789Z")))
    assert built == {
        "message": "hello",
        "stream": "stdout",
        "k8s_namespace": "shop",
        "k8s_pod": "checkout-7d9f",
        "k8s_pod_uid": "0f1e2d3c-aaaa-bbbb-cccc-123456789abc",
        "k8s_container": "app",
        "timestamp": "2026-05-28T20:00:00.123Z",  # the runtime's time: no parser gave one
    }
    assert cri.counters.time_missing == 0


def test_metadata_from_containers_path() -> None:
    found = metadata_from_path(CONTAINER_LOG)
    assert found is not None
    assert (found.namespace, found.pod, found.container, found.container_id) == (
        "shop",
        "checkout-7d9f",
        "app",
        CONTAINER_ID,
    )
    assert container_key(CONTAINER_LOG) == CONTAINER_LOG
    assert container_key("/var/log/app.log.1") == container_key("/var/log/app.log")


def test_sidecar_metadata_from_downward_api_environment() -> None:
    parsing = SourceParsing.model_validate({"kubernetes": {"sidecar_env": True}})
    environ = {"POD_NAME": "checkout-7d9f", "POD_NAMESPACE": "shop", "NODE_NAME": "node-3"}
    sidecar = EventBuilder(parsing, path="/logs/app.log", now=lambda: NOW, environ=environ)
    built = event(sidecar.build(Record("hi", 0, 3)))
    assert (built["k8s_pod"], built["k8s_namespace"], built["k8s_node"]) == (
        "checkout-7d9f",
        "shop",
        "node-3",
    )


def test_forty_day_old_event_is_rejected_as_too_late() -> None:
    json_source = builder(parser="json", time={"field": "ts", "format": "epoch_seconds"})
    line = orjson.dumps({"ts": NOW - 40 * DAY, "msg": "old"}).decode()
    rejected = json_source.build(Record(line, 0, len(line) + 1))
    assert isinstance(rejected, Rejection) and rejected.reason == TOO_LATE
    assert "2026-04-18T20:26:40.000Z" in rejected.detail and "40.0 days before" in rejected.detail
    assert "late window of 30 days" in rejected.detail
    assert json_source.counters.too_late == 1


def test_far_future_event_is_rejected_as_too_early() -> None:
    source = builder(parser="logfmt", time={"field": "at"}, early_window="1d")
    rejected = source.build(Record("at=2030-01-01T00:00:00Z msg=later", 0, 10))
    assert isinstance(rejected, Rejection) and rejected.reason == TOO_EARLY
    assert "early window of 1 days" in rejected.detail


def test_times_normalized_and_read_time_used_when_nothing_parses() -> None:
    source = builder(parser="logfmt", time={"field": "at", "timezone": "America/New_York"})
    naive = event(source.build(Record("at=2026-05-28T08:00:00.5 x=1", 0, 1)))
    assert naive["timestamp"] == "2026-05-28T12:00:00.500Z"  # EDT is UTC-4
    millis = event(source.build(Record("at=1780000000123 x=1", 0, 1)))
    assert millis["timestamp"] == "2026-05-28T20:26:40.123Z"
    garbage = event(source.build(Record("at=yesterday x=1", 0, 1)))
    assert garbage["timestamp"] == "2026-05-28T20:26:40.000Z" and garbage["at"] == "yesterday"
    missing = event(source.build(Record("x=1", 0, 1)))
    assert missing["timestamp"] == "2026-05-28T20:26:40.000Z"
    unmatched = event(source.build(Record("just words", 0, 1)))
    assert unmatched == {"message": "just words", "timestamp": "2026-05-28T20:26:40.000Z"}
    assert (source.counters.time_unparsed, source.counters.time_missing) == (1, 2)
    assert source.counters.unmatched == 1


def test_event_id_is_stable_and_distinct() -> None:
    source = builder(event_id=True)
    source.identity = "a1b2c3d4e5f60718"
    first = event(source.build(Record("x", 0, 2)))["event_id"]
    again = event(source.build(Record("x", 0, 2)))["event_id"]
    other = event(source.build(Record("x", 2, 4)))["event_id"]
    assert first == again == event_id("a1b2c3d4e5f60718", 0)
    assert first != other != event_id("another file", 2)
    assert len(first) == 16 and int(first, 16) >= 0
    named = builder(event_id="row_id")
    assert "row_id" in event(named.build(Record("x", 0, 2)))


def test_static_fields_do_not_override_the_events_own() -> None:
    parsing = SourceParsing.model_validate({"parser": "logfmt"})
    source = EventBuilder(
        parsing, path="/x", now=lambda: NOW, fields={"service": "shop", "env": "p"}
    )
    built = event(source.build(Record("service=cart a=1", 0, 1)))
    assert (built["service"], built["env"]) == ("cart", "p")


@pytest.mark.parametrize(
    ("options", "key", "words"),
    [
        (
            {"parser": {"type": "regex", "pattern": "(unclosed"}},
            "parser.pattern",
            "invalid regular",
        ),
        ({"parser": {"type": "regex", "pattern": r"\d+ \w+"}}, "parser.pattern", "no named groups"),
        ({"parser": {"type": "regex"}}, "parser.pattern", "needs a pattern"),
        ({"parser": "yaml"}, "parser.type", ""),
        ({"time": {"timezone": "Mars/Olympus"}}, "time.timezone", "unknown time zone"),
        ({"time": {"format": "dd.mm.yyyy"}}, "time.format", "unknown time format"),
        ({"multiline": {"start_pattern": "["}}, "multiline.start_pattern", "invalid regular"),
        ({"charset": "klingon"}, "charset", "unknown charset"),
        ({"late_window": "0s"}, "late_window", "longer than zero"),
        ({"kubernetes": {"format": "podman"}}, "kubernetes.format", ""),
        ({"kubernetes": {"sidcar_env": True}}, "kubernetes.sidcar_env", ""),
    ],
)
def test_bad_options_name_their_key(options: dict[str, Any], key: str, words: str) -> None:
    with pytest.raises(ValidationError) as raised:
        SourceParsing.model_validate(options)
    [error] = raised.value.errors()
    assert key_path(error["loc"]) == key
    assert words in error["msg"]


def test_option_shorthands() -> None:
    parsing = SourceParsing.model_validate(
        {"parser": "nginx", "event_id": True, "charset": "UTF16"}
    )
    assert parsing.parser is not None and parsing.parser.type == "nginx"
    assert (parsing.event_id, parsing.charset) == ("event_id", "utf-16")
    assert (parsing.late_window, parsing.early_window) == (30 * DAY, 2000 * DAY)
