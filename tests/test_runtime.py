import subprocess
import sys
import textwrap
import threading

import numpy as np
import onnx
import pytest

from tgv_deploy.errors import BackendUnavailableError, ContractError, InputError, IntegrityError, TgvDeployError
from tgv_deploy.data.examples import example_inputs
from tgv_deploy.runtime import Reconstructor, Session

pytest.importorskip("onnxruntime", reason="ONNX Runtime (the 'cpu' extra) is needed for the runtime tests")


def _kspace(slices, h=32, w=24, seed=0):
    inputs = example_inputs("mri", slices, h, w, seed=seed)
    k = inputs["kspace"]
    return (k[:, 0] + 1j * k[:, 1]).astype(np.complex64), inputs["mask"][:, 0, 0]


def test_onnxruntime_matches_torch_backend(mri_onnx, mri_checkpoint):
    k, mask = _kspace(3)
    ort_result = Reconstructor(Session(mri_onnx)).reconstruct(k, mask)
    torch_result = Reconstructor(Session(mri_checkpoint)).reconstruct(k, mask)
    assert ort_result.image.shape == (3, 32, 24) and ort_result.image.dtype == np.complex64
    rel = np.linalg.norm(ort_result.image - torch_result.image) / np.linalg.norm(torch_result.image)
    assert rel < 1e-5
    assert ort_result.lambda0.shape == (3, 32, 24) and (ort_result.lambda1 >= 0).all()


def test_fixed_batch_engine_handles_any_slice_count(tmp_path, mri_checkpoint):
    from tgv_deploy.export.exporter import ExportConfig, build_graph, write_export
    from tgv_deploy.models import load_checkpoint

    out = tmp_path / "b2.onnx"
    write_export(build_graph(load_checkpoint(mri_checkpoint), ExportConfig(batch=2)), out)
    k, mask = _kspace(3, seed=4)
    seen = []
    batched = Reconstructor(Session(out), progress=lambda done, total: seen.append((done, total))).reconstruct(k, mask)
    single = Reconstructor(Session(mri_checkpoint)).reconstruct(k, mask)
    assert seen == [(2, 3), (3, 3)]
    assert np.linalg.norm(batched.image - single.image) / np.linalg.norm(single.image) < 1e-5


def test_contract_mismatches_are_specific(mri_onnx):
    session = Session(mri_onnx)
    good = example_inputs("mri", 1, 32, 24)
    with pytest.raises(ContractError, match="shape"):
        session.run({"kspace": np.zeros((1, 2, 30, 24), np.float32), "mask": good["mask"]})
    with pytest.raises(ContractError, match="dtype"):
        session.run({"kspace": good["kspace"].astype(np.float64), "mask": good["mask"]})
    with pytest.raises(ContractError, match="do not match"):
        session.run({"kspace": good["kspace"]})
    with pytest.raises(ContractError, match="batch"):
        session.run({k: np.concatenate([v, v]) for k, v in good.items()})
    with pytest.raises(InputError, match="NaN"):
        session.run({"kspace": np.full_like(good["kspace"], np.nan), "mask": good["mask"]})
    k, mask = _kspace(1)
    recon = Reconstructor(session)
    with pytest.raises(ContractError, match="32x24"):
        recon.reconstruct(np.zeros((1, 16, 24), np.complex64), mask)
    with pytest.raises(InputError, match="all sampled k-space values are zero"):
        recon.reconstruct(np.zeros_like(k), mask)
    with pytest.raises(InputError, match="mask"):
        recon.reconstruct(k, np.ones(23))
    with pytest.raises(InputError, match="0 and 1"):
        recon.reconstruct(k, np.full(24, 0.5))
    with pytest.raises(InputError, match="MRI model"):
        recon.denoise(np.zeros((1, 32, 24), np.float32))


def test_gpu_backends_refuse_to_fall_back(mri_onnx):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA; the fallback refusal is tested where it has not")
    for backend in ("onnxruntime-cuda", "onnxruntime-tensorrt"):
        with pytest.raises(BackendUnavailableError, match="Provider"):
            Session(mri_onnx, backend=backend)
    with pytest.raises(InputError, match="cannot run"):
        Session(mri_onnx, backend="tensorrt")
    with pytest.raises(InputError, match="iterations"):
        Session(mri_onnx, iterations=4)


def test_tampered_and_foreign_onnx_refused(tmp_path, mri_onnx):
    model = onnx.load(str(mri_onnx))
    weight = next(i for i in model.graph.initializer if i.name == "pdhg/grad_kernel")
    array = onnx.numpy_helper.to_array(weight).copy()
    array.flat[np.abs(array).argmax()] *= 1.01
    weight.CopyFrom(onnx.numpy_helper.from_array(array, weight.name))
    tampered = tmp_path / "tampered.onnx"
    onnx.save(model, str(tampered))
    with pytest.raises(IntegrityError, match="SHA-256"):
        Session(tampered)
    del model.metadata_props[:]
    foreign = tmp_path / "foreign.onnx"
    onnx.save(model, str(foreign))
    with pytest.raises(ContractError, match="no tgv-deploy contract"):
        Session(foreign)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07garbage" * 20)
    with pytest.raises(IntegrityError):
        Session(garbage)


def test_threads_and_determinism(mri_onnx):
    session = Session(mri_onnx)
    inputs = [example_inputs("mri", 1, 32, 24, seed=s) for s in range(4)]
    sequential = [session.run(i)["image"] for i in inputs]
    again = [session.run(i)["image"] for i in inputs]
    for a, b in zip(sequential, again):
        assert np.array_equal(a, b)  # bitwise identical on the CPU
    results = [None] * 4

    def work(index):
        results[index] = session.run(inputs[index])["image"]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(sequential, results):
        assert np.array_equal(a, b)


def test_runtime_works_without_torch(mri_onnx, tmp_path):
    """Blocks torch at import time in a fresh interpreter, then runs a reconstruction."""
    code = textwrap.dedent(
        """
        import sys
        sys.modules["torch"] = None  # any 'import torch' now raises ImportError
        import numpy as np
        from tgv_deploy.runtime import Reconstructor, Session
        import tgv_deploy.contract, tgv_deploy.onnx_graph, tgv_deploy.cli_io, tgv_deploy.export.trt_check
        from tgv_deploy.runtime import MultiCoilPipeline  # multi-coil preprocessing is torch-free too
        import tgv_deploy.coils, tgv_deploy.data.multicoil, tgv_deploy.stream.mrd2, tgv_deploy.stream.mrd_server
        """
    )
    code += textwrap.dedent(
        f"""
        session = Session({str(mri_onnx)!r})
        rng = np.random.default_rng(0)
        k = (rng.standard_normal((2, 32, 24)) + 1j * rng.standard_normal((2, 32, 24))).astype(np.complex64)
        out = Reconstructor(session).reconstruct(k, (np.arange(24) % 2).astype(np.float32))
        assert out.image.shape == (2, 32, 24)
        assert "torch" not in {{m.split(".")[0] for m in sys.modules if sys.modules[m] is not None}}
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_session_and_pipeline_arguments_are_checked_when_built(mri_onnx, mri_checkpoint):
    from tgv_deploy.runtime.multicoil import MultiCoilPipeline

    for bad in ("4", 4.5, True, 0):
        with pytest.raises(InputError, match="iterations must be a positive integer"):
            Session(mri_checkpoint, iterations=bad)
    with pytest.raises(InputError, match="CUDA graphs"):
        Session(mri_onnx, cuda_graphs=True)  # a GPU feature on a CPU session: refused, not ignored
    session = Session(mri_onnx)
    with pytest.raises(InputError, match="takes a Reconstructor"):
        MultiCoilPipeline(session)  # type: ignore[arg-type]
    for kwargs in ({"coils": 0}, {"coils": 2.5}, {"maps": "bogus"}, {"outside": None}):
        with pytest.raises(InputError):
            MultiCoilPipeline(Reconstructor(session), **kwargs)


def test_masks_maps_and_overflow_are_refused_by_name(mri_checkpoint):
    reconstructor = Reconstructor(Session(mri_checkpoint, iterations=2))
    k, m = _kspace(6)
    with pytest.raises(InputError, match="real 0/1 values"):
        reconstructor.reconstruct(k, np.array(["1"] * 24))
    assert reconstructor.reconstruct(k[:2], m[:2, None, None]).image.shape == (2, 32, 24)  # the graph's (S, 1, 1, W)
    with pytest.raises(InputError, match="one per slice"):  # (3, 2) masks for (2, 3) slices: not guessed
        reconstructor.reconstruct(k.reshape(2, 3, 32, 24), m.reshape(3, 2, 24))
    result = reconstructor.reconstruct(k.reshape(2, 3, 32, 24), m.reshape(2, 3, 24))
    assert result.image.shape == (2, 3, 32, 24)
    with pytest.raises(TgvDeployError, match="NaN or Inf"):
        reconstructor.reconstruct(k[:1] * np.float32(1e30), m[:1])
    coil_k = np.repeat(k[:1, None], 2, axis=1) / np.sqrt(2)
    maps = np.full((1, 2, 32, 24), 1 / np.sqrt(2), np.complex64)
    with pytest.raises(InputError, match="zero everywhere"):
        reconstructor.reconstruct_multicoil(coil_k, m[:1], 0 * maps)
    with pytest.raises(InputError, match="<= 1"):
        reconstructor.reconstruct_multicoil(coil_k, m[:1], 2 * maps)
    with pytest.raises(InputError, match="no empty axis"):
        reconstructor.reconstruct_multicoil(coil_k[:0], m[:0], maps[:0])
    assert np.isfinite(reconstructor.reconstruct_multicoil(coil_k, m[:1], maps).image).all()
