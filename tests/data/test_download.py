"""Downloads against a loopback HTTP server: resume, checksums, truncation, mirrors."""

import hashlib
import io
import multiprocessing
import time
import zipfile

import pytest

from fromscratch import FromScratchError
from fromscratch.data.download import Source, fetch, resolve

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB: several read chunks


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def serve(server, name="file.bin", data=PAYLOAD, listed=True):
    (server.root / name).write_bytes(data)
    if listed:
        (server.root / "SHA256SUMS").write_text(f"{hashlib.sha256(data).hexdigest()}  {name}\n")
    return Source(url=f"https://example.org/data/{name}", checksum=sha256(data))


def test_mirror_replaces_the_host_and_the_file_lands_verified(http_server, tmp_path):
    source = serve(http_server)
    path = fetch(source, tmp_path / "cache", mirror=http_server.url, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert ("/file.bin", None) in http_server.requests
    assert not path.with_name("file.bin.part").exists()
    # A second fetch finds the verified copy in the cache and asks the server nothing.
    before = len(http_server.requests)
    fetch(source, tmp_path / "cache", mirror=http_server.url, progress=False)
    assert [r for r in http_server.requests[before:] if r[0] == "/file.bin"] == []


def test_partial_download_resumes_with_a_range_request(http_server, tmp_path):
    source = serve(http_server)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "file.bin.part").write_bytes(PAYLOAD[:300_000])
    path = fetch(source, cache, mirror=http_server.url, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert ("/file.bin", "bytes=300000-") in http_server.requests


def test_server_that_ignores_range_restarts_cleanly(http_server, tmp_path):
    source = serve(http_server)
    http_server.ignore_range = True
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "file.bin.part").write_bytes(b"garbage" * 1000)
    assert fetch(source, cache, mirror=http_server.url, progress=False).read_bytes() == PAYLOAD
    # the whole file came at the first request: taken from byte 0, not fetched twice
    assert [r for r in http_server.requests if r[0] == "/file.bin"] == [
        ("/file.bin", "bytes=7000-")
    ]


@pytest.mark.parametrize(
    "kept",
    [PAYLOAD + b"more", b"another version of the file" * 10_000],
    ids=["longer than the file", "wrong first bytes"],
)
def test_kept_bytes_that_spoil_the_resumed_download_are_fetched_again(http_server, tmp_path, kept):
    """A .part left by an attempt at another version of the file: resuming after it gives
    bytes that fail the checksum (or nothing, past the end), which is no fault of the
    source; the download runs once more from the start."""
    source = serve(http_server)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "file.bin.part").write_bytes(kept)
    assert fetch(source, cache, mirror=http_server.url, progress=False).read_bytes() == PAYLOAD
    assert http_server.requests[-1] == ("/file.bin", None)  # the second time, from byte 0


def test_truncated_transfer_fails_then_resumes(http_server, tmp_path):
    source = serve(http_server)
    cache = tmp_path / "cache"
    http_server.truncate_after = 400_000
    with pytest.raises(FromScratchError, match=r"truncated download of .*file\.bin: got 400000 of"):
        fetch(source, cache, mirror=http_server.url, progress=False)
    assert (cache / "file.bin.part").stat().st_size == 400_000
    assert not (cache / "file.bin").exists()
    # the resumed transfer drops too: its Content-Length counts only what was left, and
    # the total it is held to still counts the bytes kept
    http_server.truncate_after = 300_000
    with pytest.raises(
        FromScratchError, match=r"got 700000 of 1048576 bytes \(run again to resume"
    ):
        fetch(source, cache, mirror=http_server.url, progress=False)
    assert (cache / "file.bin.part").stat().st_size == 700_000
    http_server.truncate_after = None
    assert fetch(source, cache, mirror=http_server.url, progress=False).read_bytes() == PAYLOAD
    assert ("/file.bin", "bytes=400000-") in http_server.requests
    assert http_server.requests[-1] == ("/file.bin", "bytes=700000-")


@pytest.mark.parametrize("cut", [None, 300_000], ids=["whole", "dropped"])
def test_a_chunked_transfer_that_drops_is_kept_to_resume(http_server, tmp_path, cut):
    """Chunks announce no total: a dropped connection must not pass for the end."""
    source = serve(http_server)
    cache = tmp_path / "cache"
    http_server.chunked, http_server.truncate_after = True, cut
    if cut is None:
        assert fetch(source, cache, mirror=http_server.url, progress=False).read_bytes() == PAYLOAD
        return
    with pytest.raises(FromScratchError, match=r"file\.bin: the connection dropped after \d+ "):
        fetch(source, cache, mirror=http_server.url, progress=False)
    kept = (cache / "file.bin.part").read_bytes()  # the whole chunks that came
    assert len(kept) > 0 and PAYLOAD.startswith(kept)
    http_server.chunked, http_server.truncate_after = False, None
    assert fetch(source, cache, mirror=http_server.url, progress=False).read_bytes() == PAYLOAD
    assert http_server.requests[-1][1] == f"bytes={len(kept)}-"  # resumed, not from 0


@pytest.mark.parametrize("missing", [403, 404, 410])  # 403: S3's answer where listing is off
def test_a_mirror_that_fails_to_send_its_checksums_is_an_error(http_server, tmp_path, missing):
    """A 503 for SHA256SUMS is no sign the mirror has none: checking its repack against
    the original's checksum would throw a good download away."""
    repack = b"a repack with other bytes"
    source = Source(url=serve(http_server, data=repack).url, checksum=sha256(b"the original"))
    http_server.statuses["/SHA256SUMS"] = 503
    with pytest.raises(FromScratchError, match=r"SHA256SUMS: HTTP 503"):
        fetch(source, tmp_path / "cache", mirror=http_server.url, progress=False)
    assert ("/file.bin", None) not in http_server.requests
    http_server.statuses["/SHA256SUMS"] = missing  # none at all: the original's checksum holds
    with pytest.raises(FromScratchError, match="checksum mismatch"):
        fetch(source, tmp_path / "cache", mirror=http_server.url, progress=False)
    original = Source(url=source.url, checksum=sha256(repack))
    assert fetch(original, tmp_path / "b", mirror=http_server.url, progress=False).exists()


def test_a_checksum_list_cut_short_is_one_line_and_a_verified_copy_serves(http_server, tmp_path):
    source = serve(http_server)
    cache = tmp_path / "cache"
    http_server.truncate_after = 10  # the list's body cut off after its first bytes
    with pytest.raises(FromScratchError, match=r"SHA256SUMS: cannot read it \(IncompleteRead"):
        fetch(source, cache, mirror=http_server.url, progress=False)
    http_server.truncate_after = None
    fetch(source, cache, mirror=http_server.url, progress=False)
    http_server.truncate_after = 10
    assert fetch(source, cache, mirror=http_server.url, progress=False).read_bytes() == PAYLOAD


def test_a_cache_that_cannot_be_written_is_one_line(http_server, tmp_path):
    source = serve(http_server)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "file.bin.lock").mkdir()  # where the lock file goes: not a file to open
    with pytest.raises(FromScratchError, match=rf"^cache {cache}: cannot hold downloads \("):
        fetch(source, cache, mirror=http_server.url, progress=False)


def test_checksum_mismatch_names_file_expected_and_actual(http_server, tmp_path):
    source = serve(http_server)
    corrupted = bytearray(PAYLOAD)
    corrupted[1234] ^= 0xFF
    (http_server.root / "file.bin").write_bytes(bytes(corrupted))
    expected = hashlib.sha256(PAYLOAD).hexdigest()
    actual = hashlib.sha256(corrupted).hexdigest()
    with pytest.raises(FromScratchError) as e:
        fetch(source, tmp_path / "cache", mirror=http_server.url, progress=False)
    message = str(e.value)
    assert "file.bin" in message and expected in message and actual in message
    assert "\n" not in message
    # nothing kept, not even the .part: only the (empty) lock file, which always stays
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["file.bin.lock"]


def test_mirror_checksum_overrides_the_original_and_falls_back_to_it(http_server, tmp_path):
    repack = b"a repack with other bytes"
    source = serve(http_server, data=repack)
    source = Source(url=source.url, checksum=sha256(b"the original bytes"))
    # The mirror lists the repack's checksum: accepted.
    assert (
        fetch(source, tmp_path / "a", mirror=http_server.url, progress=False).read_bytes() == repack
    )
    # A mirror that does not list the file is held to the original's checksum.
    (http_server.root / "SHA256SUMS").write_text("")
    with pytest.raises(FromScratchError, match="checksum mismatch"):
        fetch(source, tmp_path / "b", mirror=http_server.url, progress=False)


@pytest.mark.parametrize("upper", [False, True], ids=["hex", "HEX"])  # HEX: PowerShell's
@pytest.mark.parametrize("listed", ["*file.bin", "./file.bin"])  # sha256sum -b, find | ...
def test_sha256sums_lines_in_the_forms_sha256sum_writes_are_read(
    http_server, tmp_path, listed, upper
):
    repack = b"a repack with other bytes"
    source = serve(http_server, data=repack)
    source = Source(url=source.url, checksum=sha256(b"the original bytes"))
    digest = hashlib.sha256(repack).hexdigest()
    digest = digest.upper() if upper else digest
    (http_server.root / "SHA256SUMS").write_text(f"{digest} {listed}\n")
    assert fetch(source, tmp_path, mirror=http_server.url, progress=False).read_bytes() == repack


def test_a_listed_path_keeps_its_spaces(http_server, tmp_path):
    repack = b"a repack with other bytes"
    source = serve(http_server, name="a file.bin", data=repack)
    source = Source(url=source.url, checksum=sha256(b"the original bytes"))
    digest = hashlib.sha256(repack).hexdigest()
    (http_server.root / "SHA256SUMS").write_text(
        f"# sha256sum output\n\n{'0' * 64}  file.bin\n{digest}  a file.bin\n"
    )
    assert fetch(source, tmp_path, mirror=http_server.url, progress=False).read_bytes() == repack


def test_a_sha256sums_that_is_not_utf8_is_named(http_server, tmp_path):
    source = serve(http_server)
    (http_server.root / "SHA256SUMS").write_bytes("abc  file.bin\n".encode("utf-16"))
    with pytest.raises(FromScratchError) as e:
        fetch(source, tmp_path, mirror=http_server.url, progress=False)
    assert str(e.value) == (
        f"{http_server.url}/SHA256SUMS: not UTF-8 text (lines of `HEX  PATH`, as sha256sum "
        "writes them)"
    )


def test_a_verified_repack_in_the_cache_serves_without_its_mirror(http_server, tmp_path):
    import socket

    with socket.socket() as s:  # a port that nothing listens on: no network here
        s.bind(("127.0.0.1", 0))
        offline = f"http://127.0.0.1:{s.getsockname()[1]}"
    repack = b"a repack with other bytes"
    listed = serve(http_server, data=repack)
    source = Source(url=f"{offline}/file.bin", checksum=sha256(b"the original bytes"))
    assert listed.in_mirror == source.in_mirror
    cache = tmp_path / "cache"
    fetch(source, cache, mirror=http_server.url, progress=False)
    # later, without the mirror (or with one that cannot be reached): the cached copy,
    # verified against the mirror's list when it came, is still the one
    for mirror in (None, offline):
        assert fetch(source, cache, mirror=mirror, progress=False).read_bytes() == repack
    # a copy damaged since is fetched again, and kept until a good one replaces it
    (cache / "file.bin").write_bytes(b"a repack with other bytez")
    with pytest.raises(FromScratchError, match="cannot reach"):
        fetch(source, cache, progress=False)
    assert (cache / "file.bin").exists()
    assert fetch(source, cache, mirror=http_server.url, progress=False).read_bytes() == repack


def test_a_cached_copy_gives_way_to_the_bytes_a_mirror_lists(tmp_path):
    """A copy verified against one mirror's list (a stand-in, a repack) serves where no list
    says otherwise; a mirror that lists other bytes for the file has those fetched, even
    when what it lists is the original's checksum."""
    original = b"the original bytes"
    source = Source(url="https://example.org/data/file.bin", checksum=sha256(original))
    mirrors = {}
    for name, data in (("small", b"a small stand-in"), ("full", original)):
        mirrors[name] = tmp_path / name
        mirrors[name].mkdir()
        (mirrors[name] / "file.bin").write_bytes(data)
        (mirrors[name] / "SHA256SUMS").write_text(f"{hashlib.sha256(data).hexdigest()}  file.bin\n")
    cache = tmp_path / "cache"
    stand_in = fetch(source, cache, mirror=str(mirrors["small"]), progress=False).read_bytes()
    assert stand_in == b"a small stand-in"
    (mirrors["full"] / "SHA256SUMS").write_text("")  # no list: the verified copy serves
    assert (
        fetch(source, cache, mirror=str(mirrors["full"]), progress=False).read_bytes() == stand_in
    )
    (mirrors["full"] / "SHA256SUMS").write_text(
        f"{hashlib.sha256(original).hexdigest()}  file.bin\n"
    )
    assert (
        fetch(source, cache, mirror=str(mirrors["full"]), progress=False).read_bytes() == original
    )


def test_unreachable_url_is_named(tmp_path):
    import socket

    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    source = Source(url=f"http://127.0.0.1:{port}/nothing.bin", checksum=sha256(b""))
    with pytest.raises(
        FromScratchError, match=rf"cannot reach http://127\.0\.0\.1:{port}/nothing\.bin"
    ):
        fetch(source, tmp_path, progress=False)


def test_a_damaged_cached_copy_is_named_when_no_fresh_one_comes(http_server, tmp_path):
    """Otherwise the one line names only a host that cannot be reached, and a user who has
    the file in the cache cannot tell why the command went online."""
    source = serve(http_server)
    cache = tmp_path / "cache"
    fetch(source, cache, mirror=http_server.url, progress=False)
    damaged = bytearray(PAYLOAD)
    damaged[1000] ^= 0xFF
    (cache / "file.bin").write_bytes(bytes(damaged))
    with pytest.raises(FromScratchError) as unreachable:  # the original host, offline
        fetch(source, cache, progress=False)
    said = str(unreachable.value)  # offline here: cannot reach (a 404 where online)
    assert said.startswith(
        f"cached {cache / 'file.bin'} fails its checksum (kept until a good copy replaces it); "
    )
    assert "https://example.org/data/file.bin" in said
    http_server.statuses["/SHA256SUMS"] = 503  # a mirror whose list does not come
    with pytest.raises(
        FromScratchError, match=r"^cached .*file\.bin fails its .*SHA256SUMS: HTTP 503"
    ):
        fetch(source, cache, mirror=http_server.url, progress=False)
    assert (cache / "file.bin").read_bytes() == bytes(damaged)  # nothing better came


def test_a_mirror_url_of_another_scheme_is_named(tmp_path):
    source = Source(url="https://example.org/x.bin", checksum=sha256(b""))
    with pytest.raises(FromScratchError) as caught:
        fetch(source, tmp_path, mirror="ftp://example.org/mirror", progress=False)
    assert str(caught.value) == (
        "ftp://example.org/mirror: cannot download over ftp; allowed: http://, "
        "https://, file:// URLs or a local folder"
    )


def test_missing_file_on_server_is_named(http_server, tmp_path):
    source = Source(url=f"{http_server.url}/absent.bin", checksum=sha256(b""))
    with pytest.raises(FromScratchError, match=r"absent\.bin: HTTP 404"):
        fetch(source, tmp_path, progress=False)


def test_a_mirror_folder_that_is_not_there_is_named(tmp_path):
    source = Source(url="https://example.org/x.txt", checksum=sha256(b"hello"))
    with pytest.raises(FromScratchError) as caught:
        fetch(source, tmp_path / "cache", mirror=str(tmp_path / "nowhere"), progress=False)
    assert str(caught.value).startswith(f"mirror {tmp_path / 'nowhere'}: no such folder")
    (tmp_path / "a-file").write_text("not a mirror")
    with pytest.raises(FromScratchError) as caught:
        fetch(source, tmp_path / "cache", mirror=str(tmp_path / "a-file"), progress=False)
    assert str(caught.value).startswith(f"mirror {tmp_path / 'a-file'}: a file, not a folder")


def test_a_verified_copy_serves_before_the_mirror_is_looked_at(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "x.txt").write_bytes(b"hello")
    source = Source(url="https://example.org/x.txt", checksum=sha256(b"hello"))
    cache = tmp_path / "cache"
    fetch(source, cache, mirror=str(mirror), progress=False)
    (cache / "x.txt.lock").unlink(missing_ok=True)
    (mirror / "x.txt").unlink()
    mirror.rmdir()  # unmounted since, or $FROMSCRATCH_MIRROR now stale
    assert fetch(source, cache, mirror=str(mirror), progress=False).read_bytes() == b"hello"
    assert not (cache / "x.txt.lock").exists()  # a read needs no lock


@pytest.mark.parametrize("style", ["folder", "file-url"])
def test_local_mirrors(tmp_path, style):
    mirror = tmp_path / "mirror"
    (mirror / "sub").mkdir(parents=True)
    (mirror / "sub" / "x.txt").write_bytes(b"hello")
    source = Source(
        url="https://example.org/x.txt", checksum=sha256(b"hello"), mirror_path="sub/x.txt"
    )
    location = str(mirror) if style == "folder" else mirror.as_uri()
    path = fetch(source, tmp_path / "cache", mirror=location, progress=False)
    assert path.read_bytes() == b"hello"
    assert resolve(source, location)[0].endswith("sub/x.txt")


def test_checksum_of_a_zip_member_is_checked_without_extracting(http_server, tmp_path):
    content = b"<mediawiki>" + b" ".join(str(i * i).encode() for i in range(20000))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("enwik8", content)
    (http_server.root / "enwik8.zip").write_bytes(buffer.getvalue())
    good = Source(
        url=f"{http_server.url}/enwik8.zip",
        checksum="md5:" + hashlib.md5(content).hexdigest(),
        checksum_of="enwik8",
    )
    assert fetch(good, tmp_path / "a", progress=False).name == "enwik8.zip"
    bad = Source(url=good.url, checksum="md5:" + "0" * 32, checksum_of="enwik8")
    with pytest.raises(FromScratchError, match=r"enwik8\.zip:enwik8: expected md5 0{32}"):
        fetch(bad, tmp_path / "b", progress=False)

    # compressed data that does not inflate: an error in one line, and no damaged part
    # kept for the next run to resume after
    damaged = bytearray(buffer.getvalue())
    damaged[500] ^= 0xFF
    (http_server.root / "enwik8.zip").write_bytes(bytes(damaged))
    with pytest.raises(
        FromScratchError, match=r"^corrupt, truncated or unreadable archive .*enwik8\.zip"
    ):
        fetch(good, tmp_path / "c", progress=False)
    assert [p.name for p in (tmp_path / "c").iterdir()] == ["enwik8.zip.lock"]
    # a member marked encrypted (the flag in the archive's directory): one line too
    encrypted = bytearray(buffer.getvalue())
    encrypted[encrypted.rindex(b"PK\x01\x02") + 8] |= 0x01
    (http_server.root / "enwik8.zip").write_bytes(bytes(encrypted))
    with pytest.raises(
        FromScratchError, match=r"^corrupt, truncated or unreadable archive .*encrypted"
    ):
        fetch(good, tmp_path / "c", progress=False)
    (http_server.root / "enwik8.zip").write_bytes(buffer.getvalue())  # the host fixed
    assert fetch(good, tmp_path / "c", progress=False).name == "enwik8.zip"


class Trickle:
    """A response stream that sends 64 KiB every 50 ms: a slow server (1 MiB in 0.8 s)."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, data):
        for i in range(0, len(data), 64 << 10):
            self.stream.write(data[i : i + (64 << 10)])
            time.sleep(0.05)
        return len(data)

    def __getattr__(self, name):  # flush, close: the stream's own
        return getattr(self.stream, name)


def fetch_at_the_same_time(source, cache, start, results):
    """In a process of its own: wait for the other one, then fetch."""
    start.wait()
    try:
        results.put(f"fetched {fetch(source, cache, progress=False).name}")
    except Exception as e:  # the raw FileNotFoundError of two processes on one .part
        results.put(f"{type(e).__name__}: {e}")


def test_two_processes_fetching_one_file_take_turns(http_server, tmp_path, capfd):
    """Two prepare jobs of one data set (IMDb tokenised two ways, run in parallel by
    Snakemake) fetch its archive into one cache at once: the second waits for the first,
    then finds the verified file, rather than writing the same .part (which the first
    renames away from under it)."""
    (http_server.root / "file.bin").write_bytes(PAYLOAD)
    source = Source(url=f"{http_server.url}/file.bin", checksum=sha256(PAYLOAD))
    fast = http_server.httpd.RequestHandlerClass

    class Slow(fast):
        def setup(self):
            super().setup()
            self.wfile = Trickle(self.wfile)

    http_server.httpd.RequestHandlerClass = Slow  # both start while the first downloads
    context = multiprocessing.get_context("spawn")  # no fork of a process with threads
    start, results = context.Barrier(2), context.Queue()
    args = (source, tmp_path / "cache", start, results)
    workers = [context.Process(target=fetch_at_the_same_time, args=args) for _ in range(2)]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    assert outcomes == ["fetched file.bin"] * 2
    assert http_server.requests == [("/file.bin", None)]  # downloaded once
    assert sha256((tmp_path / "cache" / "file.bin").read_bytes()) == source.checksum
    assert not (tmp_path / "cache" / "file.bin.part").exists()
    assert capfd.readouterr().err.count("waiting for another process's download") == 1


def test_a_file_the_mirror_lacks_is_named_with_where_else_it_comes_from(http_server, tmp_path):
    """The course's mirror holds no enwik8: say that it is the mirror that lacks it."""
    source = Source(url="https://example.org/data/enwik8.zip", checksum=sha256(b"x"))
    said = (
        "has no enwik8.zip; without a mirror (no --mirror, $FROMSCRATCH_MIRROR unset) it "
        "comes from https://example.org/data/enwik8.zip"
    )
    for mirror in (str(tmp_path), http_server.url):  # a folder, a server's 404
        with pytest.raises(FromScratchError) as refused:
            fetch(source, tmp_path / "cache", mirror=mirror, progress=False)
        assert str(refused.value) == f"mirror {mirror} {said}"
