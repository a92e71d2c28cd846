"""RFM scores, named segments and behavioural clusters: pure (numpy, scikit-learn), no Django.

Input is one row per customer with at least one order; `loyalty.selectors.summaries.customer_summaries` builds
it from the shop's orders, and the CDNOW evaluation builds it from the raw transaction log the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata, skew
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

SCORE_LEVELS = 5

# The segment of every (R, F) pair, one row per R score (5 = bought most recently), one column per F score
# (1 = fewest orders). Values are loyalty.models.Segment values, spelled out so this module needs no Django.
# M does not enter the grid: two customers with the same recency and frequency get the same name.
#              F = 1              F = 2                  F = 3                  F = 4           F = 5
SEGMENT_GRID: dict[int, tuple[str, str, str, str, str]] = {
    5: ("new", "potential_loyalists", "potential_loyalists", "champions", "champions"),
    4: ("promising", "potential_loyalists", "potential_loyalists", "champions", "champions"),
    3: ("about_to_sleep", "about_to_sleep", "needs_attention", "loyal", "loyal"),
    2: ("hibernating", "hibernating", "at_risk", "at_risk", "cannot_lose"),
    1: ("lost", "lost", "at_risk", "cannot_lose", "cannot_lose"),
}


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


def quintile_scores(values: np.ndarray) -> np.ndarray:
    """1..5 by the share of customers with a strictly lower value: score = 1 + floor(5 · below / n).

    Ranks use method="min", so tied customers share one score, and the lowest value always scores 1 (the
    60 % of a shop's customers with a single order are all F = 1, not the middle of their tie block). With
    no ties this is plain quintiles: 10 customers score 1, 1, 2, 2, 3, 3, 4, 4, 5, 5.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return np.zeros(0, dtype=np.int64)
    below = rankdata(values, method="min") - 1
    return (1 + np.floor(SCORE_LEVELS * below / values.size)).astype(np.int64)


def segment_for(r_score: int, f_score: int) -> str:
    return SEGMENT_GRID[int(r_score)][int(f_score) - 1]


def rfm_scores(summary: CustomerSummary) -> RfmScores:
    """Quintile scores (ties kept together) and the segment each R/F/M combination names."""
    # Fewer days since the last order is better, so recency is scored on its negation.
    r_score = quintile_scores(-np.asarray(summary.days_since_last, dtype=np.float64))
    f_score = quintile_scores(summary.orders)
    m_score = quintile_scores(summary.revenue)
    segment = np.array([segment_for(r, f) for r, f in zip(r_score, f_score, strict=True)], dtype=object)
    return RfmScores(r_score=r_score, f_score=f_score, m_score=m_score, segment=segment)


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
    sample of at most `sample` customers); every k's silhouette is reported.

    A non-negative feature with skewness above 1 is clustered as log1p(value). With fewer than 3 customers
    per cluster for the largest k, k_range shrinks to what the data allows; with fewer than 10 customers
    (or no k left) everyone is cluster 0 and `silhouette_by_k` is empty. Clusters are numbered by size,
    0 the largest. Feature names in FEATURE_WORDS get words in the label; other names are labelled
    "high <name>" / "low <name>".
    """
    names = list(features)
    if not names:
        raise ValueError("at least one feature is needed")
    raw = np.column_stack([np.asarray(features[name], dtype=np.float64) for name in names])
    if not np.isfinite(raw).all():
        raise ValueError("features must be finite")
    customers = raw.shape[0]
    transformed = np.column_stack([_log_if_skewed(raw[:, i]) for i in range(raw.shape[1])])
    scaled = StandardScaler().fit_transform(transformed) if customers else transformed

    candidate_ks = _feasible_ks(k_range, customers=customers, distinct=len(np.unique(scaled, axis=0)))
    if not candidate_ks:
        labels = np.zeros(customers, dtype=np.int64)
        return Clustering(labels=labels, k=1, silhouette_by_k={}, profiles=_profiles(names, raw, scaled, labels))

    silhouette_by_k: dict[int, float] = {}
    labels_by_k: dict[int, np.ndarray] = {}
    sample_size = min(sample, customers) if sample < customers else None
    # One thread: this runs in Celery worker processes side by side, and OpenMP/BLAS threads spinning for
    # cores the other processes hold made 600 customers take 10 s instead of 0.2 s on a busy 2-core box.
    with threadpool_limits(limits=1):
        for k in candidate_ks:
            labels_k = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(scaled)
            if len(np.unique(labels_k)) < 2:
                continue
            silhouette_by_k[k] = float(silhouette_score(scaled, labels_k, sample_size=sample_size, random_state=seed))
            labels_by_k[k] = labels_k
    if not silhouette_by_k:
        labels = np.zeros(customers, dtype=np.int64)
        return Clustering(labels=labels, k=1, silhouette_by_k={}, profiles=_profiles(names, raw, scaled, labels))
    best_k = max(silhouette_by_k, key=lambda k: (silhouette_by_k[k], -k))
    labels = _numbered_by_size(labels_by_k[best_k])
    return Clustering(
        labels=labels,
        k=best_k,
        silhouette_by_k=silhouette_by_k,
        profiles=_profiles(names, raw, scaled, labels),
    )


MIN_CUSTOMERS_TO_CLUSTER = 10
MIN_CUSTOMERS_PER_CLUSTER = 3
# A cluster whose standardized mean is above +0.5 (below −0.5) is "high" ("low") on that feature.
LABEL_THRESHOLD = 0.5
# Words for the features a shop's summary usually has: the idea each one measures, and its word when the
# cluster is low or high on it. Labels put one word per idea, in this order, before the spend noun.
FEATURE_WORDS: dict[str, tuple[str, str, str]] = {
    "days_since_last": ("recency", "recent", "lapsed"),
    "recency_days": ("recency", "recent", "lapsed"),
    "orders": ("frequency", "infrequent", "frequent"),
    "frequency": ("frequency", "infrequent", "frequent"),
    "tenure_days": ("tenure", "new", "long-standing"),
    "age": ("tenure", "new", "long-standing"),
    "mean_order_value": ("basket", "small-basket", "big-basket"),
}
IDEA_ORDER = ("recency", "frequency", "tenure", "basket")
# Total revenue names the spend when present; `monetary` (mean repeat-purchase value) is 0 for every
# one-time buyer, so it only speaks when revenue is not among the features.
SPEND_FEATURES = ("revenue", "monetary")


def _log_if_skewed(values: np.ndarray) -> np.ndarray:
    if values.size < 3 or (values < 0).any() or np.ptp(values) == 0:
        return values
    return np.log1p(values) if skew(values) > 1.0 else values


def _feasible_ks(k_range: range, *, customers: int, distinct: int) -> list[int]:
    if customers < MIN_CUSTOMERS_TO_CLUSTER:
        return []
    largest = min(customers // MIN_CUSTOMERS_PER_CLUSTER, distinct - 1)
    return [k for k in k_range if 2 <= k <= largest]


def _numbered_by_size(labels: np.ndarray) -> np.ndarray:
    clusters, counts = np.unique(labels, return_counts=True)
    order = clusters[np.lexsort((clusters, -counts))]
    renumber = {int(old): new for new, old in enumerate(order)}
    return np.array([renumber[int(label)] for label in labels], dtype=np.int64)


def _profiles(names: list[str], raw: np.ndarray, scaled: np.ndarray, labels: np.ndarray) -> tuple[ClusterProfile, ...]:
    profiles = []
    for cluster in np.unique(labels):
        members = labels == cluster
        means = {name: float(raw[members, i].mean()) for i, name in enumerate(names)}
        levels = {name: float(scaled[members, i].mean()) for i, name in enumerate(names)}
        profiles.append(
            ClusterProfile(
                cluster=int(cluster),
                customers=int(members.sum()),
                means=means,
                label=_label(means, levels),
            )
        )
    return tuple(profiles)


def _label(means: dict[str, float], levels: dict[str, float]) -> str:
    """ "recent frequent high spenders", "lapsed one-time low spenders", "typical customers"."""

    def level(name: str) -> int:
        if levels[name] > LABEL_THRESHOLD:
            return 1
        return -1 if levels[name] < -LABEL_THRESHOLD else 0

    word_by_idea: dict[str, str] = {}
    extras: list[str] = []
    for name in means:
        direction = level(name)
        if name in SPEND_FEATURES or direction == 0:
            continue
        if name not in FEATURE_WORDS:
            extras.append(f"{'high' if direction > 0 else 'low'} {name.replace('_', ' ')}")
            continue
        idea, low_word, high_word = FEATURE_WORDS[name]
        one_time = (name == "orders" and means[name] <= 1.0) or (name == "frequency" and means[name] <= 0.0)
        word = "one-time" if one_time else (high_word if direction > 0 else low_word)
        if idea not in word_by_idea or word == "one-time":
            word_by_idea[idea] = word
    words = [word_by_idea[idea] for idea in IDEA_ORDER if idea in word_by_idea]
    spend_feature = next((name for name in SPEND_FEATURES if name in means), None)
    spend = level(spend_feature) if spend_feature else 0
    noun = {1: "high spenders", -1: "low spenders", 0: "customers"}[spend]
    if not words and not extras and noun == "customers":
        return "typical customers"
    label = " ".join([*words, noun])
    return f"{label} with {', '.join(extras)}" if extras else label
