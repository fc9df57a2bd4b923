"""`polaris-agent dev-server [options]` runs the endpoint in the foreground;
`polaris-agent dev-server query SQL` asks a running one and prints the rows."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

import orjson
import structlog

from agent.devserver.query import QueryFailed, format_table, run_query
from agent.devserver.server import DevServer

DEFAULT_PORT = 8080
DEFAULT_PROJECT = "dev-project"


def _default_keys() -> list[str]:
    keys = [k.strip() for k in os.environ.get("POLARIS_DEV_API_KEYS", "").split(",")]
    return [k for k in keys if k] or ["dev-key"]


def _oauth_clients(given: list[str]) -> dict[str, str]:
    """`ID:SECRET` pairs from the flags, else from $POLARIS_DEV_OAUTH_CLIENTS."""
    pairs = given or os.environ.get("POLARIS_DEV_OAUTH_CLIENTS", "").split(",")
    clients = {}
    for pair in (p.strip() for p in pairs):
        client, sep, secret = pair.partition(":")
        if pair and (not sep or not client or not secret):
            raise SystemExit("dev-server: --oauth-client takes ID:SECRET")
        if pair:
            clients[client] = secret
    return clients


def _serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="polaris-agent dev-server",
        description="Run a local Polaris-compatible endpoint (Events, Connections, Jobs, SQL). "
        "`polaris-agent dev-server query SQL` queries a running one.",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (127.0.0.1); on any other, /_dev/* asks non-loopback peers "
        "for an API key",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (8080; 0 = any)")
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help="accepted API key, repeatable (default: $POLARIS_DEV_API_KEYS, comma-separated, "
        "else dev-key)",
    )
    parser.add_argument(
        "--oauth-client",
        action="append",
        dest="oauth_clients",
        metavar="ID:SECRET",
        default=[],
        help="an OAuth client the token endpoint (POST /auth/realms/ORG/protocol/"
        "openid-connect/token) issues Bearer tokens to, repeatable (default: "
        "$POLARIS_DEV_OAUTH_CLIENTS, comma-separated)",
    )
    parser.add_argument(
        "--token-lifetime",
        type=float,
        default=300.0,
        help="seconds an issued token lives (300, as Imply's)",
    )
    parser.add_argument(
        "--data-dir", type=Path, help="keep state in this directory (default: in memory)"
    )
    parser.add_argument("--rate-limit", type=int, default=6000, help="Events requests per minute")
    parser.add_argument(
        "--max-payload", type=int, default=1_000_000, help="Events payload limit in bytes"
    )
    parser.add_argument("--ready-file", type=Path, help="write the URL here once listening")
    return parser


def _query_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="polaris-agent dev-server query",
        description="Run a read-only SQL query against a running dev-server and print the rows.",
    )
    parser.add_argument("sql", help='e.g. "SELECT COUNT(*) FROM demo_table"')
    parser.add_argument(
        "--url",
        default=os.environ.get("POLARIS_DEV_URL", f"http://127.0.0.1:{DEFAULT_PORT}"),
        help="dev-server URL (default: $POLARIS_DEV_URL, else http://127.0.0.1:8080)",
    )
    parser.add_argument("--project", default=DEFAULT_PROJECT, help="project id in the URL")
    parser.add_argument("--api-key", default=None, help="API key (default: the first dev key)")
    parser.add_argument("--json", action="store_true", help="print the raw JSON answer")
    return parser


def main(argv: list[str]) -> int:
    """Entry point used by `agent.cli`; returns the exit code.

    A leading `--` is dropped: `polaris-agent dev-server -- --port 0` is how options reach us
    through the top-level parser's REMAINDER argument.
    """
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if argv and argv[0] == "query":
        return _query(_query_parser().parse_args(argv[1:]))
    args = _serve_parser().parse_args(argv)
    try:
        return asyncio.run(_serve(args))
    except KeyboardInterrupt:
        return 0


def _query(args: argparse.Namespace) -> int:
    api_key: str = args.api_key or _default_keys()[0]
    try:
        answer = run_query(args.url, args.project, api_key, args.sql)
    except QueryFailed as exc:
        print(f"query failed: {exc}", file=sys.stderr)
        return 1
    if args.json:
        document = {"columns": answer.columns, "rows": answer.rows}
        print(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())
    else:
        print(format_table(answer.columns, answer.rows))
    return 0


async def _serve(args: argparse.Namespace) -> int:
    server = DevServer(
        api_keys=args.api_keys or _default_keys(),
        data_dir=args.data_dir,
        rate_limit_per_minute=args.rate_limit,
        max_payload_bytes=args.max_payload,
        oauth_clients=_oauth_clients(args.oauth_clients),
        token_lifetime=args.token_lifetime,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await server.start(args.host, args.port)
    try:
        structlog.get_logger("agent.devserver").info(
            "devserver.started",
            url=server.url,
            data_dir=str(args.data_dir) if args.data_dir else "memory",
            api_keys=len(server.api_keys),  # how many, never which
            oauth_clients=sorted(server.auth.oauth_clients),  # their ids, never the secrets
        )
        if args.host not in ("127.0.0.1", "::1", "localhost"):
            structlog.get_logger("agent.devserver").warning(
                "devserver.exposed",
                host=args.host,
                note="reachable beyond this machine: /_dev/* now needs an API key from "
                "non-loopback peers; the keys are test keys and the data is not protected",
            )
        if args.ready_file is not None:
            _write_ready_file(args.ready_file, server.url)
        await stop.wait()
    finally:
        await server.stop()
        if args.ready_file is not None:
            args.ready_file.unlink(missing_ok=True)
    return 0


def _write_ready_file(path: Path, url: str) -> None:
    """Write then rename, so a script polling for the file never reads half a URL."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(url + "\n")
    os.replace(tmp, path)
