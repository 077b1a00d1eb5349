"""The command line (train, resume, sample) and the PNG grid helpers it uses."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from diffviz.cli import SUBCOMMANDS, build_parser, main
from diffviz.images import make_grid, save_image_grid, to_uint8

TINY = ["--dataset", "digits", "--model", "tiny", "--batch-size", "8", "--threads", "1", "--no-progress",
        "--log-every", "2"]


@pytest.fixture(autouse=True, scope="module")
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """`diffviz train` for 4 steps of a conditional tiny U-Net on 8x8 digits."""
    root = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", *TINY, "--steps", "4", "--conditional", "--checkpoint-dir", str(root)]) == 0
    return root


def test_train_writes_a_checkpoint(run_dir, capsys):
    assert (run_dir / "latest").read_text().strip() == "step-000004"
    config = json.loads((run_dir / "step-000004" / "config.json").read_text())
    assert config["train_config"]["conditional"] and config["model"]["config"]["num_classes"] == 10


def test_sample_writes_a_png_grid(run_dir, tmp_path, capsys):
    out = tmp_path / "grid.png"
    argv = ["sample", "--checkpoint", str(run_dir), "--out", str(out), "--n", "6", "--steps", "3",
            "--class", "3", "--guidance", "3", "--seed", "1", "--nrow", "3", "--scale", "2", "--threads", "1"]
    assert main(argv) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    image = Image.open(out)
    assert image.format == "PNG" and image.mode == "L" and image.size == (2 * (3 * 9 + 1), 2 * (2 * 9 + 1))
    first = np.asarray(image).copy()
    assert main(argv) == 0 and np.array_equal(np.asarray(Image.open(out)), first)  # seeded: same grid


def test_sample_from_an_exported_model(run_dir, tmp_path):
    from diffviz.checkpoint import export_model, load_checkpoint

    model, schedule, _ = load_checkpoint(run_dir)
    export_model(model, schedule, tmp_path / "digits-tiny")
    out = tmp_path / "exported.png"
    assert main(["sample", "--checkpoint", str(tmp_path / "digits-tiny"), "--out", str(out), "--n", "4",
                 "--steps", "2", "--sampler", "ddpm", "--threads", "1"]) == 0
    assert Image.open(out).size == (8 * (2 * 9 + 1), 8 * (2 * 9 + 1))  # scale 8: 8x8 digits → 64 px


def test_resume_continues_the_step_count(run_dir, tmp_path, capsys):
    import shutil
    root = tmp_path / "run"
    shutil.copytree(run_dir, root)
    assert main(["train", "--checkpoint-dir", str(root), "--resume", "--steps", "6", "--threads", "1",
                 "--no-progress"]) == 0  # the dataset, model, ... come from the checkpoint
    out = capsys.readouterr().out
    assert "resumed from" in out and "at step 4" in out and "done: step 6" in out
    assert (root / "latest").read_text().strip() == "step-000006"
    meta = json.loads((root / "step-000006" / "config.json").read_text())["meta"]
    assert meta["step"] == 6 and meta["images_seen"] == 6 * 8


def test_errors_are_messages_not_tracebacks(run_dir, tmp_path, capsys):
    assert main(["sample", "--checkpoint", str(run_dir), "--class", "12", "--out", str(tmp_path / "x.png")]) == 2
    assert "--class must be in [0, 9]" in capsys.readouterr().err
    assert main(["sample", "--checkpoint", str(tmp_path / "missing")]) == 2
    assert "no checkpoint folder or exported model" in capsys.readouterr().err
    assert main(["train", "--resume", "--steps", "2"]) == 2
    assert "--resume needs --checkpoint-dir" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([])  # a subcommand is required


def test_subcommands_are_registered_in_one_list():
    assert [add.__name__ for add in SUBCOMMANDS] == ["add_train_command", "add_sample_command",
                                                       "add_handout_command"]
    assert build_parser().parse_args(["sample", "--checkpoint", "x"]).run.__name__ == "run_sample"


def test_make_grid_layout_and_values():
    x = torch.stack([torch.full((1, 2, 3), v) for v in (-1.0, 0.0, 1.0)])  # (3, 1, 2, 3)
    grid = make_grid(x, nrow=2, padding=1, pad_value=-1.0)
    assert grid.shape == (2 * 3 + 1, 2 * 4 + 1, 1) and grid.dtype == np.uint8
    assert grid[1, 1, 0] == 0 and grid[1, 5, 0] == 128 and grid[4, 1, 0] == 255
    assert grid[0].max() == 0 and grid[4, 5, 0] == 0  # padding and the empty 4th cell
    assert to_uint8(torch.tensor([-2.0, -1.0, 1.0, 3.0])).tolist() == [0, 0, 255, 255]
    rgb = make_grid(torch.zeros(4, 3, 5, 5))
    assert rgb.shape == (2 * 6 + 1, 2 * 6 + 1, 3)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        make_grid(torch.zeros(2, 2, 4, 4))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        make_grid(torch.zeros(4, 4))


def test_save_image_grid_rgb(tmp_path):
    path = save_image_grid(torch.rand(2, 3, 4, 4) * 2 - 1, tmp_path / "sub" / "rgb.png", scale=3, padding=0)
    image = Image.open(path)
    assert image.mode == "RGB" and image.size == (3 * 8, 3 * 4)


def test_save_image_grid_picks_the_format_and_leaves_no_temp_file(tmp_path):
    x = torch.rand(2, 1, 4, 4) * 2 - 1
    assert Image.open(save_image_grid(x, tmp_path / "g.JPG")).format == "JPEG"
    with pytest.raises(ValueError, match=r"path must end in \.png, \.jpg, \.jpeg"):
        save_image_grid(x, tmp_path / "g.bmp")
    (tmp_path / "taken.png").mkdir()  # a folder where the file should go is refused before writing ...
    with pytest.raises(ValueError, match="is a folder"):
        save_image_grid(x, tmp_path / "taken.png")
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))  # ... and nothing is left
