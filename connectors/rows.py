"""Set-based writes of many rows, below the ORM where the ORM's own cost dominates.

- UPDATEs that give each row its own values (`update_rows`, `per_row`). Django's
  `bulk_update` and `Case(When(pk=…))` resolve a filter for every row and field (~0.3 ms
  each): 500 appointments of 10 fields took ~1.5 s to build, far more than the database takes
  to run it. Here the `CASE id WHEN … THEN … END` is written directly, with the ids (integers)
  inline and the values as parameters prepared by their fields, as Django would.
- On PostgreSQL, many rows (COPY_FROM or more) go through COPY. Django binds parameters on the
  client there: psycopg finds each of the thousands of `%s` of a multi-row statement with a
  regex and quotes each value in Python, ~40 % of a 500-event post. `COPY … FROM STDIN` sends
  the rows in PostgreSQL's copy format, written by psycopg in C. `insert_rows` takes the new
  rows' ids from the table's sequence first (COPY returns none); `update_rows` COPYs the new
  values into a temporary table and runs one `UPDATE … FROM` it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, models, transaction
from django.db.models import Field, Model
from django.db.models.expressions import RawSQL
from django.db.models.fields import AutoFieldMixin

# Below this many rows an INSERT … VALUES costs less than the two statements of a COPY.
COPY_FROM = 20


def _database() -> Any:
    """The default database's connection itself: every attribute read through Django's
    `connection` proxy looks the connection up again (~1 µs, per value prepared)."""
    return connections[DEFAULT_DB_ALIAS]


def _field(model: type[Model], name: str) -> Field:
    field = model._meta.get_field(name)
    assert isinstance(field, Field), name  # a concrete column, not a relation's reverse side
    return field


def per_row(model: type[Model], field_name: str, values: Mapping[int, Any]) -> RawSQL:
    """For `model.objects.filter(pk__in=values).update(field=per_row(…))`: each row's own
    value from `values` (primary key -> value)."""
    field = _field(model, field_name)
    pk = model._meta.pk
    assert pk is not None
    db = _database()
    pk_column = db.ops.quote_name(pk.column)
    whens = " ".join(f"WHEN {int(pk)} THEN %s" for pk in values)
    sql = f"CASE {pk_column} {whens} END"
    params = [field.get_db_prep_save(value, db) for value in values.values()]
    if db.features.requires_casted_case_in_updates:  # PostgreSQL: the column's type
        sql = f"CAST({sql} AS {field.db_type(db)})"
    return RawSQL(sql, params, output_field=field)


def update_rows(objs: Sequence[Model], fields: Sequence[str]) -> None:
    """What `bulk_update(objs, fields)` does (saved instances of one model, their attribute
    values written), in as few statements as the database's parameter limit allows."""
    if not objs:
        return
    model = type(objs[0])
    db = _database()
    if db.vendor == "postgresql" and len(objs) >= COPY_FROM:
        _copy_update(db, model, objs, [_field(model, name) for name in fields])
        return
    attnames = {name: _field(model, name).attname for name in fields}
    limit = db.features.max_query_params
    size = max(1, limit // len(fields)) if limit else len(objs)
    for start in range(0, len(objs), size):
        batch = objs[start:start + size]
        model._default_manager.filter(pk__in=[obj.pk for obj in batch]).update(**{
            name: per_row(model, name, {obj.pk: getattr(obj, attname) for obj in batch})
            for name, attname in attnames.items()
        })


def _copy_update(db: Any, model: type[Model], objs: Sequence[Model], fields: list[Field]) -> None:
    """PostgreSQL: the rows' new values COPYed into a temporary table of those columns, then
    one UPDATE … FROM it (the same values `update_rows` writes, prepared by their fields)."""
    meta = model._meta
    pk = meta.pk
    assert pk is not None
    quote = db.ops.quote_name
    table, key = quote(meta.db_table), quote(pk.column)
    staging = quote(f"rows_update_{uuid.uuid4().hex}")
    columns = ", ".join(quote(field.column) for field in [pk, *fields])
    sets = ", ".join(f"{quote(f.column)} = s.{quote(f.column)}" for f in fields)
    prepared = [(field.attname, _preparer(field, db)) for field in fields]
    with transaction.atomic(using=db.alias), db.cursor() as cursor:
        cursor.execute(f"CREATE TEMPORARY TABLE {staging} AS "
                       f"SELECT {columns} FROM {table} WITH NO DATA")
        with _copy(db, cursor, f"COPY {staging} ({columns}) FROM STDIN") as copy:
            for obj in objs:
                copy.write_row([obj.pk, *(prepare(getattr(obj, attname))
                                          for attname, prepare in prepared)])
        cursor.execute(f"UPDATE {table} SET {sets} FROM {staging} s WHERE {table}.{key} = s.{key}")
        cursor.execute(f"DROP TABLE {staging}")

def insert_rows(objs: Sequence[Model], *, texts: JsonTexts | None = None) -> None:
    """What `bulk_create(objs)` does for new instances of one model (their primary keys set,
    fields' defaults and `pre_save` applied; no conflict handling, no signals), with COPY on
    PostgreSQL when there are at least COPY_FROM of them. `texts`, shared by the calls that
    store the same JSON objects, serialises each of them once."""
    if not objs:
        return
    model = type(objs[0])
    db = _database()
    if db.vendor != "postgresql" or len(objs) < COPY_FROM:
        model._default_manager.bulk_create(objs)
        return
    meta = model._meta
    pk = meta.pk
    assert isinstance(pk, AutoFieldMixin), model  # ids come from the column's sequence
    fields = [field for field in meta.concrete_fields if field is not pk]
    quote = db.ops.quote_name
    columns = ", ".join(quote(field.column) for field in [pk, *fields])
    for obj in objs:  # foreign keys from related instances saved since (as bulk_create does)
        obj._prepare_related_fields_for_save(operation_name="insert_rows")
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [quote(meta.db_table), pk.column, len(objs)],
        )
        # Ascending, as INSERT assigns them: the order of the rows stays the order of the ids.
        ids = sorted(row[0] for row in cursor.fetchall())
        prepared = [(field, _preparer(field, db, texts)) for field in fields]
        rows = [
            [new_id, *(prepare(field.pre_save(obj, True)) for field, prepare in prepared)]
            for obj, new_id in zip(objs, ids, strict=True)
        ]
        with _copy(db, cursor, f"COPY {quote(meta.db_table)} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    for obj, new_id in zip(objs, ids, strict=True):
        obj.pk = new_id
        obj._state.adding = False
        obj._state.db = db.alias


@contextmanager
def _copy(db: Any, cursor: Any, sql: str) -> Iterator[Any]:
    """psycopg's COPY on Django's cursor, its errors turned into Django's as for any query
    (an IntegrityError of a racing request, an OperationalError of a lost server: the callers
    and the API's error handler know those, not psycopg's own)."""
    with db.wrap_database_errors, cursor.cursor.copy(sql) as copy:
        yield copy


# Values PostgreSQL takes as they are, by field class: what Django's preparation returns for
# a value of exactly that type there (CharField.to_python returns a str as it is; int() and
# bool() of an int and a bool; a native uuid column; an aware datetime unchanged).
_AS_THEY_ARE: tuple[tuple[type[Field], tuple[type, ...]], ...] = (
    (models.CharField, (str,)), (models.TextField, (str,)),
    (models.IntegerField, (int,)), (models.AutoField, (int,)), (models.BigAutoField, (int,)),
    (models.BooleanField, (bool,)), (models.UUIDField, (uuid.UUID,)),
)


class JsonTexts:
    """JSON objects serialised once for every COPY that stores them (PostgreSQL): an event's
    appointment is the appointment's state, the event's payload and each dispatch's payload.

    Keyed by the object's identity, and holding the object, so that an id cannot be reused by
    another object meanwhile; the objects must not change while this is in use.
    """

    def __init__(self) -> None:
        self._texts: dict[int, tuple[Any, str]] = {}

    def text(self, value: Any, dumps: Callable[[Any], str]) -> str:
        known = self._texts.get(id(value))
        if known is None:
            known = self._texts[id(value)] = (value, dumps(value))
        return known[1]


def _preparer(field: Field, db: Any, texts: JsonTexts | None = None) -> Callable[[Any], Any]:
    """`field.get_db_prep_save(value, db)` as a function of the value, on PostgreSQL. A value
    of its field's natural type (and an aware datetime, and None in a nullable column) is
    passed on as it is, which is what that preparation returns there, at a tenth of the cost:
    Django's checks and conversions were half of the time of a 500-event COPY. With `texts`, a
    JSON object or array goes as the text Django's adapter would write (COPY's text format,
    which PostgreSQL parses as the column's jsonb), serialised once."""
    target = field.target_field if isinstance(field, models.ForeignKey) else field

    def prepare(value: Any) -> Any:
        return field.get_db_prep_save(value, db)

    if texts is not None and isinstance(field, models.JSONField):
        # As Django's adapter for PostgreSQL serialises (operations.get_json_dumps).
        dumps = json.dumps if field.encoder is None else partial(json.dumps, cls=field.encoder)

        def prepare_json(value: Any) -> Any:
            if type(value) in (dict, list):
                return texts.text(value, dumps)
            return prepare(value)

        return prepare_json

    if isinstance(target, models.DateTimeField):
        def prepare_datetime(value: Any) -> Any:
            if type(value) is datetime and value.tzinfo is not None:
                return value
            return None if value is None and field.null else prepare(value)

        return prepare_datetime
    natural = next((types for cls, types in _AS_THEY_ARE if isinstance(target, cls)), None)
    if natural is None:
        return prepare

    def prepare_plain(value: Any) -> Any:
        if type(value) in natural:
            return value
        return None if value is None and field.null else prepare(value)

    return prepare_plain
