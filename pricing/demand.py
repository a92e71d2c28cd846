"""The demand history the pricing model learns from: one row per product and day, as numpy arrays.

Pure (no Django): `pricing.selectors.demand.demand_panel` builds it from a merchant's events and orders,
the pricing evaluation builds it from the simulator's known demand, and both feed `elasticity.demand_fit`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DemandPanel:
    """Row-aligned arrays, one row per (product, day) on which the product was on sale.

    `day` is a proleptic ordinal (`date.toordinal()`). `price` is the price shoppers saw that day.
    `traffic` is the shop's sessions that day (> 0): the exposure demand scales with. `competitor_ratio`
    is price / lowest competitor price known that day (NaN when none is known). `promoted` marks days the
    product was featured or shown as on sale. On `stocked_out` days sales are a lower bound on demand
    (censored), not demand itself.
    """

    product_id: np.ndarray  # int64
    category_id: np.ndarray  # int64, -1 when the product has no category
    day: np.ndarray  # int64
    price: np.ndarray  # float64
    units: np.ndarray  # float64
    traffic: np.ndarray  # float64
    competitor_ratio: np.ndarray  # float64, NaN when unknown
    promoted: np.ndarray  # bool
    stocked_out: np.ndarray  # bool

    def __post_init__(self) -> None:
        n = len(self.product_id)
        for name in ("category_id", "day", "price", "units", "traffic", "competitor_ratio", "promoted", "stocked_out"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} rows, product_id has {n}")

    def __len__(self) -> int:
        return len(self.product_id)

    @classmethod
    def empty(cls) -> DemandPanel:
        integers, floats = np.zeros(0, dtype=np.int64), np.zeros(0)
        return cls(integers, integers, integers, floats, floats, floats, floats, np.zeros(0, bool), np.zeros(0, bool))
