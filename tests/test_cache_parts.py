"""A prepared cache carried as parts (`stnbench data pack` / `unpack`): the same tensors on the
other side, or a one-line error and nothing written."""

from pathlib import Path

import pytest
import torch

from stnbench.cli import main
from stnbench.datasets import cache_parts, prepare_dataset
from stnbench.datasets.cache import read_manifest, read_tensors
from stnbench.errors import StnbenchError
from stnbench.paths import cache_dir

STEM = "gtsrb-48px-roi"


@pytest.fixture(scope="module")
def packed(gtsrb_subset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Real GTSRB (classes 0-2, 210 images) prepared at 48 px on the ROI, packed in parts of
    100 kB; returns the data folder and the parts' folder."""
    source = tmp_path_factory.mktemp("source")
    prepare_dataset("gtsrb", source, archives=gtsrb_subset, size=48, roi_crop=True)
    parts = tmp_path_factory.mktemp("parts")
    assert main(["data", "pack", STEM, "--out", str(parts), "--part-mib", "1",
                 "--data-dir", str(source)]) in (0, None)
    return source, parts


def _tensors(data_dir: Path) -> dict[str, torch.Tensor]:
    cdir = cache_dir(data_dir)
    return read_tensors(cdir, read_manifest(cdir, STEM))


def test_unpack_rebuilds_the_same_cache(packed: tuple[Path, Path], tmp_path: Path) -> None:
    source, parts = packed
    assert main(["data", "unpack", str(parts), "--data-dir", str(tmp_path)]) in (0, None)
    before, after = _tensors(source), _tensors(tmp_path)
    assert before.keys() == after.keys()
    for name, tensor in before.items():
        assert after[name].dtype == tensor.dtype and torch.equal(after[name], tensor), name
    kept = {"tensors_bytes"}
    source_manifest = read_manifest(cache_dir(source), STEM)
    rebuilt_manifest = read_manifest(cache_dir(tmp_path), STEM)
    assert {k: v for k, v in rebuilt_manifest.items() if k not in kept} == {
        k: v for k, v in source_manifest.items() if k not in kept
    }


def test_parts_are_bounded_and_images_compressed(gtsrb_subset: Path, tmp_path: Path) -> None:
    prepare_dataset("gtsrb", tmp_path / "data", archives=gtsrb_subset, size=48, roi_crop=True)
    files = cache_parts.pack(tmp_path / "data", STEM, tmp_path / "parts", 50_000)
    part_sizes = [path.stat().st_size for path in files if path.suffix == ".bin"]
    raw = sum(t.numel() for t in _tensors(tmp_path / "data").values() if t.dtype == torch.uint8)
    assert len(part_sizes) > 1 and max(part_sizes) <= 50_000
    assert sum(part_sizes) < 0.8 * raw


def test_a_missing_part_is_named_and_nothing_is_written(
    packed: tuple[Path, Path], tmp_path: Path
) -> None:
    _, parts = packed
    incomplete = tmp_path / "parts"
    incomplete.mkdir()
    for path in parts.iterdir():
        if path.name != "part-000.bin":
            (incomplete / path.name).write_bytes(path.read_bytes())
    with pytest.raises(StnbenchError, match=r"part-000\.bin: missing"):
        cache_parts.unpack(incomplete, tmp_path / "data")
    assert not (tmp_path / "data").exists()


def test_a_part_cut_short_is_refused(packed: tuple[Path, Path], tmp_path: Path) -> None:
    _, parts = packed
    damaged = tmp_path / "parts"
    damaged.mkdir()
    for path in parts.iterdir():
        data = path.read_bytes()
        (damaged / path.name).write_bytes(data[:-10] if path.name == "part-000.bin" else data)
    with pytest.raises(StnbenchError, match=r"part-000\.bin: .* cut short"):
        cache_parts.unpack(damaged, tmp_path / "data")
    assert not (tmp_path / "data").exists()


def test_packing_a_cache_never_prepared_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StnbenchError, match=r"gtsrb-48px\.json: no complete cache"):
        cache_parts.pack(tmp_path, "gtsrb-48px", tmp_path / "parts", 1 << 20)
