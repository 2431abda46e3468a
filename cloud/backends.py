"""The one place that decides which storage and which live feed a node runs on.

Nothing given: the embedded default (SQLite index + segment files under the data directory, an
in-process feed) for one machine. `index` + `objects`: the distributed storage (PostgreSQL + S3) that
any number of nodes share; `events`: the feed over NATS JetStream, so Subscribe spans nodes. Each
distributed part is imported only when chosen, so the default needs none of their client libraries.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .feed import FrameFeed
from .storage import Storage


@dataclass(frozen=True)
class BackendChoice:
    data_dir: Path
    segment_bytes: int
    index: str | None = None  # postgresql://user@host:port/db
    objects: str | None = None  # s3://bucket/prefix
    s3_endpoint: str | None = None  # http://host:port of an S3-compatible store (None: AWS)
    events: str | None = None  # nats://host:port

    def validate(self) -> None:
        """Refuse half a distributed store: an index without an object store (or the reverse) has nowhere to
        put frames, or nothing to find them by."""
        if bool(self.index) != bool(self.objects):
            raise ValueError("--index (PostgreSQL) and --objects (S3) go together: give both for the shared store, "
                             "or neither for the embedded one")
        if self.index and not self.index.startswith(("postgresql://", "postgres://")):
            raise ValueError(f"--index wants a postgresql:// URL, not {self.index!r}")
        if self.events and not self.events.startswith(("nats://", "tls://")):
            raise ValueError(f"--events wants a nats:// URL, not {self.events!r}")
        if self.objects:
            from .objects import ObjectsURL

            ObjectsURL.parse(self.objects)

    @property
    def distributed(self) -> bool:
        return bool(self.index)


def open_storage(choice: BackendChoice) -> Storage:
    """The node's storage; raises DependencyUnavailable when a shared service does not answer."""
    choice.validate()
    if choice.distributed:
        from .distributed_storage import PostgresObjectStorage
        from .objects import ObjectStore

        return PostgresObjectStorage(choice.index, ObjectStore(choice.objects, choice.s3_endpoint))
    from .sqlite_storage import SqliteSegmentStorage

    return SqliteSegmentStorage(choice.data_dir, choice.segment_bytes)


def open_feed(choice: BackendChoice) -> FrameFeed:
    """The node's live feed; raises DependencyUnavailable when NATS does not answer."""
    choice.validate()
    if choice.events:
        from .nats_feed import NatsFeed

        return NatsFeed(choice.events)
    return FrameFeed()
