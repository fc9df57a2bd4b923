"""What a SIGHUP changes: the sections that differ between two configs, and which of them a
running agent applies at once and which only at its next start.

Pure: `plan_reload(old, new)` compares values and touches no component, so the rules are
tested without an agent; the runtime hands each changed section to its component's
`reconfigure`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from agent.config import Config
from agent.ops.events import Event, Label

RESTART_ONLY: Final = (
    "data_dir",
    "queue",
    "api",
    "checkpoint_interval",
    "kubernetes",
)
"""Settings a reload cannot change in a running agent: said in the log, applied at restart."""

LIVE: Final = ("log", "sources", "polaris", "sender", "batch", "spool", "dead_letter")
"""What applies at once, in this order (logging first: what follows logs in the new form)."""

CONFIG_RELOADED: Final = Event(
    "config_reloaded",
    "A SIGHUP's config was applied (the sections that changed are in the log line).",
)
RELOAD_REJECTED: Final = Event(
    "reload_rejected",
    "A SIGHUP found a config with problems; the agent runs on with the old one. "
    "Run `polaris-agent check` on the file.",
    level="error",
)
RELOAD_SKIPPED: Final = Event(
    "reload_skipped", "A reload was asked of an agent built without a config file.", "warning"
)
RELOAD_NEEDS_RESTART: Final = Event(
    "reload_needs_restart",
    "A reload changed settings that apply only at the next start (data_dir, queue, api, "
    "checkpoint_interval, sender.workers, spool.enabled, kubernetes).",
    level="warning",
)
EVENTS: Final = (CONFIG_RELOADED, RELOAD_REJECTED, RELOAD_SKIPPED, RELOAD_NEEDS_RESTART)
RELOAD_OUTCOMES: Final = Label("outcome", frozenset({"applied", "rejected"}))


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """The sections to hand to components now (`live`, in `LIVE` order) and the keys whose
    change waits for a restart (`later`)."""

    live: tuple[str, ...]
    later: tuple[str, ...]

    def __contains__(self, section: str) -> bool:
        return section in self.live


def plan_reload(old: Config, new: Config) -> ReloadPlan:
    """Compare two valid configs. The sender's settings include the spool's deadline and the
    default connection, so a change to either reaches the sender too."""
    changed = {key for key in LIVE if getattr(new, key) != getattr(old, key)}
    if {"spool", "polaris"} & changed:
        changed.add("sender")
    later = [key for key in RESTART_ONLY if getattr(new, key) != getattr(old, key)]
    if new.sender.workers != old.sender.workers:
        later.append("sender.workers")
    if new.spool.enabled != old.spool.enabled:
        later.append("spool.enabled")
    return ReloadPlan(tuple(key for key in LIVE if key in changed), tuple(later))
