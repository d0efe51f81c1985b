"""The T unrolled PDHG iterations written directly as ONNX nodes (34-40 per MRI iteration, 26 denoising).

Exporting the unrolled loop through ``torch.onnx.export`` produces hundreds of nodes per
iteration and takes minutes at T = 256. Here one iteration is written by hand, with the step
sizes folded into constants, and repeated T times; all constants are shared by name, so a graph
of any T holds each DFT matrix and convolution kernel once.

The iteration is SPEC section 2 rewritten with the scaled variable ``V = -s v`` so that
sums replace subtractions and scalings::

    p = clip(p + Mg (s grad) xbar + Vbar, L1)                           Conv Mul Sum Max Min
    q = clip(q - (s E)(Vbar), L0)                                       Reshape Mul Reshape Conv Add Max Min
    r = r/(1+s) + (s/(1+s)) M F xbar - (s/(1+s)) f                      DFT(4-6) Mul Sum
    dx = (t grad^T-kernel)(Mg p) + (-t F^H) r;  x+ = x + dx;  xbar = x+ + dx
    dv = -st p + (-st div2) q;                  V+ = V + dv;  Vbar = V+ + dv

Finite differences are 2x2 grouped convolutions (one-sided zero padding): ``D+`` needs its last
row (column) zeroed after the convolution (mask ``Mg``), ``D-`` needs the input's last row
(column) zeroed before it, which reproduces ``(D- u)[N-1] = -u[N-2]`` exactly.

Layouts inside the loop: images ``(B, C, H, W)``; ``p`` and ``V`` ``(B, 2C, H, W)`` ordered
(channel, direction); ``q`` ``(B, 3C, H, W)`` ordered (channel, [xx, yy, xy]); k-space ``r`` on
the K sampled lines only: ``(B, 2, H, K)`` with the dense row DFT, ``(B, n1, 2 n2, K)`` (rows
block-reordered, real and imaginary parts stacked per block) with the two-stage one. ``r`` keeps
the support of the (pre-masked) data, so ``A^H r = F^H r``.

The column DFT is one MatMul against ``[Re | Im]`` and a dilated combine Conv; the row DFT, where
the channel axis reshapes into stacked ``[Re; Im]`` rows for free, multiplies real block forms
``[[Re, -Im], [Im, Re]]`` and needs no combine. With ``row_blocks`` the row DFT is two stages
(:func:`tgv_deploy.dft.factorised_dft`): ``H * (n1 + n2)`` instead of ``H * H`` multiply-adds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onnx import helper

from tgv_deploy.dft import centred_dft_matrix, factorised_dft, real_dft_block, real_form
from tgv_deploy.export.graph_builder import GraphBuilder


@dataclass(frozen=True)
class LoopSpec:
    """What the iteration builder needs to know; ``sigma``/``tau`` are the model's step sizes."""

    task: str  # "mri" or "denoise"
    kind: str  # "utgv" or "utv"
    height: int
    width: int
    iterations: int
    sigma: float
    tau: float
    max_lines: int = 0  # MRI: most phase-encode lines a mask may sample (0 = all W)
    row_blocks: int = 0  # MRI: n1 of a two-stage row DFT (H = n1 * n2); 0 = one dense product

    @property
    def channels(self) -> int:
        return 2 if self.task == "mri" else 1


# Differences are 2x2 convolutions: D+ reads (i, j), (i+1, j), (i, j+1) and is zero-padded at
# the bottom/right; D- reads (i, j), (i-1, j), (i, j-1) and is zero-padded at the top/left.
PADS_PLUS = [0, 0, 1, 1]
PADS_MINUS = [1, 1, 0, 0]


def _dminus(axis: int) -> np.ndarray:
    """2x2 kernel of ``u[k] - u[k-1]`` along ``axis`` (0 rows, 1 columns), for ``PADS_MINUS``."""
    k = np.zeros((2, 2))
    k[1, 1] = 1.0
    k[(0, 1) if axis == 0 else (1, 0)] = -1.0
    return k


def _dplus(axis: int) -> np.ndarray:
    """2x2 kernel of ``u[k+1] - u[k]`` along ``axis``, for ``PADS_PLUS``."""
    k = np.zeros((2, 2))
    k[0, 0] = -1.0
    k[(1, 0) if axis == 0 else (0, 1)] = 1.0
    return k


def _grad_kernel(channels: int, scale: float) -> np.ndarray:
    """``scale * (D0+, D1+)`` per channel: weights ``(2C, 1, 2, 2)`` for ``groups = C``."""
    w = np.zeros((2 * channels, 1, 2, 2))
    for c in range(channels):
        w[2 * c, 0], w[2 * c + 1, 0] = _dplus(0), _dplus(1)
    return scale * w


def _gradT_kernel(channels: int, scale: float) -> np.ndarray:
    """``scale * (D0- p0 + D1- p1)`` = ``-scale * grad^T p`` on pre-masked p: ``(C, 2, 2, 2)``."""
    w = np.zeros((channels, 2, 2, 2))
    w[:, 0], w[:, 1] = _dminus(0), _dminus(1)
    return scale * w


def _sym_kernel(channels: int, scale: float) -> np.ndarray:
    """``scale * E`` from pre-masked inputs ``(v1 Mrow, v1 Mcol, v2 Mrow, v2 Mcol)``: ``(3C, 4, 2, 2)``."""
    w = np.zeros((3 * channels, 4, 2, 2))
    for c in range(channels):
        w[3 * c + 0, 0] = _dminus(0)  # xx = D0- v1
        w[3 * c + 1, 3] = _dminus(1)  # yy = D1- v2
        w[3 * c + 2, 1] = 0.5 * _dminus(1)  # xy = (D1- v1 + D0- v2) / 2
        w[3 * c + 2, 2] = 0.5 * _dminus(0)
    return scale * w


def _div2_kernel(channels: int) -> np.ndarray:
    """``(D0+ qxx, D1+ qxy, D0+ qxy, D1+ qyy)`` per channel: ``(4C, 3, 2, 2)`` for ``groups = C``."""
    w = np.zeros((4 * channels, 3, 2, 2))
    for c in range(channels):
        w[4 * c + 0, 0], w[4 * c + 1, 2] = _dplus(0), _dplus(1)
        w[4 * c + 2, 2], w[4 * c + 3, 1] = _dplus(0), _dplus(1)
    return w


def _combine_kernel() -> np.ndarray:
    """Conv weights ``(2, 2, 1, 2)`` that finish a complex matrix product along the columns.

    ``P = X @ [A_re | A_im]`` holds, per input channel c in (re, im), ``X_c A_re`` at offset 0
    and ``X_c A_im`` at offset K along the last axis; a Conv with two taps K apart forms
    ``Y_re = X_re A_re - X_im A_im`` and ``Y_im = X_re A_im + X_im A_re``. (Along the rows the
    channel axis reshapes into stacked ``[Re; Im]`` for free, so real block matrices need no
    combine there; along the columns that would take a transpose.)
    """
    w = np.zeros((2, 2, 2))
    w[0, 0, 0], w[0, 1, 1] = 1.0, -1.0  # real part
    w[1, 0, 1], w[1, 1, 0] = 1.0, 1.0  # imaginary part
    return w[:, :, None, :]


def _boundary_masks(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """``Mrow`` (last row 0) and ``Mcol`` (last column 0), each ``(H, W)``."""
    mrow, mcol = np.ones((height, width)), np.ones((height, width))
    mrow[-1, :], mcol[:, -1] = 0.0, 0.0
    return mrow, mcol


class PDHGGraph:
    """Appends the iterations to a :class:`GraphBuilder`; call :meth:`build` once."""

    def __init__(self, g: GraphBuilder, spec: LoopSpec):
        self.g, self.spec = g, spec
        s, t, c, h, w = spec.sigma, spec.tau, spec.channels, spec.height, spec.width
        mrow, mcol = _boundary_masks(h, w)
        self.Mg = g.const("pdhg/grad_mask", np.stack([mrow, mcol] * c)[None])  # (1, 2C, H, W)
        self.M2 = g.const("pdhg/sym_premask", np.stack([mrow, mcol]))  # (2, H, W)
        self.M4 = g.const("pdhg/div2_mask", np.stack([mrow, mcol] * (2 * c))[None])  # (1, 4C, H, W)
        self.Wg = g.const("pdhg/grad_kernel", _grad_kernel(c, s))
        self.WgT = g.const("pdhg/gradT_kernel", _gradT_kernel(c, t))
        self.WE = g.const("pdhg/sym_kernel", _sym_kernel(c, -1.0))
        self.Wd2 = g.const("pdhg/div2_kernel", _div2_kernel(c))
        self.Wsum = g.const("pdhg/div2_pairsum", np.full((2 * c, 2, 1, 1), -s * t))
        self.neg_st = g.const("pdhg/neg_st", np.float32(-s * t))
        self.r_decay = g.const("pdhg/r_decay", np.float32(1.0 / (1.0 + s)))
        self.a_s = s / (1.0 + s)
        self.shape_5d = g.const("pdhg/shape_v5", [0, 2 * c, 1, h, w])
        self.shape_4c = g.const("pdhg/shape_v4c", [0, 4 * c, h, w])
        if spec.task == "mri":
            self.lines = spec.max_lines or w
            c_w = centred_dft_matrix(w)
            self.shape_rows = g.const("pdhg/shape_rows", [0, 2, h, self.lines])
            if spec.row_blocks:
                self._factorised_rows_constants(h, spec.row_blocks)
            else:
                # real forms [[Re, -Im], [Im, Re]] of C_H and C_H^H, (2H, 2H), against [Re; Im] stacked rows
                self.shape_stacked = g.const("pdhg/shape_rows_stacked", [0, 2 * h, self.lines])
                self.rows_fwd = g.const("pdhg/dft_rows", real_dft_block(h))
                self.rows_adj = g.const("pdhg/idft_rows", real_dft_block(h).T)
            self.cols_re = g.const("pdhg/dft_cols_re", c_w.real)  # rows are gathered per sampled line
            self.cols_im = g.const("pdhg/dft_cols_im", c_w.imag)
            self.comb_cols_fwd = g.const("pdhg/comb_cols_fwd", self.a_s * _combine_kernel())
            self.comb_cols_adj = g.const("pdhg/comb_cols_adj", -t * _combine_kernel())
        else:
            self.a_s_const = g.const("pdhg/a_s", np.float32(self.a_s))
            self.neg_t = g.const("pdhg/neg_t", np.float32(-t))

    # -- pieces ------------------------------------------------------------------------------
    def _conv(self, x: str, weight: str, groups: int, hint: str, pads: list[int]) -> str:
        return self.g.op("Conv", [x, weight], hint, group=groups, pads=pads)

    def _clip(self, y: str, bound: str, neg_bound: str, hint: str) -> str:
        return self.g.op("Min", [self.g.op("Max", [y, neg_bound], hint), bound], hint)

    def _sum(self, terms: list[str | None], hint: str) -> str:
        present = [t for t in terms if t is not None]
        return present[0] if len(present) == 1 else self.g.op("Sum", present, hint)

    def _combine(self, products: str, kernel: str, dilation: int) -> str:
        """Finish a complex column product from its four real parts (see :func:`_combine_kernel`)."""
        return self.g.op("Conv", [products, kernel], "dft", dilations=[1, dilation], pads=[0, 0, 0, 0])

    def _factorised_rows_constants(self, h: int, n1: int) -> None:
        """Constants of the two-stage row DFT (:func:`tgv_deploy.dft.factorised_dft`).

        Stage one multiplies the real form of the ``n1``-point matrix into the rows reshaped to
        ``[Re; Im]`` x ``n1`` blocks; stage two, per block ``k1``, the real form of ``m[k1]`` into
        ``[Re; Im]`` stacked along the block's ``n2`` rows. Neither needs a combine Conv. ``r``
        lives in the stage-two layout ``(B, n1, 2 n2, K)`` (block-reordered k-space rows), and the
        data ``f`` is brought into it once, before the loop.
        """
        g, n2, k = self.g, h // n1, self.lines
        a, m, order = factorised_dft(h, n1)
        self.stage1_fwd = g.const("pdhg/dft_rows_stage1", real_form(a))  # (2 n1, 2 n1)
        self.stage1_adj = g.const("pdhg/idft_rows_stage1", real_form(a).T)
        self.stage2_fwd = g.const("pdhg/dft_rows_stage2", real_form(m))  # (n1, 2 n2, 2 n2)
        self.stage2_adj = g.const("pdhg/idft_rows_stage2", np.ascontiguousarray(real_form(m).transpose(0, 2, 1)))
        self.row_order = g.const("pdhg/dft_rows_order", order.astype(np.int64))
        self.shape_stage1 = g.const("pdhg/shape_rows_stage1", [0, 2 * n1, n2 * k])
        self.shape_split = g.const("pdhg/shape_rows_split", [0, 2, n1, n2, k])
        self.shape_blocks = g.const("pdhg/shape_rows_blocks", [0, n1, 2, n2, k])
        self.shape_stage2 = g.const("pdhg/shape_rows_stage2", [0, n1, 2 * n2, k])

    def _to_stage2_layout(self, y: str, hint: str) -> str:
        """Channels-outer ``(B, 2 n1, n2 K)`` or ``(B, 2, H, K)`` -> ``(B, n1, 2 n2, K)`` (re, im stacked per block)."""
        g = self.g
        split = g.op("Reshape", [y, self.shape_split], hint)
        return g.op("Reshape", [g.op("Transpose", [split], hint, perm=[0, 2, 1, 3, 4]), self.shape_stage2], hint)

    def _rows_forward(self, y: str) -> str:
        """``C_H y``: ``(B, 2, H, K)`` -> the row-transformed k-space in ``r``'s layout.

        The channel axis is outermost, so ``(B, 2, H, K)`` reshapes for free into ``[Re; Im]``
        stacked rows ``(B, 2H, K)``, which the real form of a complex matrix multiplies in one
        product: no combine convolution along the rows.
        """
        g = self.g
        if not self.spec.row_blocks:
            stacked = g.op("MatMul", [self.rows_fwd, g.op("Reshape", [y, self.shape_stacked], "dft")], "dft")
            return g.op("Reshape", [stacked, self.shape_rows], "dft")
        stage1 = g.op("MatMul", [self.stage1_fwd, g.op("Reshape", [y, self.shape_stage1], "dft")], "dft")
        return g.op("MatMul", [self.stage2_fwd, self._to_stage2_layout(stage1, "dft")], "dft")

    def _rows_adjoint(self, r: str) -> str:
        """``C_H^H r``: ``r``'s layout -> ``(B, 2, H, K)``."""
        g = self.g
        if not self.spec.row_blocks:
            stacked = g.op("MatMul", [self.rows_adj, g.op("Reshape", [r, self.shape_stacked], "idft")], "idft")
            return g.op("Reshape", [stacked, self.shape_rows], "idft")
        stage2 = g.op("MatMul", [self.stage2_adj, r], "idft")  # (B, n1, 2 n2, K)
        blocks = g.op("Reshape", [stage2, self.shape_blocks], "idft")
        channels = g.op("Reshape", [g.op("Transpose", [blocks], "idft", perm=[0, 2, 1, 3, 4]), self.shape_stage1], "idft")
        return g.op("Reshape", [g.op("MatMul", [self.stage1_adj, channels], "idft"), self.shape_rows], "idft")

    def _data_in_r_layout(self, f_sel: str) -> str:
        """The sampled data ``(B, 2, H, K)`` in ``r``'s layout (once, before the loop)."""
        if not self.spec.row_blocks:
            return f_sel
        return self._to_stage2_layout(self.g.op("Gather", [f_sel, self.row_order], "lines", axis=2), "lines")

    def _forward(self, x: str, cols_fwd: str) -> str:
        """``(s/(1+s)) M F x`` on the sampled lines: image ``(B, 2, H, W)`` -> ``r``'s layout."""
        y = self._combine(self.g.op("MatMul", [x, cols_fwd], "dft"), self.comb_cols_fwd, self.lines)
        return self._rows_forward(y)

    def _adjoint(self, r: str, cols_adj: str) -> str:
        """``-t F^H r`` from the sampled lines: ``r``'s layout -> image ``(B, 2, H, W)``."""
        y = self._rows_adjoint(r)
        return self._combine(self.g.op("MatMul", [y, cols_adj], "idft"), self.comb_cols_adj, self.spec.width)

    def _sampled_lines(self, f: str, mask: str) -> tuple[str, str, str]:
        """The K sampled lines of each mask: column matrices and the data restricted to them.

        TopK on ``2 * mask - position / W`` lists the sampled lines first (in order), then
        unsampled ones as padding; the padding is zeroed through the gathered mask values.
        Returns ``cols_fwd (B, W, 2K)``, ``cols_adj (B, K, 2W)`` and ``f_sel (B, 2, H, K)``.
        """
        g, w, k = self.g, self.spec.width, self.lines
        m = g.op("Reshape", [mask, g.const("pdhg/shape_mask2d", [0, w])], "lines")
        score = g.op("Sub", [g.op("Mul", [m, g.const("pdhg/two", np.float32(2.0))], "lines"), g.const("pdhg/ramp", np.arange(w) / w)], "lines")
        idx = g.fresh("lines_idx")
        g.nodes.append(helper.make_node("TopK", [score, g.const("pdhg/k", [k])], [g.fresh("lines_val"), idx], name=idx, axis=1, largest=1, sorted=1))
        m_sel = g.op("GatherElements", [m, idx], "lines", axis=1)  # (B, K): 1 sampled, 0 padding
        re = g.op("Mul", [g.op("Gather", [self.cols_re, idx], "lines", axis=0), g.op("Unsqueeze", [m_sel, g.const("pdhg/ax2", [2])], "lines")], "lines")
        im = g.op("Mul", [g.op("Gather", [self.cols_im, idx], "lines", axis=0), g.op("Unsqueeze", [m_sel, g.const("pdhg/ax2", [2])], "lines")], "lines")
        # forward: y = x C_sel^T  ->  x @ [Re^T | Im^T];  adjoint: y = r conj(C_sel)  ->  r @ [Re | -Im]
        cols_fwd = g.op("Concat", [g.op("Transpose", [re], "lines", perm=[0, 2, 1]), g.op("Transpose", [im], "lines", perm=[0, 2, 1])], "lines", axis=2)
        cols_adj = g.op("Concat", [re, g.op("Neg", [im], "lines")], "lines", axis=2)
        cols_fwd = g.op("Unsqueeze", [cols_fwd, g.const("pdhg/ax1", [1])], "lines")  # (B, 1, W, 2K) against (B, 2, H, W)
        cols_adj = g.op("Unsqueeze", [cols_adj, g.const("pdhg/ax1", [1])], "lines")  # (B, 1, K, 2W)
        select = g.op("Unsqueeze", [g.op("Transpose", [g.op("Gather", [g.const("pdhg/eye_w", np.eye(w)), idx], "lines", axis=0)], "lines", perm=[0, 2, 1]),
                                    g.const("pdhg/ax1", [1])], "lines")  # (B, 1, W, K) one-hot
        f_sel = g.op("MatMul", [f, select], "lines")
        return cols_fwd, cols_adj, f_sel

    # -- the loop ----------------------------------------------------------------------------
    def build(self, x0: str, f: str, maps: str, mask: str | None) -> str:
        """Append all iterations; returns the name of the final ``x (B, C, H, W)``.

        ``x0 = A^H f``, ``f`` the (normalised, pre-masked) data ``(B, C, H, W)``, ``maps``
        ``(B, 2, H, W)`` as (L0, L1) for TGV or ``(B, 1, H, W)`` for TV, ``mask (B, 1, 1, W)``.
        """
        g, spec, c = self.g, self.spec, self.spec.channels
        tgv = spec.kind == "utgv"
        l1 = g.op("Slice", [maps, g.const("pdhg/i1", [1]), g.const("pdhg/i2", [2]), g.const("pdhg/ax1", [1])], "l1") if tgv else maps
        # for TV, L0 is never read (no q); the names keep one code path
        l0 = g.op("Slice", [maps, g.const("pdhg/i0", [0]), g.const("pdhg/i1", [1]), g.const("pdhg/ax1", [1])], "l0") if tgv else l1
        nl1 = g.op("Neg", [l1], "l1")
        nl0 = g.op("Neg", [l0], "l0") if tgv else nl1
        if spec.task == "mri":
            if mask is None:
                raise ValueError("MRI graphs need the mask input")
            cols_fwd, cols_adj, f = self._sampled_lines(f, mask)
            f = self._data_in_r_layout(f)
        nsf = g.op("Mul", [f, g.const("pdhg/neg_a_s", np.float32(-self.a_s))], "nsf")
        x = xbar = x0
        V = Vbar = p = q = r = None
        for _ in range(spec.iterations):
            g.mark_iteration()
            # dual updates
            grad = g.op("Mul", [self._conv(xbar, self.Wg, c, "grad", PADS_PLUS), self.Mg], "grad")
            p = self._clip(self._sum([p, grad, Vbar], "p"), l1, nl1, "p")
            if tgv and Vbar is not None:
                pre = g.op("Mul", [g.op("Reshape", [Vbar, self.shape_5d], "sym"), self.M2], "sym")
                ev = self._conv(g.op("Reshape", [pre, self.shape_4c], "sym"), self.WE, c, "sym", PADS_MINUS)
                q = self._clip(self._sum([q, ev], "q"), l0, nl0, "q")
            if spec.task == "mri":
                decayed = g.op("Mul", [r, self.r_decay], "r") if r is not None else None
                r = self._sum([decayed, self._forward(xbar, cols_fwd), nsf], "r")
                data_step = self._adjoint(r, cols_adj)
            else:
                decayed = g.op("Mul", [r, self.r_decay], "r") if r is not None else None
                r = self._sum([decayed, g.op("Mul", [xbar, self.a_s_const], "r"), nsf], "r")
                data_step = g.op("Mul", [r, self.neg_t], "x")
            # primal updates
            div_step = self._conv(g.op("Mul", [p, self.Mg], "x"), self.WgT, c, "x", PADS_MINUS)
            x_new = self._sum([x, div_step, data_step], "x")
            xbar = self._sum([x_new, div_step, data_step], "xbar")
            x = x_new
            if tgv:
                dv = [g.op("Mul", [p, self.neg_st], "v")]
                if q is not None:
                    d2 = g.op("Mul", [self._conv(q, self.Wd2, c, "div2", PADS_PLUS), self.M4], "div2")
                    dv.append(self._conv(d2, self.Wsum, 2 * c, "div2", [0, 0, 0, 0]))
                V_new = self._sum([V, *dv], "v")
                Vbar = self._sum([V_new, *dv], "vbar")
                V = V_new
        g.mark_iteration()
        return x
