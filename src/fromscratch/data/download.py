"""Downloads that resume, verify and never leave a half-written file behind.

A `Source` names one remote file: its original URL, its checksum, and its path inside a
mirror. A mirror is a flat copy of the project's sources (a local folder, a `file://` URL
or an `http(s)://` URL), laid out like `../shared/data/`: the files, plus a `SHA256SUMS`
file. A mirror carries its own checksums, because a mirror may hold a repack of the
original archive (its bytes, and so its hash, differ); where the mirror lists no checksum
for a file, the original's checksum is used.

Flow: `fetch(source, cache_dir)` → already in the cache and verified? done. Otherwise stream
into `NAME.part` (resuming a partial one with an HTTP Range request), verify the checksum,
and only then rename `NAME.part` → `NAME`. Two processes that fetch one file at once (two
prepare jobs of one data set) take turns, by a lock on `NAME.lock`: the second waits, then
finds the verified file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import http.client
import os
import posixpath
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from tqdm.auto import tqdm

from fromscratch import FromScratchError
from fromscratch.io import read_json, write_json

MIRROR_ENV = "FROMSCRATCH_MIRROR"
CACHE_ENV = "FROMSCRATCH_CACHE"
CHUNK = 1 << 20
TIMEOUT_S = 60


@dataclass(frozen=True)
class Source:
    url: str  # the original location
    checksum: str  # "sha256:HEX" or "md5:HEX" of the original file
    mirror_path: str = ""  # path inside a mirror; defaults to the URL's file name
    # Set when the original's checksum is that of one member of a zip archive (enwik8's
    # published md5 is of the unzipped file); the member is hashed as it streams out of
    # the archive, so nothing is extracted before it is verified.
    checksum_of: str = ""

    @property
    def filename(self) -> str:
        return Path(self.mirror_path or urllib.parse.urlparse(self.url).path).name

    @property
    def in_mirror(self) -> str:
        return self.mirror_path or self.filename


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "fromscratch")


def default_mirror() -> str | None:
    return os.environ.get(MIRROR_ENV) or None


# ---------------------------------------------------------------------------- checksums


def file_digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def verify(path: Path, checksum: str, label: str | None = None, member: str = "") -> None:
    """Raise a one-line error naming the file, the expected and the actual hash.

    With `member`, the checksum is that of the named member of the zip archive at `path`.
    """
    algorithm, _, expected = checksum.partition(":")
    if algorithm not in ("sha256", "md5") or not expected:
        raise FromScratchError(f"bad checksum {checksum!r}: use 'sha256:HEX' or 'md5:HEX'")
    label = label or path.name
    if member:
        try:
            with zipfile.ZipFile(path) as archive, archive.open(member) as f:
                actual = hashlib.file_digest(f, algorithm).hexdigest()
        except (
            zipfile.BadZipFile, KeyError, EOFError,
            zlib.error,  # damaged data
            RuntimeError, NotImplementedError,  # an encrypted member, an unknown compression
        ) as e:  # fmt: skip
            raise FromScratchError(f"corrupt, truncated or unreadable archive {label}: {e}") from e
        label = f"{label}:{member}"
    else:
        actual = file_digest(path, algorithm)
    if actual != expected.lower():
        raise FromScratchError(
            f"checksum mismatch for {label or path.name}: expected {algorithm} {expected}, "
            f"got {actual}"
        )


# ---------------------------------------------------------------------------- locations


URL_SCHEMES = ("http", "https", "file")


def _is_url(location: str) -> bool:
    """Whether `location` is a URL (of a scheme this module reads) rather than a path."""
    scheme = urllib.parse.urlparse(location).scheme
    if "://" in location and scheme not in URL_SCHEMES:  # "ftp://h/x" is no path either
        raise FromScratchError(
            f"{location}: cannot download over {scheme or 'this URL'}; allowed: "
            f"{', '.join(f'{s}://' for s in URL_SCHEMES)} URLs or a local folder"
        )
    return scheme in URL_SCHEMES


def _join(base: str, relative: str) -> str:
    if _is_url(base):
        return base.rstrip("/") + "/" + urllib.parse.quote(relative)
    return str(Path(base) / relative)


def _open(location: str, start: int = 0):
    """Open `location` from byte `start`: (stream, total size or None, whether resumed)."""
    if not _is_url(location) or location.startswith("file:"):
        path = Path(
            urllib.request.url2pathname(urllib.parse.urlparse(location).path)
            if location.startswith("file:")
            else location
        )
        if not path.is_file():
            missing = FileNotFoundError(errno.ENOENT, "no such file", str(path))
            raise FromScratchError(f"cannot read {location}: no such file") from missing
        f = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
        f.seek(start)
        return f, path.stat().st_size, start > 0
    request = urllib.request.Request(location, headers={"User-Agent": "fromscratch"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        if e.code == 416:  # the partial file is already complete (or longer than the file)
            return None, start, True
        raise FromScratchError(f"cannot download {location}: HTTP {e.code} {e.reason}") from e
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise FromScratchError(f"cannot reach {location}: {reason}") from e
    resumed = response.status == 206
    length = response.headers.get("Content-Length")
    total = int(length) + (start if resumed else 0) if length is not None else None
    return response, total, resumed


# HTTP statuses of a file that is not on the server (403: what S3 and others answer
# for a missing file where listing is not allowed)
NOT_THERE = (403, 404, 410)


def _not_there(error: FromScratchError) -> bool:
    """Whether `error`, of opening a file to download, says it is not there at all (no such
    local file, or one of NOT_THERE), rather than that it could not be read."""
    cause = error.__cause__
    return isinstance(cause, FileNotFoundError) or getattr(cause, "code", None) in NOT_THERE


# A line of sha256sum's: the digest, a space, then " " (text mode), "*" (binary mode) or
# neither, and the path to the end of the line, spaces and all ("./PATH" from `find`).
# Other lines (blank, a comment, an escaped path after a backslash) name nothing we fetch.
CHECKSUM_LINE = re.compile(r"([0-9A-Fa-f]{64}) [ *]?(.+)")


def mirror_checksums(mirror: str) -> dict[str, str]:
    """The mirror's SHA256SUMS as {relative path: "sha256:HEX"}; empty if it has none.

    Only a list that is not there means none: a server that fails to send it (a 503, a
    timeout) is an error, not a reason to check a repacked file against the original's."""
    try:
        stream, _, _ = _open(_join(mirror, "SHA256SUMS"))
    except FromScratchError as error:
        if _not_there(error):
            return {}
        raise
    try:
        with stream:
            raw = stream.read()
    except (http.client.HTTPException, OSError) as error:  # cut off, timed out
        raise FromScratchError(
            f"{_join(mirror, 'SHA256SUMS')}: cannot read it ({error})"
        ) from error
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:  # e.g. UTF-16, as some shells write redirected output
        raise FromScratchError(
            f"{_join(mirror, 'SHA256SUMS')}: not UTF-8 text (lines of `HEX  PATH`, as "
            "sha256sum writes them)"
        ) from None
    sums = {}
    for line in text.splitlines():
        if match := CHECKSUM_LINE.fullmatch(line):
            digest, path = match.groups()
            sums[posixpath.normpath(path)] = f"sha256:{digest}"
    return sums


class Resolved(NamedTuple):
    """Where to fetch a source from, the checksum it must have there, what that checksum is
    of (a zip member's name, or "" for the file itself), and whether a mirror's list names
    it (or else it is the original's)."""

    location: str
    checksum: str
    member: str
    listed: bool


def resolve(source: Source, mirror: str | None) -> Resolved:
    """Where and as what `mirror` (None: the original host) serves `source`."""
    if not mirror:
        return Resolved(source.url, source.checksum, source.checksum_of, listed=False)
    checksum = mirror_checksums(mirror).get(source.in_mirror)
    location = _join(mirror, source.in_mirror)
    if checksum:
        return Resolved(location, checksum, "", listed=True)
    return Resolved(location, source.checksum, source.checksum_of, listed=False)


# ---------------------------------------------------------------------------- fetching


def _stream_into(location: str, part: Path, progress: bool) -> None:
    start = part.stat().st_size if part.exists() else 0
    stream, total, resumed = _open(location, start)
    if stream is None:
        return
    if start and not resumed:  # the server ignored our Range header: start again
        start = 0
    with (
        stream,
        open(part, "ab" if start else "wb") as out,
        tqdm(
            total=total,
            initial=start,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=Path(location).name,
            disable=not progress,
            leave=False,
        ) as bar,
    ):
        dropped = None
        while True:
            try:
                chunk = stream.read(CHUNK)
            except (http.client.HTTPException, OSError) as error:
                dropped = error  # what arrived is kept for the next resume
                out.write(getattr(error, "partial", b""))  # IncompleteRead's: this read's
                break
            if not chunk:
                break
            out.write(chunk)
            bar.update(len(chunk))
    size = part.stat().st_size
    if dropped is not None:
        raise FromScratchError(
            f"truncated download of {location}: the connection dropped after {size} bytes "
            f"({type(dropped).__name__}; run again to resume)"
        )
    if total is not None and size < total:
        raise FromScratchError(
            f"truncated download of {location}: got {size} of {total} bytes (run again to resume)"
        )


def fetch(
    source: Source,
    cache_dir: str | os.PathLike | None = None,
    mirror: str | None = None,
    progress: bool = True,
) -> Path:
    """Return the path of `source` in the cache, downloading and verifying it if needed."""
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    target = cache / source.in_mirror
    try:
        location, checksum, member, listed = resolve(source, mirror)
    except FromScratchError as error:  # the mirror's list unreadable: a copy verified before serves
        if _in_cache(source, target, source.checksum, source.checksum_of, listed=False):
            return target
        raise _naming_a_bad_copy(target, error) from None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise FromScratchError(f"cache {cache}: cannot hold downloads ({error.strerror})") from None
    if _in_cache(source, target, checksum, member, listed):
        return target
    if mirror and not _is_url(mirror) and not Path(mirror).is_dir():
        what = "a file, not a folder" if Path(mirror).exists() else "no such folder"
        raise FromScratchError(
            f"mirror {mirror}: {what} (--mirror, config's mirror or "
            "$FROMSCRATCH_MIRROR; none: the original hosts)"
        )
    # One process at a time writes NAME.part: two would cut the file from under each other
    # (one renames it away while the other still writes or checks it).
    with _exclusive(target.with_name(target.name + ".lock"), source.in_mirror):
        if not _in_cache(source, target, checksum, member, listed):  # fetched meanwhile?
            try:
                _download(location, target, checksum, member, source.checksum, progress)
            except FromScratchError as error:
                if mirror and _not_there(error):
                    error = FromScratchError(
                        f"mirror {mirror} has no {source.in_mirror}; without a mirror (no "
                        f"--mirror, $FROMSCRATCH_MIRROR unset) it comes from {source.url}"
                    )
                raise _naming_a_bad_copy(target, error) from None
    return target


def _naming_a_bad_copy(target: Path, error: FromScratchError) -> FromScratchError:
    """`error`, saying first why there was a download at all where the cache holds a copy:
    that copy failed its check (damaged, cut short, or of another version)."""
    if not target.exists():
        return error
    return FromScratchError(
        f"cached {target} fails its checksum (kept until a good copy replaces it); {error}"
    )


def _in_cache(source: Source, target: Path, checksum: str, member: str, listed: bool) -> bool:
    """Whether the cache holds a good copy of `source` at `target`, by `checksum`: the one
    a mirror lists now (`listed`), or else the original's."""
    if not target.exists():
        return False
    if _verifies(target, checksum, member):
        return True
    if listed:  # a mirror lists other bytes than the cached ones: those are asked for
        return False
    # A copy that fails the original's check may have been verified against a mirror's list
    # when it was fetched (that mirror's repack, unchanged since): still good. Otherwise
    # stale or corrupted: the download replaces it once verified, not before.
    return fetched_for(target) == (source.checksum, file_digest(target, "sha256"))


@contextlib.contextmanager
def _exclusive(lock: Path, name: str) -> Iterator[None]:
    """Hold an exclusive lock on the file `lock`, waiting for another process that holds it.

    The lock file stays: were it deleted, a third process could lock a new file of that
    name while the second still holds the old one. The system drops the lock when its
    holder exits, even when killed, so a crashed download never blocks the next one.
    """
    try:
        f = open(lock, "a")  # noqa: SIM115 - closed below
    except OSError as error:
        raise FromScratchError(
            f"cache {lock.parent}: cannot hold downloads ({error.strerror})"
        ) from None
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"{name}: waiting for another process's download of it", file=sys.stderr)
            fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _download(
    location: str, target: Path, checksum: str, member: str, original: str, progress: bool
) -> None:
    """Download `location` to `target` through `target`.part, resuming an earlier part,
    and verify it; `original`: the checksum of the original file, for the record."""
    part = target.with_name(target.name + ".part")
    if not _is_url(location) or location.startswith("file:"):
        part.unlink(missing_ok=True)  # a local copy is never partial: just copy it again
    kept = part.exists()  # bytes of an earlier attempt, which this one resumes after
    _stream_into(location, part, progress)
    if kept and not _verifies(part, checksum, member):
        # the kept bytes may be what is wrong (a cut-off copy of another version of the
        # file): the download once more, from its first byte, before blaming the source
        part.unlink()
        _stream_into(location, part, progress)
    try:
        verify(part, checksum, label=location, member=member)
    except FromScratchError:
        part.unlink()  # corrupted bytes are not worth resuming
        raise
    record = {
        "source_checksum": original,
        "sha256": file_digest(part, "sha256"),
        "location": location,
    }
    write_json(_record_of(target), record)
    os.replace(part, target)


def _verifies(path: Path, checksum: str, member: str) -> bool:
    try:
        verify(path, checksum, member=member)
    except FromScratchError:
        return False
    return True


def _record_of(target: Path) -> Path:
    return target.with_name(target.name + ".verified.json")


def provenance(source: Source, cache_dir: str | os.PathLike | None = None) -> dict:
    """What a prepared folder was made of: where the cached copy of `source` was fetched
    from (None where no download recorded it) and its checksum, read from the cache (the
    mirror, down now or listing another version since, is not asked again)."""
    target = (Path(cache_dir) if cache_dir else default_cache_dir()) / source.in_mirror
    try:
        location = read_json(_record_of(target)).get("location")
    except (OSError, ValueError, AttributeError):
        location = None
    return {"location": location, "checksum": f"sha256:{file_digest(target, 'sha256')}"}


def fetched_for(target: Path) -> tuple[str, str] | None:
    """(the original checksum of the source it was fetched for, its sha256 then) of a
    cached file, from the record written when it was verified; None without one."""
    try:
        record = read_json(_record_of(target))
        return record["source_checksum"], record["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
