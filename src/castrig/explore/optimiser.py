"""The optimiser: Optuna's TPE sampler, asked for one point at a time.

Why Optuna (not a hand-made search, not scipy or scikit-learn): each membrane is an expensive,
noisy experiment and the rig must wait for an operator's yes, so the optimiser has to work in
ask/tell form, one point at a time, from whatever history exists — including runs made by hand
and found in the store. Optuna's TPE is a well-kept, seeded, sequential model-based optimiser
(a surrogate of the good and the bad regions fitted to the measured scores) with exactly that
interface (``Study.add_trial`` + ``Study.ask``). scipy.optimize has no sequential surrogate
optimiser (its global methods want to call the objective themselves, thousands of times), and
scikit-learn's Gaussian process would leave the acquisition loop for us to write.

Reproducible and resumable by construction: a proposal is computed from scratch from (seed,
trial number, history) — a fresh in-memory study, the history added as finished trials, and a
sampler seeded with ``seed`` and the trial number — so no optimiser state needs saving, and a
resumed search proposes what an uninterrupted one would have.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

from castrig.explore.space import SearchSpace

#: Random (space-filling) proposals before TPE models the history.
N_STARTUP = 6


def _optuna():  # type: ignore[no-untyped-def]
    try:
        import optuna
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise RuntimeError("castrig explore needs optuna: pip install 'optuna>=4.9'") from exc
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _distributions(space: SearchSpace):  # type: ignore[no-untyped-def]
    optuna = _optuna()
    return {name: optuna.distributions.FloatDistribution(r.low, r.high, log=r.log) for name, r in space.searched().items()}


def propose(space: SearchSpace, history: Sequence[tuple[dict[str, float], float]], *, seed: int, number: int,
            first: dict[str, float] | None = None) -> dict[str, float]:
    """The next point to try, from the finished (point, score) pairs; ``first`` is tried first.

    Points of the history outside the current space (runs made by hand, a narrowed space) are
    left out of the model rather than stretching it.
    """
    fixed = space.fixed()
    searched = space.searched()
    if not searched:
        return dict(fixed)
    if first is not None and not history:
        return {**{k: min(max(first[k], searched[k].low), searched[k].high) for k in searched}, **fixed}
    optuna = _optuna()
    dists = _distributions(space)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ExperimentalWarning for multivariate on older Optuna
        sampler = optuna.samplers.TPESampler(seed=(seed * 1_000_003 + number) % (2**32), multivariate=True,
                                             n_startup_trials=N_STARTUP)
        study = optuna.create_study(direction="minimize", sampler=sampler)
        for params, score in history:
            p = {k: float(params[k]) for k in dists}
            if not all(d.low <= p[k] <= d.high for k, d in dists.items()) or not math.isfinite(score):
                continue
            study.add_trial(optuna.trial.create_trial(params=p, distributions=dists, value=float(score)))
        trial = study.ask(dists)
    return {**{k: float(v) for k, v in trial.params.items()}, **fixed}
