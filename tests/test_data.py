import h5py
import numpy as np
import pytest

from tgv_deploy.data.fastmri import read_fastmri, write_fastmri
from tgv_deploy.data.masks import MASK_TYPES, default_center_fraction, make_mask, seed_from_string
from tgv_deploy.data.mrd import is_mrd_file, read_mrd, write_mrd
from tgv_deploy.data.noise import add_kspace_noise, kspace_noise_std
import tgv_deploy.data.synthetic as synthetic
from tgv_deploy.data.synthetic import synthetic_image, synthetic_image_v2, synthetic_image_v3
from tgv_deploy.errors import InputError


@pytest.mark.parametrize("kind", sorted(MASK_TYPES))
@pytest.mark.parametrize("cf, accel", [(0.08, 4), (0.04, 8)])
def test_masks_sample_the_centre_and_about_w_over_r_lines(kind, cf, accel):
    width = 368
    mask = make_mask(kind, cf, accel)(width, seed=3)
    assert mask.shape == (width,) and set(np.unique(mask)) <= {0.0, 1.0}
    num_low = round(width * cf)
    pad = (width - num_low + 1) // 2
    assert mask[pad : pad + num_low].all()
    assert abs(mask.sum() - width / accel) < 0.35 * width / accel
    np.testing.assert_array_equal(mask, make_mask(kind, cf, accel)(width, seed=3))
    assert not np.array_equal(mask, make_mask(kind, cf, accel)(width, seed=4)) or kind == "equispaced"


def test_mask_factory_and_seeds():
    with pytest.raises(ValueError, match="unknown mask type"):
        make_mask("radial", 0.08, 4)
    with pytest.raises(ValueError):
        make_mask("random", 1.5, 4)
    assert seed_from_string("a.h5:0") == seed_from_string("a.h5:0") != seed_from_string("a.h5:1")
    assert default_center_fraction(4) == pytest.approx(0.08) and default_center_fraction(8) == pytest.approx(0.04)
    state = np.random.get_state()[1].copy()
    make_mask("random", 0.08, 4)(64, seed=1)
    np.testing.assert_array_equal(state, np.random.get_state()[1])


def test_noise_only_at_sampled_locations_with_relative_std():
    rng = np.random.default_rng(0)
    k = (rng.standard_normal((64, 64)) + 1j * rng.standard_normal((64, 64))) * 3.0
    mask = np.zeros(64, dtype=np.float32)
    mask[::2] = 1
    noisy = add_kspace_noise(k, mask, 0.1, np.random.default_rng(1))
    assert np.all(noisy[:, mask == 0] == 0)
    residual = (noisy - k)[:, mask == 1]
    expected = kspace_noise_std(k, mask, 0.1)
    assert expected == pytest.approx(0.3, rel=0.05)
    assert np.concatenate((residual.real, residual.imag)).std() == pytest.approx(expected, rel=0.05)


def test_synthetic_images_are_structured_not_flat():
    rng = np.random.default_rng(5)
    image = synthetic_image(rng, 96, 80)
    assert image.dtype == np.complex64 and image.shape == (96, 80)
    mag = np.abs(image)
    assert mag.max() == pytest.approx(1.0, rel=1e-5) and mag.min() >= 0
    assert (mag < 1e-6).mean() > 0.05  # dark background
    inside = mag > 0.05
    assert np.unique(np.round(mag[inside], 3)).size > 200  # ramps, texture, bias: not piecewise constant
    assert np.std(np.angle(image[inside])) > 0.05  # a real phase
    other = synthetic_image(np.random.default_rng(6), 96, 80)
    assert not np.allclose(np.abs(other), mag)


def _outer_band_power(image: np.ndarray) -> float:
    """What the noise estimate reads on noise-free data: the least column mean power over the
    outer half of the rows of the centred spectrum, image peak-normalised."""
    spectrum = np.fft.fftshift(np.fft.fft2(image / np.abs(image).max(), norm="ortho"))
    h = image.shape[0]
    return float(np.min(np.mean(np.abs(spectrum[np.abs(np.arange(h) - h // 2) >= h / 4]) ** 2, axis=0)))


def test_version_3_images_are_band_limited_like_an_acquisition():
    images = {version: [generate(np.random.default_rng([11, i]), 64, 72) for i in range(12)]
              for version, generate in ((2, synthetic_image_v2), (3, synthetic_image_v3))}
    for image in images[3]:
        assert image.dtype == np.complex64 and image.shape == (64, 72)
        assert np.abs(image).max() == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_array_equal(images[3][0], synthetic_image_v3(np.random.default_rng([11, 0]), 64, 72))
    # the point of version 3: far less signal where the noise estimate looks (several times, per image)
    ratio = np.median([_outer_band_power(a) / _outer_band_power(b) for a, b in zip(images[3], images[2])])
    assert ratio < 0.5


@pytest.mark.parametrize("height, width", [(16, 16), (15, 18)])
def test_version_3_keeps_the_object_where_the_fine_grid_drew_it(monkeypatch, height, width):
    """A point drawn at fine pixel (2y, 2x) is acquired at pixel (y, x), for odd and even sizes."""
    y, x = 5, 7

    def point(rng, h, w):
        image = np.zeros((h, w), np.complex64)
        image[2 * y, 2 * x] = 1.0
        return image

    monkeypatch.setattr(synthetic, "synthetic_image_v2", point)
    monkeypatch.setattr(synthetic, "PSF_WIDTH_RANGE", (0.5, 0.5))
    image = synthetic.synthetic_image_v3(np.random.default_rng(0), height, width)
    assert np.unravel_index(np.argmax(np.abs(image)), image.shape) == (y, x)
    # a constant object stays constant: the crop keeps the zero frequency where the data expects it
    monkeypatch.setattr(synthetic, "synthetic_image_v2", lambda rng, h, w: np.ones((h, w), np.complex64))
    np.testing.assert_allclose(synthetic.synthetic_image_v3(np.random.default_rng(0), height, width), 1.0, atol=1e-6)


@pytest.mark.parametrize("multicoil", [False, True])
def test_fastmri_round_trip(tmp_path, multicoil):
    rng = np.random.default_rng(0)
    shape = (3, 4, 16, 12) if multicoil else (3, 16, 12)
    k = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
    mask = (rng.random(12) > 0.5).astype(np.float32)
    target = rng.random((3, 16, 12)).astype(np.float32)
    path = write_fastmri(tmp_path / "f.h5", k, mask=mask, target=target, attrs={"patient_id": "x"})
    volume = read_fastmri(path)
    np.testing.assert_array_equal(volume.kspace, k)
    np.testing.assert_array_equal(volume.mask, np.broadcast_to(mask, (3, 12)))
    np.testing.assert_array_equal(volume.target, target)
    assert volume.multicoil is multicoil and volume.attrs["patient_id"] == "x"
    assert volume.attrs["max"] == pytest.approx(target.max())
    with h5py.File(path) as handle:
        assert ("reconstruction_rss" if multicoil else "reconstruction_esc") in handle
    assert [p.name for p in tmp_path.iterdir()] == ["f.h5"]


def test_fastmri_errors_are_one_line_input_errors(tmp_path):
    (tmp_path / "junk.h5").write_bytes(b"\x89HDF\r\n" + b"\x00" * 50)
    with h5py.File(tmp_path / "nokspace.h5", "w") as h:
        h["other"] = np.zeros(3)
    with h5py.File(tmp_path / "real.h5", "w") as h:
        h["kspace"] = np.zeros((1, 4, 4))
    with h5py.File(tmp_path / "rank.h5", "w") as h:
        h["kspace"] = np.zeros((4, 4), dtype=np.complex64)
    with h5py.File(tmp_path / "badmask.h5", "w") as h:
        h["kspace"] = np.zeros((2, 4, 6), dtype=np.complex64)
        h["mask"] = np.ones(5)
    cases = {"junk.h5": "HDF5", "nokspace.h5": "no 'kspace'", "real.h5": "complex", "rank.h5": "slices", "badmask.h5": "mask"}
    for name, match in cases.items():
        with pytest.raises(InputError, match=match) as info:
            read_fastmri(tmp_path / name)
        assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="not found"):
        read_fastmri(tmp_path / "missing.h5")


def test_mrd_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    k = (rng.standard_normal((2, 3, 16, 10)) + 1j * rng.standard_normal((2, 3, 16, 10))).astype(np.complex64)
    mask = (rng.random((2, 10)) > 0.4).astype(np.float32)
    path = write_mrd(tmp_path / "raw.h5", k, mask)
    assert is_mrd_file(path) and not is_mrd_file(write_fastmri(tmp_path / "f.h5", k[:, 0]))
    volume = read_mrd(path)
    np.testing.assert_array_equal(volume.mask, mask)
    np.testing.assert_array_equal(volume.kspace, k * mask[:, None, None, :])
    single = read_mrd(write_mrd(tmp_path / "single.h5", k[:, 0], mask))
    assert single.kspace.shape == (2, 16, 10) and not single.multicoil
    with pytest.raises(InputError):
        read_mrd(tmp_path / "f.h5")
