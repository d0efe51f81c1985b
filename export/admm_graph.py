"""The T unrolled ADMM iterations of SPEC 2b written directly as ONNX nodes (34-44 per iteration, 62 with a penalty schedule).

State in the image domain: ``z`` and ``u`` ``(B, 5C, H, W)``, the split variables
``(grad x - v, E v)`` and their scaled duals, channels ordered (component, real/imaginary) with
components ``(x-direction of z1, y-direction of z1, xx, yy, xy)``. One iteration::

    w = z - u
    (g, r) = (grad^T w1, -w1 + E^T w2)                 circular pad + one 3x3 Conv   -> (B, 3C, H, W)
    (G, R0, R1) = DFT(g, r)                            one channel-batched 2D DFT    -> 3 complex spectra
    (X, V0, V1) = L (G, R0, R1) + c                    one Mul + ReduceSum per frequency (6 x 6 real)
    (x, v) = IDFT(X, V0, V1)                           one channel-batched 2D inverse DFT
    y = alpha (grad x - v, E v)                        circular pad + one 3x3 Conv   -> (B, 5C, H, W)
    t = y + (1 - alpha) z + u;  u = clip(t, L/rho);  z = t - u    (L0 / (kappa rho) on E v, penalty_ratio)

(``u + g - shrink(t) = clip(t)``, so the shrink costs one clip and one Sub.) ``L`` and ``c`` carry
the exact (x, v) step of :mod:`tgv_deploy.fourier_symbols` with the learned rho folded in; they
depend on the mask only through one per-frequency division, done once before the loop. With a
learned penalty schedule the division changes with the penalty, so every iteration forms its own
``den_k = m + rho_k s`` and applies the step's rank-one data part at that penalty (:meth:`ADMMGraph._scheduled_solve`).

The 2D DFT is the plain orthonormal one (no shifts: periodic operators commute with them, and the
data enter once as the transform of ``A^H f``), in real block form, and with dense columns without a Transpose: the
row transform multiplies from the left into rows ``(real/imaginary, row)``, and its constant's
output rows are ordered ``(row frequency, real/imaginary)``, so the real/imaginary axis lands beside
the columns, where the column transform multiplies from the right into ``(real/imaginary, column)``.
With dense columns spectra live as ``(B, K, H, 2, W)`` (row frequency, real/imaginary, column
frequency) and every per-frequency constant is stored in that layout.

With ``column_blocks`` the column transform runs in two stages too (``W = n1 n2``): an ``n1``-point
product from the left into ``(real/imaginary, w1)`` with output ``(k1, real/imaginary)``, one
Transpose that moves ``k1`` in front of the rows, and per block ``k1`` one ``2 n2 x 2 n2`` product from
the right with ``H`` rows (a batched MatMul that stays efficient; without the Transpose each product
would have one row). Spectra then live as ``(B, K, n1 H, 2, n2)`` ("grid" positions ``(k1, row
frequency)`` x ``k2``), and the per-frequency constants are stored on that grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tgv_deploy.export.graph_builder import GraphBuilder
from tgv_deploy.fourier_symbols import tgv_step_constants, tv_step_denominator
from tgv_deploy.dft import factorised_plain_dft, real_form
from tgv_deploy.operators.periodic import PeriodicGradient, PeriodicSymGradient


@dataclass(frozen=True)
class ADMMSpec:
    """What the iteration builder needs; ``rho`` is the model's learned penalty."""

    task: str  # "mri" or "denoise"
    kind: str  # "utgv" or "utv"
    height: int
    width: int
    iterations: int
    rho: float
    alpha: float
    row_blocks: int = 0  # n1 of a two-stage row DFT (H = n1 * n2); 0 = one dense product
    penalty_ratio: float = 1.0  # U-TGV: the E v constraint's penalty over rho (ModelConfig.penalty_ratio)
    column_blocks: int = 0  # n1 of a two-stage column DFT (W = n1 * n2); 0 = one dense product
    #: a learned per-iteration schedule (ModelConfig.rho_schedule): iteration k's penalty is
    #: ``rho_factors[k] * rho`` (one per iteration; empty: the constant rho). Single-coil and denoising only.
    rho_factors: tuple[float, ...] = ()

    @property
    def channels(self) -> int:
        return 2 if self.task == "mri" else 1

    @property
    def images(self) -> int:
        """Images the (x, v) step solves for: x, v0, v1 (TGV) or x (TV)."""
        return 3 if self.kind == "utgv" else 1

    @property
    def splits(self) -> int:
        """Components of z: grad x - v (2) and E v (3) for TGV, grad x (2) for TV."""
        return 5 if self.kind == "utgv" else 2


def dft_matrix(n: int) -> np.ndarray:
    """The plain orthonormal DFT matrix ``exp(-2 pi i k j / n) / sqrt(n)`` (complex128)."""
    k = np.arange(n)
    return np.exp(-2j * np.pi * np.outer(k, k) / n) / np.sqrt(n)


def stencil(apply, n_in: int, n_out: int) -> np.ndarray:
    """Conv weights ``(n_out, n_in, 3, 3)`` of a shift-invariant map with periodic 1-pixel reach.

    ONNX Conv correlates, ``out[i] = sum_a K[a] in[i + a - 1]``; the response to a delta at ``p``
    is ``K[p - i + 1]``, so the kernel is read off the response to a delta on a 5 x 5 torus.
    """
    weights = np.zeros((n_out, n_in, 3, 3))
    for i in range(n_in):
        delta = torch.zeros(1, n_in, 5, 5, dtype=torch.float64)
        delta[0, i, 2, 2] = 1.0
        response = apply(delta)[0].numpy()
        for a in range(3):
            for b in range(3):
                weights[:, i, a, b] = response[:, 3 - a, 3 - b]
    return weights


def _frequency_major(form: np.ndarray) -> np.ndarray:
    """Reorder the output rows of a real form ``(..., 2m, n)`` from ``(re/im, k)`` to ``(k, re/im)``."""
    m = form.shape[-2] // 2
    rows = np.arange(2 * m).reshape(2, m).T.reshape(-1)
    return np.ascontiguousarray(form[..., rows, :])


def _real_blocks(entries: dict[tuple[int, int], Any], rows: int, cols: int, shape: tuple[int, int]) -> np.ndarray:
    """Real form ``(rows, cols, H, 2, 2, W)`` of a per-frequency complex matrix given by its non-zero
    entries ``(H, W)``: :func:`tgv_deploy.dft.real_form` of each entry on the two re/im axes."""
    matrix = np.zeros((rows, cols, *shape), dtype=complex)
    for (i, j), c in entries.items():
        matrix[i, j] = c
    return np.ascontiguousarray(np.moveaxis(real_form(matrix[..., None, None]), 3, -1))  # (.., H, W, 2, 2) -> (.., H, 2, 2, W)


class ADMMGraph:
    """Appends the iterations to a :class:`GraphBuilder`; call :meth:`build` once."""

    def __init__(self, g: GraphBuilder, spec: ADMMSpec):
        self.g, self.spec = g, spec
        c, h, w, k, z = spec.channels, spec.height, spec.width, spec.images, spec.splits
        grad, sym = PeriodicGradient(), PeriodicSymGradient()

        def rhs(wt: torch.Tensor) -> torch.Tensor:  # (1, zC, ...) -> (g, r) (1, kC, ...)
            parts = wt.reshape(1, z, c, *wt.shape[-2:])
            w1 = parts[:, :2]
            if spec.kind == "utv":
                return grad.adjoint(w1)
            r = spec.penalty_ratio * sym.adjoint(parts[:, 2:]) - w1
            return torch.cat((grad.adjoint(w1)[:, None], r), 1).reshape(1, k * c, *wt.shape[-2:])

        def split(xv: torch.Tensor) -> torch.Tensor:  # (1, kC, ...) -> alpha (grad x - v, E v) (1, zC, ...)
            parts = xv.reshape(1, k, c, *xv.shape[-2:])
            if spec.kind == "utv":
                return spec.alpha * grad(parts[:, 0]).reshape(1, z * c, *xv.shape[-2:])
            x, v = parts[:, 0], parts[:, 1:]
            return spec.alpha * torch.cat((grad(x) - v, sym(v)), 1).reshape(1, z * c, *xv.shape[-2:])

        self.rhs_kernel = g.const("admm/rhs_kernel", stencil(rhs, z * c, k * c))
        split_kernel = stencil(split, k * c, z * c)
        self.split_kernel = g.const("admm/split_kernel", split_kernel)
        self.start_kernel = g.const("admm/start_kernel", split_kernel[:, :c] / spec.alpha)  # z = (grad x0, 0)
        # DFT (see the module docstring): rows from the left, output rows (row frequency, re/im); columns from the right
        cols = real_form(dft_matrix(w))  # dense columns, and the SENSE coil step's filters at any column DFT
        self.cols_fwd = g.const("admm/dft_cols", cols.T)  # (2W, 2W): [x_re | x_im] -> [X_re | X_im]
        self.cols_inv = g.const("admm/idft_cols", cols)
        self.order = np.arange(h)  # the spectra's row-frequency order (block order with two stages)
        self.column_order = np.arange(w)  # column frequency of grid position (k1, k2) at k1 n2 + k2
        self.column_blocks, self.column_block_size = 1, w  # (n1, n2) of the columns; (1, W) when dense
        if spec.column_blocks:
            self._two_stage_columns(h, w, spec.column_blocks)
        if spec.row_blocks:
            self._two_stage_rows(h, w, spec.row_blocks, c)
        else:
            rows = _frequency_major(real_form(dft_matrix(h)))[:, : c * h]
            self.rows_fwd = g.const("admm/dft_rows", rows)
            self.rows_inv = g.const("admm/idft_rows", np.ascontiguousarray(rows.T))
            self.shape_rows_in = g.const("admm/shape_rows_in", [0, -1, c * h, w])
            self.shape_rows_back = g.const("admm/shape_rows_back", [0, -1, 2 * h, w])
        # -1 for the image count (x, v0, v1 or x alone); the grid (module docstring) is (n1 H) x n2 of the columns
        n1, n2 = self.column_blocks, self.column_block_size
        self.grid = (n1 * h, n2)
        self.shape_spectra = g.const("admm/shape_spectra", [0, -1, n1, h, 2 * n2] if spec.column_blocks else [0, -1, h, 2 * w])
        self.shape_step_in = g.const("admm/shape_step_in", [0, 1, k, n1 * h, 1, 2, n2])
        self.shape_images = g.const("admm/shape_images", [0, -1, h, w])
        self._step_constants()

    def _two_stage_columns(self, h: int, w: int, n1: int) -> None:
        """Constants of the two-stage column DFT (:func:`tgv_deploy.dft.factorised_plain_dft`, module docstring).

        Stage one multiplies the ``n1``-point real form from the left into ``(re/im, w1)`` (the
        columns ``w = w1 n2 + w2`` reshaped to ``(2 n1, n2)``), output ``(k1, re/im)``; after the
        Transpose stage two multiplies row vectors ``[re | im]`` of length ``2 n2`` from the right by the
        transposed real form of ``m[k1]``. The inverse runs the transposes in reverse order.
        """
        g, n2 = self.g, w // n1
        a, m, self.column_order = factorised_plain_dft(w, n1)
        self.column_blocks, self.column_block_size = n1, n2
        stage1 = _frequency_major(real_form(a))  # (2 n1, 2 n1)
        stage2 = np.ascontiguousarray(real_form(m).transpose(0, 2, 1))  # (n1, 2 n2, 2 n2), row-vector form
        self.col_stage1_fwd = g.const("admm/dft_cols_stage1", stage1)
        self.col_stage1_inv = g.const("admm/idft_cols_stage1", np.ascontiguousarray(stage1.T))
        self.col_stage2_fwd = g.const("admm/dft_cols_stage2", stage2)
        self.col_stage2_inv = g.const("admm/idft_cols_stage2", np.ascontiguousarray(stage2.transpose(0, 2, 1)))
        self.shape_col_stage1 = g.const("admm/shape_col_stage1", [0, -1, h, 2 * n1, n2])
        self.shape_col_stage2 = g.const("admm/shape_col_stage2", [0, -1, h, n1, 2 * n2])

    def _on_grid(self, values: Any) -> np.ndarray:
        """A per-frequency array ``(H, W)`` (row, column frequency) on the spectra's grid ``(n1 H, n2)``."""
        h, n2 = self.spec.height, self.column_block_size
        positions = np.arange(self.grid[0])
        rows = self.order[positions % h][:, None]
        cols = self.column_order[(positions // h)[:, None] * n2 + np.arange(n2)[None, :]]
        return np.asarray(values)[rows, cols]

    def _two_stage_rows(self, h: int, w: int, n1: int, c: int) -> None:
        """Constants of the two-stage row DFT (:func:`tgv_deploy.dft.factorised_plain_dft`).

        Rows are ``h = h1 n2 + h2``. Stage one multiplies the ``n1``-point real form into rows
        ``(re/im, h1)`` (columns ``(h2, w)``), its output rows ordered ``(k1, re/im)``; so per block
        ``k1`` the rows ``(re/im, h2)`` lie together, and stage two multiplies the real form of
        ``m[k1]`` (twiddles inside) into them, output rows ``(k2, re/im)``. The spectra keep the
        resulting block order of the row frequencies (every per-frequency constant is stored in
        it), so nothing is permuted. The inverse runs the transposes in reverse order.
        """
        g, n2 = self.g, h // n1
        a, m, self.order = factorised_plain_dft(h, n1)
        stage1 = _frequency_major(real_form(a))[:, : c * n1]  # (2 n1, C n1)
        stage2 = _frequency_major(real_form(m))  # (n1, 2 n2, 2 n2)
        self.stage1_fwd = g.const("admm/dft_rows_stage1", stage1)
        self.stage1_inv = g.const("admm/idft_rows_stage1", np.ascontiguousarray(stage1.T))
        self.stage2_fwd = g.const("admm/dft_rows_stage2", stage2)
        self.stage2_inv = g.const("admm/idft_rows_stage2", np.ascontiguousarray(stage2.transpose(0, 2, 1)))
        self.shape_stage1_in = g.const("admm/shape_stage1_in", [0, -1, c * n1, n2 * w])
        self.shape_stage2 = g.const("admm/shape_stage2", [0, -1, n1, 2 * n2, w])
        self.shape_stage1_back = g.const("admm/shape_stage1_back", [0, -1, 2 * n1, n2 * w])

    def _step_constants(self) -> None:
        """Per-frequency constants of the exact step in the spectra's layout ``(P, 2, Q)``:
        the operator ``(1, K, K, P, 2, 2, Q)`` (out image, in image, grid row, out re/im, in re/im, grid
        column; ``(P, Q) = (H, W)`` with dense columns), the data offset ``(1, K, P, 2, 2, Q)`` and
        ``rho s`` ``(1, n1, H, n2)``; with a penalty schedule, instead of the first two, the fused
        step ``(1, K, 2K, P, 2, Q)`` (out image, in image then in image re/im-swapped, grid row, out
        re/im, grid column) and the step's data factor ``left``."""
        g, spec, k = self.g, self.spec, self.spec.images
        shape = self.grid
        t = self._on_grid
        rho = spec.rho
        if spec.kind == "utgv":
            c = tgv_step_constants(spec.height, spec.width, spec.penalty_ratio)
            h0, h1 = t(c.h0), t(c.h1)
            schur = t(c.s)
            # L = L_const + L_data / den: V = P R + h X,  X = (M f + rho (G + h^H R)) / den
            fixed = _real_blocks({(1, 1): t(c.p11), (1, 2): t(c.p12), (2, 1): np.conj(t(c.p12)), (2, 2): t(c.p22)}, k, k, shape)
            left, right = (1.0, h0, h1), (rho, rho * np.conj(h0), rho * np.conj(h1))
            data = _real_blocks({(i, j): left[i] * right[j] for i in range(3) for j in range(3)}, k, k, shape)
            offset = _real_blocks({(i, 0): left[i] for i in range(3)}, k, 1, shape)[:, 0]  # on M f / den
        else:
            schur = t(tv_step_denominator(spec.height, spec.width))
            fixed = np.zeros((1, 1, shape[0], 2, 2, shape[1]))
            data = _real_blocks({(0, 0): np.full(shape, rho, dtype=complex)}, 1, 1, shape)
            offset = _real_blocks({(0, 0): np.ones(shape, dtype=complex)}, 1, 1, shape)[:, 0]
        if spec.rho_factors:
            # L_data = left (x) right has rank one per frequency and L_fixed's X row is zero: one
            # constant with right / rho in that row gives L_fixed S and right^T S in one product.
            assert spec.kind == "utgv"  # ModelConfig allows a schedule for U-TGV only
            fused = fixed + _real_blocks({(0, j): right[j] / rho for j in range(3)}, k, k, shape)
            # Each complex entry a + ib as [a, a] on S and [-b, b] on S with re/im swapped, side by side
            # along the input axis: the product sums over one axis, not over the input's re/im as well
            # (the 2 x 2 real blocks' inner axis, which ONNX Runtime reduces slowly).
            diagonal = np.stack([fused[:, :, :, o, o] for o in range(2)], axis=3)  # (K, K, P, 2, Q): [a, a]
            crossed = np.stack([fused[:, :, :, o, 1 - o] for o in range(2)], axis=3)  # [-b, b]
            self.step_fused = g.const("admm/step_fused", np.concatenate([diagonal, crossed], axis=1)[None])  # (1, K, 2K, P, 2, Q)
            self.shape_step_swap = g.const("admm/shape_step_swap", [0, 1, k, self.grid[0], 2, self.grid[1]])
            self.keep_v_rows = g.const("admm/keep_v_rows", np.array([0.0, 1.0, 1.0], dtype=np.float32).reshape(1, 3, 1, 1, 1))
            # left (x) shared as an elementwise complex product on the (re, im) axis: re = a c - b d,
            # im = b c + a d from [a, b] and its swap [b, a] (cheaper than a 2 x 2 block and a reduction)
            lefts = np.stack(np.broadcast_arrays(*(np.asarray(v, dtype=complex) for v in left)))[:, :, None, :]  # (K, P, 1, Q)
            self.left_real = g.const("admm/left_real", np.concatenate([lefts.real, lefts.real], axis=2)[None])
            self.left_imag = g.const("admm/left_imag", np.concatenate([-lefts.imag, lefts.imag], axis=2)[None])
        else:
            self.step_fixed = g.const("admm/step_fixed", fixed[None])
            self.step_data = g.const("admm/step_data", data[None])
            self.offset = g.const("admm/offset", offset[None])
        # (1, n1, H, n2): the mask, a factor of the column frequency alone, adds on as (B, n1, 1, n2)
        self.rho_schur = g.const("admm/rho_schur", (rho * schur).reshape(1, self.column_blocks, spec.height, self.column_block_size))

    # -- pieces ------------------------------------------------------------------------------
    def _circular_pad(self, x: str, hint: str) -> str:
        """Wrap one pixel around both spatial axes (Slice + Concat; TensorRT parses both)."""
        g, h, w = self.g, self.spec.height, self.spec.width

        def wrap(y: str, axis: int, n: int) -> str:
            ax = g.const(f"admm/axis{axis}", [axis])
            last = g.op("Slice", [y, g.const(f"admm/from{n - 1}", [n - 1]), g.const(f"admm/to{n}", [n]), ax], hint)
            first = g.op("Slice", [y, g.const("admm/from0", [0]), g.const("admm/to1", [1]), ax], hint)
            return g.op("Concat", [last, y, first], hint, axis=axis)

        return wrap(wrap(x, 2, h), 3, w)

    def _conv(self, x: str, kernel: str, hint: str) -> str:
        return self.g.op("Conv", [self._circular_pad(x, hint), kernel], hint, pads=[0, 0, 0, 0])

    def _dft(self, images: str) -> str:
        """Images ``(B, K C, H, W)`` -> spectra ``(B, K, H, 2W)`` (row frequency, [Re | Im] x column frequency);
        two-stage columns: ``(B, K, n1, H, 2 n2)`` (column block, row frequency, [Re | Im] x k2)."""
        g = self.g
        if self.spec.row_blocks:
            stage1 = g.op("MatMul", [self.stage1_fwd, g.op("Reshape", [images, self.shape_stage1_in], "dft")], "dft")
            rows = g.op("MatMul", [self.stage2_fwd, g.op("Reshape", [stage1, self.shape_stage2], "dft")], "dft")  # (B, K, n1, 2 n2, W)
        else:
            rows = g.op("MatMul", [self.rows_fwd, g.op("Reshape", [images, self.shape_rows_in], "dft")], "dft")  # (B, K, 2H, W)
        if not self.spec.column_blocks:
            return g.op("MatMul", [g.op("Reshape", [rows, self.shape_spectra], "dft"), self.cols_fwd], "dft")
        stage1 = g.op("MatMul", [self.col_stage1_fwd, g.op("Reshape", [rows, self.shape_col_stage1], "dft")], "dft")  # (B, K, H, 2 n1, n2)
        blocks = g.op("Transpose", [g.op("Reshape", [stage1, self.shape_col_stage2], "dft")], "dft", perm=[0, 1, 3, 2, 4])
        return g.op("MatMul", [blocks, self.col_stage2_fwd], "dft")  # (B, K, n1, H, 2 n2)

    def _idft(self, spectra: str) -> str:
        """Spectra ``(B, K, H, 2W)`` (two-stage columns: ``(B, K, n1, H, 2 n2)``) -> images ``(B, K C, H, W)``."""
        g = self.g
        if self.spec.column_blocks:
            blocks = g.op("MatMul", [spectra, self.col_stage2_inv], "idft")  # (B, K, n1, H, 2 n2)
            stage1_in = g.op("Reshape", [g.op("Transpose", [blocks], "idft", perm=[0, 1, 3, 2, 4]), self.shape_col_stage1], "idft")
            cols = g.op("MatMul", [self.col_stage1_inv, stage1_in], "idft")  # (B, K, H, 2 n1, n2): rows (frequency, re/im) x columns
        else:
            cols = g.op("MatMul", [spectra, self.cols_inv], "idft")  # (B, K, H, 2W): rows (frequency, re/im) x columns
        if self.spec.row_blocks:
            stage2 = g.op("MatMul", [self.stage2_inv, g.op("Reshape", [cols, self.shape_stage2], "idft")], "idft")  # (B, K, n1, 2 n2, W)
            rows = g.op("MatMul", [self.stage1_inv, g.op("Reshape", [stage2, self.shape_stage1_back], "idft")], "idft")
        else:
            rows = g.op("MatMul", [self.rows_inv, g.op("Reshape", [cols, self.shape_rows_back], "idft")], "idft")
        return g.op("Reshape", [rows, self.shape_images], "idft")

    def _thresholds(self, maps: str) -> tuple[str, str]:
        """``L / rho`` per channel of ``z`` ``(B, 5C, H, W)`` (L1 on z1, L0 / kappa on z2) and its negative."""
        g, spec, c = self.g, self.spec, self.spec.channels
        inv_rho = g.const("admm/inv_rho", np.float32(1.0 / spec.rho))
        if spec.kind == "utgv":
            l0 = g.op("Slice", [maps, g.const("admm/i0", [0]), g.const("admm/i1", [1]), g.const("admm/axis1", [1])], "thr")
            l1 = g.op("Slice", [maps, g.const("admm/i1", [1]), g.const("admm/i2", [2]), g.const("admm/axis1", [1])], "thr")
            if spec.penalty_ratio != 1.0:  # z2's penalty is kappa rho
                l0 = g.op("Mul", [l0, g.const("admm/inv_penalty_ratio", np.float32(1.0 / spec.penalty_ratio))], "thr")
            parts = [l1] * (2 * c) + [l0] * (3 * c)
        else:
            parts = [maps] * (2 * c)
        bound = g.op("Mul", [g.op("Concat", parts, "thr", axis=1), inv_rho], "thr")
        return bound, g.op("Neg", [bound], "thr")

    def _mask_along_w(self, mask: str, hint: str, grid: bool = False) -> str:
        """The centred line mask ``(B, 1, 1, W)`` in the loop's plain DFT order along the column frequencies
        (``grid``: in the order of the spectra's grid columns, ``k1 n2 + k2``)."""
        order = np.fft.ifftshift(np.arange(self.spec.width))
        name = "admm/ifftshift_w"
        if grid and self.spec.column_blocks:
            order, name = order[self.column_order], "admm/ifftshift_w_grid"
        return self.g.op("Gather", [mask, self.g.const(name, order.astype(np.int64))], hint, axis=3)

    def _step_operator(self, mask: str | None, data_weight: float = 1.0) -> tuple[str, str]:
        """``1 / den`` ``(B, 1, 1, P, 1, 1, Q)`` and ``L = L_fixed + L_data / den`` ``(B|1, K, K, P, 2, 2, Q)``;
        without a mask the data weight ``m`` is the constant ``data_weight``."""
        g = self.g
        den = g.op("Add", [self._mask_term(mask, data_weight), self.rho_schur], "den")
        den = g.op("Reshape", [den, g.const("admm/shape_den", [0, 1, 1, self.grid[0], 1, 1, self.grid[1]])], "den")
        inv = g.op("Reciprocal", [den], "den")
        operator = g.op("Add", [self.step_fixed, g.op("Mul", [self.step_data, inv], "step")], "step")
        return inv, operator

    def _mask_term(self, mask: str | None, data_weight: float = 1.0) -> str:
        """The data weight of the exact step's denominator ``m`` on the spectra's grid ``(B|1, n1, 1|H, n2)``;
        without a mask the constant ``data_weight``."""
        g = self.g
        if mask is None:
            return g.const(f"admm/data_weight_{data_weight:g}", np.float32(data_weight))
        shape_mask = g.const("admm/shape_mask_step", [0, self.column_blocks, 1, self.column_block_size])
        return g.op("Reshape", [self._mask_along_w(mask, "den", grid=True), shape_mask], "den")

    def _scheduled_solve(self, mask_term: str, factor: float, spectra: str, data: str) -> str:
        """The exact step at the penalty ``rho_k = factor * rho`` without forming ``L``:
        ``L_fixed S + left (rho_k right^T S + M f) / den_k`` with ``den_k = m + rho_k s`` (``L_data`` has
        rank one per frequency; ``data``: the transform of ``A^H f`` ``(B, 1, P, 2, Q)``); returns ``(B, K, P, 2, Q)``.
        The fused constant's product holds ``right^T S / rho`` in the X row and ``L_fixed S`` in the V rows."""
        g = self.g
        p, q = self.grid
        f = g.const(f"admm/rho_factor_{factor!r}", np.float32(factor))
        den = g.op("Add", [mask_term, g.op("Mul", [self.rho_schur, f], "den")], "den")
        inv = g.op("Reciprocal", [g.op("Reshape", [den, g.const("admm/shape_den_scheduled", [0, 1, p, 1, q])], "den")], "den")
        rho_k = g.const(f"admm/rho_{factor!r}", np.float32(factor * self.spec.rho))
        s_in = g.op("Reshape", [spectra, self.shape_step_swap], "step")  # (B, 1, K, P, 2, Q)
        swapped_in = g.op("Gather", [s_in, g.const("admm/swap_re_im", [1, 0])], "step", axis=4)
        both = g.op("Concat", [s_in, swapped_in], "step", axis=2)  # (B, 1, 2K, P, 2, Q)
        product = g.op("ReduceSum", [g.op("Mul", [self.step_fused, both], "step"), g.const("admm/axis2", [2])], "step", keepdims=0)
        right = g.op("Slice", [product, g.const("admm/i0", [0]), g.const("admm/i1", [1]), g.const("admm/axis1", [1])], "step")
        fixed = g.op("Mul", [product, self.keep_v_rows], "step")
        shared = g.op("Mul", [g.op("Add", [g.op("Mul", [right, rho_k], "step"), data], "step"), inv], "step")
        swapped = g.op("Gather", [shared, g.const("admm/swap_re_im", [1, 0])], "step", axis=3)
        left = g.op("Add", [g.op("Mul", [shared, self.left_real], "step"), g.op("Mul", [swapped, self.left_imag], "step")], "step")
        return g.op("Add", [fixed, left], "step")

    def _solve(self, operator: str, spectra: str) -> str:
        """``L (G, R0, R1)`` per frequency: spectra (as :meth:`_dft` gives them) -> ``(B, K, P, 2, Q)``."""
        g = self.g
        product = g.op("Mul", [operator, g.op("Reshape", [spectra, self.shape_step_in], "step")], "step")  # (B, K, K, P, 2, 2, Q)
        return g.op("ReduceSum", [product, g.const("admm/axes25", [2, 5])], "step", keepdims=0)

    # -- the loop ----------------------------------------------------------------------------
    def build(self, x0: str, maps: str, mask: str | None) -> str:
        """Append all iterations; returns the name of the final ``x (B, C, H, W)``.

        ``x0 = A^H f / scale`` ``(B, C, H, W)``, ``maps`` ``(B, 2|1, H, W)`` normalised,
        ``mask (B, 1, 1, W)`` (MRI) or None.
        """
        g, spec, c = self.g, self.spec, self.spec.channels
        upper, lower = self._thresholds(maps)
        upper_at_rho = upper  # a schedule scales it per iteration
        p, q = self.grid
        factors = spec.rho_factors
        if factors and len(factors) != spec.iterations:
            raise ValueError(f"rho_factors needs one factor per iteration ({spec.iterations}), got {len(factors)}")
        if factors:  # the step, its data share and the thresholds follow the penalty in every iteration
            mask_term = self._mask_term(mask)
            data = g.op("Reshape", [self._dft(x0), g.const("admm/shape_data", [0, 1, p, 2, q])], "data")  # (B, 1, P, 2, Q)
        else:  # one penalty: the step operator and c = (M f / den) (1, h0, h1), the data's share of (X, V0, V1), once
            inv_den, operator = self._step_operator(mask)
            mf = g.op("Reshape", [self._dft(x0), g.const("admm/shape_mf", [0, 1, p, 1, 2, q])], "data")
            inv_den = g.op("Reshape", [inv_den, g.const("admm/shape_den_data", [0, 1, p, 1, 1, q])], "data")
            mf = g.op("Mul", [mf, inv_den], "data")  # (B, 1, P, 1, 2, Q)
            offset = g.op("ReduceSum", [g.op("Mul", [self.offset, mf], "data"), g.const("admm/axis4", [4])], "data", keepdims=0)
        one_minus_alpha = g.const("admm/one_minus_alpha", np.float32(1.0 - spec.alpha))
        z = self._conv(x0, self.start_kernel, "start")
        u = None
        images = x0
        for k in range(spec.iterations):
            g.mark_iteration()
            if factors:
                upper = g.op("Mul", [upper_at_rho, g.const(f"admm/inv_rho_factor_{factors[k]!r}", np.float32(1.0 / factors[k]))], "thr")
                lower = g.op("Neg", [upper], "thr")
                if u is not None and factors[k] != factors[k - 1]:  # the scaled duals carry the unscaled ones over
                    u = g.op("Mul", [u, g.const(f"admm/dual_ratio_{k}", np.float32(factors[k - 1] / factors[k]))], "u")
            w = z if u is None else g.op("Sub", [z, u], "w")
            spectra = self._dft(self._conv(w, self.rhs_kernel, "rhs"))
            if factors:
                solved = self._scheduled_solve(mask_term, factors[k], spectra, data)
            else:
                solved = g.op("Add", [self._solve(operator, spectra), offset], "step")
            images = self._idft(g.op("Reshape", [solved, self.shape_spectra], "step"))
            y = self._conv(images, self.split_kernel, "split")
            t = g.op("Add", [y, g.op("Mul", [z, one_minus_alpha], "t")], "t")
            t = t if u is None else g.op("Add", [t, u], "t")
            u = g.op("Min", [g.op("Max", [t, lower], "u"), upper], "u")
            z = g.op("Sub", [t, u], "z")
        g.mark_iteration()
        return g.op("Slice", [images, g.const("admm/i0", [0]), g.const(f"admm/i{c}", [c]), g.const("admm/axis1", [1])], "x")


class ADMMSenseGraph(ADMMGraph):
    """Multi-coil iterations: coil splitting (:mod:`tgv_deploy.solvers.admm_sense`) in ONNX nodes.

    Besides ``z`` and ``u``, the state holds the coil images ``y`` and their duals ``u_c``
    ``(B, C, H, 2W)`` (real and imaginary parts side by side along each row) and the data-free coil's
    ``y_0`` ``(B, 2, H, W)``. The (x, v) step is the single-coil one with the constant data weight
    ``rho_coil``; its data, ``rho_coil / rho`` times ``sum_c conj(S_c) (y_c - u_c) + r y_0``, enters
    as extra input channels of the ``rhs`` convolution (a centre tap). The coil step,
    ``y = F^H (rho_coil F t + M f_c) / (m + rho_coil)`` with ``t = g + u_c``, scales each spectrum by
    a factor of its column frequency alone (line masks), so the row transforms cancel and it is one
    ``2W x 2W`` real matrix per image, built once from the mask (a circulant filter along the rows)::

        y = t Q_keep + y_data,   Q_keep = F_w^H diag(rho_coil / (m + rho_coil)) F_w,
        y_data = (A_c^H f_c) F_w^H diag(m / (m + rho_coil)) F_w

    one MatMul of all C coil images per iteration, a quarter of the flops of a 2D DFT pair.
    """

    def __init__(self, g: GraphBuilder, spec: ADMMSpec, rho_coil: float):
        super().__init__(g, spec)
        self.rho_coil = rho_coil
        c, k, z = spec.channels, spec.images, spec.splits
        kernel = np.zeros((k * c, z * c + 2, 3, 3))
        kernel[:, : z * c] = g_value(g, self.rhs_kernel)
        kernel[0, z * c, 1, 1] = kernel[1, z * c + 1, 1, 1] = rho_coil / spec.rho  # b into the x component, centre tap
        self.rhs_kernel = g.const("admm/rhs_kernel_sense", kernel)

    def _coil_filters(self, mask: str) -> tuple[str, str]:
        """``Q_keep`` and ``Q_data`` ``(B, 1, 2W, 2W)``: row vectors ``[re | im]`` times them filter along the rows."""
        g = self.g
        m = self._mask_along_w(mask, "coil_filter")
        m = g.op("Concat", [m, m], "coil_filter", axis=3)  # the same factor on the real and imaginary halves
        rho_coil = g.const("admm/rho_coil", np.float32(self.rho_coil))
        inv = g.op("Reciprocal", [g.op("Add", [m, rho_coil], "coil_filter")], "coil_filter")
        keep = g.op("Mul", [inv, rho_coil], "coil_filter")
        # m / (m + rho_coil), not 1 / (m + rho_coil): the data have no unsampled frequencies, and a
        # matrix with gains up to 1 / rho_coil there would multiply its own float32 round-off by them
        data = g.op("Mul", [inv, m], "coil_filter")

        def filter_matrix(factor: str) -> str:  # cols_fwd diag(factor) cols_inv: factor (B, 1, 1, 2W) scales cols_fwd's columns
            return g.op("MatMul", [g.op("Mul", [self.cols_fwd, factor], "coil_filter"), self.cols_inv], "coil_filter")

        return filter_matrix(keep), filter_matrix(data)

    def build_sense(self, x0: str, maps: str, mask: str, coil_images: str, coil_weights: str, virtual: str) -> str:
        """Append all iterations; returns the final ``x (B, 2, H, W)`` (inputs as :class:`SensePrologue` names them)."""
        g, spec = self.g, self.spec
        h, w = spec.height, spec.width
        upper, lower = self._thresholds(maps)
        _, operator = self._step_operator(None, self.rho_coil)
        keep, data_share = self._coil_filters(mask)
        y_data = g.op("MatMul", [coil_images, data_share], "coil_data")  # (B, C, H, 2W)
        alpha = g.const("admm/alpha", np.float32(spec.alpha))
        one_minus_alpha = g.const("admm/one_minus_alpha", np.float32(1.0 - spec.alpha))
        # Once, so the loop needs no multiply for them: the relaxation's alpha inside the weights of S_c x,
        # and r^2 for the data-free coil, whose state is kept as r y_0 (all that b needs)
        relaxed_weights = g.op("Mul", [coil_weights, alpha], "sx")
        virtual_sq = g.op("Mul", [virtual, virtual], "virtual")
        virtual_sq_alpha = g.op("Mul", [virtual_sq, alpha], "virtual")
        axis_coils = g.const("admm/axis1", [1])
        image_in = g.const("admm/shape_coil_product_in", [0, 1, 2, h, 1, w])  # x as (in re/im, row, -, column)
        coils_in = g.const("admm/shape_coil_adjoint_in", [0, -1, 1, h, 2, w])  # y as (coil, -, row, in re/im, column)
        coils_out = g.const("admm/shape_coils", [0, -1, h, 2 * w])

        def coil_products(x: str, weights: str) -> str:  # S_c x, (B, C, H, 2W): Mul and a sum over the input's re/im
            product = g.op("Mul", [weights, g.op("Reshape", [x, image_in], "sx")], "sx")
            return g.op("Reshape", [g.op("ReduceSum", [product, g.const("admm/axis2", [2])], "sx", keepdims=0), coils_out], "sx")

        y = coil_products(x0, coil_weights)
        u_coil: str | None = None
        ry0 = g.op("Mul", [virtual_sq, x0], "y0")  # r y_0
        z = self._conv(x0, self.start_kernel, "start")
        u = None
        images = x0
        for _ in range(spec.iterations):
            g.mark_iteration()
            w_split = z if u is None else g.op("Sub", [z, u], "w")
            w_coil = y if u_coil is None else g.op("Sub", [y, u_coil], "wc")
            # sum_c conj(S_c) w_c: the weights read transposed, summed over coils and the input's re/im
            combined = g.op("ReduceSum", [g.op("Mul", [coil_weights, g.op("Reshape", [w_coil, coils_in], "b")], "b"),
                                          g.const("admm/axes14", [1, 4])], "b", keepdims=0)
            b = g.op("Add", [combined, ry0], "b")
            rhs = self._conv(g.op("Concat", [w_split, b], "rhs", axis=1), self.rhs_kernel, "rhs")
            images = self._idft(g.op("Reshape", [self._solve(operator, self._dft(rhs)), self.shape_spectra], "step"))
            x = g.op("Slice", [images, g.const("admm/i0", [0]), g.const("admm/i2", [2]), axis_coils], "x")
            # coil variables: relaxed, then the data step as one filter along the rows
            relaxed = g.op("Add", [coil_products(x, relaxed_weights), g.op("Mul", [y, one_minus_alpha], "gc")], "gc")
            ry0 = g.op("Add", [g.op("Mul", [virtual_sq_alpha, x], "y0"), g.op("Mul", [ry0, one_minus_alpha], "y0")], "y0")
            t_coil = relaxed if u_coil is None else g.op("Add", [relaxed, u_coil], "tc")
            y = g.op("Add", [g.op("MatMul", [t_coil, keep], "yc"), y_data], "yc")
            u_coil = g.op("Sub", [t_coil, y], "uc")  # u + g - y
            # the TGV splits, as in the single-coil loop
            split = self._conv(images, self.split_kernel, "split")
            t = g.op("Add", [split, g.op("Mul", [z, one_minus_alpha], "t")], "t")
            t = t if u is None else g.op("Add", [t, u], "t")
            u = g.op("Min", [g.op("Max", [t, lower], "u"), upper], "u")
            z = g.op("Sub", [t, u], "z")
        g.mark_iteration()
        return g.op("Slice", [images, g.const("admm/i0", [0]), g.const("admm/i2", [2]), axis_coils], "x")


def g_value(g: GraphBuilder, name: str) -> np.ndarray:
    """The array of a registered constant."""
    from onnx import numpy_helper

    return numpy_helper.to_array(g.initializers[name])
