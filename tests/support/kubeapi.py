"""A Kubernetes API server stand-in on loopback: pods and namespaces over the real list/watch
protocol, for the metadata enrichment tests (tests/kube/).

    api = FakeKubeApi(token="sa-token")
    api.add_pod("shop", "checkout-7d4f", "uid-1", labels={"app": "checkout"})
    async with api.serving() as url:        # http://127.0.0.1:PORT (or https with `tls=`)
        ...                                  # GET /api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1
    api.label_pod("uid-1", {"app": "checkout", "tier": "web"})   # a MODIFIED event

What it speaks, as the real server does: a list is ``{"kind": ..., "metadata":
{"resourceVersion", "continue"}, "items": [...]}``, paged by ``limit``/``continue``; a watch
(``watch=1&resourceVersion=N``) is a chunked stream of ``{"type", "object"}`` lines (ADDED,
MODIFIED, DELETED, BOOKMARK, and ERROR with a 410 Status when N is older than what it kept),
ended after ``timeoutSeconds``; ``fieldSelector=spec.nodeName=X`` keeps one node's pods; a
request without the bearer token is a 401 Status. Faults, for the next pods request:
`fail_next` (a status), `stall_next` (a watch that says nothing), `garbage_next` (a watch
line or a list that is not JSON), `huge_next` (a line longer than any object); `compact` forgets the
history (open watches, and later ones from before it, get ERROR 410).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass
class _Change:
    version: int
    resource: str  # "pods" | "namespaces"
    kind: str  # ADDED | MODIFIED | DELETED
    obj: dict[str, Any]


@dataclass
class FakeKubeApi:
    token: str | None = "sa-token"
    node: str = "node-1"
    pods: dict[str, dict[str, Any]] = field(default_factory=dict)  # by uid
    namespaces: dict[str, dict[str, Any]] = field(default_factory=dict)  # by name
    requests: list[tuple[str, dict[str, str], str | None]] = field(default_factory=list)
    version: int = 100
    forbidden: bool = False  # every request a 403 (a ClusterRole missing)

    def __post_init__(self) -> None:
        self._changes: list[_Change] = []
        self._oldest = self.version  # a watch from before this is answered 410
        self._epoch = 0  # moves at each compaction: the watches open then end with a 410
        self._changed = asyncio.Event()  # set (and replaced) at each change
        self._faults: list[tuple[str, int]] = []  # (what, status) for the next requests
        self._streams = 0

    # -- the cluster ------------------------------------------------------------------------

    def add_pod(
        self,
        namespace: str,
        name: str,
        uid: str,
        *,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        node: str | None = None,
    ) -> None:
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": uid,
                "labels": dict(labels or {}),
                "annotations": dict(annotations or {}),
            },
            "spec": {"nodeName": node or self.node, "containers": [{"name": "app"}]},
            "status": {"phase": "Running"},
        }
        self.pods[uid] = pod
        self._record("pods", "ADDED", pod)

    def label_pod(self, uid: str, labels: dict[str, str]) -> None:
        self.pods[uid]["metadata"]["labels"] = dict(labels)
        self._record("pods", "MODIFIED", self.pods[uid])

    def touch_pod(self, uid: str) -> None:
        """A status-only change: MODIFIED with the same labels (most events a watch sees)."""
        self.pods[uid]["status"]["phase"] = "Running"
        self._record("pods", "MODIFIED", self.pods[uid])

    def delete_pod(self, uid: str) -> None:
        self._record("pods", "DELETED", self.pods.pop(uid))

    def add_namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        namespace = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "uid": f"ns-{name}", "labels": dict(labels or {})},
        }
        self.namespaces[name] = namespace
        self._record("namespaces", "ADDED", namespace)

    def compact(self) -> None:
        """Forget the history (etcd compaction): the open watches end with an ERROR 410 (as
        when the watch cache drops them), and a watch from an older version gets one too."""
        self._changes.clear()
        self._oldest = self.version
        self._epoch += 1
        self._changed.set()
        self._changed = asyncio.Event()

    def fail_next(self, status: int, count: int = 1) -> None:
        self._faults.extend([("status", status)] * count)

    def stall_next(self) -> None:
        self._faults.append(("stall", 0))

    def garbage_next(self) -> None:
        self._faults.append(("garbage", 0))

    def huge_next(self, nbytes: int) -> None:
        self._faults.append(("huge", nbytes))

    def watches(self, resource: str = "pods") -> int:
        return sum(1 for path, q, _ in self.requests if path.endswith(resource) and "watch" in q)

    def lists(self, resource: str = "pods") -> int:
        return sum(
            1 for path, q, _ in self.requests if path.endswith(resource) and "watch" not in q
        )

    # -- serving ----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def serving(self, tls: ssl.SSLContext | None = None) -> AsyncIterator[str]:
        app = web.Application()
        app.router.add_get("/api/v1/pods", self._pods_handler)
        app.router.add_get("/api/v1/namespaces", self._namespaces_handler)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
        await site.start()
        scheme = "https" if tls else "http"
        try:
            yield f"{scheme}://127.0.0.1:{runner.addresses[0][1]}"
        finally:
            await runner.cleanup()

    async def _pods_handler(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "pods")

    async def _namespaces_handler(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "namespaces")

    async def _serve(self, request: web.Request, resource: str) -> web.StreamResponse:
        query = dict(request.query)
        authorization = request.headers.get("Authorization")
        self.requests.append((request.path, query, authorization))
        if self.token is not None and authorization != f"Bearer {self.token}":
            return _status(401, "Unauthorized")
        if self.forbidden:
            return _status(
                403,
                f'{resource} is forbidden: User "system:serviceaccount:x:y" cannot list'
                f' resource "{resource}" in API group "" at the cluster scope',
            )
        fault = self._faults.pop(0) if self._faults and resource == "pods" else None
        if fault is not None and fault[0] == "status":
            return _status(fault[1], "injected")
        if query.get("watch") in ("1", "true"):
            return await self._watch(request, resource, query, fault)
        if fault is not None and fault[0] == "garbage":
            return web.Response(body=b'{"kind": "PodList", "items": [', content_type="text/html")
        return self._list(resource, query)

    def _selected(self, resource: str, query: dict[str, str]) -> list[dict[str, Any]]:
        if resource == "namespaces":
            return list(self.namespaces.values())
        node = _node_selector(query.get("fieldSelector", ""))
        return [p for p in self.pods.values() if node is None or p["spec"]["nodeName"] == node]

    def _list(self, resource: str, query: dict[str, str]) -> web.Response:
        items = self._selected(resource, query)
        start = int(query.get("continue") or 0)
        limit = int(query.get("limit") or 0) or len(items) or 1
        page = items[start : start + limit]
        more = start + limit < len(items)
        body = {
            "kind": "PodList" if resource == "pods" else "NamespaceList",
            "apiVersion": "v1",
            "metadata": {
                "resourceVersion": str(self.version),
                **({"continue": str(start + limit)} if more else {}),
            },
            "items": [_with_version(item) for item in page],
        }
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def _watch(
        self,
        request: web.Request,
        resource: str,
        query: dict[str, str],
        fault: tuple[str, int] | None,
    ) -> web.StreamResponse:
        since = int(query.get("resourceVersion") or 0)
        seconds = float(query.get("timeoutSeconds") or 60)
        node = _node_selector(query.get("fieldSelector", ""))
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        if fault is not None and fault[0] == "stall":
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await asyncio.sleep(seconds + 30)  # headers sent, then nothing at all
            return response
        if fault is not None and fault[0] == "garbage":
            await response.write(b'{"type": "ADDED", "object": {"metadata": \n')
            return response
        if fault is not None and fault[0] == "huge":
            await response.write(b'{"type":"ADDED","object":{"x":"' + b"x" * fault[1])
            return response
        epoch = self._epoch
        gone = {
            "type": "ERROR",
            "object": {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "message": f"too old resource version: {since} ({self._oldest})",
                "reason": "Expired",
                "code": 410,
            },
        }
        if since < self._oldest:
            await response.write(orjson.dumps(gone) + b"\n")
            return response
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        sent = told = since  # seen up to; what the client was told of (events, bookmarks)
        with contextlib.suppress(ConnectionError):
            while loop.time() < deadline:
                if self._epoch != epoch:
                    await response.write(orjson.dumps(gone) + b"\n")
                    return response
                for change in [c for c in self._changes if c.version > sent]:
                    sent = change.version
                    if change.resource != resource:
                        continue
                    if node is not None and change.obj.get("spec", {}).get("nodeName") != node:
                        continue
                    line = {"type": change.kind, "object": _with_version(change.obj, sent)}
                    await response.write(orjson.dumps(line) + b"\n")
                    told = sent
                sent = max(sent, self.version)
                if told < sent:  # what moved was not ours: a bookmark says so
                    told = sent
                    bookmark = {
                        "type": "BOOKMARK",
                        "object": {"kind": "Pod", "metadata": {"resourceVersion": str(sent)}},
                    }
                    await response.write(orjson.dumps(bookmark) + b"\n")
                with contextlib.suppress(TimeoutError):
                    changed = self._changed
                    await asyncio.wait_for(changed.wait(), max(0.0, deadline - loop.time()))
        return response

    def _record(self, resource: str, kind: str, obj: dict[str, Any]) -> None:
        self.version += 1
        self._changes.append(_Change(self.version, resource, kind, orjson.loads(orjson.dumps(obj))))
        self._changed.set()
        self._changed = asyncio.Event()


def _with_version(obj: dict[str, Any], version: int | None = None) -> dict[str, Any]:
    copy = orjson.loads(orjson.dumps(obj))
    copy["metadata"]["resourceVersion"] = str(version or 1)
    return copy


def _node_selector(selector: str) -> str | None:
    for part in selector.split(","):
        key, _, value = part.partition("=")
        if key == "spec.nodeName":
            return value
    return None


def _status(code: int, message: str) -> web.Response:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "code": code,
    }
    return web.Response(status=code, body=orjson.dumps(body), content_type="application/json")
