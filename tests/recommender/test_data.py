"""Loading interactions from CSV: the matrix, the id maps, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from recommender.data import DataError, load_csv


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_ratings_become_binary_relevance_over_sorted_ids(tmp_path: Path) -> None:
    path = write(
        tmp_path / "r.csv",
        "user_id,item_id,rating,timestamp\n"
        "b,x,5,100\n"
        "a,y,3,200\n"
        "a,x,4,300\n"
        "a,x,5,400\n",  # rated twice: still one relevant item, at its latest time
    )
    data = load_csv(path, min_rating=4)
    assert data.user_ids.tolist() == ["a", "b"]
    assert data.item_ids.tolist() == ["x"]  # y was rated 3: below the threshold
    assert data.matrix.toarray().tolist() == [[1.0], [1.0]]
    assert data.times is not None
    assert data.times.toarray().tolist() == [[400.0], [100.0]]


def test_weights_add_up_and_the_latest_row_sets_the_group(tmp_path: Path) -> None:
    path = write(
        tmp_path / "w.csv",
        "Item_ID,user_id,weight,group,timestamp\n"  # any order, any case
        "p1,m1,3,gold,20\n"
        "p1,m1,1,silver,10\n"
        "p2,m2,2,,5\n",
    )
    data = load_csv(path)
    assert data.matrix.toarray().tolist() == [[4.0, 0.0], [0.0, 2.0]]
    assert data.groups is not None
    assert [data.group_names[g] for g in data.groups] == ["gold", ""]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file"),
        ("user,item\n1,2\n", "must name user_id,item_id (missing: user_id, item_id"),
        ("user_id,rating\n1,5\n", "missing: item_id"),
        ("user_id,item_id,rating,weight\n1,2,3,4\n", "either a rating or a weight"),
        ("user_id,item_id,user_id\n1,2,3\n", "names user_id more than once"),
        ("user_id,item_id,rating\n1,2,five\n", "line 2: rating 'five' is not a number"),
        ("user_id,item_id,weight\n1,2,0\n", "line 2: weight must be positive"),
        ("user_id,item_id\n1,2\n3\n", "line 3: 1 fields, the header has 2"),
        ("user_id,item_id\n1,\n", "line 2: empty user_id or item_id"),
        ("user_id,item_id,timestamp\n1,2,nan\n", "timestamp 'nan' is not a finite number"),
        ("user_id,item_id\n", "no interactions"),
    ],
)
def test_bad_files_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(DataError, match=message.replace("(", r"\(")):
        load_csv(write(tmp_path / "bad.csv", text))


def test_min_rating_needs_a_rating_and_may_leave_nothing(tmp_path: Path) -> None:
    weights = write(tmp_path / "w.csv", "user_id,item_id,weight\n1,2,1\n")
    with pytest.raises(DataError, match="--min-rating needs a rating column"):
        load_csv(weights, min_rating=4)
    low = write(tmp_path / "r.csv", "user_id,item_id,rating\n1,2,1\n")
    with pytest.raises(DataError, match="no interactions with rating >= 4"):
        load_csv(low, min_rating=4)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_csv(tmp_path / "missing.csv")
    with pytest.raises(DataError, match="is a folder"):
        load_csv(tmp_path)
    binary = tmp_path / "b.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81user")
    with pytest.raises(DataError, match="not UTF-8"):
        load_csv(binary)
