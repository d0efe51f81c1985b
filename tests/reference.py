"""An independent numpy float64 implementation of SPEC sections 1-2, written from the spec text.

It shares no code with the package: complex arithmetic instead of channels, np.fft instead of
the package's operators, explicit index formulas for the differences.
"""

from __future__ import annotations

import numpy as np


def dplus(u, axis):
    d = np.zeros_like(u)
    n = u.shape[axis]
    sl = [slice(None)] * u.ndim
    lo, hi = list(sl), list(sl)
    lo[axis], hi[axis] = slice(0, n - 1), slice(1, n)
    d[tuple(lo)] = u[tuple(hi)] - u[tuple(lo)]
    return d


def dminus(u, axis):
    d = np.zeros_like(u)
    n = u.shape[axis]
    idx = lambda k: tuple(k if a == axis else slice(None) for a in range(u.ndim))  # noqa: E731
    d[idx(0)] = u[idx(0)]
    for k in range(1, n - 1):
        d[idx(k)] = u[idx(k)] - u[idx(k - 1)]
    d[idx(n - 1)] = -u[idx(n - 2)]
    return d


# Axes of a (B, H, W) array: rows = 1, columns = 2.
def grad(x):
    return dplus(x, 1), dplus(x, 2)


def div(p1, p2):
    return dminus(p1, 1) + dminus(p2, 2)


def symgrad(v1, v2):
    return dminus(v1, 1), dminus(v2, 2), 0.5 * (dminus(v1, 2) + dminus(v2, 1))


def div2(xx, yy, xy):
    return dplus(xx, 1) + dplus(xy, 2), dplus(xy, 1) + dplus(yy, 2)


def fft2c(x):
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=(1, 2)), norm="ortho"), axes=(1, 2))


def ifft2c(k):
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=(1, 2)), norm="ortho"), axes=(1, 2))


def clip(y, lam):
    if np.iscomplexobj(y):
        return np.clip(y.real, -lam, lam) + 1j * np.clip(y.imag, -lam, lam)
    return np.clip(y, -lam, lam)


def pdhg_tgv(f, lam0, lam1, mask, iterations, s, t, theta=1.0):
    if mask is None:
        A = AH = lambda z: z  # noqa: E731
    else:
        A = lambda z: mask * fft2c(z)  # noqa: E731
        AH = lambda z: ifft2c(mask * z)  # noqa: E731
    x = AH(f)
    xbar = x.copy()
    v1 = np.zeros_like(x)
    v2 = np.zeros_like(x)
    vb1, vb2 = v1.copy(), v2.copy()
    p1, p2 = np.zeros_like(x), np.zeros_like(x)
    qxx, qyy, qxy = np.zeros_like(x), np.zeros_like(x), np.zeros_like(x)
    r = np.zeros_like(f)
    for _ in range(iterations):
        g1, g2 = grad(xbar)
        p1 = clip(p1 + s * (g1 - vb1), lam1)
        p2 = clip(p2 + s * (g2 - vb2), lam1)
        exx, eyy, exy = symgrad(vb1, vb2)
        qxx, qyy, qxy = clip(qxx + s * exx, lam0), clip(qyy + s * eyy, lam0), clip(qxy + s * exy, lam0)
        r = (r + s * (A(xbar) - f)) / (1 + s)
        xn = x + t * (div(p1, p2) - AH(r))
        d1, d2 = div2(qxx, qyy, qxy)
        vn1, vn2 = v1 + t * (p1 + d1), v2 + t * (p2 + d2)
        xbar = xn + theta * (xn - x)
        vb1, vb2 = vn1 + theta * (vn1 - v1), vn2 + theta * (vn2 - v2)
        x, v1, v2 = xn, vn1, vn2
    return x


def l1(z):
    return np.abs(z.real) + np.abs(z.imag) if np.iscomplexobj(z) else np.abs(z)


def tgv_energy(x, v1, v2, f, lam0, lam1, mask):
    ax = x if mask is None else mask * fft2c(x)
    g1, g2 = grad(x)
    exx, eyy, exy = symgrad(v1, v2)
    data = 0.5 * np.sum(np.abs(ax - f) ** 2, axis=(1, 2))
    first = np.sum(lam1 * (l1(g1 - v1) + l1(g2 - v2)), axis=(1, 2))
    second = np.sum(lam0 * (l1(exx) + l1(eyy) + 2 * l1(exy)), axis=(1, 2))
    return data + first + second
