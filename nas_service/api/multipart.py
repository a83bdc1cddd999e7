"""Streaming multipart/form-data reader for uploads.

The body is read chunk by chunk and the byte budget is enforced as it arrives, so an oversized
upload is refused early (413) and nothing of it is kept. File parts go straight to a temporary
file under ``data_dir/tmp``; small text fields are kept in memory.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from python_multipart.multipart import MultipartParseError, MultipartParser, parse_options_header

from nas_service.domain import PayloadTooLarge, ValidationFailed

MAX_FIELD_BYTES = 4096


@dataclass
class Upload:
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[str, Path]] = field(default_factory=dict)  # name -> (filename, path)

    def cleanup(self) -> None:
        for _, path in self.files.values():
            path.unlink(missing_ok=True)


class _Reader:
    def __init__(self, tmp_dir: Path):
        self.tmp_dir = tmp_dir
        self.out = Upload()
        self._header_name = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name = ""
        self._fh: IO[bytes] | None = None
        self._buf = bytearray()

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": self.header_field,
            "on_header_value": self.header_value,
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
        }

    def part_begin(self) -> None:
        self._headers = {}
        self._buf = bytearray()
        self._fh = None

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def header_end(self) -> None:
        self._headers[self._header_name.lower()] = self._header_value
        self._header_name, self._header_value = b"", b""

    def headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = params.get(b"name", b"").decode("utf-8", "replace")
        filename = params.get(b"filename")
        if filename is not None:
            fd, tmp = tempfile.mkstemp(dir=self.tmp_dir, prefix="upload-")
            self._fh = open(fd, "wb")  # noqa: SIM115 - closed in part_end or abort
            self.out.files[self._name] = (filename.decode("utf-8", "replace"), Path(tmp))

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self._fh is not None:
            self._fh.write(data[start:end])
            return
        self._buf += data[start:end]
        if len(self._buf) > MAX_FIELD_BYTES:
            raise ValidationFailed.one(
                self._name, f"form field longer than {MAX_FIELD_BYTES} bytes"
            )

    def part_end(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        else:
            self.out.fields[self._name] = self._buf.decode("utf-8", "replace")

    def abort(self) -> None:
        if self._fh is not None:
            self._fh.close()
        self.out.cleanup()


async def read_multipart(
    content_type: str | None,
    content_length: str | None,
    chunks: AsyncIterator[bytes],
    tmp_dir: Path,
    limit: int,
) -> Upload:
    ctype, params = parse_options_header(content_type or "")
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise ValidationFailed.one(
            "file", "send the dataset as multipart/form-data with a 'file' part"
        )
    if content_length and content_length.isdigit() and int(content_length) > limit:
        raise PayloadTooLarge(f"the upload is {content_length} bytes; the limit is {limit}")
    reader = _Reader(tmp_dir)
    parser = MultipartParser(boundary, cast(Any, reader.callbacks()))
    total = 0
    try:
        async for chunk in chunks:
            total += len(chunk)
            if total > limit:
                raise PayloadTooLarge(f"the upload exceeds the limit of {limit} bytes")
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        reader.abort()
        raise ValidationFailed.one("file", f"malformed multipart body ({exc})") from exc
    except BaseException:
        reader.abort()
        raise
    return reader.out
