"""RFM scores, named segments and behavioural clusters: pure (numpy, scikit-learn), no Django.

Input is one row per customer with at least one order; `loyalty.selectors.rfm.customer_summaries` builds
it from the shop's orders, and the CDNOW evaluation builds it from the raw transaction log the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CustomerSummary:
    """Row-aligned arrays, one row per customer, as of one moment.

    In BG/NBD terms (Fader, Hardie & Lee 2005): `frequency` is the number of repeat purchases (purchase
    days after the first), `recency` the time from the first to the last purchase, `age` (T) the time from
    the first purchase to `as_of`, all in `time_unit_days` units (7: weeks, as the paper). `monetary` is
    the mean value of the repeat purchases (0 without any), `orders` and `revenue` count every order.
    """

    customer_id: np.ndarray  # int64
    frequency: np.ndarray  # float64
    recency: np.ndarray  # float64
    age: np.ndarray  # float64 (T)
    monetary: np.ndarray  # float64
    orders: np.ndarray  # int64
    revenue: np.ndarray  # float64
    days_since_last: np.ndarray  # float64
    time_unit_days: float = 7.0

    def __len__(self) -> int:
        return len(self.customer_id)


@dataclass(frozen=True)
class RfmScores:
    r_score: np.ndarray  # 1..5, 5 = bought most recently
    f_score: np.ndarray  # 1..5, 5 = most orders
    m_score: np.ndarray  # 1..5, 5 = most revenue
    segment: np.ndarray  # object: loyalty.models.Segment values


def rfm_scores(summary: CustomerSummary) -> RfmScores:
    """Quintile scores (ties kept together) and the segment each R/F/M combination names."""
    raise NotImplementedError


@dataclass(frozen=True)
class ClusterProfile:
    cluster: int
    customers: int
    # Mean of each raw feature in the cluster, and a short name for it ("frequent high spenders").
    means: dict[str, float]
    label: str


@dataclass(frozen=True)
class Clustering:
    labels: np.ndarray  # cluster per customer
    k: int
    silhouette_by_k: dict[int, float]  # every k tried
    profiles: tuple[ClusterProfile, ...]


def behaviour_clusters(
    features: dict[str, np.ndarray], *, k_range: range = range(2, 9), seed: int = 0, sample: int = 20_000
) -> Clustering:
    """k-means on standardized (log where skewed) features; k chosen by the best silhouette (computed on a
    sample of at most `sample` customers); every k's silhouette is reported."""
    raise NotImplementedError
