"""The lip fit's Levenberg–Marquardt, compiled (numba): one profile at a time in one loop.

Why compiled: in numpy every LM iteration of the whole batch cost ~120 numpy calls (~0.2 ms
whatever the count of profiles still running), and the image-wide stages run hundreds of
iterations for their slowest few profiles (docs/records/sem-edges.md, rounds three to five).
Here each profile runs its own loop to its own stop, so nothing waits on the slowest, and the
loop holds no GIL (``nogil``): two threads fit two halves of a batch at once.

The model, bounds, damping and stops are :func:`castrig.analysis.edges._fit_lips`'s (its
docstring says what each does); the special functions are scipy's own (ndtr and erfcx through
``scipy.special.cython_special``, the same values as the ufuncs). Compiled on first use and
cached next to this module (``cache=True``: ~5-10 s once, then loaded in ~0.3-0.5 s per
process); imported only by a fit, so the commands that analyse no SEM view never load numba.
"""

from __future__ import annotations

import math

import llvmlite.binding as _llvm
import numpy as np
from numba import njit, types
from numba.extending import get_cython_function_address

# scipy's ndtr and erfcx (double versions) by symbol name, not by address: a function that calls
# an address is not cached (the address changes from process to process), one that calls a
# named symbol is, the symbol bound again here in each process before the cache is loaded
for _name, _sym in (("__pyx_fuse_1ndtr", "castrig_scipy_ndtr"), ("__pyx_fuse_1erfcx", "castrig_scipy_erfcx")):
    _llvm.add_symbol(_sym, get_cython_function_address("scipy.special.cython_special", _name))
_ndtr = types.ExternalFunction("castrig_scipy_ndtr", types.float64(types.float64, types.intc))
_erfcx = types.ExternalFunction("castrig_scipy_erfcx", types.float64(types.float64, types.intc))

_SQRT1_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT2PI = 1.0 / math.sqrt(2 * math.pi)
_HALF_SQRT2PI = 0.5 * math.sqrt(2 * math.pi)


@njit(cache=True, nogil=True)
def _mx(a, b):
    """np.maximum's value (NaN wins)."""
    if a != a or b != b:
        return a + b
    return a if a >= b else b


@njit(cache=True, nogil=True)
def _mn(a, b):
    """np.minimum's value (NaN wins)."""
    if a != a or b != b:
        return a + b
    return a if a <= b else b


@njit(cache=True, nogil=True)
def _value(rho, y, wt, q, qs, userim, S2hold, S2ok, prior, pk, pw, r, S, phi, Q, z, z2, S2):
    """Weighted residuals ``r`` (m points, then the width prior's when ``prior``) of one profile
    at (q, σ = qs) and the terms its Jacobian shares; returns the cost. ``S2ok``: the inner
    step's blurred profile ``S2hold`` holds for this q and σ (not computed again)."""
    m = rho.shape[0]
    R, c, A, w, F, R2, c2 = q[0], q[1], q[2], q[3], q[4], q[5], q[6]
    s = qs
    Rc = _mx(R, 1.0)
    Re = R - s * s / (2 * Rc)
    R2e = R2 - s * s / (2 * _mx(R2, 1.0))
    cost = 0.0
    for i in range(m):
        zi = (Re - rho[i]) / s
        z[i] = zi
        S[i] = _ndtr(zi, 0)
        ph = math.exp(-0.5 * zi * zi)
        ph *= _INV_SQRT2PI
        phi[i] = ph
        if userim:
            b = _mn(zi - s / w, 26.0)
            b *= -_SQRT1_2
            qi = _erfcx(b, 0)
            qi *= ph
            qi *= _HALF_SQRT2PI
            Q[i] = qi
        if S2ok:
            S2[i] = S2hold[i]
        else:
            z2i = (R2e - rho[i]) / s
            z2[i] = z2i
            S2[i] = _ndtr(z2i, 0)
        v = (c - F) * S[i]
        v += F
        if userim:
            v += A * Q[i]
        v += (c2 - c) * S2[i]
        v -= y[i]
        v *= wt[i]
        r[i] = v
        cost += v * v
    if prior:
        kR = pk * _mx(R, 0.2)
        e = pw * (w / kR - 1.0)
        r[m] = e
        cost += e * e
    return cost


@njit(cache=True, nogil=True)
def _normal(rho, wt, q, qs, userim, jcols, prior, i0, i3, pk, pw, r, S, phi, Q, z, z2, S2, J, JTJ, g):
    """JᵀJ and Jᵀr of one profile from the terms :func:`_value` left (the Jacobian's columns
    ``jcols``: parameter indices, 7 the blur σ), each column weighted by the profile's weights."""
    m = rho.shape[0]
    k = jcols.shape[0]
    R, c, A, w, F, R2, c2 = q[0], q[1], q[2], q[3], q[4], q[5], q[6]
    s = qs
    Rc = _mx(R, 1.0)
    Re = R - s * s / (2 * Rc)
    R2c = _mx(R2, 1.0)
    for j in range(k):
        col = jcols[j]
        for i in range(m):
            if col == 0:
                ps = phi[i] / s
                dRe = 1.0 + s * s / (2 * Rc * Rc)
                v = (c - F) * ps
                if userim:
                    v += A * (ps - Q[i] / w)
                v = v * dRe
            elif col == 1:
                v = S[i] - S2[i]
            elif col == 2:
                v = Q[i]
            elif col == 3:
                iw2 = 1.0 / (w * w)
                v = Re - rho[i]
                v *= iw2
                v -= s * s * iw2 / w
                v *= Q[i]
                v += phi[i] * (s * iw2)
                v = v * A
            elif col == 4:
                v = 1.0 - S[i]
            elif col == 5:
                v = (c2 - c) * math.exp(-0.5 * z2[i] * z2[i]) * _INV_SQRT2PI / s * (1.0 + s * s / (2 * R2c ** 2))
            elif col == 6:
                v = S2[i]
            else:
                dz = -1.0 / Rc - z[i] / s
                dz2 = -1.0 / R2c - z2[i] / s
                v = (c - F) * phi[i] * dz
                if userim:
                    v += A * (Q[i] * (s / (w * Rc) + s / (w * w)) + phi[i] * (dz - 1.0 / w))
                v += (c2 - c) * math.exp(-0.5 * z2[i] * z2[i]) * _INV_SQRT2PI * dz2
            J[j, i] = v * wt[i]
    for a in range(k):
        ga = 0.0
        for i in range(m):
            ga += J[a, i] * r[i]
        g[a] = ga
        for b in range(a + 1):
            t = 0.0
            for i in range(m):
                t += J[a, i] * J[b, i]
            JTJ[a, b] = t
            JTJ[b, a] = t
    if prior:
        # the width prior's residual touches only w and R: its rank-one term
        kR = pk * _mx(R, 0.2)
        e3 = pw / kR
        e0 = -pw * w / (kR * _mx(R, 0.2))
        re = r[m]
        JTJ[i3, i3] += e3 * e3
        JTJ[i0, i0] += e0 * e0
        JTJ[i0, i3] += e0 * e3
        JTJ[i3, i0] += e0 * e3
        g[i3] += e3 * re
        g[i0] += e0 * re


@njit(cache=True, nogil=True)
def _damped_step(JTJ, g, la, a, x):
    """The LM step x: (JᵀJ + λ·(diag JᵀJ + 10⁻⁹))·x = −Jᵀr by elimination without pivoting (the
    damped matrix is symmetric positive definite); no step (zeros) where it breaks down."""
    k = g.shape[0]
    for i in range(k):
        for j in range(k):
            a[i, j] = JTJ[i, j]
        a[i, k] = -g[i]
        a[i, i] += la * (a[i, i] + 1e-9)
    for j in range(k - 1):
        for i in range(j + 1, k):
            f = a[i, j] / a[j, j]
            for c in range(j + 1, k + 1):
                a[i, c] -= f * a[j, c]
    ok = True
    for j in range(k - 1, -1, -1):
        v = a[j, k]
        for c in range(j + 1, k):
            v -= a[j, c] * x[c]
        x[j] = v / a[j, j]
        if not math.isfinite(x[j]):
            ok = False
    if not ok:
        for j in range(k):
            x[j] = 0.0


@njit(cache=True, nogil=True)
def fit_lips(rho, y, wt, p, s, lo, hi, cmax, flo, fhi, pk, pw, cols, fit_s, rim, prior, iters, s_max, its):
    """Levenberg–Marquardt on each profile in turn (``p`` (n, 7) and ``s`` (n,) updated in place;
    returns the costs). ``cols``: the free parameters' indices; ``fit_s``: σ free too; ``rim``:
    A free and the secant law, else A held at 0; ``prior``: the rim width's soft prior
    pw·(w/(pk·R) − 1); ``flo``/``fhi``: the film level's bounds; ``its`` receives each profile's
    LM iterations (damped steps tried)."""
    n, m = rho.shape
    nc = cols.shape[0]
    k = nc + (1 if fit_s else 0)
    jcols = np.empty(k, np.int64)
    jcols[:nc] = cols
    if fit_s:
        jcols[nc] = 7
    free0 = False
    afree = False  # A or w free: the rim term is computed (else only where A is not 0)
    ix = np.zeros(2, np.int64)  # the columns of R and w (array entries: not typed as literals, one compilation of _normal)
    held_inner = True
    for j in range(nc):
        if cols[j] == 0:
            free0 = True
            ix[0] = j
        if cols[j] == 3:
            ix[1] = j
        if cols[j] == 5:
            held_inner = False
        if cols[j] == 2 or cols[j] == 3:
            afree = True
    if fit_s:
        held_inner = False
    r = np.empty(m + 1)
    S, phi, Q, z, z2 = np.zeros(m), np.zeros(m), np.zeros(m), np.zeros(m), np.zeros(m)
    S2, S2h = np.zeros(m), np.zeros(m)
    J = np.empty((k, m))
    JTJ = np.empty((k, k))
    g = np.empty(k)
    a = np.empty((k, k + 1))
    x = np.empty(k)
    q = np.empty(7)
    costs = np.empty(n)
    for ip in range(n):
        pi = p[ip]
        si = s[ip]
        userim = afree or pi[2] != 0.0
        rh, yy, ww = rho[ip], y[ip], wt[ip]
        R2h, sh = pi[5], si
        cost = _value(rh, yy, ww, pi, si, userim, S2h, ip < 0, prior, pk[ip], pw[ip], r, S, phi, Q, z, z2, S2)
        if held_inner:
            S2h[:] = S2
        _normal(rh, ww, pi, si, userim, jcols, prior, ix[0], ix[1], pk[ip], pw[ip], r, S, phi, Q, z, z2, S2, J, JTJ, g)
        lam = 1e-2
        nit = 0
        for _ in range(iters):
            nit += 1
            _damped_step(JTJ, g, lam, a, x)
            q[:] = pi
            for j in range(nc):
                q[cols[j]] += x[j]
            qs = si + (x[k - 1] if fit_s else 0.0)
            # the bounds (edges._fit_lips's clamp, in its order)
            q[0] = _mn(_mx(q[0], lo[ip]), hi[ip])
            q[4] = _mn(_mx(q[4], flo[ip]), fhi[ip])
            q[1] = _mn(_mx(q[1], -0.5), cmax[ip])
            q[2] = _mn(_mx(q[2], 0.0), 5.0)
            q[3] = _mn(_mx(q[3], 0.05), _mx(q[0], 0.2))
            q[2] = _mx(q[2], q[4] - q[1]) if rim else 0.0
            q[5] = _mn(_mx(q[5], 0.3 * q[0]), _mx(q[0] - 0.5, 0.3 * q[0]))
            q[6] = _mn(_mx(q[6], -0.5), q[1])
            qs = _mn(_mx(qs, 0.25), s_max)
            urim = afree or q[2] != 0.0
            s2ok = held_inner and q[5] == R2h and qs == sh
            c2 = _value(rh, yy, ww, q, qs, urim, S2h, s2ok, prior, pk[ip], pw[ip], r, S, phi, Q, z, z2, S2)
            c1 = cost
            ok = c2 < c1
            if ok:
                pi[:] = q
                si = qs
                cost = c2
                lam = lam * 0.3
            else:
                lam = lam * 8.0
            # done: no step helps any more, or the last one gained next to nothing
            dR = x[0] if free0 else 0.0
            go = lam < 1e4 and not (ok and (c1 - c2 <= 1e-4 * c1 or abs(dR) < 2e-3))
            if not go:
                break
            if ok:
                _normal(rh, ww, pi, si, urim, jcols, prior, ix[0], ix[1], pk[ip], pw[ip], r, S, phi, Q, z, z2, S2, J, JTJ, g)
        s[ip] = si
        costs[ip] = cost
        its[ip] = nit
    return costs


def compile_now() -> None:
    """Compile the fit (or load it from its cache) by fitting two profiles through
    :func:`castrig.analysis.edges._fit_lips`, so with the signature every fit uses."""
    from .edges import _fit_lips

    rho = np.tile(np.linspace(2.0, 9.0, 14), (2, 1))
    y = np.where(rho < 6.0, 0.3, 1.0)
    p0 = np.tile([5.5, 0.3, 0.5, 1.0, 1.0, 2.0, 0.3], (2, 1))
    _fit_lips(rho, y, np.ones_like(rho), p0, 1.0, np.full(2, 2.0), np.full(2, 9.0), np.full(2, 0.65))
