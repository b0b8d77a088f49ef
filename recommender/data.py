"""Interactions as a users x items sparse matrix with the id maps, and loading them from CSV.

A CSV names at least `user_id,item_id` in its header and optionally `rating` or `weight`,
`timestamp` and `group` (the user's group, e.g. a loyalty tier; a user's latest row decides it).
With a `rating` column the matrix is binary (the evaluation protocols treat what is kept after
`min_rating` as relevant); with `weight` the weights of a user's repeated rows add up.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]
from numpy.typing import NDArray

REQUIRED = ("user_id", "item_id")
OPTIONAL = ("rating", "weight", "timestamp", "group")


class DataError(ValueError):
    """The input cannot be used; the message says why, for a person to read."""


@dataclass(frozen=True)
class Interactions:
    """Who interacted with what: `matrix[u, i]` is the weight of user `user_ids[u]` on item
    `item_ids[i]`; `times` (same sparsity) holds the latest timestamp of each pair when known;
    `groups[u]` indexes `group_names` (-1 when the user has none)."""

    matrix: sp.csr_matrix
    user_ids: NDArray[np.str_]
    item_ids: NDArray[np.str_]
    times: sp.csr_matrix | None = None
    groups: NDArray[np.int64] | None = None
    group_names: tuple[str, ...] = ()

    @property
    def n_users(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.matrix.shape[1])


@dataclass(frozen=True)
class Rows:
    """The parsed rows of a CSV, before they become a matrix."""

    users: NDArray[np.str_]
    items: NDArray[np.str_]
    values: NDArray[np.float64]
    times: NDArray[np.float64] | None
    groups: NDArray[np.str_] | None
    binary: bool


def read_csv(path: Path, *, min_rating: float | None = None) -> Rows:
    """Parse and validate an interactions CSV; every problem is a `DataError` naming the line."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return _parse(csv.reader(handle), path.name, min_rating)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise DataError(f"{path}: is a folder, not a CSV file") from exc
    except PermissionError as exc:
        raise DataError(f"{path}: not allowed to read it") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (is it a CSV file?)") from exc
    except csv.Error as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from exc


def _parse(reader: Iterator[list[str]], name: str, min_rating: float | None) -> Rows:
    header = next(reader, None)
    if header is None or not any(cell.strip() for cell in header):
        raise DataError(f"{name}: empty file; the header must name user_id,item_id")
    columns = [cell.strip().lower() for cell in header]
    duplicated = sorted({c for c in columns if columns.count(c) > 1 and c})
    if duplicated:
        raise DataError(f"{name}: the header names {', '.join(duplicated)} more than once")
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise DataError(
            f"{name}: the header must name user_id,item_id (missing: {', '.join(missing)}; "
            f"found: {','.join(columns)})"
        )
    if "rating" in columns and "weight" in columns:
        raise DataError(f"{name}: name either a rating or a weight column, not both")
    if min_rating is not None and "rating" not in columns:
        raise DataError(f"{name}: --min-rating needs a rating column")
    at = {c: columns.index(c) for c in (*REQUIRED, *OPTIONAL) if c in columns}
    value_column = "rating" if "rating" in at else "weight" if "weight" in at else None

    users: list[str] = []
    items: list[str] = []
    values: list[float] = []
    times: list[float] = []
    groups: list[str] = []
    for line, row in enumerate(reader, start=2):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank lines are harmless
        if len(row) < len(columns):
            raise DataError(
                f"{name}, line {line}: {len(row)} fields, the header has {len(columns)}"
            )
        user, item = row[at["user_id"]].strip(), row[at["item_id"]].strip()
        if not user or not item:
            raise DataError(f"{name}, line {line}: empty user_id or item_id")
        value = 1.0
        if value_column is not None:
            value = _number(row[at[value_column]], name, line, value_column)
            if value_column == "weight" and value <= 0:
                raise DataError(f"{name}, line {line}: weight must be positive, got {value:g}")
        if min_rating is not None and value < min_rating:
            continue
        users.append(user)
        items.append(item)
        values.append(value)
        if "timestamp" in at:
            times.append(_number(row[at["timestamp"]], name, line, "timestamp"))
        if "group" in at:
            groups.append(row[at["group"]].strip())
    if not users:
        kept = f" with rating >= {min_rating:g}" if min_rating is not None else ""
        raise DataError(f"{name}: no interactions{kept}")
    return Rows(
        users=np.asarray(users, dtype=np.str_),
        items=np.asarray(items, dtype=np.str_),
        values=np.asarray(values, dtype=np.float64),
        times=np.asarray(times, dtype=np.float64) if "timestamp" in at else None,
        groups=np.asarray(groups, dtype=np.str_) if "group" in at else None,
        binary=value_column != "weight",
    )


def _number(cell: str, name: str, line: int, column: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise DataError(f"{name}, line {line}: {column} {cell.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise DataError(f"{name}, line {line}: {column} {cell.strip()!r} is not a finite number")
    return value


def build(
    rows: Rows,
    *,
    user_ids: Sequence[str] | NDArray[np.str_] | None = None,
    item_ids: Sequence[str] | NDArray[np.str_] | None = None,
) -> Interactions:
    """The matrix of `rows`, over the given id maps (every id must be in them) or over the ids
    the rows name (sorted, so the same file always gives the same matrix)."""
    users_index, user_ids_out = _index(rows.users, user_ids, "user")
    items_index, item_ids_out = _index(rows.items, item_ids, "item")
    shape = (len(user_ids_out), len(item_ids_out))
    data = np.ones_like(rows.values) if rows.binary else rows.values
    matrix = sp.csr_matrix((data, (users_index, items_index)), shape=shape, dtype=np.float64)
    matrix.sum_duplicates()
    if rows.binary:
        matrix.data[:] = 1.0  # a rating given twice is still one relevant item
    matrix = matrix.astype(np.float32)

    times = None
    if rows.times is not None:
        # The latest time of each pair: sort so later rows come last, then keep the last.
        order = np.lexsort((rows.times, items_index, users_index))
        keys = users_index[order] * shape[1] + items_index[order]
        last = np.r_[keys[1:] != keys[:-1], True]
        times = sp.csr_matrix(
            (rows.times[order][last], (users_index[order][last], items_index[order][last])),
            shape=shape,
            dtype=np.float64,
        )
        times.sort_indices()

    groups = None
    group_names: tuple[str, ...] = ()
    if rows.groups is not None:
        names, group_index = np.unique(rows.groups, return_inverse=True)
        group_names = tuple(str(n) for n in names)
        groups = np.full(shape[0], -1, dtype=np.int64)
        # A user's group is the one on their latest row (their current tier).
        seq = (
            np.argsort(rows.times, kind="stable")
            if rows.times is not None
            else np.arange(len(users_index))
        )
        groups[users_index[seq]] = group_index[seq]
    return Interactions(
        matrix=matrix,
        user_ids=user_ids_out,
        item_ids=item_ids_out,
        times=times,
        groups=groups,
        group_names=group_names,
    )


def _index(
    ids: NDArray[np.str_], known: Sequence[str] | NDArray[np.str_] | None, what: str
) -> tuple[NDArray[np.int64], NDArray[np.str_]]:
    if known is None:
        names, index = np.unique(ids, return_inverse=True)
        return index.astype(np.int64), names
    names = np.asarray(known, dtype=np.str_)
    order = np.argsort(names)
    position = np.searchsorted(names, ids, sorter=order)
    position = np.minimum(position, len(names) - 1)
    found = order[position]
    unknown = names[found] != ids
    if unknown.any():
        raise DataError(f"{int(unknown.sum())} rows name a {what} outside the given ids")
    return found.astype(np.int64), names


def load_csv(path: Path, *, min_rating: float | None = None) -> Interactions:
    """An interactions CSV as a matrix (see the module's doc for the columns)."""
    return build(read_csv(path, min_rating=min_rating))


def select_rows(matrix: sp.csr_matrix, rows: NDArray[np.int64]) -> sp.csr_matrix:
    """Rows of a CSR matrix as a CSR matrix (scipy's typing loses the format)."""
    return sp.csr_matrix(matrix[rows])
