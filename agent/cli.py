"""The `polaris-agent` command line: parse arguments, hand off, turn outcomes into exit codes."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from agent import __version__
from agent.config import Config, ConfigError, load_config, parse_duration

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_DIFFERS = 3
EXIT_CONFIG = 78
"""EX_CONFIG (sysexits.h): the config is refused; restarting will not help."""

EXIT_CODES = f"""\
exit codes:
  {EXIT_OK:<3} done: the command did what it was asked (run --once: everything read reached
      Polaris or a dead letter; status: the agent answers and is ready)
  {EXIT_FAILURE:<3} runtime failure: run --once left data undelivered, gave up on a key or a
      connection refused for 15 s (once_auth_refused, once_endpoint_refused) or after
      --once-timeout without progress, status found the agent not running or not ready,
      check --environment found a problem, a replay left dead letters
  {EXIT_USAGE:<3} usage: unknown command or option
  {EXIT_DIFFERS:<3} setup: the job exists and differs from the config (--apply updates it)
  {EXIT_CONFIG:<3} config invalid (EX_CONFIG): every problem is printed with its key path
"""


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["dev-server"]:
        # The dev-server parses its own options (argparse.REMAINDER would swallow `--port`).
        from agent.devserver.cli import main as dev_main

        return dev_main(arguments[1:])
    args = _parser().parse_args(arguments)
    handler = args.handler
    try:
        code: int = handler(args)
        sys.stdout.flush()  # here, where a closed pipe can still be caught
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:
        # `status | head`: the reader left. Point stdout at /dev/null so that the flush at
        # exit cannot fail again, and say nothing: the reader asked for no more.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILURE
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="polaris-agent",
        description="Tail log files and ship them to the Imply Polaris Events API.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"polaris-agent {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the agent in the foreground")
    _config_arg(run)
    run.add_argument(
        "--once",
        action="store_true",
        help="ship what the files hold now, wait until all of it is acknowledged, exit",
    )
    run.add_argument(
        "--once-timeout",
        type=_duration,
        metavar="DURATION",
        help="with --once: give up (exit 1) when Polaris accepted nothing for this long while"
        " data waited, e.g. an unreachable endpoint (default 5m; 0: never). A key refused"
        " (401/403) or a missing connection (404) on every try for 15 s ends the run sooner,"
        " unless this is 0",
    )
    run.set_defaults(handler=_run)

    check = commands.add_parser(
        "check",
        help="validate a config: a short summary, warnings and problems",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _config_arg(check)
    shown = check.add_mutually_exclusive_group()
    shown.add_argument(
        "--quiet", "-q", action="store_true", help="print only problems and warnings"
    )
    shown.add_argument(
        "--print",
        dest="print_config",
        action="store_true",
        help="print the whole resolved config as JSON, secrets redacted",
    )
    check.add_argument(
        "--environment",
        action="store_true",
        help="also check this machine and the endpoint: globs match files, data_dir is"
        " writable, Polaris answers and accepts the key (one GET of the connection)",
    )
    check.set_defaults(handler=_check)

    setup = commands.add_parser(
        "setup", help="create the Polaris connection and streaming job from the config"
    )
    _config_arg(setup)
    setup.add_argument(
        "--apply",
        action="store_true",
        help="when the job exists but differs from the config, update it in place, or else"
        " cancel and recreate it (the table keeps its reading position)",
    )
    setup.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan and change nothing (exit 3 if it has changes)",
    )
    setup.set_defaults(handler=_setup)

    status = commands.add_parser(
        "status",
        help="the running agent's state and the checkpoints per file; exit 1 when the agent"
        " is not running or not ready",
    )
    _config_arg(status)
    status.add_argument("--json", action="store_true", help="one JSON document on stdout")
    status.set_defaults(handler=_status)

    dead = commands.add_parser(
        "dead-letters", help="list or re-send what Polaris or the encoders refused"
    )
    dead_commands = dead.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, text in (
        ("list", "list dead letters, oldest first"),
        (
            "replay",
            "re-send the events Polaris refused (reasons http_*) through the normal sending"
            " path; delivered ones are removed, refused ones stay",
        ),
    ):
        sub = dead_commands.add_parser(action, help=text)
        _config_arg(sub)
        sub.add_argument("--reason", action="append", help="only this reason (repeatable)")
        sub.add_argument(
            "--since",
            type=_since,
            metavar="TIME",
            help="only records written after TIME: an ISO 8601 time or a duration ago (1h, 2d)",
        )
        if action == "list":
            sub.add_argument("--json", action="store_true", help="the records as NDJSON")
        else:
            sub.add_argument(
                "--timeout",
                type=_duration,
                default=60.0,
                metavar="DURATION",
                help="give up when Polaris accepted nothing for this long (default 1m)",
            )
        sub.set_defaults(handler=_dead_letters)

    dev = commands.add_parser(
        "dev-server",
        help="run the local Polaris-compatible endpoint (try `dev-server --help`)",
        add_help=False,
    )
    dev.add_argument("dev_args", nargs=argparse.REMAINDER)
    dev.set_defaults(handler=_dev_server)
    return parser


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", type=Path, required=True, help="TOML config file")


def _load(args: argparse.Namespace) -> Config:
    config_path: Path = args.config
    return load_config(config_path)


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _since(text: str) -> float:
    """A UTC epoch time from an ISO 8601 time or a duration ago."""
    try:
        return time.time() - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid time {text!r}: use an ISO 8601 time or a duration such as 1h"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _run(args: argparse.Namespace) -> int:
    from agent.ship.tls import import_aiohttp

    import_aiohttp()  # first, before the runtime imports it: its CA stores load at first use
    from agent.runtime import run_agent

    return run_agent(args.config, once=args.once, once_timeout=once_timeout(args))


def once_timeout(args: argparse.Namespace) -> float | None:
    """`--once-timeout` in seconds, None for 0 (never). Its default is applied here, not in
    the parser: `agent.once` (and the event loop it needs) is no `check`'s to import."""
    from agent.once import DEFAULT_ONCE_TIMEOUT

    given: float | None = args.once_timeout
    return (DEFAULT_ONCE_TIMEOUT if given is None else given) or None


def _check(args: argparse.Namespace) -> int:
    from agent.checkcmd import check_main

    return check_main(
        args.config, quiet=args.quiet, full=args.print_config, environment=args.environment
    )


def _setup(args: argparse.Namespace) -> int:
    from agent.polaris.provision import setup_main

    return setup_main(_load(args), replace=args.apply, dry_run=args.dry_run)


def _status(args: argparse.Namespace) -> int:
    from agent.statuscmd import load_without_secrets, print_status

    return print_status(load_without_secrets(args.config), as_json=args.json)


def _dead_letters(args: argparse.Namespace) -> int:
    from agent.deadlettercmd import list_main, replay_main
    from agent.statuscmd import load_without_secrets

    if args.action == "list":
        config = load_without_secrets(args.config)
        return list_main(config, reasons=args.reason, since=args.since, as_json=args.json)
    return replay_main(_load(args), reasons=args.reason, since=args.since, timeout=args.timeout)


def _dev_server(args: argparse.Namespace) -> int:
    from agent.devserver.cli import main as dev_main

    code: int = dev_main(list(args.dev_args))
    return code
