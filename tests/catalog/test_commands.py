from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, ManagementUtility, call_command

from catalog.models import CatalogImport, Product

pytestmark = pytest.mark.django_db

FIXTURE = Path(__file__).parent / "data" / "shopify_products_export.csv"


def test_import_catalog_prints_a_summary(merchant):
    # given
    out = StringIO()

    # when
    call_command("import_catalog", "--merchant", merchant.slug, str(FIXTURE), stdout=out)

    # then
    assert "12 rows, 9 products created, 0 updated, 3 skipped, 0 failed." in out.getvalue()
    assert Product.objects.for_merchant(merchant).count() == 9
    assert CatalogImport.objects.for_merchant(merchant).get().filename == FIXTURE.name


def test_import_catalog_prints_each_row_error(merchant, tmp_path):
    # given
    path = tmp_path / "bad.csv"
    path.write_text(
        "Handle,Title,Variant SKU,Variant Price\nmug,Camp Mug,MUG-1,14.00\ntent,Tent,TENT-1,free\nboot,Boot,,120\n",
        encoding="utf-8",
    )
    out = StringIO()

    # when
    call_command("import_catalog", "--merchant", merchant.slug, str(path), stdout=out)

    # then
    output = out.getvalue()
    assert "3 rows, 1 products created, 0 updated, 0 skipped, 2 failed." in output
    assert "line 3 [TENT-1] Variant Price: 'free' is not a number" in output
    assert "line 4 Variant SKU: is required" in output


def test_import_catalog_fails_for_a_missing_file(merchant, tmp_path):
    # when / then
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("import_catalog", "--merchant", merchant.slug, str(tmp_path / "nope.csv"), stdout=StringIO())


def test_import_catalog_fails_for_a_file_that_is_not_text(merchant, tmp_path):
    # given
    path = tmp_path / "products.xlsx"
    path.write_bytes(b"PK\x03\x04\xff\xfe\x00binary")

    # when / then
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("import_catalog", "--merchant", merchant.slug, str(path), stdout=StringIO())


def test_import_catalog_fails_when_required_columns_are_missing(merchant, tmp_path):
    # given
    path = tmp_path / "orders.csv"
    path.write_text("Name,Email,Total\n#1001,a@example.com,20.00\n", encoding="utf-8")
    out = StringIO()

    # when / then
    with pytest.raises(CommandError, match="could not be imported"):
        call_command("import_catalog", "--merchant", merchant.slug, str(path), stdout=out)
    assert "required column missing from the header: Handle, Title, Variant SKU, Variant Price" in out.getvalue()


def test_import_catalog_fails_for_an_unknown_merchant(tmp_path):
    # when / then
    with pytest.raises(CommandError, match="No merchant"):
        call_command("import_catalog", "--merchant", "nobody", str(FIXTURE), stdout=StringIO())


def test_import_catalog_exits_non_zero_from_the_shell(merchant, tmp_path):
    # when / then: CommandError becomes exit status 1 outside call_command
    with pytest.raises(SystemExit) as exited:
        ManagementUtility(
            ["manage.py", "import_catalog", "--merchant", merchant.slug, str(tmp_path / "x.csv")]
        ).execute()
    assert exited.value.code == 1
