"""The SQL that reads an export's files in a query engine: DuckDB, Athena, BigQuery.

The statements follow from what the encoders write (``engine/encode.py``, ``engine/parquet.py``,
``engine/records.py``) and from where the keys go (``engine/naming.py``):

- JSON lines hold the seed-001 record: four run fields around the nested ``event`` object;
- CSV and Parquet hold one flat row per event (``encode.CSV_COLUMNS``): ``event_time`` a number,
  every other column text, the three attribute maps as JSON text;
- the hive layout puts each window's files under ``dt=YYYY-MM-DD/hour=HH/`` (partitions
  ``dt DATE`` and ``hour INT``) and hides its manifests (a leading underscore); the moengage
  layout has ``export_day=DD-MM-YYYY/`` folders, whose name clashes with the records' own
  ``export_day`` column, and manifests beside the files.

Nothing here touches a store: :func:`statement` turns an export's settings and the URL of its
prefix into text. What cannot be read (encrypted files, an engine that cannot reach the store,
a codec it cannot read) is a :class:`Refused` with the reason, which the API answers as 422.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from spillway.engine.encode import CSV_COLUMNS, FileSpec
from spillway.engine.naming import HIVE
from spillway.ingest import RECORD_FIELDS
from spillway.model import Destination, ExportSettings

EngineName = Literal["athena", "duckdb", "bigquery"]
ENGINES: tuple[EngineName, ...] = ("athena", "duckdb", "bigquery")

# The fields of ``event`` in a JSON lines record, in the order a stored payload has them; the
# attribute maps are objects of any shape (kept as JSON).
EVENT_FIELDS = RECORD_FIELDS
JSONL_FIELDS = ("app_name", "export_hour", "db_name", "event", "export_day")
_MAPS = frozenset({"user_attributes", "event_attributes", "device_attributes"})
PARTITIONS = (("dt", "date"), ("hour", "int"))

# One column type, as each engine spells it.
_TYPES: dict[str, dict[EngineName, str]] = {
    "text": {"duckdb": "VARCHAR", "athena": "string", "bigquery": "STRING"},
    "number": {"duckdb": "DOUBLE", "athena": "double", "bigquery": "FLOAT64"},
    # A JSON object inside a JSON record: DuckDB and BigQuery keep it as JSON; Athena's
    # OpenX SerDe hands an object declared string over as its JSON text.
    "object": {"duckdb": "JSON", "athena": "string", "bigquery": "JSON"},
    # JSON text in a CSV or Parquet column.
    "json_text": {"duckdb": "JSON", "athena": "string", "bigquery": "STRING"},
    "date": {"duckdb": "DATE", "athena": "date", "bigquery": "DATE"},
    "int": {"duckdb": "INTEGER", "athena": "int", "bigquery": "INT64"},
}


class Refused(ValueError):
    """No statement can read these files in that engine; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Column:
    """One column of the table: its name and type in the chosen engine."""

    name: str
    type: str


@dataclass(frozen=True, slots=True)
class Ddl:
    """A statement and what it is made of (the API answers all of it)."""

    engine: EngineName
    table: str
    location: str
    columns: tuple[Column, ...]
    partitions: tuple[Column, ...]
    statement: str
    notes: tuple[str, ...] = ()


def _event_kind(name: str) -> str:
    if name == "event_time":
        return "number"
    return "object" if name in _MAPS else "text"


def _flat_kind(name: str) -> str:
    if name == "event_time":
        return "number"
    return "json_text" if name in _MAPS else "text"


def event_struct(engine: EngineName) -> str:
    """The type of a JSON lines record's ``event`` field."""
    types = [(n, _TYPES[_event_kind(n)][engine]) for n in EVENT_FIELDS]
    if engine == "athena":
        return "struct<" + ",".join(f"{n}:{t}" for n, t in types) + ">"
    if engine == "bigquery":
        return "STRUCT<" + ", ".join(f"{n} {t}" for n, t in types) + ">"
    return "STRUCT(" + ", ".join(f"{n} {t}" for n, t in types) + ")"


def columns(settings: ExportSettings, engine: EngineName) -> tuple[Column, ...]:
    """The fields the export's format writes, each with its type in ``engine``."""
    if settings.format == "jsonl":
        return tuple(
            Column(n, event_struct(engine) if n == "event" else _TYPES["text"][engine])
            for n in JSONL_FIELDS
        )
    return tuple(Column(n, _TYPES[_flat_kind(n)][engine]) for n in CSV_COLUMNS)


def partitions(settings: ExportSettings, engine: EngineName) -> tuple[Column, ...]:
    """The partition columns its layout gives (none for moengage: see the module's doc)."""
    if settings.layout != HIVE:
        return ()
    return tuple(Column(n, _TYPES[kind][engine]) for n, kind in PARTITIONS)


def location(destination: Destination, key_prefix: str, local_dir: Path | None) -> str:
    """Where the export's files are, as the engines address them (no trailing slash).

    ``local_dir``: the destination's directory on this machine (local destinations).
    """
    config = destination.config
    kind = destination.kind
    if kind == "s3":
        return f"s3://{config['bucket']}/{key_prefix}"
    if kind == "gcs":
        return f"gs://{config['bucket']}/{key_prefix}"
    if kind == "azure_blob":
        account = destination.credentials_public.get("account_name")
        host = f"{account}.blob.core.windows.net/" if account else ""
        return f"az://{host}{config['container']}/{key_prefix}"
    if kind == "local" and local_dir is not None:
        return (local_dir / key_prefix).as_posix()
    raise Refused(f"a {kind} destination holds no files for a query engine to read")


def _quote(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def table_name(export_name: str) -> str:
    """An identifier every engine takes unquoted: the export's name with ``.``/``-`` as ``_``."""
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in export_name)
    return name if name[:1].isalpha() or name[:1] == "_" else f"t_{name}"


def statement(
    engine: EngineName,
    export_name: str,
    settings: ExportSettings,
    destination_kind: str,
    where: str,
    *,
    first_day: str = "2020-01-01",
) -> Ddl:
    """The statement that reads the export's files at ``where`` (see :func:`location`) in
    ``engine``. ``first_day`` (YYYY-MM-DD) starts Athena's projected ``dt`` range."""
    if settings.pgp_public_key:
        raise Refused(
            "the export's files are PGP-encrypted, which no query engine reads: decrypt them "
            "first (gpg --decrypt), or export without pgp_public_key"
        )
    table = table_name(export_name)
    if engine == "duckdb":
        return _duckdb(table, settings, where)
    if settings.layout != HIVE:
        raise Refused(
            f"{engine} reads every file under a table's location, and the moengage layout "
            "keeps each run's manifest (.manifest.json) beside its files, in export_day= "
            "folders whose name clashes with the records' own export_day column: set layout "
            'to "hive" (PATCH, from the next window on), or read the files with DuckDB'
        )
    if engine == "athena":
        if destination_kind != "s3":
            raise Refused(f"Athena reads tables from Amazon S3, not a {destination_kind} store")
        return _athena(table, settings, where, first_day)
    if destination_kind != "gcs":
        raise Refused(
            f"BigQuery external tables read Cloud Storage (gs://), not a {destination_kind} store"
        )
    return _bigquery(table, settings, where)


# --- DuckDB ------------------------------------------------------------------------------


def _duckdb(table: str, settings: ExportSettings, where: str) -> Ddl:
    spec = FileSpec.of(settings)
    hive = settings.layout == HIVE
    # Data files only: in the hive layout manifests start with "_"; in the moengage layout
    # they end in "manifest.json" where every data file's name ends in a digit before the
    # suffix (its window end, part or sequence range).
    name = "event_exports_*" if hive else "event_exports_*[0-9]"
    depth = "*/*" if hive else "*"
    pattern = f"{where}/{depth}/{name}{spec.suffix}"
    partitioned = (
        "hive_partitioning = true, hive_types = {'dt': 'DATE', 'hour': 'INTEGER'}"
        if hive
        else "hive_partitioning = false"
    )
    cols = columns(settings, "duckdb")
    if settings.format == "parquet":
        source = f"read_parquet({_quote(pattern)}, {partitioned})"
        select = [c.name for c in cols]
    else:
        typed = "{" + ", ".join(f"{_quote(c.name)}: {_quote(c.type)}" for c in cols) + "}"
        codec = {"gzip": "gzip", "zstd": "zstd", "none": "none"}[settings.compression]
        if settings.format == "csv":
            source = (
                f"read_csv({_quote(pattern)}, header = true, columns = {typed}, "
                f"compression = '{codec}', {partitioned})"
            )
            select = [c.name for c in cols]
        else:
            source = (
                f"read_json({_quote(pattern)}, format = 'newline_delimited', "
                f"columns = {typed}, compression = '{codec}', {partitioned})"
            )
            # One row per event with the columns of CSV and Parquet, in their order: the
            # run fields as they are, the event's fields out of its struct.
            select = [n if n in JSONL_FIELDS else f"event.{n} AS {n}" for n in CSV_COLUMNS]
    parts = partitions(settings, "duckdb")
    select += [p.name for p in parts]
    text = (
        f"CREATE OR REPLACE VIEW {table} AS\nSELECT "
        + ",\n       ".join(select)
        + f"\nFROM {source};"
    )
    notes = []
    if where.startswith(("s3://", "gs://", "az://")):
        notes.append(
            "remote files need DuckDB's httpfs (s3://, gs://) or azure (az://) extension and "
            "a secret with the store's credentials: CREATE SECRET (TYPE s3|gcs|azure, …)"
        )
    if not hive:
        notes.append(
            "moengage layout: no partition columns (the export_day= folders would replace the "
            "records' own export_day), so every query reads every file; backfills are under "
            "<prefix>_backfill/ and not in this view"
        )
    return Ddl("duckdb", table, where, cols, parts, text, tuple(notes))


# --- Athena ------------------------------------------------------------------------------


def _athena(table: str, settings: ExportSettings, where: str, first_day: str) -> Ddl:
    cols = columns(settings, "athena")
    parts = partitions(settings, "athena")
    if settings.format == "parquet":
        storage = "STORED AS PARQUET"
    elif settings.format == "csv":
        storage = (
            "ROW FORMAT SERDE 'org.apache.hadoop.hive.serde2.OpenCSVSerde'\n"
            "WITH SERDEPROPERTIES ('separatorChar' = ',', 'quoteChar' = '\"')\n"
            "STORED AS TEXTFILE"
        )
    else:
        storage = "ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'\nSTORED AS TEXTFILE"
    properties = [
        ("projection.enabled", "true"),
        ("projection.dt.type", "date"),
        ("projection.dt.format", "yyyy-MM-dd"),
        ("projection.dt.range", f"{first_day},NOW"),
        ("projection.dt.interval", "1"),
        ("projection.dt.interval.unit", "DAYS"),
        ("projection.hour.type", "integer"),
        ("projection.hour.range", "0,23"),
        ("projection.hour.digits", "2"),
        ("storage.location.template", f"{where}/dt=${{dt}}/hour=${{hour}}/"),
    ]
    if settings.format == "csv":
        properties.append(("skip.header.line.count", "1"))
    text = (
        f"CREATE EXTERNAL TABLE IF NOT EXISTS `{table}` (\n  "
        + ",\n  ".join(f"`{c.name}` {c.type}" for c in cols)
        + "\n)\nPARTITIONED BY ("
        + ", ".join(f"`{p.name}` {p.type}" for p in parts)
        + f")\n{storage}\nLOCATION {_quote(where + '/')}\nTBLPROPERTIES (\n  "
        + ",\n  ".join(f"{_quote(k)} = {_quote(v)}" for k, v in properties)
        + "\n);"
    )
    notes = (
        "partition projection: no MSCK REPAIR or crawler needed; queries that filter on dt "
        "(and hour) read only those folders",
    )
    return Ddl("athena", table, where, cols, parts, text, notes)


# --- BigQuery ----------------------------------------------------------------------------


def _bigquery(table: str, settings: ExportSettings, where: str) -> Ddl:
    spec = FileSpec.of(settings)
    if settings.format != "parquet" and settings.compression == "zstd":
        raise Refused(
            "BigQuery reads CSV and JSON files uncompressed or gzip-compressed, not zstd: "
            'set compression to "gzip" (PATCH, from the next window on)'
        )
    if settings.format == "jsonl" and settings.compression == "none":
        raise Refused(
            "BigQuery's one wildcard would also match the runs' manifests (.manifest.json) "
            'next to uncompressed JSON lines (.json): set compression to "gzip"'
        )
    cols = columns(settings, "bigquery")
    parts = partitions(settings, "bigquery")
    options = [
        (
            "format",
            {"jsonl": "'NEWLINE_DELIMITED_JSON'", "csv": "'CSV'", "parquet": "'PARQUET'"}[
                settings.format
            ],
        ),
        ("uris", f"[{_quote(f'{where}/*{spec.suffix}')}]"),
        ("hive_partition_uri_prefix", _quote(where)),
        ("require_hive_partition_filter", "false"),
    ]
    if settings.format != "parquet" and settings.compression == "gzip":
        options.append(("compression", "'GZIP'"))
    if settings.format == "csv":
        options += [("skip_leading_rows", "1"), ("allow_quoted_newlines", "true")]
    text = (
        f"CREATE EXTERNAL TABLE `{table}` (\n  "
        + ",\n  ".join(f"{c.name} {c.type}" for c in cols)
        + "\n)\nWITH PARTITION COLUMNS (\n  "
        + ",\n  ".join(f"{p.name} {p.type}" for p in parts)
        + "\n)\nOPTIONS (\n  "
        + ",\n  ".join(f"{k} = {v}" for k, v in options)
        + "\n);"
    )
    notes = ("name the table with its dataset (`project.dataset.table`) before running it",)
    return Ddl("bigquery", table, where, cols, parts, text, notes)
