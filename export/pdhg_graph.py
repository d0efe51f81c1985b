"""The T unrolled PDHG iterations written directly as ONNX nodes (36 per MRI iteration).

Exporting the unrolled loop through ``torch.onnx.export`` produces hundreds of nodes per
iteration and takes minutes at T = 256. Here one iteration is written by hand, with the step
sizes folded into constants, and repeated T times; all constants are shared by name, so a graph
of any T holds each DFT matrix and convolution kernel once.

The iteration is SPEC section 2 rewritten with the scaled variable ``V = -s v`` so that
sums replace subtractions and scalings::

    p = clip(p + Mg (s grad) xbar + Vbar, L1)                           Conv Mul Sum Max Min
    q = clip(q - (s E)(Vbar), L0)                                       Reshape Mul Reshape Conv Add Max Min
    r = r/(1+s) + (s/(1+s)) M F xbar - (s/(1+s)) f                      DFT(6) Mul Sum
    dx = (t grad^T-kernel)(Mg p) + (-t F^H) r;  x+ = x + dx;  xbar = x+ + dx
    dv = -st p + (-st div2) q;                  V+ = V + dv;  Vbar = V+ + dv

Finite differences are 3x3 grouped convolutions (symmetric zero padding): ``D+`` needs its last
row (column) zeroed after the convolution (mask ``Mg``), ``D-`` needs the input's last row
(column) zeroed before it, which reproduces ``(D- u)[N-1] = -u[N-2]`` exactly.

Layouts inside the loop: images ``(B, C, H, W)``; ``p`` and ``V`` ``(B, 2C, H, W)`` ordered
(channel, direction); ``q`` ``(B, 3C, H, W)`` ordered (channel, [xx, yy, xy]); k-space ``r``
``(B, H, 2W)`` = (B, H, [real | imaginary] x W), so each 2D DFT is two matrix products and one
transpose. ``r`` keeps the support of the (pre-masked) data, so ``A^H r = F^H r``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tgv_deploy.dft import real_dft_block
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

    @property
    def channels(self) -> int:
        return 2 if self.task == "mri" else 1


def _grad_kernel(channels: int, scale: float) -> np.ndarray:
    """``scale * (D0+, D1+)`` per channel: weights ``(2C, 1, 3, 3)`` for ``groups = C``."""
    w = np.zeros((2 * channels, 1, 3, 3))
    for c in range(channels):
        w[2 * c, 0, 1, 1], w[2 * c, 0, 2, 1] = -1.0, 1.0  # u[i+1, j] - u[i, j]
        w[2 * c + 1, 0, 1, 1], w[2 * c + 1, 0, 1, 2] = -1.0, 1.0  # u[i, j+1] - u[i, j]
    return scale * w


def _dminus(axis: int) -> np.ndarray:
    """3x3 kernel of ``u[k] - u[k-1]`` along ``axis`` (0 rows, 1 columns)."""
    k = np.zeros((3, 3))
    k[1, 1] = 1.0
    k[(0, 1) if axis == 0 else (1, 0)] = -1.0
    return k


def _dplus(axis: int) -> np.ndarray:
    k = np.zeros((3, 3))
    k[1, 1] = -1.0
    k[(2, 1) if axis == 0 else (1, 2)] = 1.0
    return k


def _gradT_kernel(channels: int, scale: float) -> np.ndarray:
    """``scale * (D0- p0 + D1- p1)`` = ``-scale * grad^T p`` on pre-masked p: ``(C, 2, 3, 3)``."""
    w = np.zeros((channels, 2, 3, 3))
    w[:, 0], w[:, 1] = _dminus(0), _dminus(1)
    return scale * w


def _sym_kernel(channels: int, scale: float) -> np.ndarray:
    """``scale * E`` from pre-masked inputs ``(v1 Mrow, v1 Mcol, v2 Mrow, v2 Mcol)``: ``(3C, 4, 3, 3)``."""
    w = np.zeros((3 * channels, 4, 3, 3))
    for c in range(channels):
        w[3 * c + 0, 0] = _dminus(0)  # xx = D0- v1
        w[3 * c + 1, 3] = _dminus(1)  # yy = D1- v2
        w[3 * c + 2, 1] = 0.5 * _dminus(1)  # xy = (D1- v1 + D0- v2) / 2
        w[3 * c + 2, 2] = 0.5 * _dminus(0)
    return scale * w


def _div2_kernel(channels: int) -> np.ndarray:
    """``(D0+ qxx, D1+ qxy, D0+ qxy, D1+ qyy)`` per channel: ``(4C, 3, 3, 3)`` for ``groups = C``."""
    w = np.zeros((4 * channels, 3, 3, 3))
    for c in range(channels):
        w[4 * c + 0, 0], w[4 * c + 1, 2] = _dplus(0), _dplus(1)
        w[4 * c + 2, 2], w[4 * c + 3, 1] = _dplus(0), _dplus(1)
    return w


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
            self.L_fwd = g.const("pdhg/dft_rows", self.a_s * real_dft_block(h))  # (2H, 2H), scaled
            self.L_adj = g.const("pdhg/idft_rows", -t * real_dft_block(h).T)
            self.R = real_dft_block(w).T  # right factor of the column transform (2W, 2W)
            self.R_adj = g.const("pdhg/idft_cols", real_dft_block(w))
            self.shape_rows = g.const("pdhg/shape_rows", [0, 2 * h, w])
            self.shape_img = g.const("pdhg/shape_img", [0, 2, h, w])
            self.shape_k4 = g.const("pdhg/shape_k4", [0, h, 2, w])
            self.shape_k3 = g.const("pdhg/shape_k3", [0, h, 2 * w])
        else:
            self.a_s_const = g.const("pdhg/a_s", np.float32(self.a_s))
            self.neg_t = g.const("pdhg/neg_t", np.float32(-t))

    # -- pieces ------------------------------------------------------------------------------
    def _conv(self, x: str, weight: str, groups: int, hint: str, pad: int = 1) -> str:
        return self.g.op("Conv", [x, weight], hint, group=groups, pads=[pad] * 4)

    def _clip(self, y: str, bound: str, neg_bound: str, hint: str) -> str:
        return self.g.op("Min", [self.g.op("Max", [y, neg_bound], hint), bound], hint)

    def _sum(self, terms: list[str | None], hint: str) -> str:
        terms = [t for t in terms if t is not None]
        return terms[0] if len(terms) == 1 else self.g.op("Sum", terms, hint)

    def _dft_masked(self, x: str, col_matrix: str) -> str:
        """``(s/(1+s)) M F x``: image ``(B, 2, H, W)`` -> k-space ``(B, H, 2W)``."""
        g = self.g
        rows = g.op("MatMul", [self.L_fwd, g.op("Reshape", [x, self.shape_rows], "dft")], "dft")
        k4 = g.op("Transpose", [g.op("Reshape", [rows, self.shape_img], "dft")], "dft", perm=[0, 2, 1, 3])
        return g.op("MatMul", [g.op("Reshape", [k4, self.shape_k3], "dft"), col_matrix], "dft")

    def _idft_scaled(self, r: str) -> str:
        """``-t F^H r``: k-space ``(B, H, 2W)`` -> image ``(B, 2, H, W)``."""
        g = self.g
        cols = g.op("MatMul", [r, self.R_adj], "idft")
        img = g.op("Transpose", [g.op("Reshape", [cols, self.shape_k4], "idft")], "idft", perm=[0, 2, 1, 3])
        rows = g.op("MatMul", [self.L_adj, g.op("Reshape", [img, self.shape_rows], "idft")], "idft")
        return g.op("Reshape", [rows, self.shape_img], "idft")

    # -- the loop ----------------------------------------------------------------------------
    def build(self, x0: str, f: str, maps: str, mask: str | None) -> str:
        """Append all iterations; returns the name of the final ``x (B, C, H, W)``.

        ``x0 = A^H f``, ``f`` the (normalised, pre-masked) data ``(B, C, H, W)``, ``maps``
        ``(B, 2, H, W)`` as (L0, L1) for TGV or ``(B, 1, H, W)`` for TV, ``mask (B, 1, 1, W)``.
        """
        g, spec, c = self.g, self.spec, self.spec.channels
        tgv = spec.kind == "utgv"
        l1 = g.op("Slice", [maps, g.const("pdhg/i1", [1]), g.const("pdhg/i2", [2]), g.const("pdhg/ax1", [1])], "l1") if tgv else maps
        l0 = g.op("Slice", [maps, g.const("pdhg/i0", [0]), g.const("pdhg/i1", [1]), g.const("pdhg/ax1", [1])], "l0") if tgv else None
        nl1 = g.op("Neg", [l1], "l1")
        nl0 = g.op("Neg", [l0], "l0") if tgv else None
        if spec.task == "mri":
            fk = g.op("Reshape", [g.op("Transpose", [f], "fk", perm=[0, 2, 1, 3]), self.shape_k3], "fk")
            nsf = g.op("Mul", [fk, g.const("pdhg/neg_a_s", np.float32(-self.a_s))], "nsf")
            m = g.op("Reshape", [mask, g.const("pdhg/shape_mask", [0, 1, spec.width])], "mask")
            m2 = g.op("Concat", [m, m], "mask", axis=2)  # (B, 1, 2W): real and imaginary columns
            col_matrix = g.op("Mul", [g.const("pdhg/dft_cols", self.R), m2], "dft_cols")  # (B, 2W, 2W)
        else:
            nsf = g.op("Mul", [f, g.const("pdhg/neg_a_s", np.float32(-self.a_s))], "nsf")
            col_matrix = None
        x = xbar = x0
        V = Vbar = p = q = r = None
        for _ in range(spec.iterations):
            # dual updates
            grad = g.op("Mul", [self._conv(xbar, self.Wg, c, "grad"), self.Mg], "grad")
            p = self._clip(self._sum([p, grad, Vbar], "p"), l1, nl1, "p")
            if tgv and Vbar is not None:
                pre = g.op("Mul", [g.op("Reshape", [Vbar, self.shape_5d], "sym"), self.M2], "sym")
                ev = self._conv(g.op("Reshape", [pre, self.shape_4c], "sym"), self.WE, c, "sym")
                q = self._clip(self._sum([q, ev], "q"), l0, nl0, "q")
            if spec.task == "mri":
                ax = self._dft_masked(xbar, col_matrix)
                decayed = g.op("Mul", [r, self.r_decay], "r") if r is not None else None
                r = self._sum([decayed, ax, nsf], "r")
                data_step = self._idft_scaled(r)
            else:
                decayed = g.op("Mul", [r, self.r_decay], "r") if r is not None else None
                r = self._sum([decayed, g.op("Mul", [xbar, self.a_s_const], "r"), nsf], "r")
                data_step = g.op("Mul", [r, self.neg_t], "x")
            # primal updates
            div_step = self._conv(g.op("Mul", [p, self.Mg], "x"), self.WgT, c, "x")
            x_new = self._sum([x, div_step, data_step], "x")
            xbar = self._sum([x_new, div_step, data_step], "xbar")
            x = x_new
            if tgv:
                dv = [g.op("Mul", [p, self.neg_st], "v")]
                if q is not None:
                    d2 = g.op("Mul", [self._conv(q, self.Wd2, c, "div2"), self.M4], "div2")
                    dv.append(self._conv(d2, self.Wsum, 2 * c, "div2", pad=0))
                V_new = self._sum([V, *dv], "v")
                Vbar = self._sum([V_new, *dv], "vbar")
                V = V_new
        return x
