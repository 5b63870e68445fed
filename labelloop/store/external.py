"""Reading another database: the rows of a query on a source of items (``ingest --from-sql``), streamed.

Through SQLAlchemy, so any database it speaks to (PostgreSQL, MySQL, SQLite, …) can be a source. With a
``since`` column the query is wrapped to take rows at or after a watermark, in that column's order.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .._extras import require
from ..errors import InputError
from ._postgres import redact

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@contextmanager
def source_rows(
    url: str, query: str, *, since_column: str | None = None, since: Any = None, chunk: int = 1000
) -> Iterator[tuple[list[str], Iterator[list[tuple]]]]:
    """(column names, chunks of rows) of ``query`` on ``url``; a database error is one line naming the source."""
    sqlalchemy = require("sqlalchemy", "sql", "ingest --from-sql")
    if since_column is not None and not _NAME.match(since_column):
        raise InputError("--since-column", None, f"{since_column!r} is not a column name")
    sql, params = query, {}
    if since_column is not None:
        where = f" WHERE {since_column} >= :labelloop_since" if since is not None else ""
        sql = f"SELECT * FROM ({query}) labelloop_source{where} ORDER BY {since_column}"
        params = {"labelloop_since": since} if since is not None else {}
    engine = sqlalchemy.create_engine(re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", url))
    try:
        with engine.connect() as connection:
            rows = connection.execution_options(stream_results=True, yield_per=chunk).execute(
                sqlalchemy.text(sql), params
            )
            yield list(rows.keys()), (list(map(tuple, part)) for part in rows.partitions(chunk))
    except sqlalchemy.exc.SQLAlchemyError as exc:
        detail = str(exc).strip().splitlines()[0]
        raise InputError(redact(url), None, f"the database refused: {detail}") from None
    finally:
        engine.dispose()
