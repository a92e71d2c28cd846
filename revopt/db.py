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

import numpy as np
from django.core.exceptions import EmptyResultSet
from django.db import connection, models
from django.db.models import Lookup


class AnyOf(Lookup):
    """`field__any_of=[...]`: membership in a list of already-typed values, as one array parameter.

    Django's `__in` prepares and binds each value separately, which on a 1,000-id lookup costs more
    than the query; on PostgreSQL this sends `= ANY(%s)` with the list as a single parameter, and
    falls back to IN elsewhere. The caller passes values of the column's type (ids as strings).
    """

    lookup_name = "any_of"
    prepare_rhs = False

    def get_prep_lookup(self):
        return list(self.rhs)

    def as_sql(self, compiler, connection):
        if not self.rhs:
            raise EmptyResultSet
        lhs, lhs_params = self.process_lhs(compiler, connection)
        if connection.vendor == "postgresql":
            return f"{lhs} = ANY(%s)", [*lhs_params, self.rhs]
        return f"{lhs} IN ({', '.join(['%s'] * len(self.rhs))})", [*lhs_params, *self.rhs]


models.CharField.register_lookup(AnyOf)


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: str) -> str:
    return value.translate(_COPY_ESCAPES)


def _copy_json(value: dict | list) -> str:
    return _json_encode(value).translate(_COPY_ESCAPES)


def _copy_bool(value: bool) -> str:
    return "t" if value else "f"


_json_encode = json.JSONEncoder(separators=(",", ":")).encode
# Dispatch on the exact type: this runs for every value of every row on the ingest path.
_COPY_ENCODERS = {
    str: _copy_text,
    int: str,
    float: repr,
    Decimal: str,
    bool: _copy_bool,
    datetime: datetime.isoformat,
    date: date.isoformat,
    dict: _copy_json,
    list: _copy_json,
    type(None): lambda value: "\\N",
}


def copy_text_value(value: object) -> str:
    """One value in PostgreSQL's COPY text format."""
    encode = _COPY_ENCODERS.get(type(value))
    if encode is None:
        return str(value).translate(_COPY_ESCAPES)
    return encode(value)


def copy_rows(*, table: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """COPY `rows` (tuples in `columns` order) into `table`, in the current transaction."""
    buffer = io.StringIO()
    encoders = _COPY_ENCODERS
    fallback = copy_text_value
    buffer.writelines("\t".join([encoders.get(type(value), fallback)(value) for value in row]) + "\n" for row in rows)
    buffer.seek(0)
    column_list = ", ".join(connection.ops.quote_name(column) for column in columns)
    # copy_expert is psycopg2's own method: wrap it so a unique violation surfaces as Django's IntegrityError.
    with connection.cursor() as cursor, connection.wrap_database_errors:
        cursor.copy_expert(f"COPY {connection.ops.quote_name(table)} ({column_list}) FROM STDIN", buffer)


def _column_adapter(model: type[models.Model], column: str):
    """A function turning one Python value of `column` into what the database driver takes."""
    field = next(f for f in model._meta.concrete_fields if f.column == column)
    if isinstance(field, models.JSONField):
        return lambda value: None if value is None else _json_encode(value)
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
    # Only auto_now(_add) fields compute a value on save; every other field's attribute is its value.
    computed = [f for f in fields if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)]
    for field in computed:
        for obj in objs:
            field.pre_save(obj, add=True)
    attnames = [f.attname for f in fields]
    pk_field = model._meta.pk
    rows = [[obj.pk, *[getattr(obj, attname) for attname in attnames]] for obj in objs]
    copy_rows(table=model._meta.db_table, columns=[pk_field.column, *[f.column for f in fields]], rows=rows)
    for obj in objs:
        obj._state.adding = False
        obj._state.db = "default"


FETCH_ROWS = 50_000


def queryset_matrix(queryset: models.QuerySet, *, columns: int) -> np.ndarray:
    """The rows of a `values_list` queryset as a float matrix (NULL → NaN), fetched in chunks straight from
    the cursor: on a million rows Django's per-row conversion to tuples costs more than the query."""
    try:
        sql, params = queryset.query.sql_with_params()
    except EmptyResultSet:
        return np.zeros((0, columns))
    chunks = []
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(FETCH_ROWS):
            chunks.append(np.array(rows, dtype=float).reshape(len(rows), columns))
    return np.concatenate(chunks) if chunks else np.zeros((0, columns))


def tables_analyze(models_: Sequence[type[models.Model]]) -> None:
    """Refresh PostgreSQL's planner statistics of these tables after a bulk load (a simulation, an import), as
    its documentation advises. Until autovacuum comes round — and never inside the transaction that loaded
    the rows, as in a test — the planner believes the tables empty and joins them by nested loops: a churn
    feature query on a freshly simulated shop ran for minutes that way. Rows the current transaction inserted
    are counted. Nothing to do on SQLite."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for model in models_:
            cursor.execute(f'ANALYZE "{model._meta.db_table}"')
