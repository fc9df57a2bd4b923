"""The HTTP surface of the dev-server: routes, Basic auth, and the Events API request flow.

Events request order (as a gateway in front of Polaris would do it): auth (401) -> rate limit
(429) -> faults -> connection (404) -> size/encoding (413/415/400) -> NDJSON check (400) ->
append (200). Every Events response carries the rate-limit headers.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from agent.devserver.auth import TOKEN_PATH, Identity, TokenError
from agent.devserver.errors import ApiError, BadRequest, NotFound, Unauthorized
from agent.devserver.events import count_lines, decode_body, split_events
from agent.devserver.faults import FaultAnswer, apply_admin_command
from agent.devserver.names import check_name
from agent.devserver.ratelimit import RateState
from agent.devserver.results import ResultOptions, render
from agent.devserver.tables import QueryError

if TYPE_CHECKING:
    from agent.devserver.server import DevServer

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PREFIX = "/v1/projects/{project}"
_DEV_SERVER = web.AppKey("dev_server", object)


def json_response(
    document: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(document),
        status=status,
        content_type="application/json",
        headers=dict(headers or {}),
    )


def error_response(
    status: int, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    return json_response({"message": message}, status, headers)


def _server(request: web.Request) -> DevServer:
    server: DevServer = request.app[_DEV_SERVER]  # type: ignore[assignment]
    return server


def _authorize(request: web.Request) -> Identity:
    """The caller (an API key in any Basic form Imply's examples send, or a token this
    server issued; see `auth.py`), or 401 with the reason."""
    who = _server(request).auth.identify(request.headers.get("Authorization", ""))
    if not isinstance(who, Identity):
        raise Unauthorized(who.message)
    return who


async def token(request: web.Request) -> web.StreamResponse:
    """The OAuth token endpoint (client credentials grant), as Imply's identity service."""
    form = await request.post()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        answer = _server(request).auth.issue(fields, request.headers.get("Authorization", ""))
    except TokenError as exc:
        return json_response(exc.document(), exc.status)
    return json_response(answer, headers={"Cache-Control": "no-store"})


DEV_PREFIX = "/_dev/"


def _from_loopback(request: web.Request) -> bool:
    """Whether the TCP peer (not a header a client could forge) is this machine's loopback."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    if not peer:
        return False
    try:
        address = ipaddress.ip_address(str(peer[0]).partition("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


@web.middleware
async def _dev_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """`/_dev/*` switches faults on and reads what was received: from a loopback peer as
    always (tests, a laptop), from any other peer (`--host 0.0.0.0`, a container's published
    port) only with an accepted API key, like the Polaris APIs."""
    if request.path.startswith(DEV_PREFIX) and not _from_loopback(request):
        _authorize(request)
    return await handler(request)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """ApiError -> `{"message": ...}` with its status; aiohttp's own 404/405 as JSON too."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.message)
    except web.HTTPException as exc:
        if exc.status >= 400:
            return error_response(exc.status, exc.reason)
        raise


async def _json_body(request: web.Request) -> Any:
    try:
        return orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None


# ---------------------------------------------------------------------------- Events API


def _measure(raw: bytes, encoding: str | None) -> tuple[int, int]:
    """Decompressed size and line count of a body we will not process, best effort."""
    try:
        data = decode_body(raw, encoding, 64 * 1024 * 1024).data
    except ApiError:
        return len(raw), 0
    return len(data), count_lines(data)


def _fault_response(answer: FaultAnswer, rate: RateState) -> web.Response:
    headers = rate.headers()
    if answer.retry_after is not None:
        headers["Retry-After"] = _seconds(answer.retry_after)
    headers.update(answer.headers)
    return error_response(answer.status, f"injected fault: HTTP {answer.status}", headers)


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _reset_connection(request: web.Request) -> None:
    """Abort the TCP connection with an RST so the client sees a connection error."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def events(request: web.Request) -> web.StreamResponse:
    server = _server(request)
    faults = server.faults
    connection = request.match_info["connection"]
    encoding = request.headers.get("Content-Encoding")
    raw = await request.read()
    who = server.auth.identify(request.headers.get("Authorization", ""))
    key = who.name if isinstance(who, Identity) else None

    def finish(
        status: int, response: web.StreamResponse, measured: tuple[int, int] | None = None
    ) -> web.StreamResponse:
        body_bytes, lines = measured if measured is not None else _measure(raw, encoding)
        server.record(_record(status, connection, encoding, key, body_bytes, lines))
        return response

    if not isinstance(who, Identity):
        headers = faults.rate_limiter.peek().headers()
        return finish(401, error_response(401, who.message, headers))
    rate = faults.rate_limiter.acquire()
    headers = rate.headers()
    if not rate.allowed:
        headers["Retry-After"] = str(max(1, rate.reset_seconds))
        return finish(429, error_response(429, "API rate limit exceeded", headers))
    plan = faults.next_request()
    if plan.reset:
        finish(0, web.Response())
        _reset_connection(request)
        raise asyncio.CancelledError  # nothing can be written to an aborted connection
    if plan.answer is not None:
        await asyncio.sleep(plan.delay)
        return finish(plan.answer.status, _fault_response(plan.answer, rate))
    try:
        if connection not in server.catalog.connections:
            raise NotFound(f"connection {connection!r} does not exist")
        data = decode_body(raw, encoding, faults.max_payload_bytes).data
        lines = split_events(data)
        if faults.refuses(lines):
            raise BadRequest("an event in the payload was refused (dev-server fault)")
    except ApiError as exc:
        await asyncio.sleep(plan.delay)
        return finish(exc.status, error_response(exc.status, exc.message, headers))
    server.accept_events(connection, lines)
    await asyncio.sleep(plan.delay)
    return finish(200, web.Response(text="OK", headers=headers), measured=(len(data), len(lines)))


def _record(
    status: int,
    connection: str,
    encoding: str | None,
    key: str | None,
    body_bytes: int,
    lines: int,
) -> Any:
    from agent.devserver.server import RequestRecord

    return RequestRecord(
        status=status,
        connection=connection,
        content_encoding=encoding,
        auth_user=key,
        body_bytes=body_bytes,
        line_count=lines,
        at=time.monotonic(),
    )


# ---------------------------------------------------------------------------- Connections


def _endpoint_url(request: web.Request, name: str) -> str:
    project = request.match_info["project"]
    return f"{request.scheme}://{request.host}/v1/projects/{project}/events/{name}"


async def create_connection(request: web.Request) -> web.StreamResponse:
    _authorize(request)
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise BadRequest("connection spec must be a JSON object")
    if body.get("type") != "push_streaming":
        raise BadRequest(
            f"connection type {body.get('type')!r} is not supported by the dev-server; "
            "use 'push_streaming'"
        )
    name = check_name("connection", body.get("name"))
    server = _server(request)
    server.create_connection(name)
    document = server.catalog.connection(name).to_json(_endpoint_url(request, name))
    return json_response(document, 201)


async def list_connections(request: web.Request) -> web.StreamResponse:
    _authorize(request)
    connections = _server(request).catalog.connections.values()
    return json_response(
        {"values": [c.to_json(_endpoint_url(request, c.name)) for c in connections]}
    )


async def get_connection(request: web.Request) -> web.StreamResponse:
    _authorize(request)
    name = request.match_info["name"]
    connection = _server(request).catalog.connection(name)
    return json_response(connection.to_json(_endpoint_url(request, name)))


async def delete_connection(request: web.Request) -> web.StreamResponse:
    _authorize(request)
    _server(request).delete_connection(request.match_info["name"])
    return web.Response(status=204)


# ---------------------------------------------------------------------------- Jobs


async def create_job(request: web.Request) -> web.StreamResponse:
    _authorize(request)
    body = await _json_body(request)
    server = _server(request)
    job = server.create_job(body)
    return json_response(server.job_json(job), 201)


async def list_jobs(request: web.Request) -> web.StreamResponse:
    """`GET /jobs`, filtered by `?type=` and `?healthStatus=` (repeatable: any of the values)."""
    _authorize(request)
    server = _server(request)
    jobs = server.jobs(request.query.getall("type", []), request.query.getall("healthStatus", []))
    return json_response({"values": [server.job_json(job) for job in jobs]})


async def get_job_status(request: web.Request) -> web.StreamResponse:
    """`GET /jobs/{id}/status`: execution status and health, without the spec."""
    _authorize(request)
    server = _server(request)
    return json_response(server.job_status(server.job(request.match_info["job_id"])))


async def get_job(request: web.Request) -> web.StreamResponse:
    _authorize(request)
    server = _server(request)
    job = server.job(request.match_info["job_id"])
    return json_response(server.job_json(job))


async def update_job(request: web.Request) -> web.StreamResponse:
    """`PUT /jobs/{id}`: `"desiredExecutionStatus": "canceled"` cancels the job; a full job
    spec replaces the running job's inputSchema, mappings and rejection periods in place,
    keeping its place in the stream (its table and connection cannot change)."""
    _authorize(request)
    body = await _json_body(request)
    server = _server(request)
    job = server.job(request.match_info["job_id"])
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    status = body.get("desiredExecutionStatus", job.desired_status)
    if status == "canceled":
        return json_response(server.job_json(await server.cancel_job(job.id)))
    if status != "running" or not job.running:
        raise BadRequest(
            f"job {job.id} is {job.desired_status}: desiredExecutionStatus can only be"
            " set to 'canceled'"
        )
    if "source" in body or "mappings" in body:
        job = await server.update_job(job.id, body)
    return json_response(server.job_json(job))


# ---------------------------------------------------------------------------- Query


async def query(request: web.Request) -> web.StreamResponse:
    """`{"query": SQL, "resultFormat": ..., "header": ...}` -> the rows in that format (see
    `results.py`; `object` by default), once ingestion caught up."""
    _authorize(request)
    body = await _json_body(request)
    sql = body.get("query") if isinstance(body, dict) else None
    if not isinstance(body, dict) or not isinstance(sql, str) or not sql.strip():
        raise BadRequest('body must be {"query": "SELECT ..."}')
    options = ResultOptions.from_body(body)
    try:
        result = await _server(request).query(sql)
    except QueryError as exc:
        raise BadRequest(str(exc)) from None
    return web.Response(
        body=render(result.columns, result.rows, options), content_type=options.content_type
    )


# ---------------------------------------------------------------------------- Admin


async def post_faults(request: web.Request) -> web.StreamResponse:
    """One command object or a list of them; see `faults.apply_admin_command`."""
    body = await _json_body(request)
    commands = body if isinstance(body, list) else [body]
    faults = _server(request).faults
    for command in commands:
        if not isinstance(command, dict):
            raise BadRequest('each fault command must be an object like {"action": "fail_next"}')
        apply_admin_command(faults, command)
    return json_response({"faults": repr(faults)})


async def delete_faults(request: web.Request) -> web.StreamResponse:
    _server(request).faults.clear()
    return web.Response(status=204)


async def get_stats(request: web.Request) -> web.StreamResponse:
    return json_response(_server(request).stats())


def build_app(server: DevServer) -> web.Application:
    app = web.Application(middlewares=[_errors, _dev_guard], client_max_size=256 * 1024 * 1024)
    app[_DEV_SERVER] = server
    app.router.add_post(PREFIX + "/events/{connection}", events)
    app.router.add_post(TOKEN_PATH, token)
    app.router.add_post(PREFIX + "/connections", create_connection)
    app.router.add_get(PREFIX + "/connections", list_connections)
    app.router.add_get(PREFIX + "/connections/{name}", get_connection)
    app.router.add_delete(PREFIX + "/connections/{name}", delete_connection)
    app.router.add_post(PREFIX + "/jobs", create_job)
    app.router.add_get(PREFIX + "/jobs", list_jobs)
    app.router.add_get(PREFIX + "/jobs/{job_id}", get_job)
    app.router.add_get(PREFIX + "/jobs/{job_id}/status", get_job_status)
    app.router.add_put(PREFIX + "/jobs/{job_id}", update_job)
    app.router.add_post(PREFIX + "/query/sql", query)
    app.router.add_post("/_dev/faults", post_faults)
    app.router.add_delete("/_dev/faults", delete_faults)
    app.router.add_get("/_dev/stats", get_stats)
    return app
