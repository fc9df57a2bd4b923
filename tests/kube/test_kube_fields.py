"""How the API's pod details reach a file's events: `EventBuilder` with a `PodDirectory`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from agent.parse.assemble import Record
from agent.parse.event import EventBuilder
from agent.parse.kubernetes import PodDetails, PodMetadata
from agent.parse.settings import SourceParsing

NOW = 1_780_000_000.0
PODS_PATH = "/var/log/pods/shop_checkout-7d4f_uid-1/app/0.log"


@dataclass
class Directory:
    """A `PodDirectory` whose answers a test sets, counting the questions."""

    known: dict[str, PodDetails] = field(default_factory=dict)
    generation: int = 0
    asked: list[PodMetadata] = field(default_factory=list)

    def details(self, pod: PodMetadata) -> PodDetails | None:
        self.asked.append(pod)
        return self.known.get(pod.pod_uid or "")

    def set(self, uid: str, labels: dict[str, str]) -> None:
        self.known[uid] = PodDetails(labels, {}, {"team": "payments"})
        self.generation += 1


def builder(pods: Directory, path: str = PODS_PATH, **options: Any) -> EventBuilder:
    parsing = SourceParsing.model_validate(
        {"kubernetes": {"metadata_from_api": True}, "parser": "json", **options}
    )
    return EventBuilder(
        parsing, path=path, now=lambda: NOW, environ={}, pods=pods, fields={"env": "prod"}
    )


def build(source: EventBuilder, text: str = '{"msg": "hi"}') -> dict[str, Any]:
    built = source.build(Record(text, 0, len(text) + 1))
    assert isinstance(built, bytes)
    return dict(orjson.loads(built))


def test_a_pod_unknown_at_first_gets_its_labels_once_the_directory_moves() -> None:
    pods = Directory()
    source = builder(pods)

    first = build(source)
    assert first["k8s_pod"] == "checkout-7d4f" and "k8s_labels" not in first

    pods.set("uid-1", {"app": "checkout"})
    later = build(source)
    assert later["k8s_labels"] == {"app": "checkout"}
    assert later["k8s_namespace_labels"] == {"team": "payments"}
    assert later["env"] == "prod"


def test_the_directory_is_asked_only_when_its_generation_moved() -> None:
    pods = Directory()
    pods.set("uid-1", {"app": "checkout"})
    source = builder(pods)
    for _ in range(100):
        build(source)
    assert len(pods.asked) == 1
    assert pods.asked[0] == PodMetadata("shop", "checkout-7d4f", "uid-1", "app")


def test_an_events_own_fields_win_over_the_pods() -> None:
    pods = Directory()
    pods.set("uid-1", {"app": "checkout"})
    own = build(builder(pods), '{"k8s_labels": "mine", "k8s_pod": "mine too"}')
    assert own["k8s_labels"] == "mine" and own["k8s_pod"] == "mine too"


def test_no_question_for_a_path_without_a_pod_or_a_source_that_does_not_ask() -> None:
    pods = Directory()
    build(builder(pods, path="/var/log/app.log"))
    plain = EventBuilder(
        SourceParsing.model_validate({"kubernetes": {"format": "cri"}}),
        path=PODS_PATH,
        now=lambda: NOW,
        environ={},
        pods=pods,
    )
    plain.build(Record("x", 0, 2))
    assert pods.asked == []
