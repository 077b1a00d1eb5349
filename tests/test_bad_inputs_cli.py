"""Bad inputs to `diffviz train | sample | handout`, one row each: the exit status and the ONE line
that says what is wrong (never a traceback, never a silent fallback). Rows run `diffviz.cli.main`
in-process; the signal exit codes (130 / 143) are in tests/test_fault_injection.py."""
import json
import re
import shutil

import pytest
import torch
from PIL import Image

from diffviz import checkpoint_io
from diffviz.cli import main

TINY = ["--dataset", "digits", "--model", "tiny", "--batch-size", "8", "--threads", "1", "--no-progress",
        "--log-every", "2"]
T = ["train", "--no-progress", "--threads", "1"]
S = ["sample", "--checkpoint", "{run}", "--threads", "1", "--steps", "2", "--out", "{tmp}/s.png"]
NO_CUDA = not torch.cuda.is_available()

# (id, argv, exit status, regex of the one error line)
ROWS = [
    # ----- train: values that used to run silently wrong
    ("grad-clip<0", T + ["--grad-clip", "-1"], 2, r"argument --grad-clip: must be a finite number >= 0, got '-1'"),
    ("min-snr-gamma=0", T + ["--min-snr-gamma", "0"], 2, r"argument --min-snr-gamma: must be a finite number > 0, got '0'"),
    ("lr-schedule unknown", T + ["--lr-schedule", "linear"], 2, r"argument --lr-schedule: invalid choice: 'linear'"),
    ("lr=inf", T + ["--lr", "inf"], 2, r"argument --lr: must be a finite number > 0, got 'inf'"),
    ("lr=nan", T + ["--lr", "nan"], 2, r"argument --lr: must be a finite number > 0, got 'nan'"),
    ("lr=0", T + ["--lr", "0"], 2, r"argument --lr: must be a finite number > 0, got '0'"),
    ("lr<0", T + ["--lr=-1e-3"], 2, r"argument --lr: must be a finite number > 0, got .-1e-3."),
    ("threads=0", T + ["--threads", "0"], 2, r"argument --threads: must be an int >= 1, got '0'"),
    ("steps=0", T + ["--steps", "0"], 2, r"argument --steps: must be an int >= 1, got '0'"),
    ("steps=2.5", T + ["--steps", "2.5"], 2, r"argument --steps: must be an int >= 1, got '2\.5'"),
    ("batch=0", T + ["--batch-size", "0"], 2, r"argument --batch-size: must be an int >= 1"),
    ("T=0", T + ["--timesteps", "0"], 2, r"argument --timesteps: must be an int >= 1"),
    ("ema=1", T + ["--ema-decay", "1"], 2, r"argument --ema-decay: must be a number in \[0, 1\), got '1'"),
    ("dropout=1.5", T + ["--label-dropout", "1.5"], 2, r"argument --label-dropout: must be a number in \[0, 1\)"),
    ("every<0", T + ["--checkpoint-every", "-1"], 2, r"argument --checkpoint-every: must be an int >= 0"),
    ("seed<0", T + ["--seed", "-3"], 2, r"argument --seed: must be an int >= 0"),
    ("wd=nan", T + ["--weight-decay", "nan"], 2, r"argument --weight-decay: must be a finite number >= 0"),
    ("warmup<0", T + ["--warmup", "-1"], 2, r"argument --warmup: must be an int >= 0"),
    ("keep=0", T + ["--keep", "0"], 2, r"argument --keep: must be an int >= 1"),
    ("log-every=0", T + ["--log-every", "0"], 2, r"argument --log-every: must be an int >= 1"),
    ("n-data=0", T + ["--n-data", "0"], 2, r"argument --n-data: must be an int >= 1"),
    ("no-such-option", T + ["--bogus"], 2, r"unrecognized arguments: --bogus"),
    # ----- train: names, devices, folders
    ("model=huge", T + ["--model", "huge", "--checkpoint-dir", "{tmp}/a"], 2, r"unknown model 'huge'"),
    ("dataset=nope", T + ["--dataset", "nope", "--checkpoint-dir", "{tmp}/b"], 2, r"unknown dataset name='nope'"),
    ("device=banana", T + ["--device", "banana", "--checkpoint-dir", "{tmp}/c"], 2,
     r"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got 'banana'"),
    pytest.param(T + ["--device", "cuda", "--checkpoint-dir", "{tmp}/d"], 2,
                 r"CUDA is not available on this machine", id="device=cuda", marks=pytest.mark.skipif(not NO_CUDA, reason="has CUDA")),
    ("dir=file", T + ["--checkpoint-dir", "{file}"], 2, r"checkpoint_dir '.*a-file' is a file, not a folder"),
    ("dir-under-file", T + ["--checkpoint-dir", "{file}/run"], 2, r"checkpoint_dir '.*a-file/run' is not writable"),
    ("resume-no-dir", T + ["--resume"], 2, r"--resume needs --checkpoint-dir"),
    ("resume-typo", T + ["--resume", "--checkpoint-dir", "{tmp}/rnu"], 2,
     r"--resume: '.*rnu' holds no checkpoint \(is the folder name right\?\)"),
    ("rerun-no-resume", T + TINY + ["--checkpoint-dir", "{run}"], 2,
     r"already holds checkpoints of a run; pass --resume to continue it, or --overwrite"),
    ("steps<ckpt", T + ["--resume", "--checkpoint-dir", "{run}", "--steps", "2"], 2,
     r"--steps 2: the run in .* is already at step 4; pass --steps > 4"),
    ("steps=ckpt", T + ["--resume", "--checkpoint-dir", "{run}", "--steps", "4"], 2, r"already at step 4"),
    ("resume-other-T", T + ["--resume", "--checkpoint-dir", "{run}", "--steps", "6", "--timesteps", "50"], 2,
     r"different run; differences: num_timesteps: 1000 → 50\. Only these may change: .*steps"),
    ("resume-other-data", T + ["--resume", "--checkpoint-dir", "{run}", "--steps", "6", "--dataset", "moons",
                               "--lr", "1e-3"], 2, r"differences: dataset: 'digits' → 'moons'; lr: None → 0\.001"),
    ("resume+overwrite", T + ["--resume", "--overwrite", "--checkpoint-dir", "{run}", "--steps", "6"], 2,
     r"--resume and --overwrite exclude each other"),
    # ----- sample
    ("steps>T", S[:-4] + ["--steps", "5000", "--out", "{tmp}/s.png"], 2,
     r"--steps must be an int in \[1, 1000\] \(the schedule has T = 1000 timesteps\), got 5000"),
    ("sample-steps=0", S + ["--steps", "0"], 2, r"argument --steps: must be an int >= 1"),
    ("guidance=nan", S + ["--guidance", "nan"], 2, r"argument --guidance: must be a finite number >= 0, got 'nan'"),
    ("guidance=inf", S + ["--guidance", "inf"], 2, r"argument --guidance: must be a finite number >= 0, got 'inf'"),
    ("guidance<0", S + ["--guidance", "-1"], 2, r"argument --guidance: must be a finite number >= 0"),
    ("eta=nan", S + ["--eta", "nan"], 2, r"argument --eta: must be a finite number >= 0, got 'nan'"),
    ("eta<0", S + ["--eta", "-0.5"], 2, r"argument --eta: must be a finite number >= 0"),
    ("scale=0", S + ["--scale", "0"], 2, r"argument --scale: must be an int >= 1, got '0'"),
    ("nrow=0", S + ["--nrow", "0"], 2, r"argument --nrow: must be an int >= 1, got '0'"),
    ("n=0", S + ["--n", "0"], 2, r"argument --n: must be an int >= 1"),
    ("sample-threads=0", S + ["--threads", "0"], 2, r"argument --threads: must be an int >= 1"),
    ("sample-seed<0", S + ["--seed", "-1"], 2, r"argument --seed: must be an int >= 0"),
    ("out=gif", S + ["--out", "{tmp}/s.gif"], 2, r"--out '.*s\.gif': unknown file type '\.gif'; use \.png, \.jpg"),
    ("out-no-suffix", S + ["--out", "{tmp}/grid"], 2, r"unknown file type '\(none\)'"),
    ("out=folder", S + ["--out", "{folder}"], 2, r"--out '.*grid\.png' is a folder; name a file in it"),
    ("out=plain-folder", S + ["--out", "{tmp}"], 2, r"--out '[^']*' is a folder; name a file in it"),
    ("out-under-file", S + ["--out", "{file}/s.png"], 2, r"--out '.*a-file/s\.png': cannot write in"),
    ("sample-device", S + ["--device", "banana"], 2, r"device must be 'auto', 'cpu'"),
    pytest.param(S + ["--device", "cuda"], 2, r"CUDA is not available", id="sample-cuda",
                 marks=pytest.mark.skipif(not NO_CUDA, reason="has CUDA")),
    ("class=12", S + ["--class", "12"], 2, r"--class must be in \[0, 9\], got 12"),
    ("spacing=foo", S + ["--spacing", "foo"], 2, r"argument --spacing: invalid choice: 'foo'"),
    ("sampler=foo", S + ["--sampler", "foo"], 2, r"argument --sampler: invalid choice: 'foo'"),
    ("ckpt-missing", ["sample", "--checkpoint", "{tmp}/missing", "--out", "{tmp}/s.png"], 2,
     r"--checkpoint .*missing: no checkpoint folder or exported model"),
    ("ckpt-hand-edited", ["sample", "--checkpoint", "{edited}", "--out", "{tmp}/s.png"], 2,
     r"config\.json: was changed after it was written \(config_sha256 does not match"),
    ("ckpt-no-model", ["sample", "--checkpoint", "{no_model}", "--out", "{tmp}/s.png"], 2,
     r"config\.json: has no valid 'model' section"),
    ("ckpt-no-schedule", ["sample", "--checkpoint", "{no_schedule}", "--out", "{tmp}/s.png"], 2,
     r"config\.json: has no valid 'schedule' section"),
    ("ckpt-truncated", ["sample", "--checkpoint", "{truncated}", "--out", "{tmp}/s.png"], 2,
     r"ema\.safetensors: sha256 does not match"),
    # ----- handout and the command itself
    ("timeout=0", ["handout", "x.ipynb", "--timeout", "0"], 2, r"argument --timeout: must be an int >= 1, got '0'"),
    ("timeout<0", ["handout", "x.ipynb", "--timeout", "-5"], 2, r"argument --timeout: must be an int >= 1, got '-5'"),
    ("handout-missing", ["handout", "{tmp}/missing.ipynb", "--no-pdf"], 2, r"neither a folder nor an existing \.ipynb"),
    ("handout-empty", ["handout", "{folder}", "--no-pdf"], 2, r"paths: no notebooks"),
    ("no-command", [], 2, r"the following arguments are required: COMMAND"),
    ("bad-command", ["bogus"], 2, r"argument COMMAND: invalid choice: 'bogus'"),
]


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    """A 4-step conditional run, and broken copies of its checkpoint."""
    tmp = tmp_path_factory.mktemp("bad")
    run = tmp / "run"
    assert main(["train", *TINY, "--steps", "4", "--conditional", "--checkpoint-dir", str(run)]) == 0
    (tmp / "a-file").write_text("not a folder")
    (tmp / "grid.png").mkdir()
    found = {"run": run, "tmp": tmp, "file": tmp / "a-file", "folder": tmp / "grid.png"}
    edits = {"edited": lambda c: c["schedule"].update(num_timesteps=50),
             "no_model": lambda c: c.pop("model"), "no_schedule": lambda c: c.pop("schedule")}
    for name, edit in edits.items():
        step = shutil.copytree(run / "step-000004", tmp / name)
        config = json.loads((step / "config.json").read_text())
        edit(config)
        sealed = config if name == "edited" else checkpoint_io.seal_config(config)
        (step / "config.json").write_text(json.dumps(sealed))
        found[name] = step
    found["truncated"] = shutil.copytree(run / "step-000004", tmp / "truncated")
    ema = found["truncated"] / "ema.safetensors"
    ema.write_bytes(ema.read_bytes()[:100])
    return found


def run_main(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's usage errors
        code = stop.code
    return code, capsys.readouterr()


CASES = [row if hasattr(row, "marks") else pytest.param(*row[1:], id=row[0]) for row in ROWS]


@pytest.mark.parametrize("argv, code, message", CASES)
def test_bad_input_is_one_clear_line(argv, code, message, places, capsys, monkeypatch):
    monkeypatch.chdir(places["tmp"])  # nothing may land in the repository
    argv = [a.format(**places) for a in argv]
    status, out = run_main(argv, capsys)
    errors = [line for line in out.err.splitlines() if line.startswith("diffviz: error:")]
    assert status == code, out.err
    assert "Traceback" not in out.err and len(errors) == 1, out.err
    assert re.search(message, errors[0]), errors[0]
    assert not list(places["tmp"].rglob("*.tmp")), "a temp file was left behind"
    assert not (places["tmp"] / "s.png").exists()


def test_debug_shows_the_traceback(places):
    with pytest.raises(ValueError, match=r"--class must be in \[0, 9\]"):
        main(["sample", "--checkpoint", str(places["run"]), "--class", "12", "--steps", "2", "--debug",
              "--out", str(places["tmp"] / "d.png")])


def test_jpeg_spacing_and_the_real_step_count(places, capsys):
    out = places["tmp"] / "grid.jpg"
    assert main(["sample", "--checkpoint", str(places["run"]), "--out", str(out), "--n", "4", "--steps", "3",
                 "--spacing", "leading", "--threads", "1"]) == 0
    assert Image.open(out).format == "JPEG"
    assert "(4 samples, ddim, 3 steps (leading)" in capsys.readouterr().out


def test_a_new_run_says_what_it_defaults_to(places, capsys, monkeypatch):
    monkeypatch.chdir(places["tmp"])
    assert main(["train", "--model", "tiny", "--batch-size", "8", "--steps", "1", "--threads", "1",
                 "--no-progress", "--checkpoint-every", "1"]) == 0
    err = capsys.readouterr().err
    assert "no --dataset given: training on 'digits'" in err
    folder = re.search(r"no --checkpoint-dir given: saving the run in (\S+)", err).group(1)
    assert folder.startswith("runs/digits-tiny-") and (places["tmp"] / folder / "latest").is_file()
