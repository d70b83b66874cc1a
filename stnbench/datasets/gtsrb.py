"""GTSRB as tensors, from the official archives (or trees) or torchvision's or Kaggle's layout.

Preparing decodes every image once, optionally crops it to its annotated region, resizes it
to a square size and caches uint8 tensors keyed by the sources' checksum and the
preprocessing; loading splits the training set into train and val by track.
"""

import io
import os
import re
import tempfile
from collections import defaultdict
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision import datasets
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F
from tqdm import tqdm

from stnbench.dataset_registry import GTSRB
from stnbench.datasets.archives import FileSource
from stnbench.datasets.cache import content_key, prepare_lock, read_manifest, write_cache
from stnbench.datasets.contrast import apply_contrast, contrast_library, contrast_parameters
from stnbench.datasets.gtsrb_files import (
    KAGGLE_FILES,
    TEST_IMAGES_ZIP,
    TEST_LABELS_ZIP,
    TRAIN_ZIP,
    open_gtsrb,
)
from stnbench.datasets.gtsrb_records import TRACK_STRIDE, GtsrbSet, Record
from stnbench.datasets.network import can_reach
from stnbench.datasets.prepared import assemble, read_prepared, summary
from stnbench.datasets.splits import track_split
from stnbench.datasets.tensors import DatasetTensors, pixel_moments
from stnbench.errors import StnbenchError
from stnbench.paths import cache_dir
from stnbench.preparation import ORIGINAL_CONTRAST, Prep

VAL_FRACTION = 0.1  # of each class's tracks
OFFICIAL_TEST_SIZE = GTSRB.test_size
# The public snapshot of Kaggle's copy that the development data is built from (julsolalf/PID)
# holds an unrelated image under this official test image's name, so that copy leaves it out.
MISSING_TEST_IMAGE = "00662"
TORCHVISION_HOST = "sid.erda.dk"  # where torchvision.datasets.GTSRB downloads from
# Bump when the cached tensors change (preprocessing or form), so that old caches are rebuilt.
PREPROCESSING_VERSION = 2


def describe_test_set(names: list[str]) -> dict[str, Any]:
    """What the test set with these image files is: the official one, all but one, or a subset."""
    size = len(names)
    official_less_one = {f"{i:05d}" for i in range(OFFICIAL_TEST_SIZE)} - {MISSING_TEST_IMAGE}
    if size == OFFICIAL_TEST_SIZE:
        note = f"the full official GTSRB test set ({OFFICIAL_TEST_SIZE:,} images)"
    elif (
        size == len(official_less_one)
        and {PurePosixPath(n).stem for n in names} == official_less_one
    ):
        note = (
            f"the complete official GTSRB test set less image {MISSING_TEST_IMAGE} (label 2), "
            f"{size:,} of {OFFICIAL_TEST_SIZE:,} images: the public Kaggle snapshot this copy "
            "was built from holds an unrelated image under that name"
        )
    else:
        note = (
            f"{size:,}-image subset of the official test set ({OFFICIAL_TEST_SIZE:,} images): "
            "a development figure, not the benchmark's test accuracy"
        )
    return {"name": "GTSRB test", "size": size, "note": note}


# Binary 8-bit PPM without comments, as every official GTSRB image is: a short header, then
# raw RGB bytes. Reading these directly is several times faster than PIL, which matters for
# 39,209 tiny images; any other image goes through PIL.
_PLAIN_PPM = re.compile(rb"P6\s+(\d+)\s+(\d+)\s+255\s")


def _decode(source: FileSource, name: str) -> np.ndarray:
    """uint8 [H, W, 3] RGB pixels of one image."""
    data = source.read(name)
    header = _PLAIN_PPM.match(data)
    if header is not None:
        width, height = int(header[1]), int(header[2])
        size = width * height * 3
        if len(data) - header.end() < size:
            raise StnbenchError(
                f"{source.label}: {name}: image does not decode "
                f"(truncated: {len(data) - header.end()} of {size} pixel bytes)"
            )
        return np.frombuffer(data, np.uint8, size, header.end()).reshape(height, width, 3)
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))
    except Image.UnidentifiedImageError:
        # PIL's own message names its in-memory buffer, not the file.
        raise StnbenchError(
            f"{source.label}: {name}: image does not decode (not an image format PIL reads)"
        ) from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise StnbenchError(f"{source.label}: {name}: image does not decode ({error})") from error


def _crop_to_roi(pixels: np.ndarray, record: Record) -> np.ndarray:
    """Crop to the annotated sign, scaling the ROI when the stored image was resized.

    The CSVs give the ROI in the original image's pixels; copies resized after release
    (such as 32x32 redistributions) need it scaled by stored size / original size.
    """
    height, width = pixels.shape[:2]
    x1, y1, x2, y2 = record.roi
    left, right = _scaled_span(x1, x2, width / record.width, width)
    top, bottom = _scaled_span(y1, y2, height / record.height, height)
    return pixels[top:bottom, left:right]


def _scaled_span(start: int, stop: int, scale: float, extent: int) -> tuple[int, int]:
    """[start, stop) scaled and rounded to whole pixels, at least one pixel, inside [0, extent)."""
    first = min(round(start * scale), extent - 1)
    return first, min(max(round(stop * scale), first + 1), extent)


def _images(
    source: FileSource, records: list[Record], size: int, roi_crop: bool, contrast: str, what: str
) -> torch.Tensor:
    """uint8 [N, 3, size, size]; images of equal size are resized together as one batch, then
    each is normalised by ``contrast``."""
    decoded = []
    by_shape: dict[tuple[int, int], list[int]] = defaultdict(list)
    for index, record in enumerate(tqdm(records, desc=f"GTSRB {what}", unit="img", disable=None)):
        pixels = _decode(source, record.name)
        if roi_crop:
            pixels = _crop_to_roi(pixels, record)
        decoded.append(pixels)
        by_shape[pixels.shape[:2]].append(index)
    out = torch.empty(len(records), 3, size, size, dtype=torch.uint8)
    for shape, indices in by_shape.items():
        batch = torch.from_numpy(np.stack([decoded[i] for i in indices])).permute(0, 3, 1, 2)
        if shape != (size, size):
            batch = F.resize(batch, [size, size], InterpolationMode.BILINEAR, antialias=True)
        out[indices] = batch
    return apply_contrast(out, contrast)


def _download_with_torchvision(data_dir: Path) -> Path | None:
    """torchvision's GTSRB download into ``<data-dir>/gtsrb``; None when offline or it fails."""
    target = Path(data_dir) / "gtsrb"
    if not can_reach(TORCHVISION_HOST):
        return None
    data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=data_dir) as tmp:
        try:
            datasets.GTSRB(tmp, split="train", download=True)
            datasets.GTSRB(tmp, split="test", download=True)
        except (RuntimeError, OSError):
            return None
        try:
            os.replace(Path(tmp) / "gtsrb", target)
        except OSError:
            if not target.is_dir():  # else a concurrent prepare put it there first
                raise
    return target


def _locate(data_dir: Path, archives: Path | None) -> Path:
    if archives is not None:
        return Path(archives)
    torchvision_layout = Path(data_dir) / "gtsrb"
    if torchvision_layout.is_dir():
        return torchvision_layout
    downloaded = _download_with_torchvision(data_dir)
    if downloaded is None:
        raise StnbenchError(
            f"GTSRB not found: put {TRAIN_ZIP}, {TEST_IMAGES_ZIP} and {TEST_LABELS_ZIP} "
            f"(or {KAGGLE_FILES}) in a folder and pass --archives DIR "
            "(or set STNBENCH_GTSRB_ARCHIVES)"
        )
    return downloaded


def _build(
    files: GtsrbSet,
    train: list[Record],
    test: list[Record],
    size: int,
    roi_crop: bool,
    contrast: str,
) -> dict:
    train_images = _images(files.train_source, train, size, roi_crop, contrast, "train")
    return {
        "train_images": train_images,
        "train_moments": pixel_moments(train_images),
        "train_labels": torch.tensor([r.label for r in train], dtype=torch.int64),
        "train_tracks": torch.tensor([r.track for r in train], dtype=torch.int64),
        "test_images": _images(files.test_source, test, size, roi_crop, contrast, "test"),
        "test_labels": torch.tensor([r.label for r in test], dtype=torch.int64),
    }


def _preprocessing(size: int, roi_crop: bool, contrast: str) -> dict[str, Any]:
    """What the cached tensors were made with; the original contrast is left out, so that
    caches and keys made before contrasts existed stay valid."""
    preprocessing = {
        "size": size,
        "roi_crop": roi_crop,
        "resize": "bilinear, antialias",
        "version": PREPROCESSING_VERSION,
    }
    if contrast != ORIGINAL_CONTRAST:
        preprocessing["contrast"] = contrast
        preprocessing["contrast_library"] = contrast_library()
        preprocessing["contrast_parameters"] = contrast_parameters(contrast)
    return preprocessing


def prepare(data_dir: Path, prep: Prep, archives: Path | None) -> dict[str, Any]:
    """Decode GTSRB from ``archives`` (else torchvision's layout or download) and cache it."""
    cdir = cache_dir(data_dir)
    folder = _locate(data_dir, archives)
    with prepare_lock(cdir, prep.id), open_gtsrb(folder) as files:
        train, test = files.train, files.test
        source = files.describe()
        preprocessing = _preprocessing(prep.size, prep.roi_crop, prep.contrast)
        key = content_key(source["sha256"], preprocessing)
        manifest = read_manifest(cdir, prep.id)
        if manifest is None or manifest["key"] != key:
            tensors = _build(files, train, test, prep.size, prep.roi_crop, prep.contrast)
            _, val_indices = track_split(
                tensors["train_labels"], tensors["train_tracks"], VAL_FRACTION, seed=0
            )
            info = {
                "dataset": GTSRB.name,
                "source": source,
                "preprocessing": preprocessing,
                "default_splits": {
                    "train": len(train) - len(val_indices),
                    "val": len(val_indices),
                    "test": len(test),
                },
                "test_set": describe_test_set([r.name for r in test]),
            }
            manifest = write_cache(cdir, prep.id, key, tensors, info)
    return summary(GTSRB, prep, cdir, manifest, manifest["default_splits"], manifest["test_set"])


def _track_name(track: int) -> str:
    return f"{track // TRACK_STRIDE:05d}/{track % TRACK_STRIDE:05d}"


def load(
    data_dir: Path, prep: Prep, val_fraction: float | None, split_seed: int
) -> DatasetTensors:
    """GTSRB with ``val_fraction`` of each class's tracks (10% by default) held out as val."""
    cdir = cache_dir(data_dir)
    flags = (" --roi-crop" if prep.roi_crop else "") + (
        "" if prep.contrast == ORIGINAL_CONTRAST else f" --contrast {prep.contrast}"
    )
    command = (f"stnbench data prepare gtsrb --archives DIR --size {prep.size}{flags} "
               f"--data-dir {data_dir}")
    what = f"GTSRB at {prep.size} px{flags}"
    manifest, tensors = read_prepared(cdir, prep, PREPROCESSING_VERSION, what, command)
    fraction = VAL_FRACTION if val_fraction is None else val_fraction
    tracks = tensors["train_tracks"]
    train_indices, val_indices = track_split(tensors["train_labels"], tracks, fraction, split_seed)
    val_split = {
        "method": "whole tracks, stratified by class",
        "fraction": fraction,
        "seed": split_seed,
        "val_tracks": [_track_name(t) for t in torch.unique(tracks[val_indices]).tolist()],
    }
    return assemble(prep, cdir, manifest, tensors, train_indices, val_indices, val_split,
                    manifest["test_set"])
