"""Where export files go: a local folder or an S3-compatible bucket, written one way.

Both are pyarrow filesystems (`LocalFileSystem`, `S3FileSystem` with the endpoint of any
S3-compatible store), so every writer streams into the same kind of output stream, gzip is
pyarrow's streaming compressor on top of it, and a download reads either the same way. A local
file is written under a `.partial` name and renamed when complete, so a tool watching the folder
never picks up half a file; an S3 object appears only when its multipart upload completes.

Locations are URIs, stored on the export: `file:///abs/path` or `s3://bucket/key`.
"""

from __future__ import annotations

import posixpath
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pyarrow import NativeFile
from pyarrow import fs as pafs

from services.kernel.settings import Settings

PARTIAL_SUFFIX = ".partial"

# S3's bucket naming rules, less the rarely used dotted names.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


class BadDestination(ValueError):
    """A destination URI that is not a folder or bucket this server may write to."""


def exports_folder(settings: Settings) -> Path:
    """The local folder of on-demand exports (also the default root for scheduled folders)."""
    return (settings.data_dir / "exports").resolve()


def exports_base(settings: Settings) -> str:
    """Where on-demand exports go: the configured URL, else the data folder's `exports/`."""
    if settings.exports_url:
        return check_uri(settings.exports_url, folders_root(settings), any_folder=True)
    return exports_folder(settings).as_uri()


def folders_root(settings: Settings) -> Path:
    """Scheduled exports' folders must be under this: the configured root, else the folder
    on-demand exports go to."""
    if settings.export_folders_root is not None:
        return settings.export_folders_root.resolve()
    if settings.exports_url and urlsplit(settings.exports_url).scheme == "file":
        return Path(unquote(urlsplit(settings.exports_url).path)).resolve()
    return exports_folder(settings)


def s3_roots(settings: Settings, brand_id: uuid.UUID) -> list[str]:
    """Where in S3 a brand's scheduled exports may write, normalised: the configured locations
    with `{brand_id}` filled in, else the exports location when it is in S3."""
    if settings.export_s3_destinations:
        configured = [
            location.replace("{brand_id}", str(brand_id))
            for location in settings.export_s3_destinations
        ]
    elif settings.exports_url and urlsplit(settings.exports_url).scheme == "s3":
        configured = [settings.exports_url]
    else:
        configured = []
    return [check_uri(location, Path("/"), any_folder=True) for location in configured]


def check_uri(
    uri: str, root: Path, *, any_folder: bool = False, buckets: Sequence[str] | None = None
) -> str:
    """The destination, normalised: `file:///abs/folder` under `root` (or anywhere, for the
    server's own configured folder), or `s3://bucket[/prefix]` at or under one of `buckets`
    (normalised locations; None: anywhere). Raises `BadDestination`."""
    parts = urlsplit(uri)
    if parts.query or parts.fragment:
        raise BadDestination("A destination has no query or fragment.")
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise BadDestination("A folder destination is file:///absolute/path on this server.")
        raw = unquote(parts.path)
        if not raw.startswith("/"):
            raise BadDestination("A folder destination is an absolute path.")
        # `resolve` removes `..` and follows symbolic links, so neither can lead out of root.
        folder = Path(raw).resolve()
        if not any_folder and folder != root and root not in folder.parents:
            raise BadDestination(f"Folders must be under {root} on this server.")
        return folder.as_uri()
    if parts.scheme == "s3":
        if not _BUCKET.match(parts.netloc):
            raise BadDestination("Not a valid S3 bucket name.")
        # Normalised as an absolute path, `..` cannot climb above the bucket.
        prefix = posixpath.normpath("/" + unquote(parts.path)).strip("/")
        location = f"s3://{parts.netloc}/{prefix}" if prefix else f"s3://{parts.netloc}"
        if buckets is not None and not any(
            location == allowed or location.startswith(allowed + "/") for allowed in buckets
        ):
            if not buckets:
                raise BadDestination(
                    "This server writes scheduled exports to no S3 bucket "
                    "(KINFOLK_EXPORT_S3_DESTINATIONS): use a folder."
                )
            raise BadDestination(f"S3 destinations must be at or under {', '.join(buckets)}.")
        return location
    raise BadDestination("A destination is file:///absolute/folder or s3://bucket/prefix.")


def join(base: str, *names: str) -> str:
    return "/".join([base.rstrip("/"), *names])


@dataclass(frozen=True, slots=True)
class Opened:
    filesystem: pafs.FileSystem
    path: str  # in the filesystem's own terms: /abs/path, or bucket/key
    local: bool


def resolve(uri: str, settings: Settings) -> Opened:
    parts = urlsplit(uri)
    if parts.scheme == "file":
        return Opened(pafs.LocalFileSystem(), unquote(parts.path), local=True)
    if parts.scheme == "s3":
        return Opened(_s3(settings), f"{parts.netloc}{unquote(parts.path)}", local=False)
    raise BadDestination(f"Unsupported location {uri!r}.")


def _s3(settings: Settings) -> pafs.S3FileSystem:
    # Credentials and region: the standard AWS_* variables (or an instance role), as every
    # S3 client reads them; only the endpoint of a non-AWS store needs saying. On Linux the
    # request timeout is how long a request may go without a byte moving (whole seconds), so a
    # long upload is never cut while it progresses.
    timeouts = {
        "connect_timeout": settings.s3_timeout_seconds,
        "request_timeout": settings.s3_timeout_seconds,
    }
    if settings.s3_endpoint_url:
        endpoint = urlsplit(settings.s3_endpoint_url)
        return pafs.S3FileSystem(
            endpoint_override=endpoint.netloc or endpoint.path,
            scheme=endpoint.scheme or "https",
            allow_bucket_creation=False,
            **timeouts,
        )
    return pafs.S3FileSystem(allow_bucket_creation=False, **timeouts)


class FileWriter:
    """An output stream to `uri`, gzip-compressed on the fly when asked; `commit()` makes the
    file appear at its name, `abort()` removes what was written."""

    def __init__(self, uri: str, settings: Settings, *, gzip: bool) -> None:
        self.uri = uri
        self._target = resolve(uri, settings)
        self._path = self._target.path + (PARTIAL_SUFFIX if self._target.local else "")
        if self._target.local:
            self._target.filesystem.create_dir(posixpath.dirname(self._path), recursive=True)
        self.stream: NativeFile = self._target.filesystem.open_output_stream(
            self._path, compression="gzip" if gzip else None
        )

    def write(self, data: bytes | memoryview) -> None:
        self.stream.write(data)

    def commit(self) -> int:
        """Closes the stream (an S3 upload completes here); returns the file's size in bytes."""
        self.stream.close()
        filesystem = self._target.filesystem
        if self._target.local:
            filesystem.move(self._path, self._target.path)
        size = filesystem.get_file_info(self._target.path).size
        return int(size or 0)

    def abort(self) -> None:
        try:
            if not self.stream.closed:
                self.stream.close()
        except OSError:
            pass  # an upload that cannot complete leaves nothing to remove
        delete(self._target.filesystem, self._path)


def delete(filesystem: pafs.FileSystem, path: str) -> None:
    if filesystem.get_file_info(path).type != pafs.FileType.NotFound:
        filesystem.delete_file(path)


def open_input(uri: str, settings: Settings) -> NativeFile:
    target = resolve(uri, settings)
    # The bytes as stored: pyarrow would otherwise un-gzip a `.gz` name on the way out.
    return target.filesystem.open_input_stream(target.path, compression=None)


def local_path(uri: str) -> Path | None:
    parts = urlsplit(uri)
    return Path(unquote(parts.path)) if parts.scheme == "file" else None
