"""The `polaris-agent` command line: parse arguments, hand off, turn outcomes into exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from agent import __version__
from agent.config import Config, ConfigError, load_config

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 78
"""EX_CONFIG (sysexits.h): the config is refused; restarting will not help. Usage errors are 2."""


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
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return EXIT_OK
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="polaris-agent",
        description="Tail log files and ship them to the Imply Polaris Events API.",
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
    run.set_defaults(handler=_run)

    check = commands.add_parser("check", help="validate a config and print it, secrets redacted")
    _config_arg(check)
    check.set_defaults(handler=_check)

    setup = commands.add_parser(
        "setup", help="create the Polaris connection and streaming job from the config"
    )
    _config_arg(setup)
    setup.add_argument(
        "--apply",
        action="store_true",
        help="when the job exists but differs from the config, update it in place",
    )
    setup.set_defaults(handler=_setup)

    status = commands.add_parser("status", help="checkpoints per file")
    _config_arg(status)
    status.set_defaults(handler=_status)

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


def _run(args: argparse.Namespace) -> int:
    from agent.runtime import run_agent

    return run_agent(args.config, once=args.once)


def _check(args: argparse.Namespace) -> int:
    from agent.checkcmd import check_main

    return check_main(args.config)


def _setup(args: argparse.Namespace) -> int:
    from agent.polaris.provision import setup_main

    return setup_main(_load(args), replace=args.apply)


def _status(args: argparse.Namespace) -> int:
    from agent.statuscmd import print_status

    return print_status(_load(args))


def _dev_server(args: argparse.Namespace) -> int:
    from agent.devserver.cli import main as dev_main

    code: int = dev_main(list(args.dev_args))
    return code
