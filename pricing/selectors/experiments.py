"""Which arm of a pricing experiment each product is in.

Prices are the same for every shopper, so a pricing experiment randomises PRODUCTS, never people: a
product's arm is GrowthBook's bucket of the unit id "product:<sku>" in the experiment's plan. Coverage and
layer slices apply as for shoppers; shopper targeting and the global holdout (both about people) do not.
A rolled-out experiment serves its winner's rule to every product. Nothing here writes: the arm is a pure
function of the plan and the SKU, so it is stable for as long as the plan is (a pricing experiment's
weights cannot change while it runs, see `experiments.services.lifecycle`).

Variant configs (checked when a pricing experiment is created):
- {"pricing": "engine"}: the engine's live price (proposals for the product are made and approved as usual);
- {"pricing": "static"}: the price is frozen (no proposals for the product), so the catalog price stays;
- {"price_multiplier": 0.95}: a price test: the live price × the multiplier, rounded to the cent and kept
  inside the product's guardrails.
Any other config (e.g. {} on an experiment made before these checks) is served as "static" and logged once.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from catalog.models import Product
from experiments.assignment import bucket
from experiments.hashing import in_namespace
from experiments.models import Surface
from experiments.selectors.assignment import LiveExperiment, LiveVariant, live_experiments
from revopt.tenancy.models import Merchant

logger = logging.getLogger(__name__)

PricingRule = Literal["engine", "static", "multiplier"]
ENGINE: PricingRule = "engine"
STATIC: PricingRule = "static"
MULTIPLIER: PricingRule = "multiplier"
# A price test moves prices by at most half or double; guardrails narrow it further per product.
MIN_MULTIPLIER = 0.5
MAX_MULTIPLIER = 2.0

# What was already logged (an unrecognised config, an ignored contextual bandit), so each is logged once.
_logged: set[tuple[object, ...]] = set()
_LOGGED_LIMIT = 10_000


@dataclass(frozen=True)
class PricingArm:
    experiment_key: str
    variant_key: str
    rule: PricingRule
    multiplier: float | None = None  # set only for the "multiplier" rule


class PricingConfigError(ValueError):
    """A variant config that is not one of the pricing conventions; `field` is the config key at fault."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def pricing_config_check(config: Mapping[str, object]) -> tuple[PricingRule, float | None] | None:
    """The rule a variant config asks for, None when it names no pricing rule at all; raises
    PricingConfigError for a config that tries and gets it wrong (an unknown rule, a bad multiplier, both)."""
    has_rule = "pricing" in config
    has_multiplier = "price_multiplier" in config
    if has_rule and has_multiplier:
        raise PricingConfigError("pricing", 'Give either "pricing" or "price_multiplier", not both.')
    if has_rule:
        rule = config["pricing"]
        if rule not in (ENGINE, STATIC):
            raise PricingConfigError("pricing", 'One of: "engine", "static".')
        return rule, None
    if has_multiplier:
        multiplier = config["price_multiplier"]
        if isinstance(multiplier, bool) or not isinstance(multiplier, (int, float)) or not math.isfinite(multiplier):
            raise PricingConfigError("price_multiplier", "A number, e.g. 0.95 for 5% off.")
        if not MIN_MULTIPLIER <= multiplier <= MAX_MULTIPLIER:
            raise PricingConfigError("price_multiplier", f"Between {MIN_MULTIPLIER:g} and {MAX_MULTIPLIER:g}.")
        return MULTIPLIER, float(multiplier)
    return None


def _first_time(*key: object) -> bool:
    if key in _logged:
        return False
    if len(_logged) >= _LOGGED_LIMIT:
        _logged.clear()
    _logged.add(key)
    return True


def _arm(experiment: LiveExperiment, variant: LiveVariant) -> PricingArm:
    try:
        checked = pricing_config_check(variant.config)
    except PricingConfigError:
        checked = None
    if checked is None:
        if _first_time(experiment.id, experiment.key, variant.id, variant.key, repr(variant.config)):
            logger.warning(
                "Pricing experiment %s, variant %s: config %r names no pricing rule; its products keep their "
                "price (static).",
                experiment.key,
                variant.key,
                variant.config,
            )
        return PricingArm(experiment.key, variant.key, STATIC)
    rule, multiplier = checked
    return PricingArm(experiment.key, variant.key, rule, multiplier)


def _variant_for(experiment: LiveExperiment, unit_id: str) -> LiveVariant | None:
    if not experiment.is_running:
        if experiment.rolled_out_index is None:
            return None
        return experiment.variants[experiment.rolled_out_index]
    if experiment.plan.layer is not None and not in_namespace(unit_id, experiment.plan.layer):
        return None
    decision = bucket(plan=experiment.plan, unit_id=unit_id)
    if decision.variant_index is None or decision.variant_index >= len(experiment.variants):
        return None
    return experiment.variants[decision.variant_index]


def _pricing_experiments(merchant: Merchant) -> list[LiveExperiment]:
    """Live pricing experiments, running ones first (a new test beats an old roll-out), then by key."""
    experiments = []
    for experiment in live_experiments(merchant_id=merchant.pk).experiments:
        if experiment.surface != Surface.PRICING:
            continue
        if experiment.is_contextual:
            # A contextual bandit decides per shopper; a price must not depend on the shopper.
            if _first_time(experiment.id, experiment.key, "contextual"):
                logger.warning("Pricing experiment %s is a contextual bandit: ignored for prices.", experiment.key)
            continue
        experiments.append(experiment)
    return sorted(experiments, key=lambda experiment: (not experiment.is_running, experiment.key))


def pricing_arms_for_products(*, merchant: Merchant, products: Sequence[Product]) -> dict[int, PricingArm]:
    """product id → its arm, for products in a live pricing experiment of the merchant (others are absent).

    A product in several live pricing experiments gets the first that covers it (running before rolled out,
    then by key); put overlapping tests in one layer to keep them apart. Free of queries while the live
    experiments memo is warm; nothing is written.
    """
    experiments = _pricing_experiments(merchant)
    if not experiments:
        return {}
    arms: dict[int, PricingArm] = {}
    arm_of_variant: dict[tuple[int, int], PricingArm] = {}
    for product in products:
        if product.merchant_id != merchant.pk:
            continue
        unit_id = f"product:{product.sku}"
        for experiment in experiments:
            variant = _variant_for(experiment, unit_id)
            if variant is None:
                continue
            key = (experiment.id, variant.id)
            if key not in arm_of_variant:
                arm_of_variant[key] = _arm(experiment, variant)
            arms[product.pk] = arm_of_variant[key]
            break
    return arms
