"""Uplift of incentives on checkout: P(order | cart, incentive) for each incentive kind, learned from
randomized decisions (T-learner and X-learner on gradient boosting). Pure: no Django.

- T-learner: one classifier per kind, P(order | x, k).
- X-learner (Künzel, Sekhon, Bickel & Yu 2019), each treated kind k against "none": stage-1 outcome models
  μ0 (none) and μ1 (k); imputed effects D1 = Y − μ0(x) on the k rows and D0 = μ1(x) − Y on the none rows;
  stage-2 regressors τ1, τ0 on them, combined with the propensity g (randomized: the arm's share of k ∪ none)
  as τ(x) = g·τ0(x) + (1 − g)·τ1(x); P(order | x, k) = clip(μ0(x) + τ(x), 0, 1).

Metrics come from a model fitted on 70% of the rows and scored on the held-out 30% (split within each kind);
the model returned is then refitted on every row. The average treatment effects are model-free (difference in
means on all the randomized rows). Serving scores one cart at a time: predicting through scikit-learn costs
~0.65 ms per estimator for one row (a Python call per tree), so the fitted trees are also compiled into flat
arrays walked for all trees at once (`_Forest`), the same numbers in a small fraction of the time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.special import expit
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

NONE = "none"
METHODS = ("t_learner", "x_learner")
HELD_OUT_SHARE = 0.3
# The pure model's own floor per kind and part; the service asks for more (MIN_DECISIONS_PER_KIND there).
MIN_ROWS_PER_KIND = 10
Z_95 = 1.959963984540054
# A cost at or above this marks a kind the cart cannot get (free shipping on a cart that ships free anyway): the
# model never chooses it there and a blanket policy offers nothing to that cart.
UNAVAILABLE_COST = 1e9
# Above this many rows scikit-learn's compiled loop beats the array walk (which holds rows × trees indices).
FOREST_MAX_ROWS = 256


@dataclass
class _Forest:
    """The trees of several fitted gradient-boosting models as flat arrays: `raw(X)` returns each model's raw
    prediction (baseline + the sum of its trees' leaves), column by column, exactly as scikit-learn computes it
    (a value goes left when ≤ the threshold, a missing one where the split sent missing values)."""

    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    left: np.ndarray
    right: np.ndarray
    is_leaf: np.ndarray
    value: np.ndarray
    roots: np.ndarray  # node index of each tree's root
    owner: np.ndarray  # model index of each tree
    baselines: np.ndarray  # per model
    depth: int

    def raw(self, X: np.ndarray) -> np.ndarray:
        rows = X.shape[0]
        node = np.broadcast_to(self.roots, (rows, len(self.roots))).copy()
        row_index = np.arange(rows)[:, None]
        for _ in range(self.depth):
            values = X[row_index, self.feature[node]]
            go_left = np.where(np.isnan(values), self.missing_left[node], values <= self.threshold[node])
            node = np.where(self.is_leaf[node], node, np.where(go_left, self.left[node], self.right[node]))
        leaves = self.value[node]
        out = np.tile(self.baselines, (rows, 1))
        for model in range(len(self.baselines)):
            out[:, model] += leaves[:, self.owner == model].sum(axis=1)
        return out


@dataclass
class _Part:
    """One fitted model of the learner: a scikit-learn estimator, or a constant raw value when its rows held
    a single class (e.g. no order at all under one kind)."""

    estimator: object | None
    constant: float = 0.0

    def raw(self, X: np.ndarray) -> np.ndarray:
        if self.estimator is None:
            return np.full(X.shape[0], self.constant)
        if isinstance(self.estimator, HistGradientBoostingClassifier):
            return np.asarray(self.estimator.decision_function(X), dtype=np.float64).reshape(-1)
        return np.asarray(self.estimator.predict(X), dtype=np.float64).reshape(-1)


@dataclass
class IncentiveResponseModel:
    """Predicts P(order) under each incentive kind. `kinds[0]` is always "none" (the control)."""

    kinds: tuple[str, ...]
    method: str  # "t_learner" | "x_learner"
    feature_names: tuple[str, ...]
    # "parts": list of _Part; "outcome": {kind: part index} (T-learner: every kind; X-learner: "none");
    # "effect": {kind: (τ0 part index, τ1 part index, g)} (X-learner); "forest": the compiled _Forest.
    estimators: dict = field(default_factory=dict)

    def order_probabilities(self, X: np.ndarray) -> np.ndarray:
        """Shape (n, len(kinds)): P(order | features, kind) for each kind."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.feature_names):
            raise ValueError(f"expected a matrix with {len(self.feature_names)} columns, got shape {X.shape}")
        raw = self._raw(X)
        outcome = self.estimators["outcome"]
        if self.method == "t_learner":
            return np.column_stack([expit(raw[:, outcome[kind]]) for kind in self.kinds])
        control = expit(raw[:, outcome[NONE]])
        columns = [control]
        for kind in self.kinds[1:]:
            tau0, tau1, share = self.estimators["effect"][kind]
            effect = share * raw[:, tau0] + (1.0 - share) * raw[:, tau1]
            columns.append(np.clip(control + effect, 0.0, 1.0))
        return np.column_stack(columns)

    def uplift(self, X: np.ndarray) -> np.ndarray:
        """Shape (n, len(kinds)): P(order | x, k) − P(order | x, none); column 0 is zero."""
        probabilities = self.order_probabilities(X)
        return probabilities - probabilities[:, :1]

    def _raw(self, X: np.ndarray) -> np.ndarray:
        forest = self.estimators.get("forest")
        if forest is not None and X.shape[0] <= FOREST_MAX_ROWS:
            return forest.raw(X)
        return np.column_stack([part.raw(X) for part in self.estimators["parts"]])


@dataclass(frozen=True)
class UpliftMetrics:
    # Per kind (not "none"): {"estimate", "low", "high", "n"} average treatment effect on conversion from
    # the randomized data itself (difference in means with a 95% interval).
    ate: dict
    # Per kind: the Qini coefficient / AUUC of the model's ranking on held-out randomized rows.
    qini: dict
    # Held-out policy value (margin per decision) of: the model's choice, each blanket kind, and no offer, by
    # inverse propensity weighting, and under "dr" the same by the doubly robust estimator (`policy_values`).
    policy_value: dict
    train_rows: int
    test_rows: int


def uplift_fit(
    X: np.ndarray,
    kinds: Sequence[str],
    converted: np.ndarray,
    *,
    all_kinds: Sequence[str],
    feature_names: Sequence[str],
    method: str = "x_learner",
    margin: np.ndarray | None = None,
    cost: np.ndarray | None = None,
    propensity: np.ndarray | None = None,
    seed: int = 0,
    cost_by_kind: np.ndarray | None = None,
) -> tuple[IncentiveResponseModel, UpliftMetrics]:
    """Fit on randomized rows: X features, kinds[i] the incentive drawn, converted[i] 0/1. margin[i] the
    cart's margin before the incentive and cost[i] its cost if redeemed (for policy value).

    `all_kinds` are the kinds to model ("none" first or anywhere; it is put first). `cost_by_kind` (n,
    len(all_kinds) in the model's order, "none" first) gives what every kind would have cost on each cart,
    for the model's choice; without it a kind's cost is its mean cost over the rows that drew it."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: one of {', '.join(METHODS)}")
    X = np.asarray(X, dtype=np.float64)
    drawn = np.asarray(kinds, dtype=object)
    converted = np.asarray(converted, dtype=np.float64)
    ordered = (NONE, *[kind for kind in dict.fromkeys(all_kinds) if kind != NONE])
    _check_rows(X=X, drawn=drawn, converted=converted, kinds=ordered, feature_names=feature_names)
    keep = np.isin(drawn, ordered)
    X, drawn, converted = X[keep], drawn[keep], converted[keep]
    rows = len(drawn)
    margin = np.zeros(rows) if margin is None else np.asarray(margin, dtype=np.float64)[keep]
    cost = np.zeros(rows) if cost is None else np.asarray(cost, dtype=np.float64)[keep]
    if propensity is None:
        shares = {kind: float((drawn == kind).mean()) for kind in ordered}
        propensity = np.array([shares[kind] for kind in drawn])
    else:
        propensity = np.asarray(propensity, dtype=np.float64)[keep]
    if cost_by_kind is None:
        cost_by_kind = np.column_stack(
            [np.full(rows, cost[drawn == kind].mean() if kind != NONE else 0.0) for kind in ordered]
        )
    else:
        cost_by_kind = np.asarray(cost_by_kind, dtype=np.float64)[keep]

    train, test = _split(drawn, seed=seed)
    with threadpool_limits(limits=1):
        held_out_model = _fit(X[train], drawn[train], converted[train], ordered, feature_names, method, seed)
        probabilities = held_out_model.order_probabilities(X[test])
        model = _fit(X, drawn, converted, ordered, feature_names, method, seed)
    uplift = probabilities - probabilities[:, :1]
    ate = average_treatment_effects(drawn, converted, kinds=ordered)
    for column, kind in enumerate(ordered[1:], start=1):
        ate[kind]["predicted"] = float(uplift[:, column].mean())
    qini = {
        kind: qini_coefficient(uplift[:, column], drawn[test] == kind, converted[test], drawn[test] == NONE)
        for column, kind in enumerate(ordered[1:], start=1)
    }
    policy_value = policy_values(
        probabilities=probabilities,
        kinds=ordered,
        drawn=drawn[test],
        converted=converted[test],
        margin=margin[test],
        cost=cost[test],
        cost_by_kind=cost_by_kind[test],
        propensity=propensity[test],
    )
    metrics = UpliftMetrics(
        ate=ate, qini=qini, policy_value=policy_value, train_rows=int(len(train)), test_rows=int(len(test))
    )
    return model, metrics


def average_treatment_effects(drawn: np.ndarray, converted: np.ndarray, *, kinds: Sequence[str]) -> dict:
    """Per treated kind: conversion under it minus under "none" (difference in means of randomized rows), with a
    95% normal interval (unpooled variances)."""
    drawn = np.asarray(drawn, dtype=object)
    converted = np.asarray(converted, dtype=np.float64)
    control = converted[drawn == NONE]
    effects = {}
    for kind in kinds:
        if kind == NONE:
            continue
        treated = converted[drawn == kind]
        if len(treated) == 0 or len(control) == 0:
            effects[kind] = {"estimate": None, "low": None, "high": None, "n": int(len(treated))}
            continue
        estimate = treated.mean() - control.mean()
        se = math.sqrt(treated.var() / len(treated) + control.var() / len(control))
        effects[kind] = {
            "estimate": float(estimate),
            "low": float(estimate - Z_95 * se),
            "high": float(estimate + Z_95 * se),
            "n": int(len(treated)),
            "n_control": int(len(control)),
            "conversion": float(treated.mean()),
            "control_conversion": float(control.mean()),
        }
    return effects


def qini_coefficient(score: np.ndarray, treated: np.ndarray, converted: np.ndarray, control: np.ndarray) -> dict:
    """How much better than random a ranking by `score` (predicted uplift) finds the shoppers an incentive
    converts, on the rows that are `treated` or `control` (others ignored).

    Qini curve (Radcliffe 2007): targeting the top share φ, Q(φ) = Y_t(φ) − Y_c(φ)·N_t(φ)/N_c(φ), the extra
    orders among the targeted treated rows, here per treated row. `coefficient` is the area between the curve
    and the random ranking's diagonal (0 = no better than random, > 0 better); `normalized` divides it by the
    area of the perfect ranking (treated buyers first, control buyers last), so 1 is perfect."""
    rows = np.asarray(treated, dtype=bool) | np.asarray(control, dtype=bool)
    score, is_treated, outcome = np.asarray(score)[rows], np.asarray(treated, dtype=bool)[rows], converted[rows]
    n_treated, n_control = int(is_treated.sum()), int((~is_treated).sum())
    if n_treated == 0 or n_control == 0:
        return {"coefficient": None, "normalized": None, "n_treated": n_treated, "n_control": n_control}
    order = np.argsort(-score, kind="stable")
    coefficient = _qini_area(is_treated[order], outcome[order]) / n_treated
    perfect = np.lexsort((~is_treated, -(outcome * np.where(is_treated, 1, -1))))
    ideal = _qini_area(is_treated[perfect], outcome[perfect]) / n_treated
    return {
        "coefficient": float(coefficient),
        "normalized": float(coefficient / ideal) if ideal > 0 else None,
        "n_treated": n_treated,
        "n_control": n_control,
    }


def _qini_area(is_treated: np.ndarray, outcome: np.ndarray) -> float:
    treated_count = np.cumsum(is_treated)
    control_count = np.cumsum(~is_treated)
    treated_orders = np.cumsum(outcome * is_treated)
    control_orders = np.cumsum(outcome * ~is_treated)
    with np.errstate(divide="ignore", invalid="ignore"):
        curve = treated_orders - np.where(control_count > 0, control_orders * treated_count / control_count, 0.0)
    share = np.arange(1, len(curve) + 1) / len(curve)
    return float(np.mean(curve - share * curve[-1]))


def policy_values(
    *,
    probabilities: np.ndarray,
    kinds: Sequence[str],
    drawn: np.ndarray,
    converted: np.ndarray,
    margin: np.ndarray,
    cost: np.ndarray,
    cost_by_kind: np.ndarray,
    propensity: np.ndarray,
) -> dict:
    """Margin per decision on randomized rows of the model's choice (the kind with the highest expected margin:
    p_k·(margin − cost_k), p_none·margin), of each kind given to everyone who can get it (no offer to the others)
    and of no offer, with 95% intervals; `model_minus_none` and `model_minus_best_blanket` are paired differences
    on the same rows.

    Two estimators. At the top level, inverse propensity weighting (self-normalised, Hajek): only the rows whose
    drawn kind matches the policy count, about one in len(kinds). Under "dr", doubly robust (AIPW): every row
    counts through the outcome model μ(x, k) = p_k·(margin − cost_k) and the matching rows correct its error,
    μ(x, π(x)) + 1{drawn = π(x)}/propensity · (realized − μ(x, drawn)). It is unbiased when either the
    propensities (recorded by the randomization) or the outcome model are right, and its variance is smaller than
    IPW's by about (1/propensity − 1)·Var(μ(x, π(x))): by as much as the model explains of the realized margin,
    little for a weak model of a 0/1 order (`outcome_r2` under "dr": the model's R² on the realized margin of the
    drawn kind). `probabilities` must come from a model that did not see these rows."""
    drawn = np.asarray(drawn, dtype=object)
    kinds = tuple(kinds)
    realized = converted * (margin - np.where(drawn == NONE, 0.0, cost))
    available = np.asarray(cost_by_kind) < UNAVAILABLE_COST
    available[:, 0] = True
    outcome = probabilities * (margin[:, None] - np.where(available, cost_by_kind, 0.0))
    outcome[:, 0] = probabilities[:, 0] * margin
    choice_index = np.argmax(np.where(available, outcome, -np.inf), axis=1)
    policies = {"model": choice_index}
    for column, kind in enumerate(kinds):
        policies[kind] = np.where(available[:, column], column, 0)
    position = {kind: index for index, kind in enumerate(kinds)}
    drawn_index = np.array([position.get(kind, -1) for kind in drawn], dtype=np.intp)
    weight = 1.0 / np.clip(propensity, 1e-6, None)
    ipw = {name: _ipw_terms(policy, drawn_index, weight, realized) for name, policy in policies.items()}
    dr = {name: _dr_terms(policy, drawn_index, weight, realized, outcome) for name, policy in policies.items()}
    values = _policy_summary(ipw, kinds)
    choice = np.asarray(kinds, dtype=object)[choice_index]
    values["model"]["offer_share"] = float((choice != NONE).mean()) if len(choice) else 0.0
    values["model"]["choices"] = {kind: int((choice == kind).sum()) for kind in kinds}
    values["dr"] = _policy_summary(dr, kinds)
    values["dr"]["outcome_r2"] = _r_squared(realized, outcome[np.arange(len(drawn)), np.maximum(drawn_index, 0)])
    return values


def _r_squared(observed: np.ndarray, predicted: np.ndarray) -> float | None:
    spread = float(np.var(observed)) if len(observed) > 1 else 0.0
    if spread <= 0:
        return None
    return 1.0 - float(np.mean((observed - predicted) ** 2)) / spread


def _policy_summary(terms: dict[str, tuple[float, np.ndarray]], kinds: tuple[str, ...]) -> dict:
    """Each policy's value with its interval, and the paired differences model − none and model − the best
    blanket kind (by this estimator)."""
    values = {name: _interval(influence, value) for name, (value, influence) in terms.items()}
    blanket = [kind for kind in kinds if kind != NONE and math.isfinite(terms[kind][0])]
    best = max(blanket, key=lambda kind: terms[kind][0]) if blanket else NONE
    for name, other in (("model_minus_none", NONE), ("model_minus_best_blanket", best)):
        value = terms["model"][0] - terms[other][0]
        values[name] = {**_interval(terms["model"][1] - terms[other][1], value), "against": other}
    return values


def _ipw_terms(
    policy: np.ndarray, drawn: np.ndarray, weight: np.ndarray, realized: np.ndarray
) -> tuple[float, np.ndarray]:
    """The Hajek estimate of a policy's value and each row's influence on it (for the interval)."""
    matched = np.where(policy == drawn, weight, 0.0)
    total = matched.sum()
    if total <= 0:
        return float("nan"), np.zeros(len(drawn))
    value = float((matched * realized).sum() / total)
    influence = matched * (realized - value) / matched.mean()
    return value, influence


def _dr_terms(
    policy: np.ndarray, drawn: np.ndarray, weight: np.ndarray, realized: np.ndarray, outcome: np.ndarray
) -> tuple[float, np.ndarray]:
    """The doubly robust (AIPW) estimate of a policy's value and each row's deviation from it: the mean of
    μ(x, π(x)) + 1{drawn = π(x)}·weight·(realized − μ(x, π(x)))."""
    if len(drawn) == 0:
        return float("nan"), np.zeros(0)
    predicted = outcome[np.arange(len(policy)), policy]
    terms = predicted + np.where(policy == drawn, weight * (realized - predicted), 0.0)
    value = float(terms.mean())
    return value, terms - value


def _interval(influence: np.ndarray, value: float) -> dict:
    if not math.isfinite(value) or len(influence) < 2:
        return {"value": None, "low": None, "high": None}
    se = float(influence.std(ddof=1) / math.sqrt(len(influence)))
    return {"value": value, "low": value - Z_95 * se, "high": value + Z_95 * se}


def _check_rows(
    *, X: np.ndarray, drawn: np.ndarray, converted: np.ndarray, kinds: tuple[str, ...], feature_names: Sequence[str]
) -> None:
    if X.ndim != 2 or X.shape[0] != len(drawn) or len(converted) != len(drawn):
        raise ValueError(f"X {X.shape}, kinds ({len(drawn)}) and converted ({len(converted)}) must have the same rows")
    if X.shape[1] != len(feature_names):
        raise ValueError(f"X has {X.shape[1]} columns and {len(feature_names)} feature names")
    if len(kinds) < 2:
        raise ValueError("at least one incentive kind besides 'none' is needed")
    counts = {kind: int((drawn == kind).sum()) for kind in kinds}
    # Each kind is split 70/30 and fitted in both parts.
    short = [f"{kind} ({count})" for kind, count in counts.items() if count * (1 - HELD_OUT_SHARE) < MIN_ROWS_PER_KIND]
    if short:
        raise ValueError(f"too few randomized rows for: {', '.join(short)}")


def _split(drawn: np.ndarray, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and held-out row indices, HELD_OUT_SHARE of each kind held out."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for kind in sorted(set(drawn.tolist())):
        rows = rng.permutation(np.flatnonzero(drawn == kind))
        held = int(round(len(rows) * HELD_OUT_SHARE))
        test.append(rows[:held])
        train.append(rows[held:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _fit(
    X: np.ndarray,
    drawn: np.ndarray,
    converted: np.ndarray,
    kinds: tuple[str, ...],
    feature_names: Sequence[str],
    method: str,
    seed: int,
) -> IncentiveResponseModel:
    parts: list[_Part] = []

    def add(part: _Part) -> int:
        parts.append(part)
        return len(parts) - 1

    groups = {kind: drawn == kind for kind in kinds}
    outcome: dict[str, int] = {}
    effect: dict[str, tuple[int, int, float]] = {}
    if method == "t_learner":
        for kind in kinds:
            outcome[kind] = add(_classify(X[groups[kind]], converted[groups[kind]], seed))
    else:
        control = groups[NONE]
        control_part = _classify(X[control], converted[control], seed)
        outcome[NONE] = add(control_part)
        control_p = expit(control_part.raw(X))
        for kind in kinds[1:]:
            treated = groups[kind]
            treated_p = expit(_classify(X[treated], converted[treated], seed).raw(X))
            imputed_treated = converted[treated] - control_p[treated]
            imputed_control = treated_p[control] - converted[control]
            share = float(treated.sum() / (treated.sum() + control.sum()))
            tau0 = add(_regress(X[control], imputed_control, seed))
            tau1 = add(_regress(X[treated], imputed_treated, seed))
            effect[kind] = (tau0, tau1, share)
    try:
        forest = _compile(parts)
    except (AttributeError, KeyError, ValueError):
        # scikit-learn's tree layout is private: if it ever changes, predict through scikit-learn (slower).
        forest = None
    estimators = {"parts": parts, "outcome": outcome, "effect": effect, "forest": forest}
    return IncentiveResponseModel(kinds=kinds, method=method, feature_names=tuple(feature_names), estimators=estimators)


def _classify(X: np.ndarray, y: np.ndarray, seed: int) -> _Part:
    rate = float(y.mean())
    if rate in (0.0, 1.0):
        clipped = min(max(rate, 1e-3), 1 - 1e-3)
        return _Part(estimator=None, constant=math.log(clipped / (1 - clipped)))
    return _Part(
        estimator=HistGradientBoostingClassifier(
            learning_rate=0.05,
            max_iter=100,
            max_depth=4,
            max_leaf_nodes=8,
            min_samples_leaf=20,
            l2_regularization=1.0,
            early_stopping=False,
            random_state=seed,
        ).fit(X, y.astype(int))
    )


def _regress(X: np.ndarray, y: np.ndarray, seed: int) -> _Part:
    # Imputed effects are noisy (each is an outcome minus a probability): shallow, strongly regularised trees.
    return _Part(
        estimator=HistGradientBoostingRegressor(
            learning_rate=0.05,
            max_iter=100,
            max_depth=3,
            max_leaf_nodes=8,
            min_samples_leaf=30,
            l2_regularization=1.0,
            early_stopping=False,
            random_state=seed,
        ).fit(X, y)
    )


def _compile(parts: list[_Part]) -> _Forest | None:
    """The parts' trees as one flat forest, or None if a tree splits on a categorical feature."""
    feature, threshold, missing_left, left, right, is_leaf, value = [], [], [], [], [], [], []
    roots, owner, baselines = [], [], []
    offset, depth = 0, 0
    for index, part in enumerate(parts):
        estimator = part.estimator
        if estimator is None:
            baselines.append(part.constant)
            continue
        baselines.append(float(np.ravel(estimator._baseline_prediction)[0]))
        for iteration in estimator._predictors:
            for predictor in iteration:
                nodes = predictor.nodes
                if nodes["is_categorical"].any():
                    return None
                feature.append(nodes["feature_idx"].astype(np.intp))
                threshold.append(nodes["num_threshold"].astype(np.float64))
                missing_left.append(nodes["missing_go_to_left"].astype(bool))
                left.append(nodes["left"].astype(np.intp) + offset)
                right.append(nodes["right"].astype(np.intp) + offset)
                is_leaf.append(nodes["is_leaf"].astype(bool))
                value.append(nodes["value"].astype(np.float64))
                roots.append(offset)
                owner.append(index)
                depth = max(depth, int(nodes["depth"].max()))
                offset += len(nodes)
    if not roots:
        empty_int = np.zeros(0, dtype=np.intp)
        return _Forest(
            feature=empty_int,
            threshold=np.zeros(0),
            missing_left=np.zeros(0, dtype=bool),
            left=empty_int,
            right=empty_int,
            is_leaf=np.zeros(0, dtype=bool),
            value=np.zeros(0),
            roots=empty_int,
            owner=empty_int,
            baselines=np.asarray(baselines, dtype=np.float64),
            depth=0,
        )
    return _Forest(
        feature=np.concatenate(feature),
        threshold=np.concatenate(threshold),
        missing_left=np.concatenate(missing_left),
        left=np.concatenate(left),
        right=np.concatenate(right),
        is_leaf=np.concatenate(is_leaf),
        value=np.concatenate(value),
        roots=np.asarray(roots, dtype=np.intp),
        owner=np.asarray(owner, dtype=np.intp),
        baselines=np.asarray(baselines, dtype=np.float64),
        depth=depth,
    )
