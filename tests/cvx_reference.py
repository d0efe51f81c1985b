"""CVXPY/Clarabel minima of the TGV energy (SPEC sections 1 and 2b), the reference of the solver tests."""

import cvxpy as cp
import numpy as np
import scipy.sparse as sp


def dplus_matrix(n, periodic=False):
    d = sp.lil_matrix((n, n))
    for k in range(n - 1):
        d[k, k], d[k, k + 1] = -1.0, 1.0
    if periodic:  # SPEC 2b: (D+ u)[N-1] = u[0] - u[N-1]
        d[n - 1, n - 1], d[n - 1, 0] = -1.0, 1.0
    return d.tocsr()


def _data_term(f, mask, xs, maps=None):
    """``1/2 ||A x - f||^2`` for real (mask None) or (real, imaginary) variables ``xs``; with coil
    ``maps (C, H, W)`` complex, ``f (C, H, W)`` and ``A x = (M F (S_c x))_c`` (SENSE)."""
    if mask is None:
        return 0.5 * cp.sum_squares(xs[0] - f.ravel())
    h, w = f.shape[-2:]
    # vec(C_H X C_W^T) = kron(C_H, C_W) vec(X) for row-major vectorisation; rows outside the mask drop out.
    ch = np.fft.fftshift(np.fft.fft(np.fft.ifftshift(np.eye(h), axes=0), axis=0, norm="ortho"), axes=0)
    cw = np.fft.fftshift(np.fft.fft(np.fft.ifftshift(np.eye(w), axes=0), axis=0, norm="ortho"), axes=0)
    keep = np.broadcast_to(mask, (h, w)).ravel() > 0
    dft = np.kron(ch, cw)[keep]
    coils = [(dft, f)] if maps is None else [(dft * s.ravel()[None, :], fc) for s, fc in zip(maps, f)]
    total = 0
    for a, fc in coils:
        fk = fc.ravel()[keep]
        re = a.real @ xs[0] - a.imag @ xs[1] - fk.real
        im = a.imag @ xs[0] + a.real @ xs[1] - fk.imag
        total += 0.5 * (cp.sum_squares(re) + cp.sum_squares(im))
    return total


#: Relative accuracy of the CVXPY/Clarabel minimum: the duality gap it certifies, plus float64
#: round-off in the energy sums. Below it a solver's gap is indistinguishable from zero.
REFERENCE_ACCURACY = 1e-9


def _solve_certified(problem):
    """Solve with Clarabel aiming at gaps of 1e-11 and accept the result only if its duality gap is
    certified below ``REFERENCE_ACCURACY / 2``.

    The dense DFT rows make the interior-point KKT systems ill-conditioned near the solution, and
    whether the last steps reach 1e-11 or stall at a few 1e-10 depends on the summation order (a
    multi-threaded factorisation varies it from run to run). Clarabel reports such a stall as
    "almost solved" only when the reduced tolerances hold, so those are set to what the tests rely
    on instead of Clarabel's defaults (about 5e-5). Clarabel divides the gap by max(1, energy); the
    energies here are all above 0.5, so the relative gap stays below ``REFERENCE_ACCURACY``. One
    thread keeps the reference reproducible.
    """
    problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-11, tol_gap_rel=1e-11, tol_feas=1e-11,
                  reduced_tol_gap_abs=1e-13, reduced_tol_gap_rel=REFERENCE_ACCURACY / 2,
                  reduced_tol_feas=1e-10, max_threads=1)
    assert problem.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE), problem.status


def exact_tgv_minimum(f, lam0, lam1, mask, periodic=False, maps=None):
    """Solve the TGV problem of one image (H, W) with CVXPY + Clarabel, as stacked real vectors
    (multi-coil: ``f (C, H, W)`` and ``maps (C, H, W)``, see :func:`_data_term`)."""
    h, w = f.shape[-2:]
    n = h * w
    d0 = sp.kron(dplus_matrix(h, periodic), sp.eye(w))
    d1 = sp.kron(sp.eye(h), dplus_matrix(w, periodic))
    m0, m1 = -d0.T, -d1.T  # backward differences D- = -(D+)^T
    channels = 1 if mask is None else 2
    xs = [cp.Variable(n) for _ in range(channels)]
    v1s = [cp.Variable(n) for _ in range(channels)]
    v2s = [cp.Variable(n) for _ in range(channels)]
    l0, l1 = lam0.ravel(), lam1.ravel()
    reg = 0
    for x, v1, v2 in zip(xs, v1s, v2s):
        reg += cp.sum(cp.multiply(l1, cp.abs(d0 @ x - v1) + cp.abs(d1 @ x - v2)))
        e_xx, e_yy, e_xy = m0 @ v1, m1 @ v2, 0.5 * (m1 @ v1 + m0 @ v2)
        reg += cp.sum(cp.multiply(l0, cp.abs(e_xx) + cp.abs(e_yy) + 2 * cp.abs(e_xy)))
    data = _data_term(f, mask, xs, maps)
    problem = cp.Problem(cp.Minimize(data + reg))
    _solve_certified(problem)
    return problem.value


def assert_gap_decreases_to_reference(gaps):
    """Strictly decreasing while above the reference's accuracy; within it from then on."""
    reached = next((i for i, g in enumerate(gaps) if abs(g) <= REFERENCE_ACCURACY), len(gaps) - 1)
    assert all(b < a for a, b in zip(gaps[:reached], gaps[1 : reached + 1])), gaps
    assert all(abs(g) <= REFERENCE_ACCURACY for g in gaps[reached + 1 :]), gaps


def exact_tv_minimum(f, lam, mask, periodic=False):
    """The anisotropic TV minimum of one real (mask None) or complex k-space (H, W) problem, scalar ``lam``."""
    h, w = f.shape
    d0 = sp.kron(dplus_matrix(h, periodic), sp.eye(w))
    d1 = sp.kron(sp.eye(h), dplus_matrix(w, periodic))
    channels = 1 if mask is None else 2
    xs = [cp.Variable(h * w) for _ in range(channels)]
    reg = sum(lam * cp.sum(cp.abs(d0 @ x) + cp.abs(d1 @ x)) for x in xs)
    data = _data_term(f, mask, xs)
    problem = cp.Problem(cp.Minimize(data + reg))
    _solve_certified(problem)
    return problem.value


def exact_tv_minimum_sense(f, lam, mask, maps):
    """The periodic anisotropic TV minimum of one multi-coil problem ``f (C, H, W)``, ``maps (C, H, W)``."""
    h, w = f.shape[-2:]
    d0 = sp.kron(dplus_matrix(h, True), sp.eye(w))
    d1 = sp.kron(sp.eye(h), dplus_matrix(w, True))
    xs = [cp.Variable(h * w) for _ in range(2)]
    reg = sum(lam * cp.sum(cp.abs(d0 @ x) + cp.abs(d1 @ x)) for x in xs)
    problem = cp.Problem(cp.Minimize(_data_term(f, mask, xs, maps) + reg))
    _solve_certified(problem)
    return problem.value
