"""The one place that speaks HTTP to the Kubernetes API server; aiohttp's exceptions end here.

Two calls, the list/watch protocol every Kubernetes client speaks: `list_page` (``GET
/api/v1/pods?fieldSelector=...&limit=...``, paged with ``continue``) and `watch` (the same
path with ``watch=1&resourceVersion=...&allowWatchBookmarks=true``: a chunked stream of
``{"type": "ADDED"|"MODIFIED"|"DELETED"|"BOOKMARK"|"ERROR", "object": {...}}`` lines). Both ask
for metadata only (``as=PartialObjectMetadata``): a pod's spec and status never cross the
wire, and a server that cannot do that answers with whole objects, of which only
``metadata`` is read.

The service account token is a secret: read from its file at each request (bound tokens
rotate), sent only to the configured API host, never in a log line or an error; redirects
are never followed; https is verified against the cluster's CA. Every answer is bounded: a
list page by `MAX_LIST_BYTES`, a watch line by `MAX_OBJECT_BYTES`.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final

import aiohttp
import orjson

from agent.config.kubernetes import KubernetesApiConfig

MAX_OBJECT_BYTES: Final = 3 * 2**20
"""One watch event at most: the API server refuses requests over 3 MiB, and etcd stores
objects of 1.5 MiB at most, so a longer line is not a Kubernetes object."""
MAX_LIST_BYTES: Final = 32 * 2**20
"""One list page at most (`PAGE_SIZE` objects of 1.5 MiB fit, with room)."""
PAGE_SIZE: Final = 16
MAX_ERROR_BODY: Final = 1024
METADATA_LIST: Final = "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"
METADATA_ONE: Final = "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io"


class KubeError(Exception):
    """The API could not be used; `reason` is a stable, bounded name (a metric label)."""

    reason: ClassVar[str] = "bad_answer"


class Unreachable(KubeError):
    reason = "unreachable"


class Unauthorized(KubeError):
    reason = "unauthorized"


class Forbidden(KubeError):
    reason = "forbidden"


class Gone(KubeError):
    """410: the resourceVersion (or a list's continue token) is too old: list again."""

    reason = "gone"


class Stalled(KubeError):
    reason = "stalled"


class Unconfigured(KubeError):
    reason = "unconfigured"


@dataclass(frozen=True, slots=True)
class Target:
    """Where the API server is and how to prove who we are."""

    base_url: str  # scheme://host:port, no trailing slash
    token_file: Path
    ca_file: Path
    node: str

    def __repr__(self) -> str:  # the token is never part of it, only its file
        return f"<Target {self.base_url} node={self.node}>"


def resolve(config: KubernetesApiConfig, environ: Mapping[str, str] | None = None) -> Target:
    """The configured URL and node, or the in-cluster ones from the environment."""
    env = os.environ if environ is None else environ
    base = config.api_url
    if not base:
        host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
        if not host or not port:
            raise Unconfigured(
                "no [kubernetes] api_url and no KUBERNETES_SERVICE_HOST/PORT: not in a pod?"
            )
        base = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    node = config.node_name or env.get("NODE_NAME", "")
    if not node:
        raise Unconfigured(
            "no [kubernetes] node_name and no NODE_NAME (downward API spec.nodeName)"
        )
    return Target(base, Path(config.token_file), Path(config.ca_file), node)


def read_token(path: Path) -> str | None:
    """The token as the kubelet wrote it now; None when there is no file (``kubectl proxy``).
    A token that could not be sent as a header is refused, without saying what it holds."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise Unauthorized(f"token file {path} unreadable: {type(exc).__name__}") from None
    if not token or not token.isprintable() or not token.isascii() or " " in token:
        raise Unauthorized(f"token file {path} does not hold a bearer token")
    return token


class KubeApi:
    """One aiohttp session for the cache's life: `async with KubeApi(target) as api`."""

    def __init__(
        self, target: Target, *, connect_timeout: float = 10.0, read_timeout: float = 60.0
    ) -> None:
        self.target = target
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"<KubeApi {self.target!r}>"

    async def __aenter__(self) -> KubeApi:
        context: ssl.SSLContext | bool = True
        if self.target.base_url.startswith("https:") and self.target.ca_file.exists():
            context = ssl.create_default_context(cafile=str(self.target.ca_file))
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=4, ssl=context),
            trust_env=False,  # never through a proxy: the token goes to the API host only
            auto_decompress=True,
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def list_page(
        self,
        path: str,
        params: Mapping[str, str],
        continue_token: str | None = None,
        *,
        cached: bool = False,
    ) -> dict[str, Any]:
        """One page of a list: ``{"metadata": {"resourceVersion", "continue"}, "items"}``.
        `cached`: ``resourceVersion=0``, served from the API server's watch cache (no etcd
        read, which a thousand nodes starting at once would otherwise cost; it may be a
        little behind, and the watch from its version catches up); else a consistent read."""
        query = {**params, "limit": str(PAGE_SIZE)}
        if continue_token:
            query["continue"] = continue_token
        elif cached:
            query["resourceVersion"] = "0"
        timeout = aiohttp.ClientTimeout(
            total=self._read_timeout, sock_connect=self._connect_timeout
        )
        async with self._get(path, query, METADATA_LIST, timeout) as response:
            await _check(response)
            body = await _read_bounded(response, MAX_LIST_BYTES)
        value = _json(body)
        if not isinstance(value.get("items"), list) or not isinstance(value.get("metadata"), dict):
            raise KubeError("a list answer without items or metadata")
        return value

    async def watch(
        self, path: str, params: Mapping[str, str], version: str, *, seconds: float
    ) -> AsyncGenerator[dict[str, Any], None]:
        """The events after `version`, until the server ends the stream (after about
        `seconds`); nothing heard for `seconds` and as long again (at most 30 s more) is
        `Stalled`: a healthy server ends the stream or sends a bookmark before that."""
        query = {
            **params,
            "watch": "1",
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(max(1, int(seconds))),
        }
        silence = seconds + min(30.0, seconds)
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self._connect_timeout, sock_read=silence
        )
        async with self._get(path, query, METADATA_ONE, timeout) as response:
            await _check(response)
            buffer = b""
            try:
                async for chunk in response.content.iter_any():
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    if len(buffer) > MAX_OBJECT_BYTES:
                        raise KubeError(f"a watch event longer than {MAX_OBJECT_BYTES} bytes")
                    for line in lines:
                        if line.strip():
                            yield _event(line)
            except TimeoutError:
                raise Stalled(f"the watch said nothing for {silence:g} s") from None
            except aiohttp.ClientError as exc:
                raise Unreachable(f"the watch broke: {type(exc).__name__}") from None

    def _get(
        self, path: str, query: dict[str, str], accept: str, timeout: aiohttp.ClientTimeout
    ) -> _Request:
        assert self._session is not None, "use `async with KubeApi(...)`"
        headers = {"Accept": f"{accept},application/json"}
        token = read_token(self.target.token_file)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return _Request(self._session, self.target.base_url + path, query, headers, timeout)


class _Request:
    """A GET whose transport errors become `Unreachable`/`Stalled` (never with headers)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        query: dict[str, str],
        headers: dict[str, str],
        timeout: aiohttp.ClientTimeout,
    ) -> None:
        self._args = (session, url, query, headers, timeout)
        self._response: aiohttp.ClientResponse | None = None

    async def __aenter__(self) -> aiohttp.ClientResponse:
        session, url, query, headers, timeout = self._args
        try:
            self._response = await session.get(
                url, params=query, headers=headers, timeout=timeout, allow_redirects=False
            )
        except TimeoutError:
            raise Stalled("the API server did not answer in time") from None
        except aiohttp.ClientError as exc:
            raise Unreachable(f"{type(exc).__name__}: {_squeeze(str(exc))}") from None
        return self._response

    async def __aexit__(self, *_: object) -> None:
        if self._response is not None:
            self._response.release()


async def _check(response: aiohttp.ClientResponse) -> None:
    if response.status == 200:
        return
    try:
        body = (await response.content.read(MAX_ERROR_BODY)).decode("utf-8", "replace")
    except (aiohttp.ClientError, TimeoutError):
        body = ""
    message = f"{response.status}: {_squeeze(_status_message(body))}"
    if response.status == 401:
        raise Unauthorized(message)
    if response.status == 403:
        raise Forbidden(message + " (the ClusterRole needs get, list, watch)")
    if response.status == 410:
        raise Gone(message)
    if 300 <= response.status < 400:
        raise KubeError(f"{response.status}: a redirect, never followed")
    raise KubeError(message)


async def _read_bounded(response: aiohttp.ClientResponse, limit: int) -> bytes:
    body = bytearray()
    try:
        async for chunk in response.content.iter_any():
            body += chunk
            if len(body) > limit:
                raise KubeError(f"a list page longer than {limit} bytes")
    except TimeoutError:
        raise Stalled("the list did not arrive in time") from None
    except aiohttp.ClientError as exc:
        raise Unreachable(f"the list broke: {type(exc).__name__}") from None
    return bytes(body)


def _json(data: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise KubeError("an answer that is not JSON") from None
    if not isinstance(value, dict):
        raise KubeError("an answer that is not a JSON object")
    return value


def _event(line: bytes) -> dict[str, Any]:
    value = _json(line)
    if not isinstance(value.get("type"), str) or not isinstance(value.get("object"), dict):
        raise KubeError("a watch event without type or object")
    return value


def _status_message(body: str) -> str:
    """A Status object's ``message``, else the body itself."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body
    if isinstance(value, dict) and isinstance(value.get("message"), str):
        return str(value["message"])
    return body


def _squeeze(text: str) -> str:
    return " ".join(text.split())[:200]
