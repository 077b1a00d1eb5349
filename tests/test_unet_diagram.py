"""diffviz.unet_diagram: one box per block of shape_tour, skips paired as UNet.forward pops them."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest
from matplotlib.patches import FancyBboxPatch

import diffviz as dv
from diffviz.unet import preset
from diffviz.unet_blocks import LevelBlock
from diffviz.unet_diagram import diagram_boxes, draw_unet


@pytest.mark.parametrize("config", [preset("tiny", num_classes=10), preset("small", image_size=8),
                                    preset("tiny", block_type="convnext", attention_type="linear")])
def test_one_box_per_block_of_shape_tour(config):
    import torch
    model = dv.UNet(config)
    tour = dv.shape_tour(model, torch.zeros(1, 1, config.image_size, config.image_size), 0)
    fig = draw_unet(model)
    boxes = [p for p in fig.axes[0].patches if isinstance(p, FancyBboxPatch)]
    assert len(boxes) == len(tour)
    listed = diagram_boxes(model)
    assert [b["shape"] for b in listed] == [shape[1:] for _, shape in tour]
    plt.close(fig)


def test_skips_pair_down_outputs_with_up_blocks_by_channels():
    model = dv.UNet(preset("small"))
    boxes = diagram_boxes(model)
    ups = [b for b in boxes if b["name"].startswith("up.")]
    for box, block in zip(ups, model.up):
        if isinstance(block, LevelBlock):  # its input = previous output + the skip it concatenates
            previous = boxes[box["column"] - 1]["shape"][0]
            assert block.res.conv1.in_channels == previous + boxes[box["skip_from"]]["shape"][0]
    assert sorted(b["skip_from"] for b in ups if b["skip_from"] is not None) == list(range(len(model.down) + 1))


def test_rejects_a_non_unet():
    with pytest.raises(TypeError, match="model must be a UNet"):
        diagram_boxes(dv.ToyMLP(dv.ToyConfig()))
