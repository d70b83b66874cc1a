"""Real GTSRB: counts, pixels, the track-aware split, the supported layouts and preprocessing."""

import io
import json
import shutil
import threading
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from stnbench.cli import main
from stnbench.datasets import DatasetTensors, load_dataset, prepare_dataset
from stnbench.datasets.splits import track_split
from stnbench.paths import cache_dir

TRAIN_ZIP = "GTSRB_Final_Training_Images.zip"
# Official per-class training counts (train + val together) of a few classes.
CLASS_COUNTS = {0: 210, 1: 2220, 2: 2250, 33: 689}


def _track_of_pixels(archives: Path) -> dict[bytes, str]:
    """Each training image's RGB bytes -> its track "CCCCC/TTTTT", read without stnbench."""
    tracks = {}
    with zipfile.ZipFile(archives / TRAIN_ZIP) as archive:
        for name in archive.namelist():
            if name.endswith(".ppm"):
                folder, filename = name.split("/")[-2:]
                pixels = archive.read(name)[-32 * 32 * 3 :]  # P6 payload after the header
                tracks[pixels] = f"{folder}/{filename[:5]}"
    return tracks


def _read_ppm(archive: Path, name: str) -> torch.Tensor:
    with zipfile.ZipFile(archive) as handle:
        pixels = np.array(Image.open(io.BytesIO(handle.read(name))).convert("RGB"))
    return torch.from_numpy(pixels).permute(2, 0, 1)


def _pixels(images: torch.Tensor) -> list[bytes]:
    return [image.permute(1, 2, 0).contiguous().numpy().tobytes() for image in images]


def test_cli_reports_the_shared_data(gtsrb, gtsrb_archives, data_dir, capsys) -> None:
    argv = ["data", "prepare", "gtsrb", "--archives", str(gtsrb_archives)]
    assert main([*argv, "--data-dir", str(data_dir), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["dataset"] == "gtsrb" and summary["classes"] == 43
    assert summary["splits"]["train"] + summary["splits"]["val"] == 39_209
    assert summary["splits"]["test"] == 430
    assert Path(summary["cache"]).is_file()


def test_tensors_hold_the_official_training_set(gtsrb: DatasetTensors) -> None:
    assert (gtsrb.num_classes, gtsrb.channels, gtsrb.image_size) == (43, 3, 32)
    assert gtsrb.train.images.shape[1:] == (3, 32, 32)
    assert gtsrb.train.images.dtype == torch.uint8 and gtsrb.test.labels.dtype == torch.int64
    labels = torch.cat([gtsrb.train.labels, gtsrb.val.labels])
    counts = torch.bincount(labels, minlength=43)
    assert len(labels) == 39_209 and all(counts[c] == n for c, n in CLASS_COUNTS.items())
    assert set(gtsrb.val.labels.tolist()) == set(range(43))
    assert len(gtsrb.test) == 430 and torch.bincount(gtsrb.test.labels).tolist() == [10] * 43
    assert gtsrb.info["test_set"]["size"] == 430
    assert "430-image subset" in gtsrb.info["test_set"]["note"]
    assert all(0.2 < m < 0.5 for m in gtsrb.mean) and all(0.1 < s < 0.4 for s in gtsrb.std)


def test_train_and_val_share_no_track(gtsrb: DatasetTensors, gtsrb_archives: Path) -> None:
    track_of = _track_of_pixels(gtsrb_archives)
    train_tracks = {track_of[p] for p in _pixels(gtsrb.train.images)}
    val_tracks = {track_of[p] for p in _pixels(gtsrb.val.images)}
    assert train_tracks.isdisjoint(val_tracks)
    assert val_tracks == set(gtsrb.info["val_split"]["val_tracks"])
    assert len(train_tracks | val_tracks) == len(set(track_of.values()))
    # About 10% of each class's tracks, and never all of them.
    per_class = {c: sum(t.startswith(f"{c:05d}/") for t in val_tracks) for c in range(43)}
    totals = {
        c: sum(t.startswith(f"{c:05d}/") for t in train_tracks | val_tracks) for c in range(43)
    }
    assert all(1 <= per_class[c] <= max(1, round(0.1 * totals[c])) for c in range(43))


def test_pixels_are_the_archive_images(gtsrb: DatasetTensors, gtsrb_archives: Path) -> None:
    first = _read_ppm(
        gtsrb_archives / "GTSRB_Final_Test_Images.zip", "GTSRB/Final_Test/Images/00000.ppm"
    )
    assert torch.equal(gtsrb.test.images[0], first)
    assert gtsrb.test.labels[0] == 16  # first row of GT-final_test.csv


def test_split_is_seeded_and_sized_by_fraction(gtsrb: DatasetTensors, data_dir: Path) -> None:
    again = load_dataset("gtsrb", data_dir)
    assert torch.equal(again.val.labels, gtsrb.val.labels)
    assert again.info["val_split"]["val_tracks"] == gtsrb.info["val_split"]["val_tracks"]
    other = load_dataset("gtsrb", data_dir, split_seed=1)
    assert other.info["val_split"]["val_tracks"] != gtsrb.info["val_split"]["val_tracks"]
    larger = load_dataset("gtsrb", data_dir, val_fraction=0.3)
    assert 0.25 < len(larger.val) / 39_209 < 0.35
    none = load_dataset("gtsrb", data_dir, val_fraction=0.0)
    assert (len(none.train), len(none.val)) == (39_209, 0)


def test_track_split_ignores_image_order() -> None:
    labels = torch.arange(40) // 10  # 4 classes, 5 tracks of 2 images each
    tracks = torch.arange(40) // 2
    _, val = track_split(labels, tracks, 0.4, seed=3)
    order = torch.randperm(40, generator=torch.Generator().manual_seed(0))
    _, val_shuffled = track_split(labels[order], tracks[order], 0.4, seed=3)
    assert set(tracks[val].tolist()) == set(tracks[order][val_shuffled].tolist())
    assert torch.bincount(labels[val]).tolist() == [4, 4, 4, 4]


def test_size_48_and_roi_crop(gtsrb_subset: Path, tmp_path: Path) -> None:
    plain = prepare_dataset("gtsrb", tmp_path, archives=gtsrb_subset, size=48)
    cropped = prepare_dataset("gtsrb", tmp_path, archives=gtsrb_subset, size=48, roi_crop=True)
    assert plain["cache"] != cropped["cache"]
    data = load_dataset("gtsrb", tmp_path, size=48, roi_crop=True, val_fraction=0.0)
    assert data.train.images.shape == (180, 3, 48, 48) and data.image_size == 48
    # 00000_00000.ppm: stored at 32x32, annotated 29x30 with ROI (5, 6)-(24, 25): scaled by
    # 32/29 and 32/30 the sign spans columns 6..25 and rows 6..26.
    image = _read_ppm(gtsrb_subset / TRAIN_ZIP, "GTSRB/Final_Training/Images/00000/00000_00000.ppm")
    expected = F.resize(
        F.crop(image, 6, 6, 21, 20)[None], [48, 48], InterpolationMode.BILINEAR, antialias=True
    )
    assert torch.equal(data.train.images[0], expected[0])


def _extract(archives: Path, target: Path) -> None:
    for archive in archives.glob("*.zip"):
        with zipfile.ZipFile(archive) as handle:
            handle.extractall(target)


def test_extracted_trees_give_the_same_tensors(gtsrb_subset: Path, tmp_path: Path) -> None:
    _extract(gtsrb_subset, tmp_path / "trees")
    prepare_dataset("gtsrb", tmp_path / "a", archives=gtsrb_subset)
    prepare_dataset("gtsrb", tmp_path / "b", archives=tmp_path / "trees")
    from_zips, from_trees = (
        load_dataset("gtsrb", tmp_path / "a"),
        load_dataset("gtsrb", tmp_path / "b"),
    )
    assert torch.equal(from_zips.train.images, from_trees.train.images)
    assert torch.equal(from_zips.test.labels, from_trees.test.labels)


def test_torchvision_layout_in_the_data_folder(gtsrb_subset: Path, tmp_path: Path) -> None:
    _extract(gtsrb_subset, tmp_path / "x")
    base = tmp_path / "data" / "gtsrb"
    (base / "GTSRB").mkdir(parents=True)
    shutil.move(tmp_path / "x" / "GTSRB" / "Final_Training" / "Images", base / "GTSRB" / "Training")
    shutil.move(tmp_path / "x" / "GTSRB" / "Final_Test", base / "GTSRB" / "Final_Test")
    shutil.move(tmp_path / "x" / "GT-final_test.csv", base / "GT-final_test.csv")
    summary = prepare_dataset("gtsrb", tmp_path / "data")  # no archives: finds data/gtsrb
    assert summary["splits"]["test"] == 30
    assert sum(summary["splits"].values()) == 210


def test_concurrent_prepares_build_once(gtsrb_subset: Path, tmp_path: Path) -> None:
    results, errors = [], []

    def prepare() -> None:
        try:
            results.append(prepare_dataset("gtsrb", tmp_path, archives=gtsrb_subset, size=40))
        except Exception as error:  # reported below, with the other threads' outcomes
            errors.append(error)

    threads = [threading.Thread(target=prepare) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len({r["cache"] for r in results}) == 1
    assert [p.name for p in cache_dir(tmp_path).glob("*.pt")] == [Path(results[0]["cache"]).name]
    assert not list(cache_dir(tmp_path).glob(".*.tmp"))
    assert len(load_dataset("gtsrb", tmp_path, size=40).train) == 90
