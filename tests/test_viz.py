"""`stnbench viz`: the sampled region's outline, transformers inside the network, the pictures."""

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image, ImageSequence

from stnbench.cli import main
from stnbench.datasets import DatasetTensors
from stnbench.errors import StnbenchError
from stnbench.models import create_model, spatial_transformers
from stnbench.results.viz import (
    MOVING_FRAMES,
    evolution_frames,
    evolution_path,
    moving_path,
    sampled_outline,
    trace_transformers,
    write_gif,
)


def model_for(name: str, data: DatasetTensors) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, in_channels=data.channels, input_size=data.image_size,
                        num_classes=data.num_classes, mean=data.mean, std=data.std)


def test_outline_of_identity_and_of_a_shift(mnist: DatasetTensors):
    torch.set_num_threads(1)
    model = model_for("st-cnn-affine", mnist)
    images = mnist.test.images[:4].float() / 255
    (trace,) = trace_transformers(model, images)
    outline = sampled_outline(trace.grid, 28, 28)
    # An untrained transformer is the identity: its border pixels sample the image's border
    # pixel centres, and the outline is closed.
    corners = outline[0][[0, 27, 54, 81]]
    np.testing.assert_allclose(corners, [[0, 0], [27, 0], [27, 27], [0, 27]], atol=1e-4)
    np.testing.assert_allclose(outline[:, 0], outline[:, -1])
    torch.testing.assert_close(trace.output, images)
    # theta = [[1, 0, 0.5], [0, 1, 0]] samples a quarter of the width further right.
    (st,) = spatial_transformers(model)
    st.regressor.bias.data = torch.tensor([1.0, 0.0, 0.5, 0.0, 1.0, 0.0])
    (shifted,) = trace_transformers(model, images)
    moved = sampled_outline(shifted.grid, 28, 28) - outline
    np.testing.assert_allclose(moved[..., 0], 7.0, atol=1e-4)
    np.testing.assert_allclose(moved[..., 1], 0.0, atol=1e-4)


def test_second_transformer_is_traced_on_feature_maps(gtsrb: DatasetTensors):
    torch.set_num_threads(1)
    model = model_for("moodstocks-2st", gtsrb)
    first, second = trace_transformers(model, gtsrb.test.images[:2].float() / 255)
    assert first.input.shape[1] == 3
    assert second.input.shape[1] == 200  # the second conv block's maps
    assert second.grid.shape[:3] == (2, *second.output.shape[-2:])


def test_model_without_transformer_is_refused(mnist: DatasetTensors):
    with pytest.raises(StnbenchError, match="no spatial transformer"):
        trace_transformers(model_for("cnn", mnist), mnist.test.images[:1].float() / 255)


def test_viz_of_a_trained_run(mnist: DatasetTensors, data_dir: Path, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"limit_train": 64, "limit_eval": 32, "batch_size": 32,
                                    "threads": 1, "scale": "tiny"}))
    run = tmp_path / "run"
    assert main(["train", "--dataset", "mnist", "--distortion", "RTS", "--severity", "1",
                 "--model", "st-cnn-affine", "--seed", "0", "--epochs", "1", "--out", str(run),
                 "--data-dir", str(data_dir), "--device", "cpu", "--spec", str(spec)]) == 0
    out = tmp_path / "viz" / "run.png"
    assert main(["viz", "--run", str(run), "--out", str(out), "--data-dir", str(data_dir)]) == 0
    with Image.open(out) as picture:
        assert picture.width > 800 and picture.height > 400
    with Image.open(moving_path(out)) as gif:
        assert sum(1 for _ in ImageSequence.Iterator(gif)) == MOVING_FRAMES
    # Two steps of training: snapshots before the first step and after each.
    with Image.open(evolution_path(out)) as gif:
        assert sum(1 for _ in ImageSequence.Iterator(gif)) == 3

    (run / "checkpoint.pt").unlink()
    assert main(["viz", "--run", str(run), "--out", str(out), "--data-dir", str(data_dir)]) != 0
    assert "checkpoint.pt: does not exist; a run's pictures are drawn" in capsys.readouterr().err


def test_viz_without_snapshots_names_the_missing_file(tmp_path: Path):
    with pytest.raises(StnbenchError, match=r"evolution\.npz: does not exist"):
        evolution_frames(tmp_path, {})


def test_gifs_keep_their_frames_colours_in_half_the_bytes(tmp_path: Path) -> None:
    # Photo-like frames that change a little from one to the next, as a GTSRB evolution does.
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:60, 0:200]
    photo = np.stack([xs * 255 / 200, ys * 255 / 60, (xs + ys) * 255 / 260], axis=-1)
    photo = (photo + rng.normal(0, 8, photo.shape)).astype(np.int16)
    frames = []
    for index in range(12):
        frame = photo.copy()
        frame[:, 10 * index : 10 * index + 20] = 128  # a moving grey band
        frames.append(Image.fromarray(frame.clip(0, 255).astype(np.uint8)))
    ours, default = tmp_path / "ours.gif", tmp_path / "default.gif"
    write_gif(ours, frames, 100)
    frames[0].save(default, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    with Image.open(ours) as gif:
        decoded = [np.asarray(frame.convert("RGB"), np.int16)
                   for frame in ImageSequence.Iterator(gif)]
    assert len(decoded) == len(frames)
    for frame, back in zip(frames, decoded, strict=True):
        assert np.abs(np.asarray(frame, np.int16) - back).mean() < 8
    assert ours.stat().st_size < 0.6 * default.stat().st_size
