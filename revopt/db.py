"""Fast bulk writes for the hot ingest path.

On PostgreSQL rows go in through COPY, with primary keys drawn from the table's sequence in one round
trip so the caller can link child rows without a RETURNING per row; elsewhere (SQLite) through
Django's bulk_create. Both paths run each field's pre_save, so defaults and auto_now_add behave as
they do for Model.save().
"""

import io
import json
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal

from django.db import connection, models

_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text_value(value: object) -> str:
    """One value in PostgreSQL's COPY text format."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":")).translate(_COPY_ESCAPES)
    return str(value).translate(_COPY_ESCAPES)


def copy_rows(*, table: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """COPY `rows` (tuples in `columns` order) into `table`, in the current transaction."""
    buffer = io.StringIO()
    buffer.writelines("\t".join([copy_text_value(value) for value in row]) + "\n" for row in rows)
    buffer.seek(0)
    column_list = ", ".join(connection.ops.quote_name(column) for column in columns)
    with connection.cursor() as cursor:
        cursor.copy_expert(f"COPY {connection.ops.quote_name(table)} ({column_list}) FROM STDIN", buffer)


def _column_adapter(model: type[models.Model], column: str):
    """A function turning one Python value of `column` into what the database driver takes."""
    field = next(f for f in model._meta.concrete_fields if f.column == column)
    if isinstance(field, models.JSONField):
        return lambda value: None if value is None else json.dumps(value, separators=(",", ":"))
    if isinstance(field, models.DateTimeField):
        return connection.ops.adapt_datetimefield_value
    if isinstance(field, models.DecimalField):
        return lambda value: None if value is None else connection.ops.adapt_decimalfield_value(value)
    return lambda value: value


def insert_rows(*, model: type[models.Model], columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Insert plain rows (tuples in `columns` order) without building model instances.

    COPY on PostgreSQL; one executemany elsewhere, with each column's adapter picked once rather than
    going through every field's save machinery per value, which costs more than the insert itself.
    """
    if not rows:
        return
    table = model._meta.db_table
    if connection.vendor == "postgresql":
        copy_rows(table=table, columns=columns, rows=rows)
        return
    adapters = [_column_adapter(model, column) for column in columns]
    column_list = ", ".join(connection.ops.quote_name(column) for column in columns)
    placeholders = ", ".join(["%s"] * len(columns))
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {connection.ops.quote_name(table)} ({column_list}) VALUES ({placeholders})",
            [[adapt(value) for adapt, value in zip(adapters, row, strict=True)] for row in rows],
        )


def _allocate_ids(model: type[models.Model], count: int) -> list[int]:
    table = model._meta.db_table
    pk_column = model._meta.pk.column
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [table, pk_column, count],
        )
        return [row[0] for row in cursor.fetchall()]


def bulk_insert(objs: Sequence[models.Model]) -> None:
    """Insert new instances of one model and set their primary keys."""
    if not objs:
        return
    model = type(objs[0])
    if connection.vendor != "postgresql":
        model.objects.bulk_create(objs)
        return
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    for obj, pk in zip(objs, _allocate_ids(model, len(objs)), strict=True):
        obj.pk = pk
    pk_field = model._meta.pk
    rows = [
        [obj.pk, *[field.get_db_prep_save(field.pre_save(obj, add=True), connection) for field in fields]]
        for obj in objs
    ]
    # JSONField's prep value is a psycopg2 Json adapter; COPY wants the plain document.
    json_positions = [i + 1 for i, f in enumerate(fields) if isinstance(f, models.JSONField)]
    for row in rows:
        for position in json_positions:
            value = row[position]
            row[position] = getattr(value, "adapted", value)
    copy_rows(table=model._meta.db_table, columns=[pk_field.column, *[f.column for f in fields]], rows=rows)
    for obj in objs:
        obj._state.adding = False
        obj._state.db = "default"
