"""Load a table from a file or a SQL database into a typed `Table`.

Sources: delimited text (``.csv .tsv .txt``, delimiter sniffed unless ``table.delimiter`` is
set), JSON (``.json``: a list of records, or an object holding one list of records such as
``{"data": [...]}``), JSON Lines (``.jsonl .ndjson``), Parquet (``.parquet .pq``) and a SQL table
named by a SQLAlchemy URL (``sqlite:///cars.db``, ``postgresql://user:pw@host/db``). The SQL
table is the URL's ``#name`` suffix, else ``table.sql_table``, else the database's only table.
Passwords are masked (``***``) in `Table.source` and in every error message.

Big inputs stay cheap: CSV and Parquet are read by pyarrow's multithreaded readers (columns
marked ``ignore`` are never read), types are inferred on a sample (`data_loaders.columns`),
and every clean-up step is vectorized.

Clean-up, in order (each dropped thing is logged as a warning on this module's logger):

* column names become strings with surrounding spaces removed; blank names become
  ``column_<position>``; duplicate names are an error;
* columns marked ``ignore`` are dropped; so are columns with no values at all (an error only
  when nothing usable remains);
* every column is typed (config ``columns.<col>.type`` wins) and converted: numbers stored as
  text become numbers, ISO-like dates become datetimes, empty strings become null;
* the table is described (`data_loaders.describe`): the column or columns naming each row are
  chosen, index-like columns (``rownames``, ``PID``) are left out, display names and units are
  read from column names, and the row noun is found, each choice recorded with its reason;
* rows with no entity value are dropped, and rows repeating an earlier row's entity value are
  dropped, keeping the first: questions name an entity, so each must name exactly one row;
* the table must keep at least one numeric, categorical or date column besides the entity.

The content hash is the first 16 hex digits of a sha256: of the file's bytes for files, and for
SQL tables and DataFrames of the column names plus pandas' stable per-row value hashes
(`pandas.util.hash_pandas_object`), a canonical form that does not depend on memory layout.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from data_loaders.choices import TableChoices
from data_loaders.columns import coerce_column, infer_column_type
from data_loaders.config import ColumnType, TableConfig
from data_loaders.describe import USABLE_TYPES, describe
from data_loaders.errors import InputError
from data_loaders.table import Table

logger = logging.getLogger(__name__)

DELIMITED_SUFFIXES = (".csv", ".tsv", ".txt")
JSON_SUFFIXES = (".json",)
JSONL_SUFFIXES = (".jsonl", ".ndjson")
PARQUET_SUFFIXES = (".parquet", ".pq")
SUFFIXES = DELIMITED_SUFFIXES + JSON_SUFFIXES + JSONL_SUFFIXES + PARQUET_SUFFIXES
HEAD_BYTES = 64 * 1024
SNIFF_LINES = 50
HASH_CHUNK = 1 << 20

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_URL_PASSWORD = re.compile(r"(://[^:/@#?]*:)([^@/#?]*)(@)")


# --------------------------------------------------------------------------- public API


def load_table(source: str | Path, config: TableConfig | None = None) -> Table:
    """Load one table from a file path or a SQLAlchemy URL.

    Args:
        source: A path ending in .csv .tsv .txt .json .jsonl .ndjson .parquet or .pq, or a
            SQLAlchemy URL (``sqlite:///x.db``, optionally ``sqlite:///x.db#table``).
        config: How to read and describe the table; defaults to `TableConfig()`.

    Returns:
        The typed table; its ``df`` has a RangeIndex (row ids) and only usable columns.

    Raises:
        InputError: For any bad input, with a one-line message naming the file, line or column.
    """
    return _load(source, config or TableConfig(), check_config_columns=True)


def load_tables(sources: Sequence[str | Path], config: TableConfig | None = None) -> list[Table]:
    """Load several tables with one config; names are made unique (``cars``, ``cars_2``).

    Per-column settings (``columns.<col>``) may name a column of any of the tables; a name that
    matches no table is an error. An ``entity_column`` must exist in every table.

    Args:
        sources: Paths and/or SQLAlchemy URLs, as for `load_table`.
        config: Shared settings; defaults to `TableConfig()`.

    Returns:
        The tables, in the order given.
    """
    config = config or TableConfig()
    if not sources:
        raise InputError("no input tables given; pass at least one file or SQLAlchemy URL")
    tables = [_load(s, config, check_config_columns=False) for s in sources]
    seen_columns: set[str] = set()
    for t in tables:
        seen_columns.update(t.df.columns)
    ignored = {c for c, cc in config.columns.items() if cc.ignore}
    unknown = sorted(set(config.columns) - seen_columns - ignored)
    if unknown:
        raise InputError(
            f"config columns {_names(unknown)} match no column of "
            f"{', '.join(t.source for t in tables)}; check the spelling"
        )
    used: set[str] = set()
    for t in tables:
        base, n = t.name, 1
        while t.name in used:
            n += 1
            t.name = f"{base}_{n}"
        used.add(t.name)
    return tables


def table_from_dataframe(
    df: pd.DataFrame,
    *,
    name: str,
    source: str,
    config: TableConfig | None = None,
    content_hash: str | None = None,
) -> Table:
    """Type a DataFrame, find its entity column, apply aliases and units.

    Args:
        df: The raw table (not modified).
        name: Table name (file stem or SQL table).
        source: Where it came from, used in messages and provenance (no passwords).
        config: How to describe the table; defaults to `TableConfig()`.
        content_hash: The source's hash; computed from the DataFrame's values when None.

    Returns:
        The typed table (see the module docstring for the clean-up rules).
    """
    return _build_table(df, name, source, config or TableConfig(), content_hash, True)


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (``postgresql://u:***@h/db``)."""
    return _URL_PASSWORD.sub(r"\1***\3", url)


def is_sql_url(source: str | Path) -> bool:
    """Whether `source` is a URL (``scheme://...``) rather than a file path."""
    return isinstance(source, str) and bool(_URL.match(source))


def file_hash(path: str | Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB chunks; first 16 hex digits."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()[:16]


def frame_hash(df: pd.DataFrame) -> str:
    """sha256 of a DataFrame's column names and values (canonical, layout-free); 16 hex digits."""
    h = hashlib.sha256(json.dumps([str(c) for c in df.columns]).encode())
    for i in range(df.shape[1]):
        col = df.iloc[:, i]
        try:
            hashed = pd.util.hash_pandas_object(col, index=False)
        except TypeError:  # unhashable cells (lists, dicts)
            hashed = pd.util.hash_pandas_object(col.astype(str), index=False)
        h.update(hashed.to_numpy().tobytes())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- dispatch


def _load(source: str | Path, config: TableConfig, check_config_columns: bool) -> Table:
    if is_sql_url(source):
        df, name, shown = _read_sql(str(source), config)
        return _build_table(df, name, shown, config, frame_hash(df), check_config_columns)
    skipped: list[str] = []  # ignored columns the reader did not even read
    path = Path(source)
    if not path.exists():
        raise InputError(f"{path}: file not found; check the path")
    if not path.is_file():
        raise InputError(f"{path}: is a directory, not a table file; pass a file")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(
            f"{path}: unknown file type {suffix or '(no extension)'!r}; use one of "
            f"{' '.join(SUFFIXES)} or a SQLAlchemy URL such as sqlite:///data.db"
        )
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty; export the table with a header and rows")
    ignored = {c for c, cc in config.columns.items() if cc.ignore}
    try:
        if suffix in DELIMITED_SUFFIXES:
            df, skipped = _read_delimited(path, config, ignored)
        elif suffix in JSON_SUFFIXES:
            df = _read_json(path, config)
        elif suffix in JSONL_SUFFIXES:
            df = _read_jsonl(path, config)
        else:
            df, skipped = _read_parquet(path, ignored)
    except InputError:
        raise
    except (OSError, ValueError, pa.ArrowException) as e:  # never a traceback from a reader
        raise InputError(f"{path}: cannot read the table ({_first_line(e)})") from None
    return _build_table(
        df, path.stem, str(path), config, file_hash(path), check_config_columns, skipped
    )


# --------------------------------------------------------------------------- readers


def _read_delimited(
    path: Path, config: TableConfig, ignored: set[str]
) -> tuple[pd.DataFrame, list[str]]:
    """CSV/TSV/TXT via pyarrow (multithreaded); bad rows and bytes are located for the message.

    Returns the frame and the ignored columns left unread.
    """
    encoding = _codec(config.encoding)
    with open(path, "rb") as fh:
        head = fh.read(HEAD_BYTES)
    text = _decode_head(path, head, encoding)
    if not text.strip():
        raise InputError(f"{path}: the file is empty; export the table with a header and rows")
    delimiter = config.delimiter or _sniff_delimiter(path, text, complete=len(head) < HEAD_BYTES)
    header = next(csv.reader([text.lstrip("\ufeff").splitlines()[0]], delimiter=delimiter))
    read_opts = pacsv.ReadOptions(encoding="utf8" if encoding == "utf-8" else encoding)
    parse_opts = pacsv.ParseOptions(delimiter=delimiter)
    include, skipped = _select_columns(header, ignored)
    convert = pacsv.ConvertOptions(strings_can_be_null=True, include_columns=include)
    try:
        try:
            tbl = pacsv.read_csv(path, read_opts, parse_opts, convert)
        except pa.ArrowInvalid as e:
            if "conversion error" not in str(e):
                raise
            # pyarrow typed a column from the first block and a later value did not fit;
            # read everything as text and let `coerce_column` convert.
            convert.column_types = {c: pa.string() for c in header}
            tbl = pacsv.read_csv(path, read_opts, parse_opts, convert)
    except pa.ArrowInvalid as e:
        if "columns" in str(e) and "Expected" in str(e):
            bad = _find_ragged_row(path, encoding, delimiter)
            if bad:
                line, want, got = bad
                raise InputError(
                    f"{path} line {line}: {got} fields but the header has {want}; fix that row, "
                    f"or quote values containing {_show_delimiter(delimiter)}, "
                    f"or set table.delimiter"
                ) from None
        raise InputError(f"{path}: not valid delimited text ({_first_line(e)})") from None
    except UnicodeDecodeError:  # transcoding from a non-UTF-8 encoding failed
        _raise_bad_bytes(path, encoding)
        raise
    if any(pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type) for f in tbl.schema):
        _raise_bad_bytes(path, encoding)  # pyarrow reads invalid UTF-8 as binary
    if tbl.num_rows == 0:
        raise InputError(f"{path}: has a header line but no data rows; add rows below it")
    return _to_pandas(tbl), skipped


def _read_json(path: Path, config: TableConfig) -> pd.DataFrame:
    """A JSON list of records, or an object holding one (``{"data": [...]}``)."""
    text = _decode_all(path, config.encoding)
    if not text.strip():
        raise InputError(f"{path}: the file is empty; give a JSON list of records")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(
            f"{path} line {e.lineno} column {e.colno}: not valid JSON ({e.msg}); fix the file"
        ) from None
    key = config.json_key
    if isinstance(data, dict):
        lists = [k for k, v in data.items() if isinstance(v, list)]
        if key is not None:
            if key not in data:
                raise InputError(
                    f"{path}: no key {key!r} (table.json_key); keys there: {_names(list(data))}"
                )
        elif len(lists) == 1:
            key = lists[0]
        elif not lists:
            raise InputError(
                f"{path}: found an object with keys {_names(list(data))} but no list of "
                'records; give [{"column": value, ...}, ...] or {"data": [...]}'
            )
        else:
            raise InputError(
                f"{path}: found several lists (keys {_names(lists)}); choose one with "
                "table.json_key=NAME"
            )
        where, data = f"key {key!r}", data[key]
    else:
        where = "the top level"
    if not isinstance(data, list):
        raise InputError(
            f"{path}: found {_kind(data)} at {where}, not a list of records; "
            'give [{"column": value, ...}, ...]'
        )
    if not data:
        raise InputError(f"{path}: the list of records at {where} is empty; add records")
    for i, rec in enumerate(data):
        if not isinstance(rec, dict):
            raise InputError(
                f"{path}: item {i} of the list at {where} is {_kind(rec)}, not a record; "
                'give objects like {"column": value}'
            )
    return _records_frame(data)


def _read_jsonl(path: Path, config: TableConfig) -> pd.DataFrame:
    """One JSON object per line; blank lines are skipped."""
    text = _decode_all(path, config.encoding)
    records = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(
                f"{path} line {lineno}: not valid JSON ({e.msg} at column {e.colno}); "
                "write one JSON object per line"
            ) from None
        if not isinstance(rec, dict):
            raise InputError(
                f"{path} line {lineno}: found {_kind(rec)}, not a record; "
                'write one object like {"column": value} per line'
            )
        records.append(rec)
    if not records:
        raise InputError(f"{path}: the file has no records; write one JSON object per line")
    return _records_frame(records)


def _read_parquet(path: Path, ignored: set[str]) -> tuple[pd.DataFrame, list[str]]:
    """Parquet via pyarrow, reading only the columns not marked ``ignore``."""
    try:
        pf = pq.ParquetFile(path)
        columns, skipped = _select_columns(pf.schema_arrow.names, ignored)
        tbl = pf.read(columns=columns or None)
    except (pa.ArrowException, OSError) as e:
        raise InputError(
            f"{path}: not a readable Parquet file ({_first_line(e)}); re-export it, "
            "e.g. with pandas.DataFrame.to_parquet"
        ) from None
    if tbl.num_rows == 0:
        raise InputError(f"{path}: the table has no rows; export a table with data")
    return _to_pandas(tbl), skipped


def _select_columns(names: list[str], ignored: set[str]) -> tuple[list[str], list[str]]:
    """(columns to read, ignored columns skipped); ([], []) means read all."""
    skipped = [c for c in names if c.strip() in ignored]
    if not skipped or len(set(names)) < len(names):  # duplicates: read all, reported later
        return [], []
    return [c for c in names if c.strip() not in ignored], [c.strip() for c in skipped]


def _to_pandas(tbl: pa.Table) -> pd.DataFrame:
    """Arrow to pandas without doubling memory; dates as datetime64, not Python objects."""
    return tbl.to_pandas(date_as_object=False, self_destruct=True, split_blocks=True)


def _read_sql(source: str, config: TableConfig) -> tuple[pd.DataFrame, str, str]:
    """Read one table of a SQLAlchemy database; returns (frame, table name, masked source)."""
    import sqlalchemy as sa  # only SQL sources pay for the import

    url_text, _, fragment = source.partition("#")
    masked = mask_url(url_text)
    try:
        url = sa.engine.make_url(url_text)
    except (sa.exc.ArgumentError, ValueError):
        raise InputError(
            f"{masked}: not a valid SQLAlchemy URL; write e.g. sqlite:///path/to.db"
        ) from None
    masked = url.render_as_string(hide_password=True)
    secret = url.password

    def scrub(e: BaseException) -> str:
        msg = _first_line(getattr(e, "orig", None) or e)
        return msg.replace(str(secret), "***") if secret else msg

    if url.get_backend_name() == "sqlite":
        db = url.database
        if db and db != ":memory:" and not db.startswith("file:") and not Path(db).is_file():
            raise InputError(
                f"{masked}: database file {db!r} not found; check the path "
                "(sqlite:///relative.db or sqlite:////absolute/path.db)"
            )
    try:
        engine = sa.create_engine(url)
    except (ImportError, sa.exc.SQLAlchemyError) as e:
        raise InputError(
            f"{masked}: cannot open the database ({scrub(e)}); install the driver for "
            f"{url.drivername!r} or fix the URL"
        ) from None
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            tables = sorted(inspector.get_table_names() + inspector.get_view_names())
            wanted = fragment or config.sql_table
            if not tables:
                raise InputError(f"{masked}: the database has no tables; check the URL")
            if wanted is None:
                if len(tables) > 1:
                    raise InputError(
                        f"{masked}: the database has {len(tables)} tables ({', '.join(tables)}); "
                        "choose one with table.sql_table=NAME or by appending #NAME to the URL"
                    )
                wanted = tables[0]
            elif wanted not in tables:
                raise InputError(
                    f"{masked}: no table {wanted!r}; tables there: {', '.join(tables)}"
                )
            df = pd.read_sql_table(wanted, conn)
    except InputError:
        raise
    except (ImportError, ValueError, sa.exc.SQLAlchemyError) as e:
        raise InputError(
            f"{masked}: cannot open the database ({scrub(e)}); check the URL, that the server "
            "is running and the credentials"
        ) from None
    finally:
        engine.dispose()
    return df, wanted, f"{masked}#{wanted}"


# --------------------------------------------------------------------------- typing & clean-up


def _build_table(
    df: pd.DataFrame,
    name: str,
    source: str,
    config: TableConfig,
    content_hash: str | None,
    check_config_columns: bool,
    skipped: Sequence[str] = (),
) -> Table:
    """The clean-up pipeline described in the module docstring.

    `skipped` names ignored columns the reader left unread (they count as present).
    """
    if content_hash is None:
        content_hash = frame_hash(df)
    df = df.set_axis(_clean_names(list(df.columns), source), axis=1)
    if df.shape[1] == 0:
        raise InputError(f"{source}: the table has no columns; give a header line and columns")
    if len(df) == 0:
        raise InputError(f"{source}: the table has no data rows; add rows")
    columns = list(df.columns)
    ignored = {c for c, cc in config.columns.items() if cc.ignore}
    if check_config_columns:
        unknown = [c for c in config.columns if c not in columns and c not in skipped]
        if unknown:
            raise InputError(
                f"{source}: config columns {_names(unknown)} are not in the table; "
                f"columns there: {_names(columns)}"
            )
    parts = config.entity_columns
    for part in parts:
        where = f"entity_column {part!r}" if len(parts) == 1 else f"entity_column {parts}: {part!r}"
        if part in ignored:
            raise InputError(f"{source}: {where} is also marked ignore; drop one setting")
        if part not in columns:
            raise InputError(
                f"{source}: {where} is not a column; columns there: {_names(columns)}"
            )
    choices = TableChoices(
        configured={
            c: cc.model_dump(exclude_defaults=True)
            for c, cc in config.columns.items()
            if c in columns or c in skipped
        },
        ignored={c: "marked ignore in the config" for c in ignored if c in columns or c in skipped},
    )

    data: dict[str, pd.Series] = {}
    empty = []
    for col in columns:
        if col in ignored:
            continue
        series = _normalize_cells(df[col])
        if series.isna().all():
            empty.append(col)
            continue
        data[col] = series
    for part in parts:
        if part in empty:
            raise InputError(f"{source}: entity_column {part!r} has no values; choose another")
    if empty:
        logger.warning("%s: dropped columns with no values: %s", source, _names(empty))
        choices.ignored.update(dict.fromkeys(empty, "no values"))
    if not data:
        raise InputError(
            f"{source}: no column has any values"
            + (" (after ignoring columns)" if ignored else "")
            + "; check the file"
        )

    types: dict[str, ColumnType] = {}
    for col, series in data.items():
        override = config.columns[col].type if col in config.columns else None
        kind = override or infer_column_type(series)
        converted, failed = coerce_column(series, kind)
        if failed:
            if converted.isna().all():
                raise InputError(
                    f"{source}: column {col!r} is typed {kind} but none of its values parse as "
                    f"{kind}; set columns.{col}.type to another type"
                )
            logger.warning(
                "%s: column %r: %d values are not %s and were set to null",
                source,
                col,
                failed,
                kind,
            )
        data[col], types[col] = converted, kind
    table_df = pd.DataFrame(data, copy=False)

    d = describe(table_df, types, name=name, source=source, config=config, choices=choices)
    usable = [c for c, t in d.column_types.items() if t in USABLE_TYPES and c != d.entity_column]
    if not usable or len(d.column_types) < 2:
        described = ", ".join(f"{c} ({t})" for c, t in d.column_types.items())
        raise InputError(
            f"{source}: no column to ask questions about (columns: {described}); a table "
            "needs a name column and at least one numeric, categorical or date column; "
            "set columns.<col>.type if one was mistyped"
        )
    logger.info(
        "%s: %d rows, %d columns, entity column %r",
        source,
        len(d.df),
        len(d.column_types),
        d.entity_column,
    )
    return Table(
        name=name,
        source=source,
        df=d.df,
        content_hash=content_hash,
        column_types=d.column_types,
        entity_column=d.entity_column,
        display=d.display,
        units=d.units,
        entity_parts=d.entity_parts,
        noun=d.noun,
        choices=d.choices,
    )


def _clean_names(names: list, source: str) -> list[str]:
    """Strings without surrounding spaces; blanks named by position; duplicates refused."""
    out = []
    for i, n in enumerate(names, start=1):
        s = "" if n is None else str(n).strip().lstrip("\ufeff")
        out.append(s or f"column_{i}")
    dupes = sorted({n for n in out if out.count(n) > 1})
    if dupes:
        where = "; ".join(
            f"{d!r} at positions {', '.join(str(i + 1) for i, n in enumerate(out) if n == d)}"
            for d in dupes
        )
        raise InputError(f"{source}: duplicate column names: {where}; rename them to be unique")
    return out


def _normalize_cells(series: pd.Series) -> pd.Series:
    """Plain values: categories decoded, nested cells as JSON, strings stripped, '' as null."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype(series.cat.categories.dtype)
    if series.dtype == object:
        probe = series.dropna()
        probe = probe.iloc[:: max(1, len(probe) // 1000)]
        if probe.map(lambda v: isinstance(v, (dict, list, tuple, np.ndarray))).any():
            series = series.map(_cell_text, na_action="ignore")
        elif len(probe) and probe.map(lambda v: isinstance(v, str)).all():
            series = series.astype("str")
    if pd.api.types.is_string_dtype(series.dtype) and series.dtype != object:
        series = series.str.strip()
        series = series.mask(series == "")
    return series


def _cell_text(value: object) -> object:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return value


# --------------------------------------------------------------------------- diagnostics


def _codec(encoding: str) -> str:
    """The canonical codec name, or an InputError naming the setting."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise InputError(
            f"table.encoding {encoding!r} is not a known text encoding; use e.g. utf-8 or latin-1"
        ) from None
    return "utf-8" if name in ("utf-8", "utf-8-sig") else name


def _decode_head(path: Path, head: bytes, encoding: str) -> str:
    """Decode the first bytes of a file (a character cut at the end is fine)."""
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        return decoder.decode(head, final=False)
    except UnicodeDecodeError:
        _raise_bad_bytes(path, encoding)
        raise


def _decode_all(path: Path, encoding: str) -> str:
    """A whole (JSON) file's text, BOM removed; bad bytes located in the error."""
    encoding = _codec(encoding)
    try:
        return path.read_bytes().decode(encoding).lstrip("\ufeff")
    except UnicodeDecodeError:
        _raise_bad_bytes(path, encoding)
        raise


def _raise_bad_bytes(path: Path, encoding: str) -> None:
    """Raise an InputError giving the line and byte offset of the first undecodable bytes."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset, newlines = 0, 0
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            pending = decoder.getstate()[0]
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as e:
                data = pending + chunk
                at = offset - len(pending) + e.start
                line = newlines + data[: e.start].count(b"\n") + 1
                raise InputError(
                    f"{path} line {line} (byte offset {at}): bytes {data[e.start : e.end]!r} are "
                    f"not valid {encoding}; set table.encoding (e.g. table.encoding=latin-1) or "
                    "re-save the file as UTF-8"
                ) from None
            offset += len(chunk)
            newlines += chunk.count(b"\n")
    raise InputError(f"{path}: the text is not valid {encoding}; set table.encoding")


def _sniff_delimiter(path: Path, text: str, complete: bool) -> str:
    """csv.Sniffer on the first lines; the extension's default when it cannot tell."""
    lines = text.lstrip("\ufeff").splitlines()
    if not complete and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut
    lines = [ln for ln in lines[:SNIFF_LINES] if ln.strip()]
    default = "\t" if path.suffix.lower() == ".tsv" else ","
    if not lines:
        return default
    try:
        found = csv.Sniffer().sniff("\n".join(lines), delimiters=",\t;|").delimiter
    except csv.Error:
        return default
    header = lines[0]
    if found not in header or (default in header and found != default and len(lines) == 1):
        return default
    return found


def _find_ragged_row(path: Path, encoding: str, delimiter: str) -> tuple[int, int, int] | None:
    """(line, header fields, row fields) of the first row whose field count differs, or None."""
    enc = "utf-8-sig" if encoding == "utf-8" else encoding
    try:
        with open(path, encoding=enc, newline="", errors="replace") as fh:
            reader = csv.reader(fh, delimiter=delimiter)
            header = next(reader, None) or []
            start = reader.line_num + 1
            for row in reader:
                if row and len(row) != len(header):
                    return start, len(header), len(row)
                start = reader.line_num + 1
    except csv.Error:
        return None
    return None


def _show_delimiter(d: str) -> str:
    return {"\t": "a tab", ",": "','", ";": "';'", "|": "'|'"}.get(d, repr(d))


def _records_frame(records: list[dict]) -> pd.DataFrame:
    """Records to a frame; keys missing from a record are null."""
    return pd.DataFrame.from_records(records)


def _kind(value: object) -> str:
    """'a list', 'a number', ... for messages about JSON structure."""
    if isinstance(value, dict):
        return f"an object (keys {_names(list(value)[:5])})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "null" if value is None else type(value).__name__


def _names(names: Sequence[str]) -> str:
    return ", ".join(repr(str(n)) for n in names)


def _first_line(e: object) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
