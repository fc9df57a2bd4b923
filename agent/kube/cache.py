"""This node's pods (and every namespace) as the API server tells of them: a watch-backed cache.

`PodCache.run` keeps two reflectors going, the loop every Kubernetes informer runs: list
(paged) → remember the list's ``resourceVersion`` → watch from it (bookmarks move it on) →
when the server ends the stream, watch again from the last version; a 410 Gone (the version is
too old) → list again; any other failure → back off (1 s doubling to 30 s) and list again.
Only this node's pods are watched (``fieldSelector=spec.nodeName=<node>``).

The tailer's readers ask `details` (the `agent.parse.kubernetes.PodDirectory` protocol)
whenever `generation` moved; it moves only when labels or kept annotations changed, not on
every status update. A pod deleted stays known for `DELETED_KEPT` seconds, because its last
lines are read after the API forgot it. While the API cannot be reached the cache keeps what
it knew; a pod it never knew gets its path's fields only (`kubernetes_pod_unknown`).

What a pod's owner writes is bounded: a pod's labels, kept annotations and its namespace's
labels together add at most ``max_metadata_bytes`` to an event (keys in sorted order, the
rest left out and counted as `kubernetes_metadata_truncated`).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from agent.config.kubernetes import KubernetesApiConfig
from agent.kube.api import Gone, KubeApi, KubeError, Target, Unconfigured, resolve
from agent.ops.events import Event, Events, Label
from agent.parse.kubernetes import PodDetails, PodMetadata

DELETED_KEPT: Final = 300.0
"""Seconds a deleted pod stays known: its files are read to their end after it is gone."""
WATCH_SECONDS: Final = 290.0
"""How long one watch request lasts (the server ends it; a new one starts from the version)."""
MAX_REMEMBERED: Final = 4096
"""Pods whose unknown-ness or truncation was said: each is said once, up to this many."""

_RESOURCES: Final = frozenset({"pods", "namespaces"})
KUBERNETES_API_FAILED: Final = Event(
    "kubernetes_api_failed",
    "The Kubernetes API could not be listed or watched (reason: unreachable, unauthorized, "
    "forbidden, stalled, bad_answer, unconfigured); events carry what the cache last knew, or "
    "the path's fields. Check the ServiceAccount, the ClusterRole and NODE_NAME.",
    level="warning",
    labels=(
        Label("resource", _RESOURCES),
        Label(
            "reason",
            frozenset(
                {"unreachable", "unauthorized", "forbidden", "stalled", "bad_answer"}
                | {"unconfigured"}
            ),
        ),
    ),
)
KUBERNETES_LISTED: Final = Event(
    "kubernetes_listed",
    "The API server listed this node's pods (or the namespaces): the cache is current.",
    labels=(Label("resource", _RESOURCES),),
)
KUBERNETES_WATCH_EXPIRED: Final = Event(
    "kubernetes_watch_expired",
    "A watch's resourceVersion was too old (410 Gone): listed again.",
    labels=(Label("resource", _RESOURCES),),
)
KUBERNETES_POD_UNKNOWN: Final = Event(
    "kubernetes_pod_unknown",
    "Lines of a pod the API has not told of were read: they carry the path's fields only "
    "(said once per pod).",
)
KUBERNETES_METADATA_TRUNCATED: Final = Event(
    "kubernetes_metadata_truncated",
    "A pod's labels and annotations were larger than kubernetes.max_metadata_bytes: the keys "
    "past it were left out of its events (said once per pod).",
    level="warning",
)
EVENTS: Final = (
    KUBERNETES_API_FAILED,
    KUBERNETES_LISTED,
    KUBERNETES_WATCH_EXPIRED,
    KUBERNETES_POD_UNKNOWN,
    KUBERNETES_METADATA_TRUNCATED,
)


@dataclass(frozen=True, slots=True)
class _Pod:
    namespace: str
    name: str
    uid: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]  # the kept ones only


@dataclass(frozen=True, slots=True)
class Backoff:
    """Waits between failed attempts; the first after `initial`, doubling to `ceiling`."""

    initial: float = 1.0
    ceiling: float = 30.0

    def after(self, failures: int) -> float:
        delay = min(self.ceiling, self.initial * 2.0 ** max(0, failures - 1))
        return delay * random.uniform(0.8, 1.0)  # agents of a cluster do not retry in step


class PodCache:
    """The pods of this node and the labels of every namespace; `run` keeps them current."""

    def __init__(
        self,
        config: KubernetesApiConfig,
        *,
        events: Events,
        environ: Mapping[str, str] | None = None,
        backoff: Backoff = Backoff(),
        watch_seconds: float = WATCH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._events = events
        self._environ = environ
        self._backoff = backoff
        self._watch_seconds = watch_seconds
        self._clock = clock
        self._annotations = frozenset(config.annotations)
        self._pods: dict[str, _Pod] = {}  # by uid
        self._names: dict[tuple[str, str], str] = {}  # (namespace, name) -> uid
        self._deleted: dict[str, float] = {}  # uid -> when the API said it was gone
        self._namespaces: dict[str, Mapping[str, str]] = {}
        self._details: dict[str, PodDetails] = {}  # by uid, for the current generation
        self._said_unknown: set[str] = set()
        self._said_truncated: set[str] = set()
        self.generation = 0
        self.listed = asyncio.Event()  # the first pod list arrived
        events.declare(*EVENTS)

    def __repr__(self) -> str:
        return (
            f"<PodCache pods={len(self._pods)} namespaces={len(self._namespaces)}"
            f" generation={self.generation}>"
        )

    # -- what readers ask (agent.parse.kubernetes.PodDirectory) ---------------------------

    def details(self, pod: PodMetadata) -> PodDetails | None:
        uid = pod.pod_uid or self._names.get((pod.namespace or "", pod.pod or ""))
        found = self._pods.get(uid) if uid else None
        if found is None:
            key = uid or f"{pod.namespace}/{pod.pod}"
            if self.listed.is_set() and self._remember(self._said_unknown, key):
                self._events.emit(
                    KUBERNETES_POD_UNKNOWN, namespace=pod.namespace, pod=pod.pod, uid=pod.pod_uid
                )
            return None
        cached = self._details.get(found.uid)
        if cached is None:
            cached = self._details[found.uid] = self._bounded(found)
        return cached

    async def wait_listed(self, seconds: float) -> None:
        """Until the first pod list arrived, failed, or `seconds` passed."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.listed.wait()

    # -- keeping it current --------------------------------------------------------------

    async def run(self) -> None:
        """List and watch until cancelled (the runtime cancels it after the data is safe)."""
        try:
            target = resolve(self._config, self._environ)
        except Unconfigured as exc:
            self.listed.set()  # nothing to wait for: path metadata only
            self._events.emit(
                KUBERNETES_API_FAILED, resource="pods", reason=exc.reason, error=str(exc)
            )
            return
        async with KubeApi(target) as api, asyncio.TaskGroup() as tasks:
            pods = {"fieldSelector": f"spec.nodeName={target.node}"}
            tasks.create_task(self._reflect(api, "pods", "/api/v1/pods", pods))
            if self._config.namespace_labels:
                tasks.create_task(self._reflect(api, "namespaces", "/api/v1/namespaces", {}))

    async def _reflect(
        self, api: KubeApi, resource: str, path: str, params: dict[str, str]
    ) -> None:
        failures = 0  # since a watch last ended as planned
        cached = True  # the first list from the API server's cache; after a 410, from etcd
        while True:
            try:
                version = await self._list(api, resource, path, params, cached=cached)
                while True:  # each watch ends after about `watch_seconds`; go on from there
                    started = self._clock()
                    version = await self._watch(api, resource, path, params, version)
                    if self._clock() - started >= min(1.0, self._watch_seconds / 2):
                        failures = 0
                    else:  # a server (or proxy) that ends every watch at once: not in a loop
                        failures += 1
                        await asyncio.sleep(self._backoff.after(failures))
            except Gone:
                self._events.emit(KUBERNETES_WATCH_EXPIRED, resource=resource)
                cached = False
                failures += 1  # list again at once; a server that always says 410, slower
                delay = 0.0 if failures == 1 else self._backoff.after(failures - 1)
            except KubeError as exc:
                failures += 1
                delay = self._backoff.after(failures)
                self._events.emit(
                    KUBERNETES_API_FAILED,
                    resource=resource,
                    reason=exc.reason,
                    error=str(exc),
                    target=api.target.base_url,
                    retry_in=round(delay, 2),
                )
                if resource == "pods":
                    self.listed.set()  # the first start does not wait for what cannot come
            except Exception as exc:  # a bug here must not stop the shipping of logs
                failures += 1
                delay = self._backoff.after(failures)
                self._events.emit(
                    KUBERNETES_API_FAILED,
                    resource=resource,
                    reason="bad_answer",
                    error=f"{type(exc).__name__}: {str(exc)[:200]}",
                    retry_in=round(delay, 2),
                )
                self.listed.set()
            await asyncio.sleep(delay)

    async def _list(
        self, api: KubeApi, resource: str, path: str, params: dict[str, str], *, cached: bool
    ) -> str:
        items: list[Any] = []
        token: str | None = None
        while True:
            page = await api.list_page(path, params, token, cached=cached)
            items.extend(page["items"])
            token = page["metadata"].get("continue") or None
            if token is None:
                version = str(page["metadata"].get("resourceVersion", ""))
                break
        if resource == "pods":
            self._replace_pods(items)
        else:
            self._replace_namespaces(items)
        self._events.emit(KUBERNETES_LISTED, resource=resource, items=len(items))
        if resource == "pods":
            self.listed.set()
        return version

    async def _watch(
        self, api: KubeApi, resource: str, path: str, params: dict[str, str], version: str
    ) -> str:
        stream = api.watch(path, params, version, seconds=self._watch_seconds)
        async with contextlib.aclosing(stream):
            async for event in stream:
                kind, obj = event["type"], event["object"]
                if kind == "ERROR":
                    code = obj.get("code")
                    if code == 410:
                        raise Gone(str(obj.get("message", "410")))
                    raise KubeError(f"watch error {code}: {str(obj.get('message', ''))[:200]}")
                meta = obj.get("metadata")
                if not isinstance(meta, dict):
                    raise KubeError("a watch event without metadata")
                version = str(meta.get("resourceVersion") or version)
                if kind == "BOOKMARK":
                    continue
                if resource == "pods":
                    self._pod_event(kind, meta)
                else:
                    self._namespace_event(kind, meta)
        return version

    # -- the store -----------------------------------------------------------------------

    def _replace_pods(self, items: list[Any]) -> None:
        metas = [item.get("metadata") for item in items if isinstance(item, dict)]
        fresh = [pod for meta in metas if (pod := self._pod(meta)) is not None]
        seen = {pod.uid for pod in fresh}
        now = self._clock()
        for uid in self._pods.keys() - seen:  # gone while we were not watching
            self._deleted.setdefault(uid, now)
        changed = False
        for pod in fresh:
            self._deleted.pop(pod.uid, None)
            changed |= self._put(pod)
        changed |= self._expire(now)
        if changed:
            self._moved()

    def _pod_event(self, kind: str, meta: Mapping[str, Any]) -> None:
        pod = self._pod(meta)
        if pod is None:
            return
        now = self._clock()
        changed = self._expire(now)
        if kind == "DELETED":
            self._deleted.setdefault(pod.uid, now)
        elif kind in ("ADDED", "MODIFIED"):
            self._deleted.pop(pod.uid, None)
            changed |= self._put(pod)
        if changed:
            self._moved()

    def _put(self, pod: _Pod) -> bool:
        if self._pods.get(pod.uid) == pod:
            return False
        self._pods[pod.uid] = pod
        self._names[(pod.namespace, pod.name)] = pod.uid
        return True

    def _expire(self, now: float) -> bool:
        old = [uid for uid, when in self._deleted.items() if now - when > DELETED_KEPT]
        for uid in old:
            del self._deleted[uid]
            pod = self._pods.pop(uid, None)
            if pod is not None and self._names.get((pod.namespace, pod.name)) == uid:
                del self._names[(pod.namespace, pod.name)]
        return bool(old)

    def _replace_namespaces(self, items: list[Any]) -> None:
        fresh: dict[str, Mapping[str, str]] = {}
        for item in items:
            meta = item.get("metadata") if isinstance(item, dict) else None
            if isinstance(meta, dict) and isinstance(meta.get("name"), str):
                fresh[meta["name"]] = _strings(meta.get("labels"))
        if fresh != self._namespaces:
            self._namespaces = fresh
            self._moved()

    def _namespace_event(self, kind: str, meta: Mapping[str, Any]) -> None:
        name = meta.get("name")
        if not isinstance(name, str):
            return
        labels = _strings(meta.get("labels"))
        if kind == "DELETED":
            changed = self._namespaces.pop(name, None) is not None
        else:
            changed = self._namespaces.get(name) != labels
            self._namespaces[name] = labels
        if changed:
            self._moved()

    def _pod(self, meta: Any) -> _Pod | None:
        if not isinstance(meta, dict):
            return None
        namespace, name, uid = meta.get("namespace"), meta.get("name"), meta.get("uid")
        if not (isinstance(namespace, str) and isinstance(name, str) and isinstance(uid, str)):
            return None
        annotations = _strings(meta.get("annotations"))
        kept = {key: annotations[key] for key in sorted(self._annotations & annotations.keys())}
        return _Pod(namespace, name, uid, _strings(meta.get("labels")), kept)

    def _moved(self) -> None:
        self.generation += 1
        self._details.clear()

    def _bounded(self, pod: _Pod) -> PodDetails:
        budget = self._config.max_metadata_bytes
        parts: list[dict[str, str]] = [{}, {}, {}]
        sources = (pod.labels, pod.annotations, self._namespaces.get(pod.namespace, {}))
        left_out = 0
        for kept, source in zip(parts, sources, strict=True):
            for key in sorted(source):
                value = source[key]
                cost = len(key.encode()) + len(value.encode()) + 6  # "k":"v",
                if cost > budget:
                    left_out += 1
                    continue
                budget -= cost
                kept[key] = value
        if left_out and self._remember(self._said_truncated, pod.uid):
            self._events.emit(
                KUBERNETES_METADATA_TRUNCATED,
                namespace=pod.namespace,
                pod=pod.name,
                left_out=left_out,
                max_metadata_bytes=self._config.max_metadata_bytes,
            )
        return PodDetails(*parts)

    @staticmethod
    def _remember(said: set[str], key: str) -> bool:
        """True the first time `key` is seen (while fewer than MAX_REMEMBERED are)."""
        if key in said or len(said) >= MAX_REMEMBERED:
            return False
        said.add(key)
        return True


def _strings(value: Any) -> dict[str, str]:
    """A labels/annotations map with only string keys and values (anything else dropped)."""
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}


__all__ = ["EVENTS", "Backoff", "PodCache", "Target"]
