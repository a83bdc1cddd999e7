"""Builders of dataset files for upload tests."""

from __future__ import annotations

import io
import zipfile

import numpy as np
from PIL import Image


def npz_bytes(n: int = 30, classes: int = 3, **arrays: np.ndarray) -> bytes:
    rng = np.random.default_rng(0)
    data = {
        "x": rng.normal(size=(n, 1, 8, 8)).astype(np.float32),
        "y": np.arange(n) % classes,
        **arrays,
    }
    buf = io.BytesIO()
    np.savez_compressed(buf, **data)  # type: ignore[arg-type]
    return buf.getvalue()


def png(color: int, size: tuple[int, int] = (6, 5)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (color, 0, 0)).save(buf, format="PNG")
    return buf.getvalue()


def zip_bytes(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def image_zip() -> bytes:
    return zip_bytes(
        {
            "cat/1.png": png(10),
            "cat/2.png": png(20),
            "dog/1.png": png(200),
            "dog/": b"",
            "__MACOSX/._junk": b"x",
        }
    )


def multipart_body(boundary: str, filename: str, data: bytes, **fields: str) -> bytes:
    parts = [
        (f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n').encode()
        for k, v in fields.items()
    ]
    parts.append(
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        + data
        + b"\r\n"
    )
    return b"".join(parts) + f"--{boundary}--\r\n".encode()
