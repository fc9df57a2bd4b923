"""Issue 6: turning real-world log lines into events Polaris will keep.

Two stages, both per file: `assemble.Assembler` (bytes lines -> logical `Record`s: charset,
container formats, multiline) and `event.EventBuilder` (a `Record` -> one JSON object with
parsed fields and a normalized time, or a `Rejection`). Options live in `settings`.
"""

# agent.config first: it imports agent.parse.settings halfway through (SourceConfig inherits
# SourceParsing), and agent.parse.settings builds on what agent.config defines before that.
import agent.config  # noqa: F401
from agent.parse.assemble import Assembler, AssemblyCounters, Record
from agent.parse.event import EventBuilder, EventCounters, Rejection, event_id
from agent.parse.kubernetes import container_key
from agent.parse.settings import SourceParsing

__all__ = [
    "Assembler",
    "AssemblyCounters",
    "EventBuilder",
    "EventCounters",
    "Record",
    "Rejection",
    "SourceParsing",
    "container_key",
    "event_id",
]
