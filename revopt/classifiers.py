"""What revopt's probability models share (churn in loyalty, cart abandonment in events): a gradient-boosted
classifier that is calibrated only when calibration earns its place, and one CPU thread while fitting or
scoring. Pure: scikit-learn and numpy, no Django.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from threadpoolctl import ThreadpoolController

CALIBRATION_METHODS: tuple[str, ...] = ("isotonic", "sigmoid")

_controller: ThreadpoolController | None = None


def one_thread() -> object:
    """A context with one OpenMP/BLAS thread. On a shop's rows more threads cost more than they save, and on
    a busy 2-core worker they thrash (a 300-row churn fit took 7 s with them, 0.2 s without). The controller
    is built once, after scikit-learn loaded its OpenMP runtime: `threadpool_limits()` would rescan the loaded
    libraries on every call, too slow for a 1 ms score."""
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller.limit(limits=1)


@dataclass(frozen=True)
class CalibratedFit:
    estimator: object  # fitted, with predict_proba
    method: str  # "none", "isotonic" or "sigmoid"
    brier_out_of_fold: dict[str, float]
    out_of_fold: np.ndarray  # the chosen method's out-of-fold probabilities on the training rows


def calibrated_fit(
    new_classifier: Callable[[], object], x: np.ndarray, y: np.ndarray, *, folds: StratifiedKFold
) -> CalibratedFit:
    """Fit `new_classifier()` on (x, y), calibrated by isotonic or sigmoid regression only if that lowers the
    out-of-fold Brier score: calibration must earn its place."""
    raw = cross_val_predict(new_classifier(), x, y, cv=folds, method="predict_proba")[:, 1]
    out_of_fold = {"none": raw}
    for method in CALIBRATION_METHODS:
        out_of_fold[method] = _calibrated_out_of_fold(raw, y, method=method, folds=folds)
    brier = {name: float(brier_score_loss(y, probability)) for name, probability in out_of_fold.items()}
    chosen = min(brier, key=lambda name: (brier[name], name != "none"))
    if chosen == "none":
        estimator = new_classifier().fit(x, y)
    else:
        # ensemble=False: one model on all the training rows, its calibrator fitted on out-of-fold scores.
        estimator = CalibratedClassifierCV(new_classifier(), method=chosen, cv=folds, ensemble=False).fit(x, y)
    return CalibratedFit(estimator=estimator, method=chosen, brier_out_of_fold=brier, out_of_fold=out_of_fold[chosen])


def _calibrated_out_of_fold(
    scores: np.ndarray, labels: np.ndarray, *, method: str, folds: StratifiedKFold
) -> np.ndarray:
    """Out-of-fold probabilities after calibrating out-of-fold scores: each fold's calibrator is fitted on the
    other folds' scores, so the Brier score it earns is honest (and costs no extra model fit)."""
    calibrated = np.empty_like(scores)
    for fitted_on, applied_to in folds.split(scores.reshape(-1, 1), labels):
        if method == "isotonic":
            mapping = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
            mapping.fit(scores[fitted_on], labels[fitted_on])
            calibrated[applied_to] = mapping.predict(scores[applied_to])
        else:
            logistic = LogisticRegression(C=1e6).fit(_logit(scores[fitted_on]), labels[fitted_on])
            calibrated[applied_to] = logistic.predict_proba(_logit(scores[applied_to]))[:, 1]
    return calibrated


def _logit(probability: np.ndarray) -> np.ndarray:
    clipped = np.clip(probability, 1e-6, 1 - 1e-6)
    return np.log(clipped / (1 - clipped)).reshape(-1, 1)
