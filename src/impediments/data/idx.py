"""Reader and writer for the IDX format of MNIST and Fashion-MNIST.

Format (LeCun et al., http://yann.lecun.com/exdb/mnist/): a 4-byte magic
number ``0x00 0x00 <dtype> <ndim>``, then ``ndim`` big-endian uint32 sizes,
then the data in big-endian order. Files may be gzipped.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from impediments._files import write_atomic

IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {np.dtype(v).newbyteorder("="): k for k, v in IDX_DTYPES.items()}


class IDXError(ValueError):
    """A file is not valid IDX (bad magic number, truncated, or wrong sizes)."""


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (raw or ``.gz``) into a native-endian numpy array.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        IDXError: on a wrong magic number, an unknown dtype code, or a size
            that does not match the header.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise IDXError(f"{path}: wrong magic number {raw[:4].hex() or '<empty>'}; expected 0000<dtype><ndim>")
    code, ndim = raw[2], raw[3]
    if code not in IDX_DTYPES:
        raise IDXError(f"{path}: unknown IDX dtype code 0x{code:02x}; valid: {[hex(c) for c in IDX_DTYPES]}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXError(f"{path}: truncated header ({len(raw)} bytes, need {header})")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise IDXError(f"{path}: size mismatch: header says shape {shape} ({expected} bytes), file has {len(raw)} bytes")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write ``array`` as IDX (gzipped when ``path`` ends in ``.gz``), atomically."""
    path = Path(path)
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in _CODES:
        raise ValueError(f"dtype {array.dtype} has no IDX code; valid: {sorted(str(d) for d in _CODES)}")
    code = _CODES[native]
    payload = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload += array.astype(IDX_DTYPES[code]).tobytes()
    if path.suffix == ".gz":
        payload = gzip.compress(payload, mtime=0)
    write_atomic(path, payload, make_parents=True)
    return path


def _read_bytes(path: Path) -> bytes:
    if path.suffix == ".gz":
        try:
            with gzip.open(path, "rb") as f:
                return f.read()
        except (OSError, EOFError) as exc:
            raise IDXError(f"{path}: corrupt gzip stream ({exc})") from exc
    return path.read_bytes()


IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def find_idx_file(folder: Path, stem: str) -> Path:
    """Find ``stem`` or ``stem.gz`` in ``folder`` (also accepting ``.`` for ``-idx``)."""
    candidates = [stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"]
    for name in candidates:
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"IDX file {stem}[.gz] not found in {folder}; expected files: {sorted(IDX_FILES.values())}")


def load_idx_folder(folder: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load the four MNIST-style IDX files from ``folder``.

    Raises:
        FileNotFoundError: if the folder or any of the four files is missing.
        IDXError: if a file is corrupt or images and labels disagree in count.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"IDX folder not found: {folder}")
    arrays = {key: read_idx(find_idx_file(folder, stem)) for key, stem in IDX_FILES.items()}
    for split in ("train", "test"):
        n_img, n_lab = len(arrays[f"{split}_images"]), len(arrays[f"{split}_labels"])
        if n_img != n_lab:
            raise IDXError(f"{folder}: {split} has {n_img} images but {n_lab} labels")
    return arrays
