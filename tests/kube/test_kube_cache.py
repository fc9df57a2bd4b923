"""The pod cache against a fake API server on loopback speaking the real list/watch protocol:
what it learns, how it follows changes, and how it survives a hostile or broken API."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp import web

from agent.config.kubernetes import KubernetesApiConfig
from agent.kube.api import resolve
from agent.kube.cache import (
    KUBERNETES_API_FAILED,
    KUBERNETES_LISTED,
    KUBERNETES_METADATA_TRUNCATED,
    KUBERNETES_POD_UNKNOWN,
    KUBERNETES_WATCH_EXPIRED,
    Backoff,
    PodCache,
)
from agent.ops.events import Events
from agent.parse.kubernetes import PodMetadata
from tests.support.certs import self_signed
from tests.support.kubeapi import FakeKubeApi
from tests.support.serving import serving
from tests.support.waiting import eventually

FAST = Backoff(initial=0.05, ceiling=0.2)
CHECKOUT = PodMetadata(namespace="shop", pod="checkout-7d4f", pod_uid="uid-1")


@contextlib.asynccontextmanager
async def running(cache: PodCache) -> AsyncIterator[PodCache]:
    task = asyncio.create_task(cache.run())
    try:
        yield cache
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def make_cache(url: str, token_file: Path, events: Events, **config: Any) -> PodCache:
    settings = KubernetesApiConfig(
        api_url=url, node_name="node-1", token_file=str(token_file), **config
    )
    return PodCache(settings, events=events, backoff=FAST, watch_seconds=1.0)


def failed(events: Events, reason: str) -> int:
    """`kubernetes_api_failed` with this reason, for pods and namespaces alike."""
    return events.count(KUBERNETES_API_FAILED, resource="pods", reason=reason) + events.count(
        KUBERNETES_API_FAILED, resource="namespaces", reason=reason
    )


def labels(cache: PodCache, pod: PodMetadata = CHECKOUT) -> dict[str, str] | None:
    details = cache.details(pod)
    return None if details is None else dict(details.labels)


async def test_the_cache_lists_this_nodes_pods_and_follows_their_labels(
    kube_api: FakeKubeApi, kube_url: str, token_file: Path
) -> None:
    kube_api.add_pod("shop", "checkout-7d4f", "uid-1", labels={"app": "checkout"})
    kube_api.add_pod("shop", "elsewhere", "uid-2", labels={"app": "x"}, node="node-2")
    events = Events()
    async with running(make_cache(kube_url, token_file, events)) as cache:
        await eventually(lambda: labels(cache) == {"app": "checkout"})
        details = cache.details(CHECKOUT)
        assert details is not None and dict(details.namespace_labels) == {"team": "payments"}
        # only this node's pods were asked for, and only they are known
        assert (
            cache.details(PodMetadata(namespace="shop", pod="elsewhere", pod_uid="uid-2")) is None
        )
        _path, query, _auth = kube_api.requests[0]
        assert query["fieldSelector"] == "spec.nodeName=node-1"
        assert query["resourceVersion"] == "0"  # the first list from the API server's cache

        generation = cache.generation
        kube_api.touch_pod("uid-1")  # a status update: nothing readers need to ask again
        kube_api.label_pod("uid-1", {"app": "checkout", "version": "2"})
        await eventually(lambda: labels(cache) == {"app": "checkout", "version": "2"})
        assert cache.generation == generation + 1

        # a pod on the node found by name (a /var/log/containers path has no uid)
        kube_api.add_pod("shop", "cart-1", "uid-3", labels={"app": "cart"})
        await eventually(lambda: labels(cache, PodMetadata(namespace="shop", pod="cart-1")))
        kube_api.delete_pod("uid-3")  # deleted pods stay known while their files are read
        await eventually(lambda: kube_api.watches() >= 2)  # a watch ended and began again
    assert labels(cache, PodMetadata(namespace="shop", pod="cart-1")) == {"app": "cart"}
    assert events.count(KUBERNETES_API_FAILED) == 0
    assert events.count(KUBERNETES_LISTED, resource="pods") == 1  # watched on, never re-listed


async def test_a_bookmark_moves_the_version_the_next_watch_starts_from(
    kube_api: FakeKubeApi, kube_url: str, token_file: Path
) -> None:
    kube_api.add_pod("shop", "checkout-7d4f", "uid-1", labels={"app": "checkout"})
    events = Events()
    async with running(make_cache(kube_url, token_file, events)) as cache:
        await eventually(lambda: kube_api.watches() >= 1)
        kube_api.add_namespace("billing")  # not a pod: the pods watch hears of it as a BOOKMARK
        moved_to = str(kube_api.version)
        await eventually(lambda: kube_api.watches() >= 2)
        pod_watches = [q for p, q, _ in kube_api.requests if p.endswith("pods") and "watch" in q]
        assert pod_watches[1]["resourceVersion"] == moved_to
        assert pod_watches[1]["allowWatchBookmarks"] == "true"
        assert labels(cache) == {"app": "checkout"}
    assert kube_api.lists() == 1  # watched on from the bookmark, never listed again


async def test_only_the_annotations_asked_for_are_kept(
    kube_api: FakeKubeApi, kube_url: str, token_file: Path
) -> None:
    kube_api.add_pod(
        "shop",
        "checkout-7d4f",
        "uid-1",
        annotations={
            "team.example.com/owner": "alice",
            "kubectl.kubernetes.io/last-applied-configuration": '{"a": "secret"}',
        },
    )
    events = Events()
    cache = make_cache(kube_url, token_file, events, annotations=["team.example.com/owner"])
    async with running(cache):
        await eventually(lambda: cache.details(CHECKOUT) is not None)
        details = cache.details(CHECKOUT)
        assert details is not None
        assert dict(details.annotations) == {"team.example.com/owner": "alice"}
        assert details.event_fields() == {
            "k8s_annotations": {"team.example.com/owner": "alice"},
            "k8s_namespace_labels": {"team": "payments"},
        }


async def test_a_pod_owner_cannot_make_every_event_huge(
    kube_api: FakeKubeApi, kube_url: str, token_file: Path
) -> None:
    many = {f"label-{i:04d}": "v" * 63 for i in range(2000)}  # ~150 KB of labels
    kube_api.add_pod("shop", "checkout-7d4f", "uid-1", labels=many)
    events = Events()
    async with running(make_cache(kube_url, token_file, events, max_metadata_bytes=4096)) as cache:
        await eventually(lambda: cache.details(CHECKOUT) is not None)
        details = cache.details(CHECKOUT)
        assert details is not None
        kept = dict(details.labels)
        assert 0 < len(kept) < len(many)
        assert sum(len(k) + len(v) + 6 for k, v in kept.items()) <= 4096
        assert list(kept) == sorted(many)[: len(kept)]  # the first keys, in order
        cache.details(CHECKOUT)
        assert events.count(KUBERNETES_METADATA_TRUNCATED) == 1  # said once per pod


async def test_a_watch_too_old_for_the_server_lists_again(
    kube_api: FakeKubeApi, kube_url: str, token_file: Path
) -> None:
    kube_api.add_pod("shop", "checkout-7d4f", "uid-1", labels={"app": "checkout"})
    events = Events()
    async with running(make_cache(kube_url, token_file, events)) as cache:
        await eventually(lambda: labels(cache) == {"app": "checkout"})
        await eventually(lambda: kube_api.watches() >= 1)
        kube_api.compact()  # the open watch ends with ERROR 410 Gone (Expired)
        kube_api.label_pod("uid-1", {"app": "checkout", "moved": "while-compacted"})
        await eventually(lambda: events.count(KUBERNETES_WATCH_EXPIRED, resource="pods") >= 1)
        await eventually(lambda: labels(cache) == {"app": "checkout", "moved": "while-compacted"})
        lists = [
            q for path, q, _ in kube_api.requests if path.endswith("pods") and "watch" not in q
        ]
        assert len(lists) >= 2
        assert lists[0]["resourceVersion"] == "0"  # from the API server's cache
        assert "resourceVersion" not in lists[-1]  # after a 410: a consistent read


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("401", "unauthorized"),
        ("403", "forbidden"),
        ("500", "bad_answer"),
        ("garbage", "bad_answer"),
        ("garbage-list", "bad_answer"),
        ("huge", "bad_answer"),
        ("stall", "stalled"),
    ],
)
async def test_a_broken_watch_is_counted_and_the_cache_recovers(
    kube_api: FakeKubeApi, kube_url: str, token_file: Path, fault: str, reason: str
) -> None:
    kube_api.add_pod("shop", "checkout-7d4f", "uid-1", labels={"app": "checkout"})
    events = Events()
    async with running(make_cache(kube_url, token_file, events)) as cache:
        await eventually(lambda: labels(cache) == {"app": "checkout"})
        await eventually(lambda: kube_api.watches() >= 1)
        if fault == "garbage":
            kube_api.garbage_next()
        elif fault == "garbage-list":
            kube_api.fail_next(500)  # the next watch fails, and the list after it is garbage
            kube_api.garbage_next()
        elif fault == "huge":
            kube_api.huge_next(4 * 2**20)
        elif fault == "stall":
            kube_api.stall_next()
        else:
            kube_api.fail_next(int(fault))
        kube_api.label_pod("uid-1", {"app": "checkout", "v": "2"})  # the fault hits the next watch
        expected = 2 if fault == "garbage-list" else 1
        await eventually(lambda: failed(events, reason) >= expected)
        kube_api.label_pod("uid-1", {"app": "checkout", "v": "3"})
        await eventually(lambda: labels(cache) == {"app": "checkout", "v": "3"})
        assert labels(cache) == {"app": "checkout", "v": "3"}  # what it knew was kept


async def test_a_rotated_token_is_read_again_and_never_logged(
    kube_api: FakeKubeApi, kube_url: str, token_file: Path
) -> None:
    kube_api.add_pod("shop", "checkout-7d4f", "uid-1", labels={"app": "checkout"})
    kube_api.token = "sa-token-2"  # the server rotated; the file still holds the old one
    events = Events()
    with structlog.testing.capture_logs() as logs:
        async with running(make_cache(kube_url, token_file, events)) as cache:
            await eventually(lambda: failed(events, "unauthorized"))
            assert cache.details(CHECKOUT) is None
            # the kubelet refreshed the projected token
            await asyncio.to_thread(token_file.write_text, "sa-token-2\n")
            await eventually(lambda: labels(cache) == {"app": "checkout"})
    sent = {auth for _path, _query, auth in kube_api.requests}
    assert sent == {"Bearer sa-token-1", "Bearer sa-token-2"}
    assert "sa-token" not in repr(logs)


async def test_an_unreachable_api_leaves_the_path_fields_and_says_so(
    token_file: Path, unused_tcp_port: int
) -> None:
    events = Events()
    url = f"http://127.0.0.1:{unused_tcp_port}"
    async with running(make_cache(url, token_file, events)) as cache:
        await cache.wait_listed(5.0)  # the first start does not wait for what cannot come
        assert cache.listed.is_set()
        await eventually(lambda: failed(events, "unreachable") >= 2)
        assert cache.details(CHECKOUT) is None
        assert cache.details(CHECKOUT) is None
    assert events.count(KUBERNETES_POD_UNKNOWN) == 1


async def test_no_api_without_its_address_or_node(token_file: Path) -> None:
    events = Events()
    cache = PodCache(
        KubernetesApiConfig(token_file=str(token_file)), events=events, environ={}, backoff=FAST
    )
    await cache.run()  # returns at once: nothing to watch
    assert failed(events, "unconfigured") == 1
    assert cache.listed.is_set()


async def test_a_redirect_is_never_followed_with_the_token(token_file: Path) -> None:
    thief: list[str | None] = []

    async def steal(request: web.Request) -> web.Response:
        thief.append(request.headers.get("Authorization"))
        return web.Response(text="{}")

    async with serving(steal) as elsewhere:

        async def redirect(request: web.Request) -> web.Response:
            raise web.HTTPFound(elsewhere + request.path_qs)

        async with serving(redirect) as url:
            events = Events()
            async with running(make_cache(url, token_file, events)):
                await eventually(lambda: failed(events, "bad_answer"))
    assert thief == []


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the cluster CA a pod finds in its
    service account folder); (key, cert)."""
    return self_signed(tmp_path)


async def test_https_with_the_cluster_ca(
    kube_api: FakeKubeApi, token_file: Path, certificate: tuple[Path, Path]
) -> None:
    key, cert = certificate
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    kube_api.add_pod("shop", "checkout-7d4f", "uid-1", labels={"app": "checkout"})
    async with kube_api.serving(tls=tls) as url:
        events = Events()
        untrusted = make_cache(url, token_file, events)  # the system's CAs: not this one
        async with running(untrusted):
            await eventually(lambda: failed(events, "unreachable"))
        assert kube_api.requests == []  # the handshake failed: no request, no token sent
        trusted = make_cache(url, token_file, Events(), ca_file=str(cert))
        async with running(trusted) as cache:
            await eventually(lambda: labels(cache) == {"app": "checkout"})


def test_in_cluster_the_api_and_node_come_from_the_environment() -> None:
    environ = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    target = resolve(KubernetesApiConfig(), {**environ, "NODE_NAME": "node-7"})
    assert (target.base_url, target.node) == ("https://10.96.0.1:443", "node-7")
    assert str(target.token_file) == "/var/run/secrets/kubernetes.io/serviceaccount/token"
    ipv6 = resolve(
        KubernetesApiConfig(node_name="n"), {**environ, "KUBERNETES_SERVICE_HOST": "fd00::1"}
    )
    assert ipv6.base_url == "https://[fd00::1]:443"


@pytest.mark.parametrize(
    "url", ["http://10.0.0.1:8080", "ftp://127.0.0.1", "https://user:pw@host", "https://h/?q=1"]
)
def test_an_api_url_that_could_leak_the_token_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="api_url"):
        KubernetesApiConfig(api_url=url)
