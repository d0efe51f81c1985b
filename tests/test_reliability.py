from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tgv_deploy.machine import resident_mb
from tgv_deploy.cli_io import read_input
from tgv_deploy.data.examples import example_inputs
from tgv_deploy.errors import TgvDeployError
from tgv_deploy.models.checkpoint import load_checkpoint
from tgv_deploy.onnx_graph import load_verified

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs /proc to read resident memory")
def test_resident_memory_stable_over_repeated_runs(mri_onnx):
    from tgv_deploy.runtime import Session

    session = Session(mri_onnx)
    inputs = example_inputs("mri", 1, 32, 24)
    for _ in range(30):
        session.run(inputs)
    warm = resident_mb()
    for _ in range(300):
        session.run(inputs)
    assert resident_mb() < 1.05 * warm, (warm, resident_mb())


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes_never_crash_readers(tmp_path_factory, data):
    directory = tmp_path_factory.mktemp("fuzz")
    for name in ("x.h5", "x.npy", "x.png", "x.pt", "x.onnx"):
        path = directory / name
        path.write_bytes(data)
        loader = {".h5": read_input, ".npy": read_input, ".png": read_input, ".pt": load_checkpoint, ".onnx": load_verified}[path.suffix]
        with pytest.raises(TgvDeployError):
            loader(path)


DTYPES = st.sampled_from([np.float32, np.float64, np.complex64, np.int16, np.uint8, np.bool_])


@FUZZ
@given(
    kspace_shape=st.lists(st.integers(0, 5), min_size=0, max_size=5),
    kspace_dtype=DTYPES,
    mask_shape=st.one_of(st.none(), st.lists(st.integers(0, 6), min_size=0, max_size=3)),
    mask_dtype=DTYPES,
    as_group=st.booleans(),
    fill=st.sampled_from([0.0, 1.0, np.nan, np.inf]),
)
def test_random_hdf5_layouts_fail_only_with_package_errors(tmp_path_factory, kspace_shape, kspace_dtype, mask_shape, mask_dtype, as_group, fill):
    path = tmp_path_factory.mktemp("layout") / "f.h5"
    with h5py.File(path, "w") as handle:
        if as_group:
            handle.create_group("kspace")
        else:
            with np.errstate(invalid="ignore"):  # NaN/Inf cast to integer dtypes is part of the fuzzing
                handle.create_dataset("kspace", data=np.full(kspace_shape, fill).astype(kspace_dtype))
        if mask_shape is not None:
            handle.create_dataset("mask", data=np.ones(mask_shape).astype(mask_dtype))
    try:
        volume = read_input(path)
    except TgvDeployError:
        return
    assert volume.kspace.ndim in (3, 4) and volume.kspace.dtype == np.complex64
    assert volume.mask is None or volume.mask.shape == (volume.kspace.shape[0], volume.kspace.shape[-1])
