"""Export the EMA weights of a training run as the shipped pretrained model (fp16 safetensors + JSON).

    python data/export_pretrained.py runs/mnist-tiny --name mnist_unet

The JSON keeps the run's training config, step, images seen and wall time, for the model card.
"""
import argparse
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from diffviz.checkpoint import export_model, load_checkpoint  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a checkpoint dir (its latest checkpoint is used) or a step-XXXXXX folder")
    parser.add_argument("--name", default="mnist_unet", help="file prefix inside data/pretrained/")
    parser.add_argument("--out", type=Path, help="write PREFIX.json + PREFIX.safetensors here instead of "
                        "data/pretrained/NAME")
    parser.add_argument("--hardware", default=f"{platform.machine()} CPU",
                        help="where the run trained, for the model card (e.g. '2-core AMD EPYC CPU, 1 thread')")
    args = parser.parse_args()
    model, schedule, meta = load_checkpoint(args.run, ema=True)
    keep = {k: meta[k] for k in ("step", "images_seen", "wall_time", "train_config") if k in meta}
    keep["hardware"] = args.hardware
    out = export_model(model, schedule, args.out or Path(__file__).parent / "pretrained" / args.name, metadata=keep)
    print(f"wrote {out} (step {keep.get('step')}, {keep.get('images_seen')} images seen)")


if __name__ == "__main__":
    main()
