"""Own-price elasticity per product from daily demand, partially pooled toward the category.

Pure (no Django). The model, per product j and day t:

    units_jt ~ Poisson(traffic_t · exp(a_j + e_j · log(price_jt / ref_j) + dow_t + season_t
                                       + c · log(competitor_ratio_jt) + f · promoted_jt))

fitted by (pseudo-)maximum likelihood, the standard way to fit a log-log (constant-elasticity) demand
curve when many days sell nothing. A stocked-out day contributes P(units ≥ observed) (censored demand).
Shared coefficients (day of week, seasonality, competitor ratio, promotion) are estimated across
products; each product's elasticity e_j is then shrunk toward its category's mean by empirical Bayes
(normal-normal, between-product spread estimated per category), so products with little price
variation borrow strength from their category and every estimate carries an interval.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .demand import DemandPanel

# Where nothing is known (a category without any informative product), the prior the shrinkage falls back
# to: typical retail elasticities sit between -0.5 and -3.
GLOBAL_PRIOR_MEAN = -1.5
GLOBAL_PRIOR_SD = 1.0


@dataclass(frozen=True)
class ProductElasticity:
    product_id: int
    category_id: int
    elasticity: float  # posterior mean
    sd: float  # posterior standard deviation
    lower: float  # interval at the fit's level (95% by default)
    upper: float
    own_estimate: float | None  # the product's own estimate before pooling (None without price variation)
    own_se: float | None
    pooling_weight: float  # share of the category prior: 0 = own data only, 1 = prior only
    base_units_per_day: float  # expected units per day at reference_price on an average day of the history
    reference_price: float  # the product's median price over the history
    days_observed: int
    units_observed: float
    price_points: int  # distinct prices seen (rounded to the cent)
    # Standard error of log(base_units_per_day): the demand level's own uncertainty.
    log_base_se: float = 0.0


@dataclass(frozen=True)
class CategoryPrior:
    category_id: int
    mean: float
    spread: float  # between-product standard deviation (tau)
    products: int  # products with an own estimate that informed it


@dataclass(frozen=True)
class DemandFit:
    products: dict[int, ProductElasticity]
    categories: dict[int, CategoryPrior]
    # Multiplicative demand factor per weekday, Monday first, averaging 1.
    day_of_week: tuple[float, float, float, float, float, float, float]
    competitor_coefficient: float  # on log(price / lowest competitor price)
    competitor_se: float
    promotion_coefficient: float  # on the promoted flag (log scale)
    promotion_se: float
    level: float = 0.95
    diagnostics: dict = field(default_factory=dict)


def demand_fit(
    panel: DemandPanel,
    *,
    level: float = 0.95,
    prior_mean: float = GLOBAL_PRIOR_MEAN,
    prior_sd: float = GLOBAL_PRIOR_SD,
    progress: Callable[[float], None] | None = None,
) -> DemandFit:
    """Fit the demand model to a panel. `progress(share)` is called as the fit advances (0 → 1)."""
    raise NotImplementedError
