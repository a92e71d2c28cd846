from django.contrib import admin, messages
from django.http import HttpRequest

from .admin_base import MerchantScopedAdmin, ReadOnlyAdminMixin, is_platform_admin_request, merchant_for_request
from .models import ApiKey, AuditLogEntry, Merchant, StaffMembership
from .services import api_key_create, api_key_revoke


class PlatformAdminWritesMixin:
    """Only platform admins add, change or delete these rows."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return is_platform_admin_request(request)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return is_platform_admin_request(request)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return is_platform_admin_request(request)


@admin.register(Merchant)
class MerchantAdmin(PlatformAdminWritesMixin, admin.ModelAdmin):
    """Only platform admins manage shops; a manager's tenancy permissions do not reach this model."""

    list_display = ["name", "slug", "currency", "timezone", "is_active", "created_at"]
    list_filter = ["is_active", "currency"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_platform_admin_request(request)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return is_platform_admin_request(request)


@admin.register(StaffMembership)
class StaffMembershipAdmin(PlatformAdminWritesMixin, admin.ModelAdmin):
    """Managers see who works for their shop; only platform admins grant roles (a role is a privilege)."""

    list_display = ["user", "role", "merchant", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__username", "user__email"]
    list_select_related = ["user", "merchant"]

    def get_queryset(self, request: HttpRequest):
        queryset = super().get_queryset(request)
        if is_platform_admin_request(request):
            return queryset
        merchant = merchant_for_request(request)
        return queryset.filter(merchant=merchant) if merchant is not None else queryset.none()


@admin.register(ApiKey)
class ApiKeyAdmin(MerchantScopedAdmin):
    """Keys are issued and revoked through the tenancy services, never edited or deleted."""

    list_display = ["name", "prefix", "created_at", "created_by", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix"]
    list_select_related = ["created_by"]
    actions = ["revoke_selected"]
    readonly_fields = ["name", "prefix", "created_at", "created_by", "last_used_at", "revoked_at"]

    def get_fields(self, request: HttpRequest, obj=None):
        if obj is not None:
            return self.readonly_fields
        return ["merchant", "name"] if self._is_platform_admin(request) else ["name"]

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        return self.readonly_fields if obj is not None else []

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        # Revoked keys stay listed: the audit log points at them.
        return False

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("tenancy.change_apikey")

    def save_model(self, request: HttpRequest, obj: ApiKey, form, change: bool) -> None:
        merchant = obj.merchant if self._is_platform_admin(request) else merchant_for_request(request)
        issued = api_key_create(merchant=merchant, name=obj.name, created_by=request.user)
        # The admin goes on to log and redirect with `obj`; make it the row the service created.
        obj.pk = issued.api_key.pk
        obj.refresh_from_db()
        obj._state.adding = False
        messages.warning(
            request,
            f"The API key for “{obj.name}” is {issued.raw_key} — copy it now: it is stored hashed and "
            "will not be shown again.",
        )

    @admin.action(description="Revoke selected keys", permissions=["revoke"])
    def revoke_selected(self, request: HttpRequest, queryset) -> None:
        revoked = 0
        for api_key in queryset.filter(revoked_at__isnull=True).select_related("merchant"):
            api_key_revoke(api_key=api_key, revoked_by=request.user)
            revoked += 1
        self.message_user(request, f"Revoked {revoked} key(s).", messages.SUCCESS)


@admin.register(AuditLogEntry)
class AuditLogEntryAdmin(ReadOnlyAdminMixin, MerchantScopedAdmin):
    list_display = ["created_at", "actor", "action", "target_type", "target_id"]
    list_filter = ["action", "target_type"]
    search_fields = ["action", "target_id", "actor__username"]
    list_select_related = ["actor"]
    readonly_fields = ["created_at", "actor", "action", "target_type", "target_id", "detail"]
    date_hierarchy = "created_at"
