"""Customer lifetime value: BG/NBD for purchase frequency and P(alive), Gamma-Gamma for spend.

Pure (numpy, scipy), no Django: maximum likelihood fits as in Fader, Hardie & Lee (2005) "Counting your
customers the easy way" and Fader, Hardie & Lee (2005) "RFM and CLV: using iso-value curves", checked on
the CDNOW data shipped in the `lifetimes` package (the library's code is not used).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BgNbdParams:
    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    customers: int


@dataclass(frozen=True)
class GammaGammaParams:
    p: float
    q: float
    gamma: float
    log_likelihood: float
    customers: int  # customers with at least one repeat purchase (the model's sample)


def bgnbd_fit(frequency: np.ndarray, recency: np.ndarray, age: np.ndarray) -> BgNbdParams:
    """Maximum likelihood (scipy, log-parameterised, several starts); frequency = repeat purchases x,
    recency t_x and age T in the same time unit."""
    raise NotImplementedError


def bgnbd_expected_purchases(
    params: BgNbdParams, horizon: float, frequency: np.ndarray, recency: np.ndarray, age: np.ndarray
) -> np.ndarray:
    """E[purchases in (T, T + horizon] | x, t_x, T] per customer (the paper's equation 10)."""
    raise NotImplementedError


def bgnbd_probability_alive(
    params: BgNbdParams, frequency: np.ndarray, recency: np.ndarray, age: np.ndarray
) -> np.ndarray:
    raise NotImplementedError


def bgnbd_expected_purchases_new(params: BgNbdParams, horizon: np.ndarray | float) -> np.ndarray | float:
    """E[X(t)] for a customer just acquired (the paper's equation 7): the holdout forecast's building block."""
    raise NotImplementedError


def gamma_gamma_fit(frequency: np.ndarray, monetary: np.ndarray) -> GammaGammaParams:
    """Fitted on customers with frequency > 0; monetary = mean value of their repeat purchases."""
    raise NotImplementedError


def gamma_gamma_expected_value(params: GammaGammaParams, frequency: np.ndarray, monetary: np.ndarray) -> np.ndarray:
    """E[M | x, m_x]: the expected value of a customer's future purchase (population mean when x = 0)."""
    raise NotImplementedError


def customer_lifetime_value(
    bgnbd: BgNbdParams,
    gamma_gamma: GammaGammaParams,
    frequency: np.ndarray,
    recency: np.ndarray,
    age: np.ndarray,
    monetary: np.ndarray,
    *,
    horizon: float,
    margin: float = 1.0,
    annual_discount_rate: float = 0.10,
    time_unit_days: float = 7.0,
) -> np.ndarray:
    """Discounted expected margin over `horizon` time units: expected purchases per period × expected value ×
    margin, discounted per period."""
    raise NotImplementedError
