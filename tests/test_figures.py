"""The evaluation's maps figure: colour bars clear of the profile, which has axis labels and a legend."""

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="matplotlib (the 'plots' extra) draws the figures")

from tgv_deploy.evaluate import Case, Outcome, maps_figure  # noqa: E402


def _outcome():
    yy, xx = np.mgrid[:48, :48]
    target = ((xx > 20) & (yy > 10)).astype(np.float32)
    lambda1 = 0.5 + 0.4 * np.abs(np.gradient(target)[1]) + 0.01 * xx
    maps = np.stack([np.full_like(target, 0.3), lambda1])
    return Outcome(Case("edge", np.zeros((48, 48), np.complex64), None, target, "test"), maps=maps)


def test_maps_figure_layout_and_labels():
    fig = maps_figure(_outcome())
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    images = [ax for ax in fig.axes if ax.images and ax.get_label() != "<colorbar>"]
    colorbars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    profile = next(ax for ax in fig.axes if ax.lines and ax.get_legend() is not None)
    twin = next(ax for ax in fig.axes if ax is not profile and profile.get_shared_x_axes().joined(ax, profile))
    assert len(images) == 2 and len(colorbars) == 2
    # the Lambda1 colour bar (with its tick labels) ends before the profile's y axis labels begin
    right_colorbar = max(colorbars, key=lambda ax: ax.get_position().x0)
    assert right_colorbar.get_tightbbox(renderer).x1 < profile.get_tightbbox(renderer).x0
    assert profile.get_xlabel() and profile.get_ylabel() and twin.get_ylabel()
    assert [t.get_text() for t in profile.get_legend().get_texts()] == ["Lambda1", "target"]
    import matplotlib.pyplot as plt

    plt.close(fig)
