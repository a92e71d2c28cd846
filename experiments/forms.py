"""The planner's input: shape and ranges only. The sums live in experiments.stats.power."""

from __future__ import annotations

import math

from django import forms


class PlanForm(forms.Form):
    """Percentages are typed as percentages (5 for 5%), as merchants say them."""

    METRIC_KINDS = [
        ("proportion", "A rate (conversion, unsubscribes)"),
        ("mean", "An amount per shopper (revenue, margin)"),
    ]
    SOLVE_FOR = [
        ("sample_size", "Shoppers needed to detect an effect"),
        ("mde", "Smallest effect a sample can detect"),
    ]

    metric_kind = forms.ChoiceField(choices=METRIC_KINDS, initial="proportion", widget=forms.RadioSelect)
    solve_for = forms.ChoiceField(choices=SOLVE_FOR, initial="sample_size", widget=forms.RadioSelect)
    baseline_rate = forms.FloatField(
        required=False, label="Baseline rate (%)", help_text="e.g. 3.2 for a 3.2% conversion rate"
    )
    baseline_mean = forms.FloatField(required=False, label="Baseline mean per shopper")
    baseline_sd = forms.FloatField(required=False, label="Standard deviation per shopper")
    mde = forms.FloatField(
        required=False,
        label="Minimum detectable effect (%)",
        help_text="the relative lift worth detecting: 5 for +5%",
    )
    units_per_variant = forms.IntegerField(required=False, label="Shoppers per variant")
    alpha = forms.FloatField(initial=5, label="Significance level (%)", min_value=0.1, max_value=20)
    power = forms.FloatField(initial=80, label="Power (%)", min_value=50, max_value=99)
    variants = forms.IntegerField(initial=2, label="Variants (with the control)", min_value=2, max_value=10)
    daily_traffic = forms.IntegerField(
        required=False, label="Shoppers a day entering the test", min_value=1, help_text="optional: gives the days"
    )

    def clean(self) -> dict:
        cleaned = super().clean()
        for name in ("baseline_rate", "baseline_mean", "baseline_sd", "mde", "alpha", "power"):
            value = cleaned.get(name)
            if value is not None and not math.isfinite(value):
                self.add_error(name, "Enter a finite number.")
                cleaned[name] = None
        kind, solve_for = cleaned.get("metric_kind"), cleaned.get("solve_for")
        if kind == "proportion":
            rate = self._required(cleaned, "baseline_rate")
            if rate is not None and not 0 < rate < 100:
                self.add_error("baseline_rate", "A rate is between 0% and 100%, exclusive.")
        elif kind == "mean":
            mean = self._required(cleaned, "baseline_mean")
            sd = self._required(cleaned, "baseline_sd")
            if mean is not None and mean <= 0:
                self.add_error("baseline_mean", "The baseline must be above zero: the effect is relative to it.")
            if sd is not None and sd <= 0:
                self.add_error("baseline_sd", "A standard deviation is above zero.")
        if solve_for == "sample_size":
            mde = self._required(cleaned, "mde")
            if mde is not None and not 0 < mde <= 1000:
                self.add_error("mde", "Enter an effect above 0% (and at most 1000%).")
            rate = cleaned.get("baseline_rate")
            if kind == "proportion" and mde is not None and rate and 0 < mde and rate * (1 + mde / 100) >= 100:
                self.add_error("mde", f"A {rate:g}% rate cannot rise by {mde:g}%: it would pass 100%.")
        elif solve_for == "mde":
            units = self._required(cleaned, "units_per_variant")
            if units is not None and units < 10:
                self.add_error("units_per_variant", "Enter at least 10 shoppers per variant.")
        return cleaned

    def _required(self, cleaned: dict, name: str) -> float | None:
        value = cleaned.get(name)
        if value is None and name not in self.errors:
            self.add_error(name, "Required for this calculation.")
        return value
