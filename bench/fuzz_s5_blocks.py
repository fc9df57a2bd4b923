"""Coverage-guided fuzzing of the block paths added for halving, CRLF blocks and epoch or
text time fields (atheris): not part of `make test`.

For any lines set among a long run of good lines of one time shape (so that the run is
taught and taken by the block path, halved around the fuzzed lines), with LF or CRLF
endings, the encoder writes what the line path writes: events, offsets, refusals, counts;
and an `IdEncoder` gives each of those events the id of its line's offset.

    .venv/bin/pip install atheris
    .venv/bin/python bench/fuzz_s5_blocks.py -max_total_time=300 -max_len=2048
"""

from __future__ import annotations

import sys

import atheris  # type: ignore[import-untyped]

with atheris.instrument_imports():
    from agent.config import SourceConfig
    from agent.encode import Encoder
    from agent.encode.ids import IdEncoder
    from tests.support.pieces import events_and_offsets, pieces_keep_their_rules

NOW = 1_764_028_800.0
GOOD = [
    b'{"timestamp":"2025-11-24T00:00:00Z","n":%d,"msg":"a line of a JSON log"}',
    b'{"timestamp":"2025-11-24 00:00:00,123","n":%d,"msg":"a line of a JSON log"}',
    b'{"timestamp":1763942400,"n":%d,"msg":"a line of a JSON log"}',
    b'{"timestamp":1763942400.5,"n":%d,"msg":"a line of a JSON log"}',
    b'{"ts":1763942400123,"n":%d,"msg":"a line of a JSON log"}',
    b'{"n":%d,"msg":"a line of a JSON log"}',
    b"2025-11-24T00:00:00Z INFO a line of a text log number %d",
]
OPTIONS = [{}, {"fields": {"env": "prod"}}, {"time_field": "ts"}, {"format": "text"}]


def source(options: dict[str, object], **more: object) -> SourceConfig:
    return SourceConfig.model_validate({"name": "s", "include": ["/x/*.log"], **options, **more})


def encoder(options: dict[str, object]) -> Encoder:
    return Encoder(source(options), max_event_bytes=4096, piece_bytes=256, now=lambda: NOW)


def ids() -> IdEncoder:
    return IdEncoder(
        source({}, event_id=True),
        path="/x/a.log",
        identity=lambda: "0123456789abcdef",
        max_event_bytes=4096,
        piece_bytes=256,
        now=lambda: NOW,
        whole_blocks=True,
    )


def one_input(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    good = GOOD[provider.ConsumeIntInRange(0, len(GOOD) - 1)]
    options = OPTIONS[provider.ConsumeIntInRange(0, len(OPTIONS) - 1)]
    ending = b"\r\n" if provider.ConsumeBool() else b"\n"
    count = provider.ConsumeIntInRange(0, 400)
    odd = provider.ConsumeBytes(provider.remaining_bytes()).split(b"\n")
    lines = [good % n for n in range(count)]
    step = max(1, count // max(1, len(odd)))
    for index, line in enumerate(odd):
        lines.insert(min(len(lines), index * step + index), line)
    block = b"".join(line + ending for line in lines)
    fast, slow = encoder(options), encoder(options)
    teach = b"".join(good % n + ending for n in range(4))
    fast.encode(teach, 0)
    slow._line_by_line(teach, 0)
    got, want = fast.encode(block, len(teach)), slow._line_by_line(block, len(teach))
    if events_and_offsets(got) != events_and_offsets(want):
        raise AssertionError(f"paths disagree on {block!r} ({options})")
    if fast.take_counts() != slow.take_counts():
        raise AssertionError(f"counts disagree on {block!r} ({options})")
    pieces_keep_their_rules(got, 256)
    if options.get("format") == "text":
        return
    with_ids, oracle = ids(), ids()
    oracle._encoder.encode = oracle._encoder._line_by_line  # type: ignore[method-assign]
    if events_and_offsets(with_ids.encode(block, 9)) != events_and_offsets(oracle.encode(block, 9)):
        raise AssertionError(f"ids disagree on {block!r}")


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
