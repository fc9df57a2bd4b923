"""The journald-specific options of a `type = "journald"` source: defined in the config
package (`agent.config.journald`, which `SourceConfig` inherits), named here for the reader."""

from agent.config.journald import JOURNALD_KEYS, LEVELS, JournalSettings

__all__ = ["JOURNALD_KEYS", "LEVELS", "JournalSettings"]
