"""Downloads against a real HTTP server on 127.0.0.1, and archive extraction that cannot escape."""

from __future__ import annotations

import gzip
import hashlib
import io
import socket
import stat
import tarfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hybridrec.data.download import (
    extract_zip_member,
    fetch,
    gunzip_to,
    safe_extract_tar,
    safe_extract_zip,
    verify_checksum,
)
from hybridrec.errors import ConfigError, DownloadError

PAYLOAD = bytes(range(256)) * 512  # 128 KiB: several read chunks
PAYLOAD_SHA = "sha256:" + hashlib.sha256(PAYLOAD).hexdigest()  # the config's checksum format
OTHER_SHA = "sha256:" + hashlib.sha256(b"something else").hexdigest()

Route = Callable[[BaseHTTPRequestHandler], None]


def send_payload(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(PAYLOAD)))
    handler.end_headers()
    handler.wfile.write(PAYLOAD)


def drop_midway(handler: BaseHTTPRequestHandler) -> None:
    """Promise the whole payload, send half of it, then close the connection."""
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(PAYLOAD)))
    handler.end_headers()
    handler.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
    handler.close_connection = True


def stall(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(PAYLOAD)))
    handler.end_headers()
    time.sleep(1.0)


ROUTES: dict[str, Route] = {"/good": send_payload, "/drop": drop_midway, "/stall": stall}


@dataclass
class Server:
    base: str
    hits: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base + path


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that gave up (timeout tests) is expected; keep the test output clean."""


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server(base="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            state.hits.append(self.path)
            route = ROUTES.get(self.path)
            if route is None:
                self.send_error(404)
            else:
                route(self)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = _QuietServer(("127.0.0.1", 0), Handler)
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# -- fetch ----------------------------------------------------------------------------------------


def test_fetch_good_file(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "raw" / "data.bin"
    assert fetch(server.url("/good"), dest, PAYLOAD_SHA) == dest
    assert dest.read_bytes() == PAYLOAD
    assert listing(dest.parent) == ["data.bin"]
    assert server.hits == ["/good"]


@pytest.mark.parametrize("checksum", [
    PAYLOAD_SHA.upper(), PAYLOAD_SHA.removeprefix("sha256:"),
    "md5:" + hashlib.md5(PAYLOAD).hexdigest(), None,
])
def test_fetch_checksum_forms(server: Server, tmp_path: Path, checksum: str | None) -> None:
    assert fetch(server.url("/good"), tmp_path / "a", checksum).read_bytes() == PAYLOAD


def test_fetch_rejects_malformed_checksum_before_any_request(server: Server,
                                                             tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'sha1:abc'"):
        fetch(server.url("/good"), tmp_path / "a", "sha1:abc")
    assert server.hits == []


def assert_failed_cleanly(info: pytest.ExceptionInfo[DownloadError], url: str, dest: Path,
                          checksum: str | None) -> None:
    message = str(info.value)
    assert url in message and str(dest) in message and "by hand" in message
    assert (checksum or "no checksum") in message
    assert listing(dest.parent) == [], "a partial or temporary file was left behind"


def test_fetch_wrong_checksum(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "data.bin"
    with pytest.raises(DownloadError, match=f"the download has {PAYLOAD_SHA}") as info:
        fetch(server.url("/good"), dest, OTHER_SHA)
    assert_failed_cleanly(info, server.url("/good"), dest, OTHER_SHA)


def test_fetch_404(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "data.bin"
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        fetch(server.url("/missing"), dest, PAYLOAD_SHA)
    assert_failed_cleanly(info, server.url("/missing"), dest, PAYLOAD_SHA)


def test_fetch_connection_dropped_midway(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "data.bin"
    with pytest.raises(DownloadError, match=f"{len(PAYLOAD) // 2} bytes missing") as info:
        fetch(server.url("/drop"), dest, None)
    assert_failed_cleanly(info, server.url("/drop"), dest, None)


def test_fetch_timeout(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "data.bin"
    with pytest.raises(DownloadError, match="timed out") as info:
        fetch(server.url("/stall"), dest, PAYLOAD_SHA, timeout=0.2)
    assert_failed_cleanly(info, server.url("/stall"), dest, PAYLOAD_SHA)


def test_fetch_offline(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port that nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/data.bin"
    dest = tmp_path / "data.bin"
    with pytest.raises(DownloadError, match="refused") as info:
        fetch(url, dest, PAYLOAD_SHA, timeout=5)
    assert_failed_cleanly(info, url, dest, PAYLOAD_SHA)


def test_existing_file_with_right_checksum_skips_the_network(server: Server,
                                                             tmp_path: Path) -> None:
    dest = tmp_path / "data.bin"
    dest.write_bytes(PAYLOAD)
    assert fetch(server.url("/good"), dest, PAYLOAD_SHA) == dest
    assert fetch(server.url("/good"), dest, None) == dest
    assert server.hits == []


def test_existing_file_with_wrong_checksum_is_kept_when_download_fails(server: Server,
                                                                       tmp_path: Path) -> None:
    dest = tmp_path / "data.bin"
    dest.write_bytes(b"something else")
    with pytest.raises(DownloadError) as info:
        fetch(server.url("/missing"), dest, PAYLOAD_SHA)
    assert f"has checksum {OTHER_SHA}, expected {PAYLOAD_SHA}" in str(info.value)
    assert dest.read_bytes() == b"something else"
    assert listing(tmp_path) == ["data.bin"]


def test_existing_file_with_wrong_checksum_is_replaced_by_a_verified_download(
        server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "data.bin"
    dest.write_bytes(b"something else")
    fetch(server.url("/good"), dest, PAYLOAD_SHA)
    assert dest.read_bytes() == PAYLOAD
    assert listing(tmp_path) == ["data.bin"]


def test_verify_checksum(tmp_path: Path) -> None:
    path = tmp_path / "ratings.dat"
    path.write_bytes(PAYLOAD)
    verify_checksum(path, PAYLOAD_SHA)
    verify_checksum(path, "md5:" + hashlib.md5(PAYLOAD).hexdigest())
    with pytest.raises(DownloadError, match="download it from http://example.org/r") as info:
        verify_checksum(path, OTHER_SHA, source="http://example.org/r")
    assert f"{path} has checksum {PAYLOAD_SHA}, expected {OTHER_SHA}" in str(info.value)
    with pytest.raises(DownloadError, match="does not exist"):
        verify_checksum(tmp_path / "absent", PAYLOAD_SHA)


# -- extraction -------------------------------------------------------------------------------


def make_zip(path: Path, members: dict[str, bytes], symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        if symlink is not None:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return path


def test_extract_zip_member_to_a_chosen_file(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "ml-1m.zip", {"ml-1m/ratings.dat": b"1::2::3::4\n"})
    out = extract_zip_member(archive, "ml-1m/ratings.dat", tmp_path / "ml" / "ratings.dat")
    assert out.read_bytes() == b"1::2::3::4\n"
    assert listing(out.parent) == ["ratings.dat"]


def test_safe_extract_ml1m_ratings(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "ml-1m.zip", {"ml-1m/ratings.dat": b"1::2::3::4\n",
                                                "ml-1m/README": b"readme"})
    out = safe_extract_zip(archive, "ml-1m/ratings.dat", tmp_path / "raw")
    assert out == (tmp_path / "raw" / "ml-1m" / "ratings.dat").resolve()
    assert out.read_bytes() == b"1::2::3::4\n"
    assert listing(out.parent) == ["ratings.dat"]


@pytest.mark.parametrize("member", ["../evil", "ml-1m/../../evil", "/tmp/hybridrec-evil"])
def test_zip_slip_is_refused(tmp_path: Path, member: str) -> None:
    archive = make_zip(tmp_path / "bad.zip", {member: b"pwned"})
    dest_dir = tmp_path / "inside" / "raw"
    with pytest.raises(DownloadError, match="escapes"):
        safe_extract_zip(archive, member, dest_dir)
    assert listing(tmp_path) == ["bad.zip"]
    assert not Path("/tmp/hybridrec-evil").exists()


def test_zip_symlinks_and_missing_members_are_refused(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "a.zip", {"ok": b"x"}, symlink="link")
    with pytest.raises(DownloadError, match="not a regular file"):
        safe_extract_zip(archive, "link", tmp_path / "out")
    with pytest.raises(DownloadError, match="has no member 'nope'"):
        safe_extract_zip(archive, "nope", tmp_path / "out")
    assert listing(tmp_path / "out") == []


def test_symlink_in_dest_dir_cannot_lead_outside(tmp_path: Path) -> None:
    outside, dest_dir = tmp_path / "outside", tmp_path / "raw"
    outside.mkdir()
    dest_dir.mkdir()
    (dest_dir / "link").symlink_to(outside)
    archive = make_zip(tmp_path / "a.zip", {"link/evil": b"pwned"})
    with pytest.raises(DownloadError, match="escapes"):
        safe_extract_zip(archive, "link/evil", dest_dir)
    assert listing(outside) == []


def test_corrupt_zip(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    archive.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DownloadError, match="not a valid zip"):
        safe_extract_zip(archive, "x", tmp_path / "out")


def make_tar(path: Path, members: dict[str, bytes], symlink: str | None = None) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        if symlink is not None:
            info = tarfile.TarInfo(symlink)
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            archive.addfile(info)
    return path


def test_tar_extract_and_refusals(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "a.tar.gz", {"d/data.txt": b"hello", "../evil": b"pwned"},
                       symlink="d/link")
    out = safe_extract_tar(archive, "d/data.txt", tmp_path / "out")
    assert out.read_bytes() == b"hello"
    with pytest.raises(DownloadError, match="escapes"):
        safe_extract_tar(archive, "../evil", tmp_path / "out")
    with pytest.raises(DownloadError, match="not a regular file"):
        safe_extract_tar(archive, "d/link", tmp_path / "out")
    assert listing(tmp_path) == ["a.tar.gz", "out"]
    assert listing(tmp_path / "out" / "d") == ["data.txt"]


def test_gunzip_to(tmp_path: Path) -> None:
    source = tmp_path / "reviews.json.gz"
    source.write_bytes(gzip.compress(PAYLOAD))
    assert gunzip_to(source, tmp_path / "out" / "reviews.json").read_bytes() == PAYLOAD
    source.write_bytes(gzip.compress(PAYLOAD)[:-100])
    with pytest.raises(DownloadError, match="not a valid gzip"):
        gunzip_to(source, tmp_path / "out" / "broken.json")
    assert listing(tmp_path / "out") == ["reviews.json"]
