"""Checksummed downloads and safe archive extraction.

A download streams into a temporary file beside its destination and is renamed into place only
after its checksum matches, so an interrupted or corrupt transfer never leaves a file that looks
complete. Every failure raises one :class:`~hybridrec.errors.DownloadError` that says where to
place the file by hand on a machine without network access.

Checksums are written ``"algorithm:hex"`` as in the config (``sha256:`` or ``md5:``, since some
upstreams such as GroupLens publish only MD5); bare hex means SHA-256.
"""

from __future__ import annotations

import gzip
import http.client
import logging
import os
import re
import shutil
import stat
import tarfile
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path
from typing import Protocol

from hybridrec.errors import ConfigError, DownloadError
from hybridrec.io import atomic_path, file_checksum

PathLike = str | os.PathLike[str]

log = logging.getLogger(__name__)

_ALGORITHMS = ("sha256", "md5")
_CHUNK = 1 << 16
_LOG_EVERY = 16 << 20  # bytes between progress messages


class _ChecksumMismatch(Exception):
    """The transfer completed but the file is not the expected one."""


class _Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


def fetch(url: str, dest: PathLike, checksum: str | None, timeout: float = 60) -> Path:
    """Download ``url`` to ``dest`` unless a file with the expected checksum is already there.

    ``timeout`` bounds each network operation (connect, each read), not the whole transfer.
    With ``checksum=None`` an existing file is trusted and a download is not verified.
    """
    dest = Path(dest)
    expected = _normalise(checksum) if checksum else None
    algorithm = expected.split(":")[0] if expected else "sha256"
    existing = file_checksum(dest, algorithm) if dest.is_file() else None
    if existing is not None and (expected is None or existing == expected):
        log.info("%s is already present (%s); not downloading", dest, existing)
        return dest
    if existing is not None:
        log.warning("%s has checksum %s, expected %s; downloading it again", dest, existing,
                    expected)
    try:
        with atomic_path(dest) as tmp:
            _stream(url, tmp, timeout)
            actual = file_checksum(tmp, algorithm)
            if expected is not None and actual != expected:
                raise _ChecksumMismatch(f"checksum mismatch: the download has {actual}")
    except (OSError, ValueError, http.client.HTTPException, _ChecksumMismatch) as exc:
        raise DownloadError(_failure_message(url, dest, expected, existing, exc)) from exc
    log.info("downloaded %s to %s (%s)", url, dest, actual)
    return dest


def verify_checksum(path: PathLike, checksum: str, source: str | None = None) -> None:
    """Raise :class:`DownloadError` unless ``path`` exists and has ``checksum``.

    For files placed by hand, which :func:`fetch` never sees; ``source`` is where to get it.
    """
    path = Path(path)
    expected = _normalise(checksum)
    get = f"download it from {source}" if source else "obtain the right file"
    if not path.is_file():
        raise DownloadError(f"{path} does not exist: {get} and place it there ({expected}).")
    actual = file_checksum(path, expected.split(":")[0])
    if actual != expected:
        raise DownloadError(f"{path} has checksum {actual}, expected {expected}: it is corrupt or "
                            f"another version; {get} and place it there, or fix the checksum.")


def extract_zip_member(archive: PathLike, member: str, dest: PathLike) -> Path:
    """Write the regular-file ``member`` of a zip archive to ``dest`` (atomically)."""
    try:
        with zipfile.ZipFile(archive) as zipped:
            info = zipped.getinfo(member)
            if info.is_dir() or stat.S_ISLNK(info.external_attr >> 16):
                raise DownloadError(f"{archive}: member {member!r} is not a regular file")
            with zipped.open(info) as source:
                return _copy_to(source, Path(dest))
    except KeyError:
        raise DownloadError(f"{archive} has no member {member!r}") from None
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise DownloadError(f"{archive} is not a valid zip archive: {exc}") from exc


def safe_extract_zip(archive: PathLike, member: str, dest_dir: PathLike) -> Path:
    """Extract ``member`` to ``dest_dir / member``, refusing paths that escape ``dest_dir``."""
    return extract_zip_member(archive, member, _inside(dest_dir, member, archive))


def safe_extract_tar(archive: PathLike, member: str, dest_dir: PathLike) -> Path:
    """Like :func:`safe_extract_zip`, for a (possibly compressed) tar archive."""
    target = _inside(dest_dir, member, archive)
    try:
        with tarfile.open(archive) as tarred:
            info = tarred.getmember(member)
            source = tarred.extractfile(info) if info.isfile() else None
            if source is None:
                raise DownloadError(f"{archive}: member {member!r} is not a regular file")
            with source:
                return _copy_to(source, target)
    except KeyError:
        raise DownloadError(f"{archive} has no member {member!r}") from None
    except (tarfile.TarError, zlib.error, EOFError) as exc:
        raise DownloadError(f"{archive} is not a valid tar archive: {exc}") from exc


def gunzip_to(src: PathLike, dest: PathLike) -> Path:
    """Decompress the gzip file ``src`` into ``dest`` (atomically)."""
    try:
        with gzip.open(src, "rb") as source:
            return _copy_to(source, Path(dest))
    except (gzip.BadGzipFile, zlib.error, EOFError) as exc:
        raise DownloadError(f"{src} is not a valid gzip file: {exc}") from exc


def _normalise(checksum: str) -> str:
    algorithm, _, digest = checksum.strip().lower().rpartition(":")
    algorithm = algorithm or "sha256"
    if algorithm not in _ALGORITHMS or not re.fullmatch(r"[0-9a-f]+", digest):
        raise ConfigError(f"checksum {checksum!r}: expected 'sha256:<hex>' or 'md5:<hex>'")
    return f"{algorithm}:{digest}"


def _stream(url: str, dest: Path, timeout: float) -> None:
    """Copy the response body to ``dest``; a body shorter than its Content-Length is an error.

    ``http.client`` returns a short body without complaint when the peer closes early, hence the
    explicit length check.
    """
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()  # an HTTPError is also the open response; the caller reports it
        raise
    with response, open(dest, "wb") as out:
        length = response.headers.get("Content-Length")
        total = int(length) if length is not None else None
        log.info("downloading %s (%s bytes)", url, total if total is not None else "unknown")
        received, next_report = 0, _LOG_EVERY
        while chunk := response.read(_CHUNK):
            out.write(chunk)
            received += len(chunk)
            if received >= next_report:
                log.info("%s: %d / %s bytes", url, received, total or "?")
                next_report += _LOG_EVERY
    if total is not None and received != total:
        raise http.client.IncompleteRead(b"", total - received)


def _failure_message(url: str, dest: Path, expected: str | None, existing: str | None,
                     exc: BaseException) -> str:
    message = (f"could not download {url} ({_reason(exc)}). Download it by hand and place it at "
               f"{dest} ({expected or 'no checksum configured'}).")
    if existing is not None:
        message += (f" The existing file {dest} has checksum {existing}, expected {expected}; "
                    "it was left in place.")
    return message


def _reason(exc: BaseException) -> str:
    if isinstance(exc, http.client.IncompleteRead):
        return f"connection closed with {exc.expected} bytes missing"
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__


def _inside(dest_dir: PathLike, member: str, archive: PathLike) -> Path:
    """``dest_dir / member``, refusing members that resolve outside ``dest_dir`` (zip slip)."""
    root = Path(dest_dir).resolve()
    target = (root / member).resolve()
    if target == root or not target.is_relative_to(root):
        raise DownloadError(f"{archive}: refusing member {member!r}, which escapes {root}")
    return target


def _copy_to(source: _Readable, dest: Path) -> Path:
    with atomic_path(dest) as tmp, open(tmp, "wb") as out:
        shutil.copyfileobj(source, out, _CHUNK)
    return dest
