"""Multi-coil readers (fastMRI, ISMRMRD v1) and SPEC 1b preprocessing, on tiny files in the real layouts."""

from __future__ import annotations

import numpy as np
import pytest

from tgv_deploy.coils import noise_covariance, remove_readout_oversampling, whiten, whitening_matrix
from tgv_deploy.data.coil_sim import simulate_coil_maps
from tgv_deploy.data.fastmri import write_fastmri
from tgv_deploy.data.multicoil import (
    parse_header,
    prepare,
    read_fastmri_multicoil,
    read_ismrmrd_multicoil,
    read_multicoil,
)
from tgv_deploy.data.synthetic import brain_like_image
from tgv_deploy.dft import fft2c, ifft2c
from tgv_deploy.errors import InputError

COILS, ROWS, WIDTH, ACS = 4, 32, 28, 12  # recon rows (readout), phase-encode lines, calibration lines
OVERSAMPLED = 2 * ROWS


def _complex_normal(rng, *shape):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2)


def _mask() -> np.ndarray:
    mask = np.zeros(WIDTH, dtype=np.float32)
    mask[::2] = 1
    mask[WIDTH // 2 - ACS // 2 : WIDTH // 2 + ACS // 2] = 1
    return mask


def _oversampled_kspace(rng, maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image (ROWS, WIDTH) and the centred k-space (C, 2 ROWS, WIDTH) of its coil images padded in the readout."""
    image = brain_like_image(rng, ROWS, WIDTH).astype(np.complex128)
    padded = np.zeros((COILS, OVERSAMPLED, WIDTH), dtype=np.complex128)
    start = OVERSAMPLED // 2 - ROWS // 2
    padded[:, start : start + ROWS] = maps * image
    return image, fft2c(padded)


# Lower triangular with a positive diagonal: the Cholesky factor of the noise covariance it makes.
MIXING = np.array([[1.0, 0, 0, 0], [0.5 + 0.2j, 1.5, 0, 0], [0.1j, 0.3, 0.8, 0], [0.2, -0.4j, 0.1, 2.0]])


def _combined_vs_rss(prepared, truth_kspace: np.ndarray, noise: np.ndarray | None) -> float:
    """Max |(|sum conj(S) x_c| - rss(x_c))| on the object over max rss, for the fully sampled truth."""
    k = truth_kspace if noise is None else whiten(truth_kspace, whitening_matrix(noise_covariance(noise)))
    coil_images = ifft2c(remove_readout_oversampling(k, ROWS))
    rss = np.sqrt(np.sum(np.abs(coil_images) ** 2, axis=0))
    combined = np.abs(np.sum(prepared.maps.conj() * coil_images, axis=0))
    obj = rss > 0.1 * rss.max()
    return float(np.abs(combined - rss)[obj].max() / rss.max())


# Measured over 20 slices of these files (12 calibration lines, 32 x 28 after cropping): ESPIRiT
# <= 1e-4 and Walsh <= 7e-3 of the maximum; maps applied to the unwhitened coil images are off by
# >= 0.05, and a mirrored or wrong-slice map by more.
ESPIRIT_COMBINE, WALSH_COMBINE, UNWHITENED_MIN = 1e-3, 1.5e-2, 3e-2


# --- ISMRMRD ---------------------------------------------------------------------------------


def _write_ismrmrd(path, rng):
    ismrmrd = pytest.importorskip("ismrmrd", reason="the 'ismrmrd' package (mrd extra) is not installed")
    xsd = ismrmrd.xsd
    encoded = xsd.encodingSpaceType(
        matrixSize=xsd.matrixSizeType(x=OVERSAMPLED, y=WIDTH, z=1),
        fieldOfView_mm=xsd.fieldOfViewMm(x=2 * 220.0, y=200.0, z=5.0),
    )
    recon = xsd.encodingSpaceType(
        matrixSize=xsd.matrixSizeType(x=ROWS, y=WIDTH, z=1), fieldOfView_mm=xsd.fieldOfViewMm(x=220.0, y=200.0, z=5.0)
    )
    limits = xsd.encodingLimitsType(
        kspace_encoding_step_1=xsd.limitType(minimum=0, maximum=WIDTH - 1, center=WIDTH // 2),
        slice=xsd.limitType(minimum=0, maximum=1, center=0),
        repetition=xsd.limitType(minimum=0, maximum=1, center=0),
    )
    conditions = xsd.experimentalConditionsType(H1resonanceFrequency_Hz=63_500_000)
    header = xsd.ismrmrdHeader(experimentalConditions=conditions)
    header.encoding.append(xsd.encodingType(encodedSpace=encoded, reconSpace=recon, encodingLimits=limits,
                                            trajectory=xsd.trajectoryType("cartesian")))
    maps = simulate_coil_maps(rng, COILS, ROWS, WIDTH)
    noise = [MIXING @ _complex_normal(rng, COILS, 256) for _ in range(4)]
    truth = {}
    mask = _mask()
    acs = np.arange(WIDTH // 2 - ACS // 2, WIDTH // 2 + ACS // 2)
    calibration_only = WIDTH // 2 + ACS // 2 + 1  # an odd line the imaging mask skips
    dataset = ismrmrd.Dataset(str(path), "/dataset", create_if_needed=True)
    try:
        dataset.write_xml_header(xsd.ToXML(header))
        for n in noise:
            acq = ismrmrd.Acquisition.from_array(n.astype(np.complex64))
            acq.set_flag(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
            dataset.append_acquisition(acq)
        for repetition in range(2):
            for slice_index in range(2):
                image, kspace = _oversampled_kspace(rng, maps)
                raw = MIXING @ kspace.reshape(COILS, -1)
                raw = raw.reshape(kspace.shape).astype(np.complex64)
                truth[repetition, slice_index] = (image, raw)
                lines = list(np.flatnonzero(mask)) + [calibration_only]
                for line in lines:
                    acq = ismrmrd.Acquisition.from_array(np.ascontiguousarray(raw[:, :, line]))
                    acq.idx.kspace_encode_step_1 = int(line)
                    acq.idx.slice, acq.idx.repetition = slice_index, repetition
                    acq.center_sample = OVERSAMPLED // 2
                    acq.position[:] = (0.0, 0.0, 5.0 * slice_index)
                    acq.read_dir[:], acq.phase_dir[:], acq.slice_dir[:] = (1.0, 0, 0), (0, 1.0, 0), (0, 0, 1.0)
                    if line == calibration_only:
                        acq.set_flag(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION)
                    elif line in acs:
                        acq.set_flag(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING)
                    dataset.append_acquisition(acq)
        # A second average of the centre line of (repetition 1, slice 0): the reader averages.
        extra = np.ascontiguousarray(truth[1, 0][1][:, :, WIDTH // 2] + 2.0)
        acq = ismrmrd.Acquisition.from_array(extra)
        acq.idx.kspace_encode_step_1, acq.idx.slice, acq.idx.repetition, acq.idx.average = WIDTH // 2, 0, 1, 1
        dataset.append_acquisition(acq)
    finally:
        dataset.close()
    return truth, np.concatenate(noise, axis=1), calibration_only


def test_ismrmrd_reader_known_answers(tmp_path):
    rng = np.random.default_rng(20)
    path = tmp_path / "raw.h5"
    truth, noise, calibration_only = _write_ismrmrd(path, rng)
    samples = read_ismrmrd_multicoil(path)
    assert [(s.repetition, s.slice) for s in samples] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    mask = _mask()
    for sample in samples:
        raw = truth[sample.repetition, sample.slice][1].copy()
        if (sample.repetition, sample.slice) == (1, 0):
            raw[:, :, WIDTH // 2] += 1.0  # mean of raw and raw + 2
        assert sample.kspace.shape == (COILS, OVERSAMPLED, WIDTH) and sample.kspace.dtype == np.complex64
        np.testing.assert_array_equal(sample.mask, mask)
        np.testing.assert_allclose(sample.kspace, raw * mask, rtol=0, atol=1e-5 * np.abs(raw).max())
        expected_calibration = np.zeros(WIDTH, dtype=np.float32)
        expected_calibration[WIDTH // 2 - ACS // 2 : WIDTH // 2 + ACS // 2] = 1
        expected_calibration[calibration_only] = 1
        np.testing.assert_array_equal(sample.calibration_mask, expected_calibration)
        line = calibration_only
        np.testing.assert_allclose(sample.calibration_kspace[:, :, line], raw[:, :, line], atol=1e-5 * np.abs(raw).max())
        assert sample.mask[calibration_only] == 0  # calibration-only lines are not data
        np.testing.assert_allclose(sample.noise, noise.astype(np.complex64))
        geometry = sample.geometry
        assert geometry.encoded_matrix == (OVERSAMPLED, WIDTH, 1) and geometry.recon_matrix == (ROWS, WIDTH, 1)
        assert geometry.recon_fov_mm == (220.0, 200.0, 5.0) and geometry.readout_oversampling == 2.0
        assert geometry.position == (0.0, 0.0, 5.0 * sample.slice) and geometry.slice_dir == (0.0, 0.0, 1.0)


def test_ismrmrd_prepare_whitens_crops_and_estimates_maps(tmp_path):
    rng = np.random.default_rng(21)
    path = tmp_path / "raw.h5"
    truth, noise, _ = _write_ismrmrd(path, rng)
    sample = read_multicoil(path)[1]
    prepared = prepare(sample)
    expected_whitening = whitening_matrix(noise_covariance(noise.astype(np.complex64)))
    np.testing.assert_allclose(prepared.whitening, expected_whitening, rtol=1e-10)
    raw = truth[sample.repetition, sample.slice][1].astype(np.complex128)
    expected = remove_readout_oversampling(whiten(raw * _mask(), expected_whitening), ROWS)
    assert prepared.kspace.shape == (COILS, ROWS, WIDTH) and prepared.readout_rows == ROWS
    np.testing.assert_allclose(prepared.kspace, expected, atol=1e-5 * np.abs(expected).max())
    assert prepared.maps.shape == (COILS, ROWS, WIDTH) and prepared.compression is None
    assert _combined_vs_rss(prepared, raw, noise) < ESPIRIT_COMBINE
    # The whitening matters: the same maps against the unwhitened coil images are far off.
    assert _combined_vs_rss(prepared, raw, None) > UNWHITENED_MIN


def test_prepare_compresses_from_the_calibration_region(tmp_path):
    rng = np.random.default_rng(22)
    path = tmp_path / "raw.h5"
    _write_ismrmrd(path, rng)
    prepared = prepare(read_multicoil(path)[0], coils=2, outside="extend")
    assert prepared.kspace.shape == (2, ROWS, WIDTH) and prepared.maps.shape == (2, ROWS, WIDTH)
    assert prepared.compression is not None and prepared.compression.matrix.shape == (2, COILS)
    assert 0.5 < prepared.compression.energy_retained < 1.0
    np.testing.assert_allclose(np.sum(np.abs(prepared.maps) ** 2, axis=0), 1.0, atol=1e-5)  # extended maps
    with pytest.raises(InputError, match="coils"):
        prepare(read_multicoil(path)[0], coils=5)


# --- fastMRI ---------------------------------------------------------------------------------

FASTMRI_HEADER = f"""<?xml version="1.0" encoding="utf-8"?>
<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD"><encoding>
<encodedSpace><matrixSize><x>{OVERSAMPLED}</x><y>{WIDTH}</y><z>1</z></matrixSize>
<fieldOfView_mm><x>280</x><y>140</y><z>4.5</z></fieldOfView_mm></encodedSpace>
<reconSpace><matrixSize><x>{ROWS}</x><y>{ROWS}</y><z>1</z></matrixSize>
<fieldOfView_mm><x>140</x><y>140</y><z>4.5</z></fieldOfView_mm></reconSpace>
<encodingLimits><kspace_encoding_step_1><minimum>0</minimum><maximum>{WIDTH - 1}</maximum><center>{WIDTH // 2}</center>
</kspace_encoding_step_1></encodingLimits></encoding></ismrmrdHeader>""".encode()


@pytest.mark.parametrize("with_mask", [True, False])
def test_fastmri_multicoil_reader_and_prepare(tmp_path, with_mask):
    rng = np.random.default_rng(23)
    maps = simulate_coil_maps(rng, COILS, ROWS, WIDTH)
    volumes = [_oversampled_kspace(rng, maps) for _ in range(2)]
    kspace = np.stack([k for _, k in volumes])
    mask = _mask()
    target = np.stack([np.abs(image) for image, _ in volumes]).astype(np.float32)
    file_mask = mask if with_mask else None
    path = write_fastmri(tmp_path / "multicoil.h5", kspace * mask, file_mask, target, header=FASTMRI_HEADER)
    samples = read_fastmri_multicoil(path)
    assert len(samples) == 2 and all(s.noise is None and s.calibration_kspace is None for s in samples)
    for index, sample in enumerate(samples):
        np.testing.assert_array_equal(sample.mask, mask)
        np.testing.assert_allclose(sample.kspace, (kspace[index] * mask).astype(np.complex64))
        np.testing.assert_array_equal(sample.target, target[index])
        assert sample.geometry.readout_oversampling == 2.0 and sample.geometry.position is None
    prepared = prepare(samples[1], maps="walsh")
    assert prepared.whitening is None and prepared.kspace.shape == (COILS, ROWS, WIDTH)
    assert prepared.coil_maps.method == "walsh"
    assert _combined_vs_rss(prepared, kspace[1], None) < WALSH_COMBINE


def test_fastmri_reader_rejects_single_coil_and_hostile_headers(tmp_path):
    rng = np.random.default_rng(24)
    single = write_fastmri(tmp_path / "single.h5", _complex_normal(rng, 1, 8, 8))
    with pytest.raises(InputError, match="single-coil"):
        read_fastmri_multicoil(single)
    with pytest.raises(InputError, match="document type"):
        parse_header(b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY b "c">]><ismrmrdHeader/>')
    with pytest.raises(InputError, match="malformed"):
        parse_header(b"<ismrmrdHeader><encoding>")
    geometry, centre = parse_header(FASTMRI_HEADER)
    assert geometry.encoded_fov_mm == (280.0, 140.0, 4.5) and centre == WIDTH // 2
