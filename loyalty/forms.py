"""The support screens' inputs: shape and ranges only. Decisions live in loyalty.services."""

from __future__ import annotations

from django import forms

from events.models import Customer

POINTS_ADJUST_MAX = 1_000_000


class CustomerSearchForm(forms.Form):
    q = forms.CharField(label="E-mail or customer id", max_length=254, required=False, strip=True)


class PointsAdjustForm(forms.Form):
    points = forms.IntegerField(
        label="Points (+ to add, − to remove)",
        min_value=-POINTS_ADJUST_MAX,
        max_value=POINTS_ADJUST_MAX,
        error_messages={"invalid": "Enter a whole number of points, e.g. 250 or -100."},
    )
    reason = forms.CharField(
        label="Reason",
        max_length=500,
        strip=True,
        error_messages={"required": "Say why: the reason goes into the customer's ledger and the audit log."},
    )

    def clean_points(self) -> int:
        points = self.cleaned_data["points"]
        if points == 0:
            raise forms.ValidationError("An adjustment adds or removes at least one point.")
        return points


class EraseForm(forms.Form):
    """Erasing cannot be undone, so the manager types the customer's revopt id to confirm."""

    confirm = forms.CharField(label="Type the customer's id to confirm", max_length=40, strip=True)

    def __init__(self, *args: object, customer: Customer, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.customer = customer

    def clean_confirm(self) -> str:
        typed = self.cleaned_data["confirm"].removeprefix("#")
        if typed != str(self.customer.pk):
            raise forms.ValidationError(f"Type {self.customer.pk} (this customer's id) to confirm the erasure.")
        return typed
