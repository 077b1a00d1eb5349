"""benchmarks/gpu_session.py: the one-command GPU session. Its GPU stages cannot run here; these tests
check how it sizes the training run from a measured speed, and run its first stage in --smoke mode."""
import importlib.util
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_session.py"


def load():
    spec = importlib.util.spec_from_file_location("gpu_session", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_training_speed_is_read_from_the_throughput_rows(tmp_path):
    module = load()
    session = module.Session(tmp_path, budget=100, smoke=True)
    assert module.steps_per_second(session) is None  # no stage-1 file yet
    rows = [dict(size="gray", batch=128, img_per_s=1000.0), dict(size="default", batch=128, img_per_s=12800.0),
            dict(size="default", batch=128, note="needs CUDA")]
    (tmp_path / "throughput.json").write_text(json.dumps({"train": rows}))
    assert module.steps_per_second(session) == pytest.approx(100.0)  # 12,800 images / 128 per step
    (tmp_path / "throughput.json").write_text("{not json")
    assert module.steps_per_second(session) is None


def test_a_smoke_throughput_stage_writes_its_results_and_logs(tmp_path):
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), "--smoke", "--stages", "throughput"],
                          capture_output=True, text=True, timeout=300, env={**__import__("os").environ,
                                                                           "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "throughput: exit 0" in (out / "log.txt").read_text()
    assert json.loads((out / "throughput.json").read_text())["partial"] is False
    with tarfile.open(out / "logs.tar") as tar:
        assert "logs/throughput.log" in tar.getnames()
