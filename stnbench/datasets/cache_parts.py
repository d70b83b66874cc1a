"""A prepared cache as parts of bounded size, and back into a cache on another machine.

For a machine that can be reached only through transfers of bounded size (a lent GPU machine
that takes tens of MiB a call, while GTSRB at 48 px is 358 MB of pixels). ``pack`` writes the
cache's images as PNG, lossless and about 55% of their raw size on GTSRB, as one byte stream
cut into ``part-NNN.bin`` files of at most ``part_bytes`` each, with the other tensors and the
cache's own manifest in ``parts.json`` and ``small.pt``. ``unpack`` decodes them, checks every
tensor against the SHA-256 that ``pack`` recorded, and only then writes the cache, so a part
that is missing, cut short or from another packing ends in an error and writes nothing.

Written here because no library splits a set of tensors into size-bounded, losslessly
compressed files; the image coding itself is Pillow's PNG.
"""

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from stnbench.datasets.cache import prepare_lock, read_manifest, read_tensors, write_cache
from stnbench.errors import StnbenchError
from stnbench.io import atomic_write, atomic_write_json, load_tensors
from stnbench.paths import cache_dir

PARTS_MANIFEST = "parts.json"
SMALL_TENSORS = "small.pt"
FORMAT_VERSION = 1
# The cache's own manifest fields that write_cache sets anew from the tensor file it writes.
WRITTEN_FIELDS = ("tensors", "tensors_bytes", "key")


def _is_images(tensor: torch.Tensor) -> bool:
    return tensor.dtype == torch.uint8 and tensor.dim() == 4 and tensor.shape[1] in (1, 3)


def _sha256(tensor: torch.Tensor) -> str:
    return hashlib.sha256(tensor.contiguous().numpy().tobytes()).hexdigest()


def _png(image: torch.Tensor) -> bytes:
    pixels = image.permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels).save(
        buffer, "PNG", optimize=True
    )
    return buffer.getvalue()


def pack(data_dir: Path, stem: str, out: Path, part_bytes: int) -> list[Path]:
    """Write the cache ``stem`` (e.g. ``gtsrb-48px``) of ``data_dir`` as parts in ``out``;
    returns every file written, the parts last."""
    if part_bytes < 1:
        raise StnbenchError(f"part size must be positive, not {part_bytes} bytes")
    cdir = cache_dir(data_dir)
    manifest = read_manifest(cdir, stem)
    if manifest is None:
        raise StnbenchError(f"{cdir / stem}.json: no complete cache to pack; prepare it first")
    tensors = read_tensors(cdir, manifest)
    stream = bytearray()
    small: dict[str, torch.Tensor] = {}
    described: dict[str, dict[str, Any]] = {}
    for name, tensor in sorted(tensors.items()):
        described[name] = {"sha256": _sha256(tensor), "encoding": "raw"}
        if not _is_images(tensor):
            small[name] = tensor
            continue
        coded = [_png(image) for image in tensor]
        small[f"{name}.png_bytes"] = torch.tensor([len(image) for image in coded])
        described[name] = {**described[name], "encoding": "png", "shape": list(tensor.shape)}
        for image in coded:
            stream += image
    out.mkdir(parents=True, exist_ok=True)
    parts = []
    for index, start in enumerate(range(0, len(stream), part_bytes)):
        chunk = bytes(stream[start : start + part_bytes])
        parts.append({"name": f"part-{index:03d}.bin", "bytes": len(chunk),
                      "sha256": hashlib.sha256(chunk).hexdigest()})
        atomic_write(out / parts[-1]["name"], lambda tmp, chunk=chunk: tmp.write_bytes(chunk))
    atomic_write(out / SMALL_TENSORS, lambda tmp: torch.save(small, tmp))
    cache = {key: value for key, value in manifest.items() if key not in WRITTEN_FIELDS}
    atomic_write_json(out / PARTS_MANIFEST, {
        "format_version": FORMAT_VERSION, "stem": stem, "key": manifest["key"],
        "cache_manifest": cache, "tensors": described, "parts": parts,
    })
    return [out / PARTS_MANIFEST, out / SMALL_TENSORS, *(out / part["name"] for part in parts)]


def _read_parts_manifest(folder: Path) -> dict[str, Any]:
    path = folder / PARTS_MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise StnbenchError(f"{path}: missing; `stnbench data pack` writes it") from error
    except json.JSONDecodeError as error:
        raise StnbenchError(f"{path}: not valid JSON ({error})") from error
    if manifest.get("format_version") != FORMAT_VERSION:
        raise StnbenchError(
            f"{path}: format_version {manifest.get('format_version')!r}, this stnbench reads "
            f"{FORMAT_VERSION}"
        )
    return manifest


def _read_stream(folder: Path, parts: list[dict[str, Any]]) -> bytes:
    stream = bytearray()
    for part in parts:
        path = folder / part["name"]
        if not path.is_file():
            raise StnbenchError(f"{path}: missing; all {len(parts)} parts are needed")
        chunk = path.read_bytes()
        if len(chunk) != part["bytes"] or hashlib.sha256(chunk).hexdigest() != part["sha256"]:
            raise StnbenchError(
                f"{path}: {len(chunk):,} bytes that are not the part packed "
                f"({part['bytes']:,} bytes): cut short or from another packing"
            )
        stream += chunk
    return bytes(stream)


def _decode(stream: bytes, lengths: torch.Tensor, shape: list[int]) -> torch.Tensor:
    images = np.empty((shape[0], shape[2], shape[3], shape[1]), dtype=np.uint8)
    offset = 0
    for index, length in enumerate(lengths.tolist()):
        pixels = np.asarray(Image.open(io.BytesIO(stream[offset : offset + length])))
        images[index] = pixels.reshape(images.shape[1:])
        offset += length
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()


def unpack(folder: Path, data_dir: Path) -> dict[str, Any]:
    """Rebuild in ``data_dir`` the cache packed in ``folder``; returns its manifest. A cache
    of the same key already there is kept as it is."""
    manifest = _read_parts_manifest(folder)
    cdir = cache_dir(data_dir)
    present = read_manifest(cdir, manifest["stem"])
    if present is not None and present["key"] == manifest["key"]:
        return present
    stream = _read_stream(folder, manifest["parts"])
    small = load_tensors(folder / SMALL_TENSORS, "packed tensors", "pack the cache again")
    tensors: dict[str, torch.Tensor] = {}
    offset = 0
    for name, described in manifest["tensors"].items():
        if described["encoding"] == "png":
            lengths = small[f"{name}.png_bytes"]
            size = int(lengths.sum())
            tensors[name] = _decode(stream[offset : offset + size], lengths, described["shape"])
            offset += size
        else:
            tensors[name] = small[name]
        if _sha256(tensors[name]) != described["sha256"]:
            raise StnbenchError(
                f"{folder}: tensor {name} decodes to other data than was packed; pack it again"
            )
    with prepare_lock(cdir, manifest["stem"]):
        return write_cache(cdir, manifest["stem"], manifest["key"], tensors,
                           manifest["cache_manifest"])
