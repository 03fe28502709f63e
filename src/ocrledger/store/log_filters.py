"""The log's and the per-day tables' filters as one SQL WHERE clause, built once for both backends (their own placeholders)."""
from __future__ import annotations

from typing import Any, Callable, Sequence

InList = Callable[[str, Sequence[int]], tuple[str, Any]]
"""(column, integers) -> (``column IN ...`` in the backend's SQL, its one bound value)."""


def log_where(mark: str, in_list: InList, *, parties: Sequence[int] | None, api: str | None, plan: str | None,
              record_id: str | None, since: int | None, until: int | None, statuses: Sequence[int] | None,
              after: int) -> tuple[str, list[Any]]:
    """The WHERE clause (``mark`` is the placeholder: ``?`` or ``%s``) and its values, in order.

    A record id is looked up through the records table: the rows of the batch that committed it (the
    batch index), not a scan of the log; a plan's rows are among its party's (the party index).
    """
    where, args = [f"seq > {mark}"], [after]
    if record_id is not None:
        where.append("batch IN (SELECT b.seq FROM records r JOIN batches b ON b.batch_id = r.batch_id "
                     f"WHERE r.record_id = {mark})")
        args.append(record_id)
    if parties is not None:
        text, value = in_list("party", parties)
        where.append(text)
        args.append(value)
    if plan is not None:
        where.append(f"party = (SELECT party FROM plans WHERE plan_id = {mark})")
        args.append(plan)
    for column, value in (("api", api), ("plan_id", plan), ("record_id", record_id)):
        if value is not None:
            where.append(f"{column} = {mark}")
            args.append(value)
    if since is not None:
        where.append(f"ts >= {mark}")
        args.append(since)
    if until is not None:
        where.append(f"ts < {mark}")
        args.append(until)
    if statuses is not None:
        text, value = in_list("status", [int(s) for s in statuses])
        where.append(text)
        args.append(value)
    return " AND ".join(where), args


def row_filters(mark: str, in_list: InList, parties: Sequence[int] | None,
                conditions: Sequence[tuple[str, Any]]) -> tuple[str, list[Any]]:
    """`` WHERE ...`` (or nothing) of the party list and each ``(expression, value)`` whose value is given:
    ``("api =", "RecognizeIdcard")`` becomes ``api = ?`` (``mark`` is the placeholder)."""
    where: list[str] = []
    args: list[Any] = []
    if parties is not None:
        text, value = in_list("party", parties)
        where.append(text)
        args.append(value)
    for expression, value in conditions:
        if value is not None:
            where.append(f"{expression} {mark}")
            args.append(value)
    return (" WHERE " + " AND ".join(where) if where else ""), args
