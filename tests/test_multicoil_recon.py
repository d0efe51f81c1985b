"""Multi-coil reconstruction end to end: the model with coil maps, the runtime pipeline, `infer` on
fastMRI multi-coil and ISMRMRD raw data, and multi-coil training batches."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from test_multicoil import ROWS, WIDTH, _write_ismrmrd
from tgv_deploy.cli import main
from tgv_deploy.data.coil_sim import simulate_coil_maps
from tgv_deploy.dft import ifft2c
from tgv_deploy.metrics import psnr
from tgv_deploy.models.checkpoint import load_checkpoint
from tgv_deploy.registry import resolve_model
from tgv_deploy.solvers.admm_sense import admm_tgv_sense_channels
from tgv_deploy.training.data import Corruption, SyntheticSlices, make_batch


#: A fastMRI-like header scaled down: 64 x 40 encoded with 2x readout oversampling, 32 x 32 recon.
OVERSAMPLED_HEADER = (b'<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD"><encoding>'
                      b"<encodedSpace><matrixSize><x>64</x><y>40</y><z>1</z></matrixSize>"
                      b"<fieldOfView_mm><x>440</x><y>220</y><z>5</z></fieldOfView_mm></encodedSpace>"
                      b"<reconSpace><matrixSize><x>32</x><y>32</y><z>1</z></matrixSize>"
                      b"<fieldOfView_mm><x>220</x><y>220</y><z>5</z></fieldOfView_mm></reconSpace>"
                      b"</encoding></ismrmrdHeader>")


def _channels(z: np.ndarray, axis: int) -> torch.Tensor:
    return torch.from_numpy(np.stack((z.real, z.imag), axis=axis).astype(np.float32))


def test_a_zero_coil_changes_nothing():
    """What lets a graph exported for C coils run fewer: a coil with zero map and zero data."""
    rng = np.random.default_rng(0)
    image = rng.standard_normal((12, 10)) + 1j * rng.standard_normal((12, 10))
    maps = simulate_coil_maps(rng, 3, 12, 10)
    mask = np.zeros(10)
    mask[::2] = 1
    mask[5] = 1
    k = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(maps * image, axes=(-2, -1)), norm="ortho"), axes=(-2, -1)) * mask
    f, s = _channels(k, 1)[None].double(), _channels(maps, 1)[None].double()
    m = torch.from_numpy(mask).reshape(1, 1, 1, -1)
    l0, l1 = torch.full((1, 12, 10), 0.1, dtype=torch.float64), torch.full((1, 12, 10), 0.05, dtype=torch.float64)
    x, _ = admm_tgv_sense_channels(f, s, m, l0, l1, 40)
    pad = lambda t: torch.cat((t, torch.zeros_like(t[:, :1])), 1)  # noqa: E731
    x_padded, _ = admm_tgv_sense_channels(pad(f), pad(s), m, l0, l1, 40)
    assert torch.allclose(x, x_padded, rtol=0, atol=1e-12)


def test_model_batches_multicoil_samples_like_single_runs():
    model = load_checkpoint(resolve_model("utgv-mri")).build().eval()
    corruption = Corruption("mri", (4, 4), (0.05, 0.05), ("equispaced",), multicoil_fraction=1.0, coils=(4, 4))
    batch = make_batch(SyntheticSlices(32, 32, seed=5), corruption, [0, 1], np.random.default_rng(0), coils=4)
    assert batch.f.shape == (2, 4, 2, 32, 32) and batch.coil_maps is not None and batch.coil_maps.shape == batch.f.shape
    assert batch.mask is not None
    with torch.no_grad():
        both, _ = model(batch.f, batch.mask, iterations=8, coil_maps=batch.coil_maps)
        first, _ = model(batch.f[:1], batch.mask[:1], iterations=8, coil_maps=batch.coil_maps[:1])
    assert torch.allclose(both[:1], first, rtol=1e-4, atol=1e-5)
    # the training loss reaches the U-Net through the coil-splitting solver
    model.train()
    x, _ = model(batch.f, batch.mask, iterations=4, coil_maps=batch.coil_maps)
    x.square().sum().backward()
    assert all(p.grad is not None for p in model.unet.parameters())


def test_infer_fastmri_multicoil_beats_zero_filled(tmp_path, capsys):
    source, out = tmp_path / "mc.h5", tmp_path / "out.h5"
    assert main(["synth", str(source), "--slices", "2", "--height", "64", "--width", "64", "--coils", "6",
                 "--acceleration", "4", "--center-fraction", "0.16", "--sigma", "0.05"]) in (None, 0)
    assert main(["infer", "utgv-mri", str(source), "-o", str(out), "-T", "32"]) in (None, 0)
    with h5py.File(source) as src, h5py.File(out) as result:
        target, kspace = src["reconstruction_rss"][()], src["kspace"][()]
        image = result["reconstruction"][()]
        assert image.shape == (2, 64, 64) and image.dtype == np.complex64 and result["mask"].shape == (2, 64)
    for s in range(2):
        zero_filled = np.sqrt((np.abs(ifft2c(kspace[s])) ** 2).sum(0))
        # measured: zero-filled about 22 dB, U-TGV about 27 dB on these slices
        assert psnr(target[s], np.abs(image[s])) > psnr(target[s], zero_filled) + 3.0


def test_infer_ismrmrd_raw_data_whitens_crops_and_reconstructs(tmp_path):
    path, out = tmp_path / "raw.h5", tmp_path / "out.h5"
    truth, _, _ = _write_ismrmrd(path, np.random.default_rng(7))
    assert main(["infer", "utgv-mri", str(path), "-o", str(out), "-T", "32"]) in (None, 0)
    with h5py.File(out) as result:
        image = result["reconstruction"][()]
    # one image per (repetition, slice), readout oversampling removed: the recon matrix
    assert image.shape == (4, ROWS, WIDTH)
    for index, key in enumerate(sorted(truth)):
        if key == (1, 0):
            continue  # _write_ismrmrd adds a deliberately offset second average of its centre line
        reference = np.abs(truth[key][0])
        estimate = np.abs(image[index])
        estimate = estimate * (estimate * reference).sum() / (estimate**2).sum()  # whitening rescales intensities
        assert np.linalg.norm(estimate - reference) / np.linalg.norm(reference) < 0.2  # measured 0.10-0.13 (zero-filled 0.14)


def test_multicoil_data_runs_at_the_checkpoints_multicoil_default(tmp_path):
    """A checkpoint's own multi-coil T for multi-coil data, its T for single-coil data, -T for both;
    the output records the T that ran, the contract both; a SENSE export takes the multi-coil T."""
    from conftest import make_checkpoint
    from tgv_deploy.contract import Contract
    from tgv_deploy.export.exporter import ExportConfig, build_graph

    checkpoint = make_checkpoint(tmp_path / "m.pt", solver="admm", iterations=3, multicoil_iterations=5, height=32, width=32)
    multi, single = tmp_path / "mc.h5", tmp_path / "sc.h5"
    main(["synth", str(multi), "--slices", "1", "--height", "32", "--width", "32", "--coils", "4",
          "--acceleration", "4", "--center-fraction", "0.25"])
    main(["synth", str(single), "--slices", "1", "--height", "32", "--width", "32", "--acceleration", "4"])
    runs = {"multi": (multi, []), "single": (single, []), "multi-T4": (multi, ["-T", "4"]), "one coil": (multi, ["--coils", "1"]),
            "multi-T5": (multi, ["-T", "5"])}
    recorded, images = {}, {}
    for name, (source, options) in runs.items():
        out = tmp_path / f"{name}.h5"
        assert main(["infer", str(checkpoint), str(source), "-o", str(out), *options]) in (None, 0)
        with h5py.File(out) as result:
            recorded[name] = int(result.attrs["iterations"]), Contract.from_json(result.attrs["contract"]).multicoil_iterations
            images[name] = result["reconstruction"][()]
    assert recorded == {"multi": (5, 5), "single": (3, 5), "multi-T4": (4, None), "one coil": (3, 5), "multi-T5": (5, None)}
    np.testing.assert_array_equal(images["multi"], images["multi-T5"])  # what ran, not only what was recorded
    assert not np.array_equal(images["multi"], images["multi-T4"])
    ckpt = load_checkpoint(checkpoint)
    assert build_graph(ckpt, ExportConfig(coils=2, verify=False)).contract.iterations == 5
    exported = build_graph(ckpt, ExportConfig(verify=False)).contract
    assert exported.iterations == 3 and "multicoil_iterations" not in exported.to_dict()


def test_compression_to_one_coil_takes_the_single_coil_path(tmp_path):
    source, out = tmp_path / "mc.h5", tmp_path / "out.h5"
    main(["synth", str(source), "--slices", "1", "--height", "32", "--width", "32", "--coils", "4",
          "--acceleration", "4", "--center-fraction", "0.25"])
    assert main(["infer", "utgv-mri", str(source), "-o", str(out), "-T", "8", "--coils", "1"]) in (None, 0)
    with h5py.File(out) as result:
        assert result["reconstruction"].shape == (1, 32, 32)


@pytest.mark.parametrize("coils", [0, 5])
def test_bad_coil_counts_are_user_errors(tmp_path, coils):
    source, out = tmp_path / "mc.h5", tmp_path / "out.h5"
    main(["synth", str(source), "--slices", "1", "--height", "32", "--width", "32", "--coils", "4",
          "--acceleration", "4", "--center-fraction", "0.25"])
    with pytest.raises(SystemExit) as exit_info:
        main(["infer", "utgv-mri", str(source), "-o", str(out), "--coils", str(coils)])
    assert exit_info.value.code in (1, 2, 3) and not out.exists()


@pytest.mark.parametrize("name", ["utgv-mri", "utgv-mri-pdhg"])
def test_multicoil_maps_are_the_single_coil_maps_times_the_learned_gain(name):
    """One coil of ones gives the U-Net the same A^H f as single-coil data; the multi-coil maps are
    then the single-coil ones times exp(log_coil_gain) (p_ref / p) ** gamma, p the sampled fraction:
    learned in ``utgv-mri``, DEFAULT_COIL_GAIN and gamma = 0 for checkpoints written before the
    parameters existed (``utgv-mri-pdhg``)."""
    from tgv_deploy.models.utgv import COIL_REFERENCE_FRACTION, DEFAULT_COIL_GAIN

    checkpoint = load_checkpoint(resolve_model(name))
    model = checkpoint.build()
    if "log_coil_gain" in checkpoint.state_dict:
        gain = torch.exp(checkpoint.state_dict["log_coil_gain"]).reshape(1, 2, 1, 1)
        assert not torch.allclose(gain.flatten(), torch.full((2,), DEFAULT_COIL_GAIN))  # it moved in training
    else:
        gain = torch.full((1, 2, 1, 1), DEFAULT_COIL_GAIN)
    exponent = checkpoint.state_dict.get("coil_acceleration_exponent", torch.zeros(2)).reshape(1, 2, 1, 1)
    rng = np.random.default_rng(1)
    k = (rng.standard_normal((24, 20)) + 1j * rng.standard_normal((24, 20))).astype(np.complex64)
    mask = torch.zeros(1, 1, 1, 20)
    mask[..., ::2] = 1
    mask[..., 10] = 1
    gain = gain * (COIL_REFERENCE_FRACTION / mask.mean()) ** exponent
    assert torch.allclose(model.coil_gain(mask), gain)
    f = _channels(k, 0)[None] * mask
    ones = torch.zeros(1, 1, 2, 24, 20)
    ones[:, :, 0] = 1
    with torch.no_grad():
        _, single = model(f, mask, iterations=2)
        _, multi = model(f[:, None], mask, iterations=2, coil_maps=ones)
    assert torch.allclose(multi, gain * single, rtol=1e-5, atol=1e-7)


def test_the_multicoil_gain_follows_the_sampled_fraction_by_its_exponent():
    """Per image of a batch: halving the sampled fraction multiplies each map's gain by 2 ** gamma;
    at the reference fraction the factor is the gain alone; a fresh model starts at the documented gamma."""
    from tgv_deploy.models.config import ModelConfig
    from tgv_deploy.models.utgv import COIL_REFERENCE_FRACTION, INITIAL_COIL_ACCELERATION_EXPONENT, build_model

    model = build_model(ModelConfig(kind="utgv", task="mri"))
    assert torch.allclose(model.coil_acceleration_exponent, torch.full((2,), INITIAL_COIL_ACCELERATION_EXPONENT))
    with torch.no_grad():
        model.coil_acceleration_exponent.copy_(torch.tensor([0.5, 1.5]))
    mask = torch.zeros(3, 1, 1, 48)
    mask[0, ..., ::4] = 1  # p = 1/4
    mask[1, ..., ::8] = 1  # p = 1/8
    mask[2, ..., :8] = 1  # p = 1/6, the reference
    factor = model.coil_gain(mask)
    assert factor.shape == (3, 2, 1, 1)
    assert torch.allclose(factor[1] / factor[0], torch.tensor([2**0.5, 2**1.5]).reshape(2, 1, 1), rtol=1e-5)
    assert abs(mask[2].mean().item() - COIL_REFERENCE_FRACTION) < 1e-7
    assert torch.allclose(factor[2], torch.exp(model.log_coil_gain).reshape(2, 1, 1), rtol=1e-5)
    # a 2D mask (B, 1, H, W) with the same sampled fraction gives the same factor
    two_d = mask.expand(3, 1, 5, 48).clone()
    assert torch.allclose(model.coil_gain(two_d), factor)


def test_a_header_that_no_longer_matches_the_kspace_does_not_crop_it(tmp_path):
    """fastMRI headers say 640 x 368 encoded, 320 x 320 recon; k-space rebuilt at 320 rows under such
    a header has no oversampling left to remove (and is cropped to the recon matrix only)."""
    from tgv_deploy.data.fastmri import write_fastmri
    from tgv_deploy.data.multicoil import prepare, read_fastmri_multicoil

    rng = np.random.default_rng(3)
    maps = simulate_coil_maps(rng, 4, 32, 40)
    image = rng.standard_normal((32, 40))
    kspace = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(maps * image, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    path = write_fastmri(tmp_path / "rebuilt.h5", kspace[None].astype(np.complex64), header=OVERSAMPLED_HEADER)
    sample = read_fastmri_multicoil(path)[0]
    assert sample.geometry.readout_oversampling == 2.0
    assert prepare(sample).kspace.shape == (4, 32, 40)


@pytest.mark.parametrize("with_mask", [True, False])
def test_single_coil_fastmri_under_an_oversampled_header_comes_back_at_the_recon_matrix(tmp_path, with_mask):
    """fastMRI single-coil knee files: 640 x 368 acquired, 320 x 320 recon (reconstruction_esc). The
    readout oversampling is removed and the image cropped to the recon matrix, so the output is the
    reconstruction of the k-space without the oversampling, cropped (here 64 x 40 -> 32 x 32)."""
    from tgv_deploy.data.fastmri import write_fastmri
    from tgv_deploy.dft import fft2c

    image = SyntheticSlices(32, 40, seed=5, version=2)(0)
    padded = np.zeros((64, 40), np.complex64)
    padded[16:48] = image  # the object fills the recon field of view; the oversampled rows are empty
    mask = np.zeros(40, np.float32)
    mask[::3] = 1
    mask[17:23] = 1
    # like fastMRI's knee files, empty columns outside the encoding limits even when fully sampled:
    # a file without a mask is still undersampled retrospectively, not taken as undersampled already
    acquired = mask if with_mask else np.pad(np.ones(36, np.float32), 2)
    kwargs = {"mask": mask} if with_mask else {}
    oversampled = write_fastmri(tmp_path / "knee.h5", fft2c(padded)[None] * acquired, header=OVERSAMPLED_HEADER, **kwargs)
    direct = write_fastmri(tmp_path / "direct.h5", fft2c(image)[None] * acquired, **kwargs)
    mask_options = [] if with_mask else ["--seed", "3"]
    assert main(["infer", "utgv-mri", str(oversampled), "-o", str(tmp_path / "a.h5"), "-T", "8", *mask_options]) in (None, 0)
    assert main(["infer", "utgv-mri", str(direct), "-o", str(tmp_path / "b.h5"), "-T", "8", *mask_options]) in (None, 0)
    with h5py.File(tmp_path / "a.h5") as a, h5py.File(tmp_path / "b.h5") as b:
        assert a["reconstruction"].shape == (1, 32, 32) and a["lambda1"].shape == (1, 32, 32)
        np.testing.assert_array_equal(a["mask"][()], b["mask"][()])
        expected = b["reconstruction"][0][:, 4:36]
        got = a["reconstruction"][0]
    # the same data, solved in float32 after a different chain of DFTs
    assert np.linalg.norm(got - expected) / np.linalg.norm(expected) < 1e-4


def test_an_exported_graph_refuses_the_recon_matrix_before_any_work(tmp_path, mri_onnx, capsys):
    """The size check sees the matrix after readout-oversampling removal (32 x 40 here), not the file's."""
    from tgv_deploy.data.fastmri import write_fastmri
    from tgv_deploy.dft import fft2c

    padded = np.zeros((64, 40), np.complex64)
    padded[16:48] = SyntheticSlices(32, 40, seed=5, version=2)(0)
    path = write_fastmri(tmp_path / "knee.h5", fft2c(padded)[None], header=OVERSAMPLED_HEADER)
    out = tmp_path / "out.h5"
    with pytest.raises(SystemExit) as exit_info:
        main(["infer", str(mri_onnx), str(path), "-o", str(out)])
    assert exit_info.value.code not in (0, None) and not out.exists()
    assert "input matrix 32x40 differs from the model's contract" in capsys.readouterr().err


def test_a_malformed_header_on_single_coil_data_is_ignored_as_before(tmp_path):
    """Single-coil files never needed their header; one that does not parse leaves the output at the k-space's size."""
    from tgv_deploy.data.fastmri import write_fastmri
    from tgv_deploy.dft import fft2c

    image = SyntheticSlices(32, 40, seed=5, version=2)(0)
    path = write_fastmri(tmp_path / "odd.h5", fft2c(image)[None], header=b"<ismrmrdHeader><encoding>")
    assert main(["infer", "utgv-mri", str(path), "-o", str(tmp_path / "out.h5"), "-T", "4"]) in (None, 0)
    with h5py.File(tmp_path / "out.h5") as result:
        assert result["reconstruction"].shape == (1, 32, 40)


def test_a_narrow_calibration_region_still_gives_maps(tmp_path):
    """8% of 64 lines is 5: ESPIRiT's window shrinks to the region instead of refusing the slice."""
    source, out = tmp_path / "mc.h5", tmp_path / "out.h5"
    main(["synth", str(source), "--slices", "1", "--height", "64", "--width", "64", "--coils", "4",
          "--acceleration", "4", "--center-fraction", "0.08", "--sigma", "0.02"])
    assert main(["infer", "utgv-mri", str(source), "-o", str(out), "-T", "16"]) in (None, 0)
    with h5py.File(source) as src, h5py.File(out) as result:
        target, kspace, image = src["reconstruction_rss"][0], src["kspace"][0], result["reconstruction"][0]
    zero_filled = np.sqrt((np.abs(ifft2c(kspace)) ** 2).sum(0))
    assert psnr(target, np.abs(image)) > psnr(target, zero_filled) + 2.0


def test_images_are_cropped_to_the_recon_matrix_like_fastmri_targets():
    """fastMRI: 640 x 368 acquired, 320 x 320 recon; after the readout crop (320 x 368) the image is
    centre-cropped in the phase-encode direction as fastMRI's own center_crop does."""
    from tgv_deploy.data.multicoil import Geometry, MultiCoilSlice
    from tgv_deploy.runtime.multicoil import crop_to_recon

    geometry = Geometry((640, 368, 1), (320, 320, 1), (440.0, 220.0, 5.0), (220.0, 220.0, 5.0))
    sample = MultiCoilSlice(np.zeros((2, 640, 368), np.complex64), np.ones(368, np.float32), geometry)
    image = np.arange(320 * 368, dtype=np.float32).reshape(320, 368)
    cropped = crop_to_recon(image, sample)
    assert cropped.shape == (320, 320)
    np.testing.assert_array_equal(cropped, image[:, 24:344])
    small = np.zeros((200, 300), np.float32)  # smaller than the recon matrix: left alone
    assert crop_to_recon(small, sample).shape == (200, 300)


def test_preprocessing_failures_and_overflowing_values_are_input_errors():
    from tgv_deploy.data.multicoil import MAX_ABS_VALUE, Geometry, MultiCoilSlice, prepare
    from tgv_deploy.errors import InputError

    rng = np.random.default_rng(0)
    geometry = Geometry((32, 24, 1), (32, 24, 1), (220.0, 220.0, 5.0), (220.0, 220.0, 5.0))
    kspace = (rng.standard_normal((4, 32, 24)) + 1j * rng.standard_normal((4, 32, 24))).astype(np.complex64)
    noise = (rng.standard_normal((4, 200)) + 1j * rng.standard_normal((4, 200))).astype(np.complex64)
    noise[2] = 0  # a dead channel: no whitening matrix exists
    sample = MultiCoilSlice(kspace, np.ones(24, np.float32), geometry, noise=noise)
    with pytest.raises(InputError, match="slice 0: noise covariance is not positive definite"):
        prepare(sample)
    huge = MultiCoilSlice(kspace * np.float32(10 * MAX_ABS_VALUE), np.ones(24, np.float32), geometry)
    with pytest.raises(InputError, match="rescale the data"):
        prepare(huge)
    with pytest.raises(InputError, match="expected a MultiCoilSlice"):
        prepare(kspace)  # type: ignore[arg-type]
