import io

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from revopt.tenancy.admin_base import MerchantScopedAdmin, ReadOnlyAdminMixin, merchant_for_request
from revopt.tenancy.models import Merchant

from .models import CatalogImport, Category, CompetitorPriceObservation, Product
from .services import product_import_csv

# A Shopify export of ~50,000 variants is about 20 MB; anything larger belongs to the command.
MAX_IMPORT_BYTES = 25 * 1024 * 1024
# Image and shop URLs are https today; also what Django 6 will assume.
URL_FIELDS_ASSUME_HTTPS = {models.URLField: {"assume_scheme": "https"}}


class ProductImportForm(forms.Form):
    file = forms.FileField(label="Shopify product export (CSV)")
    merchant = forms.ModelChoiceField(queryset=Merchant.objects.all(), help_text="The shop to import into.")

    def __init__(self, *args, choose_merchant: bool, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not choose_merchant:
            del self.fields["merchant"]

    def clean_file(self) -> tuple[str, str]:
        upload = self.cleaned_data["file"]
        if upload.size > MAX_IMPORT_BYTES:
            raise forms.ValidationError("The file is larger than 25 MB; use `manage.py import_catalog`.")
        try:
            # utf-8-sig: Shopify and Excel both write a byte-order mark.
            text = upload.read().decode("utf-8-sig")
        except UnicodeDecodeError:
            raise forms.ValidationError("The file is not UTF-8 text; export it again as CSV (UTF-8).") from None
        return upload.name, text


@admin.register(Category)
class CategoryAdmin(MerchantScopedAdmin):
    list_display = ["path", "name", "parent"]
    search_fields = ["name", "path"]
    list_select_related = ["parent"]
    ordering = ["path"]


class InStockFilter(admin.SimpleListFilter):
    title = "stock"
    parameter_name = "in_stock"

    def lookups(self, request, model_admin):
        return [("yes", "In stock"), ("no", "Out of stock")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(inventory__gt=0)
        if self.value() == "no":
            return queryset.filter(inventory__lte=0)
        return queryset


@admin.register(Product)
class ProductAdmin(MerchantScopedAdmin):
    list_display = ["sku", "title", "category", "price", "cost", "inventory", "is_active"]
    # RelatedOnlyFieldListFilter offers only categories of the rows this user can see.
    list_filter = ["is_active", InStockFilter, ("category", admin.RelatedOnlyFieldListFilter), "brand"]
    search_fields = ["sku", "title", "external_id", "brand"]
    list_select_related = ["category"]
    readonly_fields = ["created_at", "updated_at"]
    change_list_template = "admin/catalog/product/change_list.html"
    formfield_overrides = URL_FIELDS_ASSUME_HTTPS

    def get_urls(self):
        import_view = self.admin_site.admin_view(self.import_csv_view)
        return [path("import-csv/", import_view, name="catalog_product_import_csv"), *super().get_urls()]

    def has_import_permission(self, request: HttpRequest) -> bool:
        return self.has_add_permission(request) and self.has_change_permission(request)

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        extra_context = {**(extra_context or {}), "has_import_permission": self.has_import_permission(request)}
        return super().changelist_view(request, extra_context)

    def import_csv_view(self, request: HttpRequest) -> HttpResponse:
        choose_merchant = self._is_platform_admin(request)
        merchant = merchant_for_request(request)
        if not self.has_import_permission(request) or (merchant is None and not choose_merchant):
            raise PermissionDenied
        form = ProductImportForm(request.POST or None, request.FILES or None, choose_merchant=choose_merchant)
        if request.method == "POST" and form.is_valid():
            filename, text = form.cleaned_data["file"]
            catalog_import = product_import_csv(
                merchant=form.cleaned_data.get("merchant") or merchant,
                csv_file=io.StringIO(text, newline=""),
                filename=filename,
                created_by=request.user,
            )
            summary = (
                f"Imported {filename}: {catalog_import.products_created} created, "
                f"{catalog_import.products_updated} updated, {catalog_import.rows_skipped} skipped, "
                f"{catalog_import.rows_failed} failed."
            )
            messages.add_message(request, messages.WARNING if catalog_import.errors else messages.SUCCESS, summary)
            return redirect(reverse("admin:catalog_catalogimport_change", args=[catalog_import.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Import products from CSV",
            "form": form,
        }
        return TemplateResponse(request, "admin/catalog/product/import_csv.html", context)


@admin.register(CompetitorPriceObservation)
class CompetitorPriceObservationAdmin(MerchantScopedAdmin):
    list_display = ["product", "competitor", "price", "currency", "observed_at"]
    list_filter = ["competitor"]
    search_fields = ["product__sku", "product__title", "competitor"]
    autocomplete_fields = ["product"]
    list_select_related = ["product"]
    date_hierarchy = "observed_at"
    formfield_overrides = URL_FIELDS_ASSUME_HTTPS

    def save_model(self, request: HttpRequest, obj: CompetitorPriceObservation, form, change: bool) -> None:
        # A platform admin picks the product of any shop; the observation belongs to that product's shop.
        obj.merchant_id = obj.product.merchant_id
        super().save_model(request, obj, form, change)


@admin.register(CatalogImport)
class CatalogImportAdmin(ReadOnlyAdminMixin, MerchantScopedAdmin):
    list_display = [
        "filename",
        "created_at",
        "created_by",
        "rows_total",
        "products_created",
        "products_updated",
        "rows_skipped",
        "rows_failed",
    ]
    list_select_related = ["created_by"]
    fields = [*list_display, "errors_table"]
    readonly_fields = fields

    @admin.display(description="Row errors")
    def errors_table(self, obj: CatalogImport) -> str:
        if not obj.errors:
            return "None"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (error.get("row", ""), error.get("sku", ""), error.get("field", ""), error.get("reason", ""))
                for error in obj.errors
            ),
        )
        return format_html(
            '<table class="catalog-import-errors"><thead><tr><th>Line</th><th>SKU</th><th>Column</th>'
            "<th>Reason</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )
