"""The object store half of the distributed backend: one immutable S3 object per stored frame.

S3 objects cannot be appended to, so a frame's group records go up as one object (the records back
to back, as a segment holds them) before its index row is committed; a group is read back with a
ranged GET of exactly its bytes, which keeps "read only the requested group" true. boto3 is imported
here, lazily, so the embedded default and the query client never need it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from .errors import DependencyUnavailable

TIMEOUT_S = 5.0  # connect and read: a store that does not answer must fail the call, not hang it


@dataclass(frozen=True)
class ObjectsURL:
    """s3://bucket/prefix, parsed."""

    bucket: str
    prefix: str  # '' or ending in '/'

    @classmethod
    def parse(cls, url: str) -> "ObjectsURL":
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"--objects wants s3://BUCKET[/PREFIX], not {url!r}")
        prefix = parts.path.strip("/")
        return cls(parts.netloc, f"{prefix}/" if prefix else "")


class NoSuchObject(LookupError):
    """The object is not in the store (deleted by retention, or never written)."""


class ObjectStore:
    """A bucket (and key prefix) on an S3-compatible store; thread-safe (boto3 clients are)."""

    def __init__(self, url: str, endpoint: str | None = None, region: str | None = None):
        import boto3
        from botocore.config import Config

        self.url = ObjectsURL.parse(url)
        self.address = endpoint or "AWS S3"
        self._client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint, region_name=region or "us-east-1",
            config=Config(connect_timeout=TIMEOUT_S, read_timeout=TIMEOUT_S,
                          retries={"max_attempts": 2, "mode": "standard"}, max_pool_connections=64))

    def _unavailable(self, exc: Exception) -> DependencyUnavailable:
        return DependencyUnavailable("object store", f"{self.address} (s3://{self.url.bucket})", exc)

    def key(self, stream_id: str, name: str) -> str:
        return f"{self.url.prefix}{quote(stream_id, safe='')}/{name}"

    def ensure_bucket(self) -> None:
        """Create the bucket unless it exists (many nodes may race to do it)."""
        from botocore.exceptions import ClientError

        try:
            self._client.head_bucket(Bucket=self.url.bucket)
            return
        except ClientError:
            pass
        except Exception as exc:  # noqa: BLE001 - connection errors have no common base in botocore
            raise self._unavailable(exc) from exc
        try:
            self._client.create_bucket(Bucket=self.url.bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise self._unavailable(exc) from exc
        except Exception as exc:  # noqa: BLE001
            raise self._unavailable(exc) from exc

    def check(self) -> None:
        """Raise DependencyUnavailable unless the bucket answers."""
        try:
            self._client.head_bucket(Bucket=self.url.bucket)
        except Exception as exc:  # noqa: BLE001
            raise self._unavailable(exc) from exc

    def put(self, key: str, data: bytes) -> None:
        """Store `data` under `key`; returns once the store acknowledged the whole object."""
        try:
            self._client.put_object(Bucket=self.url.bucket, Key=key, Body=data)
        except Exception as exc:  # noqa: BLE001
            raise self._unavailable(exc) from exc

    def read(self, key: str, offset: int, length: int) -> bytes:
        """Exactly `length` bytes at `offset` (one ranged GET); NoSuchObject if the object is gone."""
        from botocore.exceptions import ClientError

        try:
            body = self._client.get_object(Bucket=self.url.bucket, Key=key,
                                           Range=f"bytes={offset}-{offset + length - 1}")["Body"]
            data = body.read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise NoSuchObject(key) from None
            raise self._unavailable(exc) from exc
        except Exception as exc:  # noqa: BLE001
            raise self._unavailable(exc) from exc
        if len(data) != length:
            raise EOFError(f"object {key} ends before offset {offset}+{length}")
        return data

    def delete(self, keys: list[str]) -> None:
        """Delete objects (missing ones are fine); up to 1000 keys per request, as S3 allows."""
        for i in range(0, len(keys), 1000):
            chunk = keys[i:i + 1000]
            try:
                self._client.delete_objects(Bucket=self.url.bucket,
                                            Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True})
            except Exception as exc:  # noqa: BLE001
                raise self._unavailable(exc) from exc

    def close(self) -> None:
        self._client.close()
