import datetime
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import EmptyResultSet, FieldDoesNotExist, FullResultSet
from django.db import models
from django.db.models.query import BaseIterable
from django.utils import timezone
from rest_framework import ISO_8601, serializers
from rest_framework.fields import empty
from rest_framework.settings import api_settings


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, so that a misspelt field is an error, not ignored."""

    def to_internal_value(self, data):
        unknown = sorted(set(data) - set(self.fields)) if isinstance(data, dict) else []
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as e:
            if unknown and isinstance(e.detail, dict):
                e.detail.update({name: ["Unknown field."] for name in unknown})
            raise
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return value


def machine_types():
    """"cpu" (cores only) and each accelerator the market has a price for (which names the
    Spark resource its machines offer and its jobs ask for)."""
    from django.conf import settings

    return ["cpu"] + [name for name in settings.DMARKET_PRICES if name not in ("core", "cpu")]


def default_machine_type(gpus):
    """The machine type of a machine or job that leaves it out: gpu (or the market's first
    accelerator) when it offers or asks for GPUs, else cpu."""
    if not gpus:
        return "cpu"
    accelerators = machine_types()[1:]
    return "gpu" if "gpu" in accelerators else next(iter(accelerators), "cpu")


def validate_machine_type(value):
    """A machine type is "cpu" or an accelerator the market has a price for."""
    if value not in machine_types():
        known = ", ".join(machine_types())
        raise serializers.ValidationError(f"Unknown machine type {value!r}; known: {known}.")


# Field classes whose to_representation is plain conversion (DRF 3.16): applied directly.
PLAIN = {serializers.CharField: str, serializers.IntegerField: int,
         serializers.BooleanField: bool, serializers.FloatField: float}


class Zoned:
    """A converter that needs the current time zone (a request's, which a thread-local holds):
    looked up once per page by ValuesSerializer.fetch, not once per value."""

    def __init__(self, make):
        self.make = make

    def __call__(self, value):
        return self.make(timezone.get_current_timezone())(value)


# Model fields whose column always gives the Python type of a plain conversion: that
# conversion is the identity on them, and is skipped.
COLUMN_TYPES = {str: (models.CharField, models.TextField), int: (models.IntegerField,),
                bool: (models.BooleanField,), float: (models.FloatField,)}


def fast_converter(field, column=None):
    """A function equal to field.to_representation on the values a database column gives
    (never None: the caller handles it), without DRF's per-call checks where that is safe;
    None where that is the identity on `column`'s values (the model field it reads)."""
    kind = type(field)
    if kind in PLAIN:
        convert = PLAIN[kind]
        if isinstance(column, COLUMN_TYPES[convert]) and not column.is_relation:
            return None
        return convert
    if (kind is serializers.ChoiceField and isinstance(column, COLUMN_TYPES[str])
            and all(type(key) is str for key in field.choice_strings_to_values.values())):
        return None  # a text column's choices map each string to itself
    if isinstance(field, serializers.PrimaryKeyRelatedField):
        # values() gives a foreign key's id under the field's own name: DRF's value.pk.
        return None if field.pk_field is None else field.pk_field.to_representation
    if kind is serializers.DecimalField and getattr(
            field, "coerce_to_string", api_settings.COERCE_DECIMAL_TO_STRING) and (
            field.decimal_places is not None and field.rounding is None
            and not field.localize and not field.normalize_output):
        if (isinstance(column, models.DecimalField)
                and column.decimal_places == field.decimal_places):
            # A numeric column of that scale is read at that scale: nothing to quantize.
            return lambda value: format(value, "f")
        quantum = Decimal(1).scaleb(-field.decimal_places)
        return lambda value: format(value.quantize(quantum), "f")
    if (kind is serializers.DateTimeField and getattr(field, "format", empty) is empty
            and api_settings.DATETIME_FORMAT == ISO_8601 and not hasattr(field, "timezone")):
        # DRF: to the current time zone, ISO 8601 with Z for UTC.
        def datetime_iso(zone):
            # A timestamp read in UTC needs no conversion to UTC (the zone Django uses).
            utc = zone is datetime.timezone.utc or getattr(zone, "key", None) == "UTC"

            def convert(value):
                if not (utc and value.tzinfo is datetime.timezone.utc):
                    value = value.astimezone(zone)
                text = value.isoformat()
                return text[:-6] + "Z" if text.endswith("+00:00") else text
            return convert
        return Zoned(datetime_iso) if settings.USE_TZ else field.to_representation
    if kind in (serializers.ListField, serializers.DictField) and (
            type(field.child) is serializers.CharField):
        if kind is serializers.ListField:
            return lambda items: [None if item is None else str(item) for item in items]
        return lambda pairs: {str(key): None if value is None else str(value)
                              for key, value in pairs.items()}
    return field.to_representation


class ValuesSerializer:
    """A read-only ModelSerializer's output, straight from the database's rows: no model
    instances, no DRF per-field calls, and the SQL compiled once per WHERE clause and ordering
    (a page of 50 jobs cost 5 ms of CPU through Django and DRF; about half of that was
    compiling 36 columns and turning rows into dicts twice).

    `queryset` gives the serializer's representation dicts when evaluated; a view filters,
    orders and slices it (or lets a paginator). Fields and their order are the serializer's
    own, so the two cannot drift apart (a test compares their output on each list that uses
    this)."""

    # Compiled statements kept per serializer: one per combination of filters a view uses.
    STATEMENTS = 64

    def __init__(self, serializer_class):
        model = serializer_class.Meta.model
        self.model, self.columns, self.names, self.fields = model, [], [], []
        for name, field in serializer_class().fields.items():
            if field.write_only:
                continue
            source = "__".join(field.source_attrs)
            # DRF gives the default when the attribute's path cannot be followed (a null
            # foreign key on the way), which the row shows as None; a null column of the
            # model's own is None.
            default = None if field.default is empty or len(field.source_attrs) == 1 else (
                field.default)
            convert = fast_converter(field, column_field(model, field.source_attrs))
            self.columns.append(source)
            self.names.append(name)
            self.fields.append((name, convert, default))
        self.statements = {}
        self.layouts = {}
        queryset = model._default_manager.values(*self.columns)
        # Django's hook for what evaluating a queryset yields (values() sets its own).
        queryset._iterable_class = type("Representations", (Representations,), {"rows": self})
        self.queryset = queryset

    def rows_counted(self, filters, ordering):
        """self.queryset filtered and ordered, for a paginator, its COUNT(*) made with the
        same filters on the model's table alone, without the joins of the rows' columns
        (to-one joins: the same number)."""
        return CountedRows(self.queryset.filter(**filters).order_by(*ordering),
                           lambda: self.model._default_manager.filter(**filters).count())

    def fetch(self, query, using):
        """The representations of the rows `query` (one of self.queryset's) selects."""
        compiler = query.get_compiler(using)
        try:
            sql, params = self.statement(compiler)
        except EmptyResultSet:
            return []
        connection = compiler.connection
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        if not rows:
            return []
        query = compiler.query
        selected = tuple(query.selected or [*query.extra_select, *query.values_select])
        layout = self.layouts.get(selected)
        if layout is None:
            layout = self.layouts[selected] = self.layout_of(compiler, selected)
        positions, fixes = layout
        # Column by column: each conversion runs in one comprehension over its column.
        columns = list(zip(*rows))
        values = [columns[position] for position in positions]
        zone = timezone.get_current_timezone()
        for index, db, convert, default in fixes:
            column = values[index]
            for db_converter, expression in db:
                column = [db_converter(value, expression, connection) for value in column]
            if isinstance(convert, Zoned):
                convert = convert.make(zone)
            if callable(default):
                values[index] = [default() if value is None else convert(value)
                                 for value in column]
            else:
                values[index] = [default if value is None else convert(value)
                                 for value in column]
        names = self.names
        return [dict(zip(names, row)) for row in zip(*values)]

    def statement(self, compiler):
        """The SQL and parameters of compiler's query. Only its WHERE clause is compiled on
        every call: the whole statement is compiled once for each WHERE clause and ordering,
        and its LIMIT and OFFSET added as Django adds them. A query that does more than filter,
        order and slice is compiled whole every time."""
        query = compiler.query
        if (query.distinct or query.annotations or query.extra or query.extra_tables
                or query.extra_order_by or query.select_for_update or query.combinator
                or query.group_by is not None):
            return compiler.as_sql()
        try:
            where, params = compiler.compile(query.where)
        except FullResultSet:
            where, params = "", []
        # The joins too: a filter may add one (or make one INNER) with a WHERE clause that
        # compiles to nothing.
        joins = tuple((alias, getattr(join, "join_type", None))
                      for alias, join in query.alias_map.items() if query.alias_refcount[alias])
        key = (where, joins, query.order_by, query.standard_ordering, query.default_ordering)
        sql = self.statements.get(key)
        if sql is None:
            sql, compiled = compiler.as_sql(with_limits=False)
            if list(compiled) != list(params):  # parameters outside the WHERE clause
                return compiler.as_sql()
            if len(self.statements) < self.STATEMENTS:
                self.statements[key] = sql
        if query.is_sliced:
            limits = compiler.connection.ops.limit_offset_sql(query.low_mark, query.high_mark)
            sql = f"{sql} {limits}"
        return sql, params

    def layout_of(self, compiler, selected):
        """Where each field's column is in a row, and what turns each value that needs it into
        its representation: the database converters Django would apply (a JSON column's
        parsing), a None to the field's default, then the field's conversion."""
        if compiler.select is None:
            compiler.setup_query()
        selected = list(selected)
        db = compiler.get_converters([expression for expression, _, _ in compiler.select])
        positions = [selected.index(column) for column in self.columns]
        fixes = []
        for index, ((name, convert, default), position) in enumerate(zip(self.fields, positions)):
            converters = db.get(position)
            converters = [(c, converters[1]) for c in converters[0]] if converters else []
            if convert is not None or default is not None or converters:
                fixes.append((index, converters, convert or (lambda value: value), default))
        return positions, fixes


class Representations(BaseIterable):
    """Evaluating a ValuesSerializer's queryset: the representations of its rows."""

    rows = None

    def __iter__(self):
        return iter(self.rows.fetch(self.queryset.query, self.queryset.db))


def column_field(model, path):
    """The model field at the end of a source path such as ("run", "cost"), or None."""
    try:
        for attr in path[:-1]:
            model = model._meta.get_field(attr).related_model
        return model._meta.get_field(path[-1])
    except (AttributeError, IndexError, FieldDoesNotExist):
        return None


class CountedRows:
    def __init__(self, rows, count):
        self.rows, self.counter = rows, count
        self.ordered = rows.ordered

    def count(self):  # a method: Django's Paginator calls only a method without arguments
        return self.counter()

    def __getitem__(self, index):
        return self.rows[index]
