"""Admin classes that keep each staff user inside their own merchant.

A merchant manager or support agent sees, creates and links only their merchant's rows; platform
admins see everything. Every admin of a merchant-owned model subclasses MerchantScopedAdmin.
"""

from django.contrib import admin
from django.db import models
from django.http import HttpRequest

from .models import Merchant, MerchantOwned, StaffMembership
from .selectors import grants_platform_admin, membership_for_user


def _membership_for_request(request: HttpRequest) -> StaffMembership | None:
    # Every admin hook asks who the user works for; look it up once per request.
    if not hasattr(request, "_revopt_membership"):
        request._revopt_membership = membership_for_user(user=request.user)
    return request._revopt_membership


def merchant_for_request(request: HttpRequest) -> Merchant | None:
    """The merchant a non-platform staff user works for (None for platform admins)."""
    membership = _membership_for_request(request)
    return membership.merchant if membership is not None else None


def is_platform_admin_request(request: HttpRequest) -> bool:
    return grants_platform_admin(user=request.user, membership=_membership_for_request(request))


class ReadOnlyAdminMixin:
    """For records written by services (events, reports, audit rows): shown, never added or edited."""

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class MerchantScopedAdmin(admin.ModelAdmin):
    def _is_platform_admin(self, request: HttpRequest) -> bool:
        return is_platform_admin_request(request)

    def get_queryset(self, request: HttpRequest) -> models.QuerySet:
        queryset = super().get_queryset(request)
        if self._is_platform_admin(request):
            return queryset
        merchant = merchant_for_request(request)
        if merchant is None:
            return queryset.none()
        return queryset.filter(merchant=merchant)

    def get_exclude(self, request: HttpRequest, obj=None):
        exclude = list(super().get_exclude(request, obj) or [])
        if not self._is_platform_admin(request):
            exclude.append("merchant")
        return exclude

    def get_list_display(self, request: HttpRequest):
        list_display = list(super().get_list_display(request))
        if self._is_platform_admin(request) and "merchant" not in list_display:
            list_display.append("merchant")
        return list_display

    def save_model(self, request: HttpRequest, obj: MerchantOwned, form, change: bool) -> None:
        if not self._is_platform_admin(request):
            obj.merchant = merchant_for_request(request)
        super().save_model(request, obj, form, change)

    def formfield_for_foreignkey(self, db_field, request: HttpRequest, **kwargs):
        related_model = db_field.remote_field.model
        if not self._is_platform_admin(request) and issubclass(related_model, MerchantOwned):
            merchant = merchant_for_request(request)
            kwargs["queryset"] = (
                related_model.objects.for_merchant(merchant) if merchant else related_model.objects.none()
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_module_permission(self, request: HttpRequest) -> bool:
        if not self._is_platform_admin(request) and merchant_for_request(request) is None:
            return False
        return super().has_module_permission(request)


class MerchantScopedInline(admin.TabularInline):
    def formfield_for_foreignkey(self, db_field, request: HttpRequest, **kwargs):
        related_model = db_field.remote_field.model
        if not is_platform_admin_request(request) and issubclass(related_model, MerchantOwned):
            merchant = merchant_for_request(request)
            kwargs["queryset"] = (
                related_model.objects.for_merchant(merchant) if merchant else related_model.objects.none()
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
