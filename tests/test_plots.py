"""diffviz.plots: pictures are exactly the arrays they were given (PNG round trips, trace data)."""
import base64

import matplotlib.text
import numpy as np
import plotly.graph_objects as go
import pytest
from matplotlib.figure import Figure

from diffviz import plots, viz
from diffviz.images import make_grid
from diffviz.schedules import cosine_schedule, linear_schedule

RNG = np.random.default_rng(0)


def test_to_png_round_trip_with_nearest_neighbour_upscaling():
    gray = RNG.integers(0, 256, (5, 7), dtype=np.uint8)
    rgb = RNG.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    assert np.array_equal(plots.png_to_array(plots.to_png(gray)), gray)
    assert np.array_equal(plots.png_to_array(plots.to_png(rgb[..., :1])), rgb[..., 0])
    big = plots.png_to_array(plots.to_png(rgb, scale=3))
    assert big.shape == (12, 18, 3) and np.array_equal(big[::3, ::3], rgb) and np.array_equal(big[2::3, 2::3], rgb)
    with pytest.raises(ValueError, match="uint8"):
        plots.to_png(gray.astype(np.float32))


def test_display_scale_enlarges_only_small_images():
    assert plots.display_scale(28) == 9 and plots.display_scale(117) == 2
    assert plots.display_scale(128) == 1 and plots.display_scale(512) == 1


def test_image_png_is_make_grid_upscaled():
    x = RNG.uniform(-1.2, 1.2, (16, 1, 28, 28)).astype(np.float32)  # a 4x4 grid, values outside [-1, 1] clip
    shown = plots.png_to_array(plots.image_png(x))
    grid = make_grid(x)[..., 0]
    scale = plots.display_scale(grid.shape[0])
    assert shown.shape == (grid.shape[0] * scale, grid.shape[1] * scale)
    assert np.array_equal(shown[::scale, ::scale], grid)
    single = plots.png_to_array(plots.image_png(x[0], scale=1))  # (C, H, W) is one image
    assert np.array_equal(single, make_grid(x[:1])[..., 0])


def test_images_with_nan_or_inf_are_refused_by_name():
    x = np.zeros((2, 1, 4, 4), np.float32)
    x[0, 0, 1, 1], x[1, 0, 2, 2] = np.nan, np.inf
    with pytest.raises(ValueError, match=r"x must be finite, got 1 NaN and 1 ±inf"):
        plots.image_png(x)
    with pytest.raises(ValueError, match="image must be finite"):
        viz.as_image_batch(x)
    with pytest.raises(TypeError, match="x must hold real numbers"):
        plots.image_png(np.array([["a"]]))


def test_data_uri_holds_the_png():
    png = plots.to_png(np.zeros((2, 2), np.uint8))
    uri = plots.data_uri(png)
    assert uri.startswith("data:image/png;base64,") and base64.b64decode(uri.split(",")[1]) == png


def test_pixel_histogram_plot_draws_given_densities_and_the_normal_pdf():
    fig = Figure()
    ax = fig.subplots()
    values = RNG.standard_normal(5000)
    hist = {"linear": viz.pixel_histogram(values), "cosine": viz.pixel_histogram(values * 0.5)}
    steps = plots.plot_pixel_histogram(ax, hist)
    assert set(steps) == {"linear", "cosine"}
    assert np.allclose(steps["cosine"].get_data().values, hist["cosine"][0])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["N(0, 1)", "linear", "cosine"]
    assert ax.get_xlabel() == "pixel value of x_t" and ax.get_ylabel() == "density"
    x, y = ax.lines[0].get_data()
    assert np.allclose(y, viz.standard_normal_pdf(x))


def test_forward_coefficient_markers_sit_on_the_curves():
    fig = Figure()
    ax = fig.subplots()
    schedules = (("linear", linear_schedule(50)), ("cosine", cosine_schedule(50)))
    coef = {k: viz.forward_coefficients(s) for k, s in schedules}
    markers = plots.plot_forward_coefficients(ax, coef, t=10)
    plots.set_forward_markers(markers, coef, 37)
    for (signal, noise), c in zip(markers, coef.values()):
        assert signal.get_xdata()[0] == 37 and signal.get_ydata()[0] == pytest.approx(c["sqrt_alpha_bar"][37])
        assert noise.get_ydata()[0] == pytest.approx(c["sqrt_one_minus_alpha_bar"][37])
    assert "paper" in ax.get_xlabel()


def test_plot_schedules_three_panels_with_visited_markers():
    fig = Figure()
    axes = fig.subplots(1, 3)
    curves = {"linear": viz.schedule_curves(linear_schedule(100))}
    plots.plot_schedules(axes, curves, visited=np.array([99, 49, 0]))
    assert axes[0].get_yscale() == "log"
    assert [ax.get_title() for ax in axes][:2] == ["β_t (log scale)", "ᾱ_t"]
    x, y = axes[1].lines[-1].get_data()
    assert list(x) == [99, 49, 0] and np.allclose(y, curves["linear"]["alpha_bar"][[99, 49, 0]])


def test_blit_renderer_redraws_only_what_changed():
    fig = Figure(figsize=(3, 2), dpi=50)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1])
    (marker,) = ax.plot([0.2], [0.2], "o")
    renderer = plots.BlitRenderer(fig, [marker])
    first = renderer.png()
    marker.set_data([0.8], [0.8])
    second = renderer.png()
    assert first != second
    assert plots.png_to_array(second).shape == (100, 150, 3)
    assert renderer.png() == second  # deterministic


def test_filmstrips_label_rows_and_columns():
    cells = [[RNG.integers(0, 256, (8, 8), dtype=np.uint8) for _ in range(3)] for _ in range(2)]
    fig = plots.image_filmstrip(cells, ["a", "b"], ["t=0", "t=1", "t=2"], title="x")
    assert len(fig.axes) == 6 and fig.axes[0].get_title() == "t=0" and fig.axes[3].get_ylabel() == "b"
    points = [[RNG.standard_normal((20, 2)) for _ in range(2)]]
    fig = plots.scatter_filmstrip(points, ["forward"], ["x_0", "t=5"], background=points[0][0])
    assert len(fig.axes) == 2 and fig.axes[0].get_xlim() == (-3.5, 3.5)


def test_panels_and_slider_frames():
    png = plots.to_png(np.zeros((4, 4), np.uint8))
    fig = plots.image_panels_figure(["a", "b"], [png, png])
    assert [type(d).__name__ for d in fig.data] == ["Image", "Image"] and fig.data[0].source == plots.data_uri(png)
    frames = [(t, [go.Image(source=plots.data_uri(png))] * 2) for t in (0, 5, 9)]
    plots.add_slider_frames(fig, frames, [0, 1], prefix="t = ", active=1)
    assert [f.name for f in fig.frames] == ["0", "5", "9"] and list(fig.frames[0].traces) == [0, 1]
    slider = fig.layout.sliders[0]
    assert slider.active == 1 and [s.label for s in slider.steps] == ["0", "5", "9"]


def test_scatter_png_is_a_square_picture():
    shown = plots.png_to_array(plots.scatter_png(RNG.standard_normal((100, 2)), size_px=160))
    assert shown.shape == (160, 160, 3) and shown.min() < 128  # some dots were drawn


def test_filmstrip_cells_follow_the_picture_shape():
    """Image cells keep the pictures' aspect ratio; point clouds (N, 2) get square cells whatever N."""
    from diffviz import plots
    wide = np.zeros((10, 20), dtype=np.uint8)
    w, h = plots.image_filmstrip([[wide, wide]], ["row"], ["a", "b"], cell_inches=2.0).get_size_inches()
    assert (w, h) == pytest.approx((2 * 2.0 + 0.8, 1.0 + 0.9))
    points = np.zeros((1000, 2))
    w, h = plots.scatter_filmstrip([[points]] * 2, ["r1", "r2"], ["a"], cell_inches=1.8).get_size_inches()
    assert (w, h) == pytest.approx((1.8 + 0.8, 2 * 1.8 + 0.9))


def test_filmstrips_fit_the_printed_page_with_labels_of_at_least_8_pt_that_do_not_overlap():
    """A handout prints a filmstrip (6 columns by default) at its own size (``explorers.html``): it must fit the page's text
    column, every label must be ≥ 8 pt, and the column titles (t = … (paper …)) must not collide."""
    cells = [[RNG.integers(0, 256, (28, 28), dtype=np.uint8) for _ in range(6)] for _ in range(3)]
    labels = [f"t = {t} (paper {t + 1})" for t in range(994, 1000)]
    fig = plots.image_filmstrip(cells, ["x_t", "ε̂", "x̂_0"], labels, title="a title")
    assert fig.get_size_inches()[0] <= plots.PRINT_WIDTH_INCHES
    texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_text()]
    assert texts and min(t.get_fontsize() for t in texts) >= 8
    fig.draw_without_rendering()  # lays out the constrained figure
    boxes = [fig.axes[c].title.get_window_extent() for c in range(6)]
    assert all(a.x1 <= b.x0 for a, b in zip(boxes, boxes[1:])), "column titles overlap"
