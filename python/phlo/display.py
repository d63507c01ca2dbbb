"""How phlo's objects show themselves in Jupyter (``_repr_html_``) and in a console
(``__repr__``). The classes keep one-line hooks that call in here, so every rendering rule is
in one place.

Rules: every name and value from data or a catalog is HTML-escaped (a column named
``<script>`` is text); a scan shows a preview read from a fresh plan of the same snapshot,
only as many batches as the preview rows need, and stays unread itself; a catalog failure
while rendering is shown in place of the object instead of hiding it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from phlo.errors import PhloError

if TYPE_CHECKING:
    from phlo.errors import ValidationError
    from phlo.ingestion.result import IngestionResult
    from phlo.lakehouse import Lakehouse, Scan, Table
    from phlo.quality.contract import CheckResult

__all__ = [
    "PREVIEW_ROWS",
    "HtmlRepr",
    "arrow_html",
    "check_html",
    "ingestion_html",
    "lakehouse_html",
    "lakehouse_text",
    "result_html",
    "row_count",
    "scan_html",
    "scan_text",
    "table_html",
    "table_text",
    "validation_error_html",
]

#: Rows a scan preview shows.
PREVIEW_ROWS = 10
#: Items of a list (tables, snapshots, failure cases…) shown before "… and N more".
LISTED = 20
#: Characters of one cell shown before it is cut.
CELL_CHARS = 120

_STYLE = (
    "<style>.phlo-view table{border-collapse:collapse;margin:2px 0 8px}"
    ".phlo-view th,.phlo-view td{padding:2px 8px;text-align:left;vertical-align:top}"
    ".phlo-view .null{color:#888;font-style:italic}.phlo-view .ok{color:#1a7f37}"
    ".phlo-view .bad{color:#cf222e}.phlo-view .dim{color:#666}</style>"
)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _view(title: str, *parts: str) -> str:
    return f'{_STYLE}<div class="phlo-view"><strong>{title}</strong>{"".join(parts)}</div>'


def _guarded(render: Callable[[Any], str]) -> Callable[[Any], str]:
    """A catalog failure (a dropped table, a missing file) is shown, not raised."""

    def guarded(obj: Any) -> str:
        try:
            return render(obj)
        except PhloError as exc:
            name = type(obj).__name__
            return _view(_e(name), f'<p class="bad">cannot be displayed: {_e(exc)}</p>')

    guarded.__doc__ = render.__doc__
    return guarded


def _grid(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """An HTML table; `header` is escaped here, cells must be HTML already."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _pairs(items: Iterable[tuple[str, str]]) -> str:
    """A two-column key/value table; keys are escaped here, values must be HTML already."""
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in items)
    return f"<table><tbody>{rows}</tbody></table>"


def _more(shown: int, total: int, what: str) -> str:
    return f'<p class="dim">… and {total - shown:,} more {_e(what)}</p>' if total > shown else ""


def _cell(value: Any) -> str:
    """One value as HTML: null marked, nested values as JSON, long text cut."""
    if value is None:
        return '<span class="null">null</span>'
    if isinstance(value, dt.datetime | dt.date | dt.time):
        text = value.isoformat()
    elif isinstance(value, dict | list | tuple):
        text = json.dumps(value, default=str, ensure_ascii=False)
    else:
        text = str(value)
    if len(text) > CELL_CHARS:
        text = text[: CELL_CHARS - 1] + "…"
    return _e(text)


def arrow_html(table: pa.Table, total_rows: int | None = None, *, limit: int = LISTED) -> str:
    """The first `limit` rows of an Arrow table, with its column types; `total_rows` (when
    known and larger) is said below."""
    shown = table.slice(0, limit)
    header = [f"{f.name}" for f in table.schema]
    types = [f'<span class="dim">{_e(f.type)}</span>' for f in table.schema]
    rows = [[_cell(v) for v in row.values()] for row in shown.to_pylist()]
    grid = _grid(header, [types, *rows])
    total = table.num_rows if total_rows is None else total_rows
    return grid + _more(shown.num_rows, total, "rows")


class HtmlRepr:
    """Mixin of result dataclasses: shown in Jupyter as a table of their fields."""

    def _repr_html_(self) -> str:
        return result_html(self)


# --- Lakehouse --------------------------------------------------------------------------


def _table_names(lakehouse: Lakehouse) -> list[str]:
    return [name for ns in lakehouse.namespaces() for name in lakehouse.tables(ns)]


def _location(lakehouse: Lakehouse) -> str:
    """The root folder of an embedded lakehouse, else the warehouse URI (never credentials)."""
    root = lakehouse._native.root
    return str(root) if root is not None else lakehouse.warehouse


def lakehouse_text(lakehouse: Lakehouse) -> str:
    """``Lakehouse('/path', tables=3, branches=['main', 'dev'])``."""
    try:
        branches = lakehouse.branches()
        shown = repr(branches[:8])[:-1] + (
            f", … {len(branches):,} in all]" if len(branches) > 8 else "]"
        )
        facts = f", tables={len(_table_names(lakehouse))}, branches={shown}"
    except PhloError:
        facts = ""
    return f"Lakehouse({_location(lakehouse)!r}{facts})"


@_guarded
def lakehouse_html(lakehouse: Lakehouse) -> str:
    """The tables on main (rows, snapshots, last change), the branches and the tags."""
    names = _table_names(lakehouse)
    rows = []
    for name in names[:LISTED]:
        snapshots = lakehouse.table(name).history()
        last = snapshots[-1] if snapshots else None
        rows.append(
            [
                _e(name),
                _rows(last.summary) if last else "0",
                str(len(snapshots)),
                _e(last.timestamp.isoformat(timespec="seconds")) if last else "",
            ]
        )
    tables = (
        _grid(["table", "rows", "snapshots", "last change"], rows)
        if rows
        else "<p>no tables yet</p>"
    )
    # A project keeps a branch per failed run: the newest are listed, the rest counted.
    branches = sorted(
        lakehouse._native.list_refs("branch"), key=lambda r: (r[2], r[0]), reverse=True
    )
    tags = sorted(lakehouse._native.list_refs("tag"), key=lambda r: (r[2], r[0]), reverse=True)
    refs = [["main", "", ""]] + [
        [_e(name), _e(source), _e(_when(ms))] for name, source, ms in branches[: LISTED - 1]
    ]
    tag_rows = [[_e(name), _e(source), _e(_when(ms))] for name, source, ms in tags[:LISTED]]
    return _view(
        f"Lakehouse <code>{_e(_location(lakehouse))}</code>",
        f"<p>{len(names)} table(s)</p>",
        tables,
        _more(len(rows), len(names), "tables"),
        "<p>branches (newest first)</p>",
        _grid(["branch", "from", "created"], refs),
        _more(len(refs), len(branches) + 1, "branches"),
        ("<p>tags</p>" + _grid(["tag", "of", "created"], tag_rows)) if tags else "",
        _more(len(tag_rows), len(tags), "tags"),
    )


def _when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds")


def row_count(summary: Mapping[str, str]) -> tuple[int, bool]:
    """A snapshot's row count from its summary, and whether it is only an upper bound: rows
    hidden by delete files (merge-on-read) are not subtracted from ``total-records``."""
    total = int(summary.get("total-records", "0"))
    deletes = int(summary.get("total-position-deletes", "0")) + int(
        summary.get("total-equality-deletes", "0")
    )
    return total, deletes > 0


def _rows(summary: Mapping[str, str]) -> str:
    total, upper_bound = row_count(summary)
    return f"≤ {total:,}" if upper_bound else f"{total:,}"


# --- Table ------------------------------------------------------------------------------


def table_text(table: Table) -> str:
    """``Table('raw.events', ref='main', rows=1,000, snapshots=3, columns=[id, ts, …])``."""
    as_of = "" if table.as_of is None else f", as_of={table.as_of!r}"
    base = f"Table({table.name!r}, ref={table.ref!r}{as_of}"
    try:
        snapshots = table.history()  # up to the snapshot reads see
        names = table.schema.names
    except PhloError:
        return base + ")"
    rows = _rows(snapshots[-1].summary) if snapshots else "0"
    columns = ", ".join(names[:8]) + (", …" if len(names) > 8 else "")
    return f"{base}, rows={rows}, snapshots={len(snapshots)}, columns=[{columns}])"


@_guarded
def table_html(table: Table) -> str:
    """Schema (Iceberg types, ids, docs), partitioning, snapshots."""
    _, metadata, _ = table._metadata()
    schema = next(s for s in metadata["schemas"] if s["schema-id"] == metadata["current-schema-id"])
    columns = [
        [
            str(f["id"]),
            _e(f["name"]),
            _e(f["type"] if isinstance(f["type"], str) else json.dumps(f["type"])),
            "" if f.get("required") else '<span class="dim">nullable</span>',
            _e(f.get("doc") or ""),
        ]
        for f in schema["fields"]
    ]
    spec = table.partition_spec
    partitioning = (
        ", ".join(f"{_e(p.transform)}({_e(p.source_column)})" for p in spec)
        if spec
        else "unpartitioned"
    )
    snapshots = table.history()  # up to the snapshot reads see
    recent = list(reversed(snapshots))[:LISTED]
    history = [
        [
            str(s.snapshot_id),
            _e(s.timestamp.isoformat(timespec="seconds")),
            _e(s.operation),
            _e(s.summary.get("added-records", "")),
            _rows(s.summary),
            _e(s.summary.get("phlo.message", "")),
        ]
        for s in recent
    ]
    as_of = f" as of {_e(table.as_of)}" if table.as_of is not None else ""
    rows = _rows(snapshots[-1].summary) if snapshots else "0"
    return _view(
        f"Table <code>{_e(table.name)}</code> @ <code>{_e(table.ref)}</code>{as_of}",
        f"<p>{rows} rows · {len(columns)} columns · partitioned by {partitioning}</p>",
        _grid(["id", "column", "type", "", "doc"], columns),
        "<p>snapshots (newest first)</p>",
        _grid(["snapshot", "committed", "operation", "added", "rows", "message"], history)
        if history
        else "<p>no snapshots yet (empty)</p>",
        _more(len(history), len(snapshots), "snapshots"),
    )


# --- Scan -------------------------------------------------------------------------------


def scan_text(scan: Scan) -> str:
    return (
        f"Scan(snapshot_id={scan.snapshot_id}, files={scan.files_scanned}/{scan.files_total}, "
        f"columns={scan.schema.names!r})"
    )


@_guarded
def scan_html(scan: Scan) -> str:
    """What the scan reads (files after pruning) and a preview of its first rows."""
    preview = scan.head(PREVIEW_ROWS)
    shown = preview.num_rows
    note = (
        f"first {shown} rows; <code>.to_arrow()</code> / <code>.to_polars()</code> read all"
        if shown == PREVIEW_ROWS
        else f"{shown} rows"
    )
    return _view(
        "Scan",
        f"<p>snapshot {_e(scan.snapshot_id)} · {scan.files_scanned} of {scan.files_total} "
        f"data files after pruning · {note}</p>",
        arrow_html(preview),
    )


# --- results ----------------------------------------------------------------------------


def _value_html(value: Any) -> str:
    """A result field's value: Arrow tables and lists of rows as grids, the rest as text."""
    if isinstance(value, pa.Table):
        return arrow_html(value)
    if isinstance(value, pa.Schema):
        return _grid(["column", "type"], [[_e(f.name), _e(f.type)] for f in value])
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return result_html(value)
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        rows = pa.Table.from_pylist([_plain(v) for v in value[:LISTED]])
        return arrow_html(rows, len(value))
    if isinstance(value, list):
        shown = ", ".join(_cell(v) for v in value[:LISTED])
        return f"[{shown}]" + (f" … ({len(value):,} in all)" if len(value) > LISTED else "")
    if isinstance(value, dict):
        if not value:
            return '<span class="dim">{}</span>'
        items = list(value.items())
        pairs = _pairs((str(k), _cell(_rounded(v))) for k, v in items[:LISTED])
        return pairs + _more(min(len(items), LISTED), len(items), "entries")
    if isinstance(value, str) and "\n" in value:
        return f"<pre>{_e(value)}</pre>"
    return _cell(value)


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """A sample row with every value as text (samples mix types across checks)."""
    return {k: None if v is None else str(v) for k, v in row.items()}


def _rounded(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


@_guarded
def result_html(result: Any) -> str:
    """Any result dataclass: its fields, Arrow tables and samples as grids."""
    items = [
        (f.name, _value_html(getattr(result, f.name)))
        for f in dataclasses.fields(result)
        if getattr(result, f.name) is not None
    ]
    return _view(_e(type(result).__name__), _pairs(items))


def _status(passed: bool, text: str) -> str:
    return f'<span class="{"ok" if passed else "bad"}">{_e(text)}</span>'


@_guarded
def check_html(result: CheckResult) -> str:
    """A check: outcome, counts, what was evaluated, the failing sample and SQL."""
    where = f"partition {result.partition_key}" if result.partition_key else "whole table"
    outcome = "passed" if result.passed else f"failed ({result.severity})"
    parts = [
        f"<p>{_status(result.passed, outcome)} · {_e(where)} · "
        f"{result.failed_count:,} of {result.total_count:,} rows failed · "
        f"source {_e(result.source)}</p>"
    ]
    if result.message:
        parts.append(f"<p>{_e(result.message)}</p>")
    parts.append(_pairs([("evaluated", _value_html(result.query_or_sql))]))
    if result.sample:
        parts.append("<p>sample of failing rows</p>" + _value_html(result.sample))
    if result.repro_sql and not result.passed:
        parts.append(f"<p>failing rows</p><pre>{_e(result.repro_sql)}</pre>")
    if result.details:
        parts.append(_value_html(result.details))
    return _view(f"Check <code>{_e(result.name)}</code>", *parts)


@_guarded
def ingestion_html(result: IngestionResult) -> str:
    """An ingestion run: status, row counts, the contract's and the audit's outcomes, timings."""
    ok = result.status in ("published", "written", "no_data")
    counts = [
        ("status", _status(ok, result.status)),
        ("partition", _e(result.partition_date)),
        ("branch → target", f"{_e(result.branch)} → {_e(result.target)}"),
        ("rows extracted", f"{result.rows_extracted:,}"),
        ("inserted / updated / deleted", _counts(result)),
        ("duplicates dropped", f"{result.duplicates_dropped:,}"),
        ("snapshot", _cell(result.snapshot_id)),
        ("run", _e(result.run_id)),
    ]
    if result.staged_files:
        counts.append(("staged input kept", _value_html([str(f) for f in result.staged_files])))
    if result.timings:
        counts.append(("seconds", _value_html(result.timings)))
    contract = check_html(result.contract) if result.contract else ""
    audit = "".join(check_html(check) for check in result.quality)
    return _view(f"Ingestion <code>{_e(result.table)}</code>", _pairs(counts), contract + audit)


def _counts(result: IngestionResult) -> str:
    return f"{result.rows_inserted:,} / {result.rows_updated:,} / {result.rows_deleted:,}"


@_guarded
def validation_error_html(error: ValidationError) -> str:
    """The failed checks (code, count, sample) and the first failure cases."""
    records = error.errors()
    lines = error.message.splitlines() or ["validation failed"]
    if not records:  # a run's contract failure: the message is the whole story
        return _view(f"ValidationError: {_e(lines[0])}", f"<pre>{_e(error.message)}</pre>")
    summary = _grid(
        ["column", "check", "code", "count", "sample"],
        [
            [
                _e(r["column"]),
                _e(r["check"]),
                _e(r["code"]),
                f"{r['count']:,}",
                _e(", ".join(repr(s["failure_case"]) for s in r["sample"][:5])),
            ]
            for r in records
        ],
    )
    cases = error.failure_cases
    table = (
        "<p>failure cases (<code>err.failure_cases</code>)</p>" + arrow_html(cases)
        if isinstance(cases, pa.Table) and cases.num_rows
        else ""
    )
    return _view(f"ValidationError: {_e(lines[0])}", summary, table)
