"""The agent's configuration: TOML in, one validated, typed value out.

Every problem is collected and reported at once with its key path (``sources[0].format``),
because an operator fixing a config one error per restart is an operator lost. Unknown keys
are errors: a silently ignored typo is a setting that never took effect.

Hostile or careless input (issue 12) is refused, never crashed on: a file that is not UTF-8,
too large or nested too deep; a URL that would carry credentials, send the key in clear to
another host, or move the POST to another path; intervals that would spin the CPU; a key
HTTP Basic auth cannot carry. What works but is risky is returned by :func:`config_warnings`
and said by both ``check`` and ``run``. No message ever holds the API key.

    schema.py (agent/)  durations, sizes, `Section`: what every section is built from
    problems.py         Problem, ConfigWarning, ConfigError: what is wrong, with key paths
    polaris.py          [polaris]
    listen.py           api.listen's host:port
    models.py           every other section and `Config`
    loading.py          file -> TOML -> ${VAR} -> Config, and what this machine says against it
    checks.py           warnings (risky but working settings) and redaction for `check`
"""

from agent.config.checks import (
    config_warnings,
    file_warnings,
    holds_literal_secret,
    redact,
    startup_warnings,
)
from agent.config.listen import InvalidListenAddress, ListenAddress
from agent.config.loading import host_problems, load_config, parse_config, read_raw
from agent.config.models import (
    POLARIS_MAX_PAYLOAD,
    ApiConfig,
    BatchConfig,
    Config,
    InputField,
    JobConfig,
    LogConfig,
    Mapping_,
    QueueConfig,
    SenderConfig,
    SourceConfig,
    SpoolConfig,
)
from agent.config.polaris import PolarisConfig
from agent.config.problems import REDACTED, ConfigError, ConfigWarning, Problem, key_path, printable
from agent.schema import Duration, Interval, Size, parse_duration, parse_size

__all__ = [
    "POLARIS_MAX_PAYLOAD",
    "REDACTED",
    "ApiConfig",
    "BatchConfig",
    "Config",
    "ConfigError",
    "ConfigWarning",
    "Duration",
    "InputField",
    "Interval",
    "InvalidListenAddress",
    "JobConfig",
    "ListenAddress",
    "LogConfig",
    "Mapping_",
    "PolarisConfig",
    "Problem",
    "QueueConfig",
    "SenderConfig",
    "Size",
    "SourceConfig",
    "SpoolConfig",
    "config_warnings",
    "file_warnings",
    "holds_literal_secret",
    "host_problems",
    "key_path",
    "load_config",
    "parse_config",
    "parse_duration",
    "parse_size",
    "printable",
    "read_raw",
    "redact",
    "startup_warnings",
]
