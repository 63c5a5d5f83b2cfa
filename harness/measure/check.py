"""The checker: run an implementation on several seeds and compare every output with the float64 oracle.

Tolerance rule (one place, used for every op): an output element that is a sum of L rounded terms, computed in
a precision with unit roundoff u, carries a rounding error that grows like a random walk, ~ u·sqrt(L) times the
output's scale, when the terms are signed random values (as the spec's inputs are). TF32 math also rounds each
matrix input to 10 mantissa bits (unit 2^-11) before the products, which adds ~2^-11 whatever L is (even a
product with an inner dimension of 1 rounds its inputs). So

    rtol = SAFETY · (u · (sqrt(L) + t) + u_in),   atol = rtol · rms(ref)

with t = 1 ulp for the final rounding (TRANSCENDENTAL_ULPS when the output goes through exp/log) and
SAFETY = 8, which covers a > 5-sigma excursion over millions of elements. atol is scaled by the output's rms so
that elements near zero (where a sum cancels) are judged at the scale of the output, as the norm-wise bound
implies. An output passes when ‖out − ref‖₂ / ‖ref‖₂ ≤ rtol AND every |out − ref| ≤ atol + rtol·|ref|.

Winograd (an implementation that declares `algorithm="winograd-f2x2-3x3"` or `"winograd-f4x4-3x3"` in the
registry): y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A. Each transformed product M = Σ_c U·V is a sum of C terms, so with the same
random-walk model its rounding error is ~ u·sqrt(C)·|M|, and the output transform adds these errors with the
weights of A; the transforms also scale the terms: row ξ of G and of Bᵀ multiply a unit-variance input's rms by
‖G_ξ‖₂ and ‖Bᵀ_ξ‖₂. Propagating that error to output element i (separable in 2-D) and dividing by the direct
sum's error u·sqrt(L)·rms(y), L = C·R·S, gives the growth factor

    γ = max_i s_i / (R·S),   s_i = Σ_ξ (Aᵀ_iξ)²·‖G_ξ‖₂²·‖Bᵀ_ξ‖₁²   (R = S; output (i, j) has sqrt(s_i·s_j))

(`transform_growth`, after the error analyses of Higham and of Barabasz et al. 2020; ‖Bᵀ_ξ‖₁ rather than ‖Bᵀ_ξ‖₂
also bounds the input transform's own rounding, a sum of ‖Bᵀ_ξ‖₁ weighted terms). Such an implementation is
judged with rtol = SAFETY·(u·(max(1, γ)·sqrt(L) + t) + u_in): the same rule, its sqrt(L) term scaled by the
transform's growth: F(2x2, 3x3) has γ = 10/9, F(4x4, 3x3) γ = 854/27 ≈ 31.6 (tests/harness/measure/
test_check_winograd.py derives both from the matrices and measures emulated float32 Winograd: F(4x4)'s worst
elements do exceed the direct-sum bound, up to ~2.5x, and sit at ≤ 0.1 of the derived one; F(2x2)'s stay inside
the direct-sum bound). Every other implementation keeps γ = 1.

Every call is followed by a device-wide synchronisation (work an implementation left on another stream is
finished before its outputs are read), and its inputs are compared bit for bit with what they were before it.

Statuses: pass; fail (values out of tolerance); nan (a NaN/Inf the oracle does not have: an unwritten or
poisoned element); bad-shape; bad-dtype; input-mutated (the call wrote into an input); error (the call raised);
oracle (the float64 reference itself). The timers add stale (a timed call's outputs were wrong) and off-stream
(work ran outside the stream it was given), see harness.measure.timing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from harness.device import array_module, float_dtype, synchronize
from harness.errors import one_line
from harness.measure.execute import prepare
from harness.registry import Impl
from harness.registry import oracle as registry_oracle
from harness.spec import OpSpec

SAFETY = 8.0
TRANSCENDENTAL_ULPS = 4.0
UNIT_ROUNDOFF = {"fp64": 2.0**-53, "fp32": 2.0**-24, "tf32": 2.0**-24}
INPUT_ROUNDING = {"fp64": 0.0, "fp32": 0.0, "tf32": 2.0**-11}
DEFAULT_SEEDS = (0, 1, 2)
# Statuses of a row whose implementation computed the wrong thing or broke the contract (the run then exits 1).
FAILED_STATUSES = ("fail", "nan", "bad-shape", "bad-dtype", "input-mutated", "stale", "off-stream", "error")


def winograd_matrices(algorithm: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Aᵀ, G, Bᵀ) of a 1-D Winograd algorithm F(m, r) named "winograd-f{m}x{m}-{r}x{r}" (Lavin & Gray's points:
    F(2, 3) on 0, ±1, ∞; F(4, 3) on 0, ±1, ±2, ∞)."""
    if algorithm == "winograd-f2x2-3x3":
        at = [[1, 1, 1, 0], [0, 1, -1, -1]]
        g = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]
        bt = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
    elif algorithm == "winograd-f4x4-3x3":
        at = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]
        g = [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
             [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]
        bt = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
              [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
    else:
        raise ValueError(f"unknown algorithm {algorithm!r}: winograd-f2x2-3x3 or winograd-f4x4-3x3")
    return np.array(at, dtype=np.float64), np.array(g, dtype=np.float64), np.array(bt, dtype=np.float64)


def transform_growth(at: np.ndarray, g: np.ndarray, bt: np.ndarray) -> float:
    """2-D growth factor γ of the Winograd algorithm with 1-D matrices (Aᵀ, G, Bᵀ), see the module docstring."""
    r = g.shape[1]
    per_output = (at**2) @ (np.sum(g**2, axis=1) * np.sum(np.abs(bt), axis=1) ** 2)
    return float(per_output.max() / r**2)


def algorithm_growth(algorithm: str | None) -> float:
    """The factor an implementation's declared algorithm puts on the rule's sqrt(L) term: 1 for a direct sum (no
    algorithm, or one without a known transform), max(1, γ) for Winograd."""
    if not algorithm or not algorithm.startswith("winograd"):
        return 1.0
    return max(1.0, transform_growth(*winograd_matrices(algorithm)))


def tolerance(math_mode: str, reduction: int, transcendental: bool = False, growth: float = 1.0) -> float:
    """rtol for an output whose elements are sums of `reduction` terms (see the module docstring); `growth` is
    algorithm_growth of the implementation's algorithm."""
    u = UNIT_ROUNDOFF[math_mode]
    t = TRANSCENDENTAL_ULPS if transcendental else 1.0
    return SAFETY * (u * (growth * math.sqrt(reduction) + t) + INPUT_ROUNDING[math_mode])


@dataclass
class Comparison:
    status: str  # pass | fail | nan | bad-shape | bad-dtype
    err: float  # norm-wise relative error
    viol: float  # max |out − ref| / (atol + rtol·|ref|): ≤ 1 passes
    rtol: float
    reason: str = ""


def compare(out, ref, rtol: float, expected_dtype) -> Comparison:
    """Compare one output array (NumPy or CuPy) with its float64 reference (on the same device)."""
    if tuple(out.shape) != tuple(ref.shape):
        return Comparison("bad-shape", math.inf, math.inf, rtol, f"shape {tuple(out.shape)}, expected {ref.shape}")
    if out.dtype != expected_dtype:
        expected = np.dtype(expected_dtype)
        return Comparison("bad-dtype", math.inf, math.inf, rtol, f"dtype {out.dtype}, expected {expected}")
    xp = array_module(ref)  # compare where the data lives: large GPU cases never cross to the host
    out = xp.asarray(out).astype(xp.float64)
    ref = ref.astype(xp.float64)
    bad = ~xp.isfinite(out) & xp.isfinite(ref)
    n_bad = int(bad.sum())
    if n_bad:
        first = np.unravel_index(int(xp.argmax(bad.ravel())), bad.shape) if bad.ndim else ()
        first = tuple(int(i) for i in first)
        return Comparison("nan", math.inf, math.inf, rtol, f"{n_bad} non-finite elements, first at {first}")
    diff = xp.abs(out - ref)
    max_diff = float(diff.max()) if diff.size else 0.0
    ref_norm = float(xp.linalg.norm(ref.ravel()))
    err = float(xp.linalg.norm(diff.ravel())) / ref_norm if ref_norm > 0 else max_diff
    atol = rtol * float(xp.sqrt(xp.mean(ref**2))) if ref.size else 0.0
    bound = atol + rtol * xp.abs(ref)
    viol = float(xp.max(diff / xp.where(bound > 0, bound, xp.inf))) if ref.size else 0.0
    if ref_norm == 0 and max_diff > 0:
        viol = math.inf
    ok = err <= rtol and viol <= 1.0
    reason = "" if ok else f"rel err {err:.2e} (rtol {rtol:.1e}), worst element at {viol:.1f}x its bound"
    return Comparison("pass" if ok else "fail", err, viol, rtol, reason)


@dataclass
class CheckResult:
    status: str
    reason: str = ""
    err: float = math.nan  # worst norm-wise relative error over seeds and outputs
    viol: float = math.nan
    rtol: float = math.nan
    seeds: int = 0


class OracleFailed(RuntimeError):
    """The case's inputs or float64 reference could not be made (out of memory, say): no implementation can be
    checked on it, and none is to blame."""


class ReferenceCache:
    """Inputs and oracle outputs per (seed, device) for one (op, pass, shape), shared by every implementation."""

    def __init__(self, spec: OpSpec, shape, pass_: str):
        self.spec, self.shape, self.pass_ = spec, shape, pass_
        self._inputs: dict[int, dict] = {}
        self._refs: dict[tuple[int, str], dict] = {}
        self._failed: str | None = None  # kept, so that a failing oracle is not retried for every implementation

    def inputs(self, seed: int) -> dict[str, np.ndarray]:
        if seed not in self._inputs:
            self._inputs[seed] = self._guarded("its inputs could not be made", self.spec.make_inputs, self.shape,
                                               self.pass_, seed)
        return self._inputs[seed]

    def _guarded(self, what: str, fn, *args):
        if self._failed:
            raise OracleFailed(self._failed)
        try:
            return fn(*args)
        except OracleFailed:
            raise
        except Exception as exc:
            self._failed = f"not checked: {what} ({one_line(exc, 200)})"
            raise OracleFailed(self._failed) from None

    def reference(self, seed: int, device: str) -> dict:
        """Oracle outputs, computed in float64 on `device` (CuPy on the GPU keeps large cases fast)."""
        key = (seed, device)
        if key not in self._refs:
            self._refs[key] = self._guarded("the float64 oracle failed on this case", self._compute, seed, device)
        return self._refs[key]

    def _compute(self, seed: int, device: str) -> dict:
        oracle = registry_oracle(self.spec.name, self.pass_)
        if device != oracle.device:
            from dataclasses import replace

            oracle = replace(oracle, device=device)
        call = prepare(oracle, self.spec, self.shape, self.pass_, self.inputs(seed))
        call.run()
        synchronize(device)
        return call.results()


def check(impl: Impl, refs: ReferenceCache, seeds=DEFAULT_SEEDS) -> CheckResult:
    """Run `impl` on every seed with poisoned outputs and compare each output with the oracle's."""
    if impl.family == "oracle":
        return CheckResult("oracle", "float64 reference; its gradients are proven by finite differences", 0.0,
                           0.0, 0.0, len(seeds))
    worst = CheckResult("pass", seeds=len(seeds), err=0.0, viol=0.0, rtol=0.0)
    for seed in seeds:
        try:
            call = prepare(impl, refs.spec, refs.shape, refs.pass_, refs.inputs(seed))
            before = {name: a.copy() for name, a in call.inputs.items()}
            call.run()
            synchronize(impl.device)
            outputs = call.results()
        except OracleFailed as exc:
            return CheckResult("skipped", str(exc), seeds=seeds.index(seed))
        except Exception as exc:
            return CheckResult("error", one_line(exc), seeds=seeds.index(seed))
        mutated = changed_inputs(call.inputs, before)
        if mutated:
            return CheckResult("input-mutated", f"wrote into input {', '.join(mutated)} (seed {seed})",
                               seeds=len(seeds))
        try:
            judged = judge(impl, refs, seed, outputs)
        except OracleFailed as exc:
            return CheckResult("skipped", str(exc), seeds=seeds.index(seed))
        for name, c in judged:
            if c.status != "pass":
                return CheckResult(c.status, f"{name}, seed {seed}: {c.reason}", c.err, c.viol, c.rtol, len(seeds))
            worst.err, worst.viol, worst.rtol = max(worst.err, c.err), max(worst.viol, c.viol), max(worst.rtol, c.rtol)
    return worst


def judge(impl: Impl, refs: ReferenceCache, seed: int, outputs: dict) -> list[tuple[str, Comparison]]:
    """Each output of one call on `seed`'s inputs against the oracle, with the tolerance of its reduction length;
    a missing output is a bad-shape comparison."""
    ps = refs.spec.pass_spec(refs.pass_)
    reductions = ps.reduction(refs.shape)
    growth = algorithm_growth(impl.algorithm_for(refs.shape))
    out = []
    for name, ref_out in refs.reference(seed, impl.device).items():
        rtol = tolerance(impl.math, reductions[name], ps.transcendental, growth)
        if name not in outputs:
            out.append((name, Comparison("bad-shape", math.inf, math.inf, rtol, f"output '{name}' missing")))
            continue
        out.append((name, compare(outputs[name], ref_out, rtol, float_dtype(impl.math))))
    return out


def changed_inputs(inputs: dict, before: dict) -> list[str]:
    """Names of the inputs whose bits differ from `before` (compared where they live, NaN-safe)."""
    xp = array_module(next(iter(inputs.values()))) if inputs else np
    return [name for name, a in inputs.items()
            if not bool(xp.array_equal(a.reshape(-1).view(xp.uint8), before[name].reshape(-1).view(xp.uint8)))]
