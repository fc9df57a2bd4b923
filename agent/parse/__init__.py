"""Issue 6: turning real-world log lines into events Polaris will keep.

Two stages, both per file: `assemble.Assembler` (bytes lines -> logical `Record`s: charset,
container formats, multiline) and `event.EventBuilder` (a `Record` -> one JSON object with
parsed fields and a normalized time, or a `Rejection`). Options live in `settings`.
"""

# agent.config first: it imports agent.parse.settings halfway through (SourceConfig inherits
# SourceParsing), and agent.parse.settings builds on what agent.config defines before that.
# Nothing else here: the parsing library loads only for sources that parse.
import agent.config  # noqa: F401
