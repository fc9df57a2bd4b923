"""One `LineEncoder` per tracked file, whatever its source's options."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.config import SourceConfig
from agent.encode import Encoded, EncodeLimits, LineEncoder, encoder_for
from agent.encode.values import NOTHING
from agent.records import FileId
from agent.tail.compare import head_of, identity_of
from agent.tail.reader import Reader

if TYPE_CHECKING:
    from agent.parse.kubernetes import PodDirectory


@dataclass(slots=True)
class _Built:
    encoder: LineEncoder
    source: SourceConfig  # what it was built from: a reloaded source needs a new one
    limits: EncodeLimits


class Unbuilt:
    """A file's encoder that could not be built: a defect of ours that some source setting
    found (a name msgspec cannot read once raised here, at every start, before any line).

    Every block it is given raises that error, inside the tailer's encode guard: its lines
    become ``encoder_failed`` dead letters with the error's text (`agent.tail.quarantine`),
    the error log line says so, the file and every other file go on, and the next block
    tries to build the encoder again. Nothing is lost: the letters replay once it is fixed.
    """

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __repr__(self) -> str:
        return f"<Unbuilt {type(self.error).__name__}>"

    @property
    def pending_offset(self) -> int | None:
        return None

    def encode(self, block: bytes, start_offset: int) -> Encoded:
        raise self.error.with_traceback(None)  # raised anew each time: no growing chain

    def flush(self, now: float | None = None, *, force: bool = False) -> Encoded:
        return NOTHING

    def next_flush(self) -> float | None:
        return None

    def take_counts(self) -> dict[str, int]:
        return {}


class FileEncoders:
    """Each file's encoder, built at its first read for its source and the limits in force.

    A file whose source or limits changed (a reload) gets a new encoder at its next read,
    after the old one gave up everything it holds (`take`): those lines are behind the read
    offset, and dropping them would lose them.
    """

    def __init__(self, limits: EncodeLimits, pods: PodDirectory | None = None) -> None:
        self.limits = limits
        self._pods = pods
        self._built: dict[FileId, _Built] = {}

    def __repr__(self) -> str:
        held = sum(b.encoder.pending_offset is not None for b in self._built.values())
        return f"<FileEncoders files={len(self._built)} holding={held} {self.limits}>"

    def get(self, file_id: FileId) -> LineEncoder | None:
        built = self._built.get(file_id)
        return None if built is None else built.encoder

    def take(self, reader: Reader, source: SourceConfig) -> tuple[LineEncoder, LineEncoder | None]:
        """The file's encoder, and the one it replaces (flush and ship that one first)."""
        built = self._built.get(reader.file_id)
        if built is not None and built.source == source and built.limits == self.limits:
            return built.encoder, None
        try:
            encoder: LineEncoder = encoder_for(
                source,
                self.limits,
                path=reader.path,
                identity=lambda: identity_of(reader),
                head=lambda: head_of(reader),
                start_offset=reader.offset,
                pods=self._pods,
            )
        except Exception as error:  # a defect of ours a setting found: see `Unbuilt`
            encoder = Unbuilt(error)
        self._built[reader.file_id] = _Built(encoder, source, self.limits)
        return encoder, None if built is None else built.encoder

    def held(self, file_id: FileId) -> bool:
        """Whether the file's encoder holds lines back (its checkpoint waits for them)."""
        encoder = self.get(file_id)
        return encoder is not None and encoder.pending_offset is not None

    def next_flush(self) -> float | None:
        """When (monotonic) the first held record's flush timeout is up."""
        due = [d for b in self._built.values() if (d := b.encoder.next_flush()) is not None]
        return min(due, default=None)

    def drop(self, file_id: FileId) -> None:
        """Forget the file's encoder (it failed): its next read builds a fresh one."""
        self._built.pop(file_id, None)

    def forget(self, alive: set[FileId]) -> None:
        """Drop the encoders of contents no longer tracked (released, truncated)."""
        for file_id in [f for f in self._built if f not in alive]:
            del self._built[file_id]
