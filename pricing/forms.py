"""The pricing screens' inputs: shape and ranges only. Decisions live in pricing.services."""

from __future__ import annotations

from decimal import Decimal

from django import forms


class WhatIfForm(forms.Form):
    """A price to simulate (GET ?price=), up to a ceiling the screen sets from the prices it knows."""

    price = forms.DecimalField(
        label="Try a price",
        min_value=Decimal("0.01"),
        max_digits=12,
        decimal_places=2,
        error_messages={
            "invalid": "Enter a price as a number, e.g. 24.99.",
            "min_value": "A price is above zero.",
            "max_decimal_places": "A price has at most two decimals (cents).",
            "max_digits": "That price is too large.",
        },
    )

    def __init__(self, *args: object, max_price: Decimal, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.max_price = max_price
        self.fields["price"].widget.attrs.update({"min": "0.01", "max": f"{max_price}", "step": "0.01"})

    def clean_price(self) -> Decimal:
        price = self.cleaned_data["price"]
        if not price.is_finite():
            raise forms.ValidationError("Enter a price as a number, e.g. 24.99.")
        if price > self.max_price:
            raise forms.ValidationError(
                f"Try a price up to {self.max_price}: beyond that the demand model would be guessing far from "
                "any price it has seen."
            )
        return price


class DecisionForm(forms.Form):
    """Approve or reject a proposal, with an optional note for the audit trail."""

    note = forms.CharField(label="Note", max_length=500, required=False, strip=True)


class RollbackForm(forms.Form):
    reason = forms.CharField(
        label="Why roll back?",
        max_length=500,
        strip=True,
        error_messages={"required": "Say why you roll this change back: it goes into the price history."},
    )
