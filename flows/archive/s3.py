"""S3 transfers that are retried and verified: a local file counts as archived only once the
bucket reports the same size and checksum for it.

Large files go up in parts (boto3's managed transfer). Each request is retried by botocore
("standard" mode: throttling, 5xx and dropped connections, with backoff); a whole upload whose
verification fails is repeated up to ``attempts`` times. Verification compares the object's
SHA-256 checksum as S3 computed it on arrival (for a multipart object, the SHA-256 of the
parts' SHA-256 digests), falling back to the ETag's MD5 form, and, where the server offers
neither (encrypted objects), to hashing the object read back.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from flows.archive.layout import ArchiveError
from flows.settings import S3Settings

MiB = 1024 * 1024
S3Client = Any  # botocore generates the client class at run time


class VerificationError(ArchiveError):
    """The object in the bucket is not the file that was uploaded."""


@dataclass(frozen=True)
class Transfer:
    """Multipart threshold and part size (S3 needs parts of at least 5 MiB but the last)."""

    threshold: int = 16 * MiB
    chunk: int = 8 * MiB
    attempts: int = 3
    request_attempts: int = 5

    def config(self) -> TransferConfig:
        return TransferConfig(multipart_threshold=self.threshold, multipart_chunksize=self.chunk)


def make_client(settings: S3Settings, transfer: Transfer | None = None) -> S3Client:
    """A boto3 S3 client for the settings' endpoint (AWS when unset) and credentials."""
    transfer = transfer or Transfer()
    config = Config(
        retries={"max_attempts": transfer.request_attempts, "mode": "standard"},
        connect_timeout=10,
        read_timeout=120,
        # MinIO and other self-hosted endpoints serve buckets by path, not by subdomain.
        s3={"addressing_style": "path" if settings.endpoint_url else "auto"},
    )
    try:
        return boto3.client(
            "s3",
            endpoint_url=settings.endpoint_url,
            region_name=settings.region,
            aws_access_key_id=settings.access_key_id,
            aws_secret_access_key=settings.secret_access_key,
            config=config,
        )
    except (BotoCoreError, ValueError) as exc:
        raise ArchiveError(f"cannot set up the S3 client: {exc}") from exc


@contextmanager
def s3_errors(action: str) -> Iterator[None]:
    """boto3's failures as one :class:`ArchiveError` line saying what was being done."""
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise ArchiveError(
            f"{action}: {error.get('Code', 'error')}: {error.get('Message', exc)}"
        ) from exc
    except (BotoCoreError, Boto3Error) as exc:
        raise ArchiveError(f"{action}: {exc}") from exc


@dataclass(frozen=True)
class Digest:
    """What a file's upload should look like from the bucket's side."""

    size: int
    sha256: str  # hex, of the whole file
    md5: str  # hex, of the whole file
    part_sha256: tuple[bytes, ...]
    part_md5: tuple[bytes, ...]

    @property
    def sha256_b64(self) -> str:
        return base64.b64encode(bytes.fromhex(self.sha256)).decode()

    def composite_sha256_b64(self) -> str:
        return base64.b64encode(hashlib.sha256(b"".join(self.part_sha256)).digest()).decode()

    def composite_md5(self) -> str:
        return hashlib.md5(b"".join(self.part_md5)).hexdigest()


def digest_file(path: Path, chunk: int) -> Digest:
    """Whole-file and per-part digests, parts cut as the multipart upload cuts them."""
    whole_sha, whole_md5 = hashlib.sha256(), hashlib.md5()
    part_sha: list[bytes] = []
    part_md5: list[bytes] = []
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            size += len(block)
            whole_sha.update(block)
            whole_md5.update(block)
            part_sha.append(hashlib.sha256(block).digest())
            part_md5.append(hashlib.md5(block).digest())
    return Digest(
        size, whole_sha.hexdigest(), whole_md5.hexdigest(), tuple(part_sha), tuple(part_md5)
    )


def _parts_in_etag(etag: str) -> int | None:
    """N for a multipart ETag ``"<md5>-N"``; None for a single-part one."""
    _, dash, count = etag.strip('"').partition("-")
    return int(count) if dash and count.isdigit() else None


def verify(
    head: dict[str, Any], digest: Digest, read_back: Callable[[], bytes] | None = None
) -> str:
    """Raise :class:`VerificationError` unless the object matches; returns how it was checked."""
    size = int(head.get("ContentLength", -1))
    if size != digest.size:
        raise VerificationError(f"size in bucket {size} != local {digest.size}")
    etag = str(head.get("ETag", ""))
    parts = _parts_in_etag(etag)
    if parts is not None and parts != len(digest.part_sha256):
        # The transfer chose another part size (it grows parts past 10,000 of them), so the
        # composite digests cannot be recomputed here; compare the bytes themselves.
        return _verify_read_back(digest, read_back)
    checksum = head.get("ChecksumSHA256")
    if checksum:
        value = str(checksum).split("-")[0]  # AWS appends "-N" to multipart checksums
        expected = digest.sha256_b64 if parts is None else digest.composite_sha256_b64()
        if value != expected:
            raise VerificationError(f"SHA-256 checksum in bucket {value} != local {expected}")
        return "sha256"
    md5 = etag.strip('"').split("-")[0]
    expected_md5 = digest.md5 if parts is None else digest.composite_md5()
    if len(md5) == 32 and md5 == expected_md5:
        return "etag-md5"
    # Encrypted objects have ETags that are not MD5s; only the bytes can tell.
    return _verify_read_back(digest, read_back)


def _verify_read_back(digest: Digest, read_back: Callable[[], bytes] | None) -> str:
    if read_back is None:
        raise VerificationError("the bucket offers no checksum to compare")
    actual = hashlib.sha256(read_back()).hexdigest()
    if actual != digest.sha256:
        raise VerificationError(f"SHA-256 of the object read back {actual} != {digest.sha256}")
    return "read-back"


@dataclass(frozen=True)
class Uploaded:
    key: str
    size: int
    sha256: str
    parts: int
    uploaded: bool  # False when the bucket already held the same bytes
    verified_by: str


def head(client: S3Client, bucket: str, key: str) -> dict[str, Any] | None:
    """The object's metadata with its checksum, or None when there is no such object."""
    try:
        return client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def upload_verified(
    client: S3Client,
    bucket: str,
    key: str,
    path: Path,
    transfer: Transfer | None = None,
    content_type: str = "application/octet-stream",
) -> Uploaded:
    """Upload ``path`` to ``key`` unless the bucket already holds it; verify either way."""
    transfer = transfer or Transfer()
    digest = digest_file(path, transfer.chunk)
    parts = 1 if digest.size < transfer.threshold else len(digest.part_sha256)

    def read_back() -> bytes:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()

    with s3_errors(f"upload s3://{bucket}/{key}"):
        existing = head(client, bucket, key)
        if existing is not None and existing.get("Metadata", {}).get("sha256") == digest.sha256:
            try:
                how = verify(existing, digest, read_back)
                return Uploaded(key, digest.size, digest.sha256, parts, False, how)
            except VerificationError:
                pass  # metadata says same, bytes say otherwise: upload again
        failure: VerificationError | None = None
        for _ in range(transfer.attempts):
            client.upload_file(
                str(path),
                bucket,
                key,
                ExtraArgs={
                    "ChecksumAlgorithm": "SHA256",
                    "ContentType": content_type,
                    "Metadata": {"sha256": digest.sha256},
                },
                Config=transfer.config(),
            )
            stored = head(client, bucket, key)
            if stored is None:
                failure = VerificationError("the object is missing right after its upload")
                continue
            try:
                how = verify(stored, digest, read_back)
            except VerificationError as exc:
                failure = exc
                continue
            return Uploaded(key, digest.size, digest.sha256, parts, True, how)
    raise VerificationError(
        f"s3://{bucket}/{key} failed verification after {transfer.attempts} uploads: {failure}"
    )


def get_bytes(client: S3Client, bucket: str, key: str) -> bytes:
    with s3_errors(f"read s3://{bucket}/{key}"):
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()


def get_json(client: S3Client, bucket: str, key: str) -> dict[str, Any] | None:
    """A JSON object from the bucket, or None when the key does not exist."""
    with s3_errors(f"read s3://{bucket}/{key}"):
        try:
            body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                return None
            raise
    return json.loads(body)


def list_keys(client: S3Client, bucket: str, prefix: str) -> list[str]:
    """Every key under ``prefix``, in key order."""
    keys: list[str] = []
    with s3_errors(f"list s3://{bucket}/{prefix}"):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(item["Key"] for item in page.get("Contents", []))
    return sorted(keys)
