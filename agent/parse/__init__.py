"""Issue 6: turning real-world log lines into events Polaris will keep.

Two stages, both per file: `assemble.Assembler` (bytes lines -> logical `Record`s: charset,
container formats, multiline) and `event.EventBuilder` (a `Record` -> one JSON object with
parsed fields and a normalized time, or a `Rejection`). Options live in `settings`.

Nothing is imported here: the parsing library loads only for sources that parse.
"""
