"""`kinfolk recommender evaluate`: its JSON, and bad input as a message with exit code 2."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import scipy.sparse as sp  # type: ignore[import-untyped]
from typer.testing import CliRunner

from recommender import lineup
from recommender.data import Interactions
from recommender.models import ranker
from services.cli import app
from tests.recommender.synthetic import clustered, write_csv


@pytest.fixture
def quick_ranker(monkeypatch: pytest.MonkeyPatch) -> None:
    """One booster setting and one bag: the full ranker is measured by the benchmark, and a few
    dozen users need no more to show the command's output."""
    monkeypatch.setattr(lineup, "RANKER_GRID", ({"max_iter": 60},))
    monkeypatch.setattr(ranker, "MAX_BAGS", 1)


def evaluate(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["recommender", "evaluate", *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback would have reached the user
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.usefixtures("quick_ranker")
def test_json_names_every_model_and_the_ranker(tmp_path: Path) -> None:
    path = write_csv(clustered(users=80, items=30, per_user=10, seed=4), tmp_path / "tiny.csv")
    code, out, err = evaluate("--interactions", str(path), "--min-rating", "4", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["dataset"] == "tiny"
    assert (report["users"], report["items"]) == (80, 30)
    assert set(report["models"]) == {"popular", "item-knn", "pure-svd", "ease", "ranker"}
    for metrics in report["models"].values():
        assert set(metrics) == {"recall@20", "recall@50", "ndcg@100", "train_seconds"}
        assert 0.0 <= metrics["ndcg@100"] <= 1.0
    assert "validation ndcg@100" in err  # the tuning is shown on stderr, stdout is the JSON


@pytest.mark.usefixtures("quick_ranker")
def test_a_given_split_reports_recall_and_ndcg_at_20(tmp_path: Path) -> None:
    data = clustered(users=60, items=30, per_user=10, seed=6)
    train_mask = data.matrix.copy()
    test_mask = data.matrix.copy()
    # Every user's last two items (by column) are their test items.
    for user in range(data.n_users):
        start, stop = data.matrix.indptr[user], data.matrix.indptr[user + 1]
        train_mask.data[stop - 2 : stop] = 0
        test_mask.data[start : stop - 2] = 0
    train_mask.eliminate_zeros()
    test_mask.eliminate_zeros()
    train = write_csv(_with(data, train_mask), tmp_path / "train.csv", rating=False)
    test = write_csv(_with(data, test_mask), tmp_path / "test.csv", rating=False)
    code, out, err = evaluate("--train", str(train), "--test", str(test), "--json")
    assert code == 0, err
    models = json.loads(out)["models"]
    assert "ranker" in models
    assert set(models["ease"]) == {"recall@20", "ndcg@20", "train_seconds"}


def _with(data: Interactions, matrix: sp.csr_matrix) -> Interactions:
    assert data.times is not None
    times = sp.csr_matrix(data.times.multiply(matrix > 0))
    times.sort_indices()
    return replace(data, matrix=matrix, times=times)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("user,item\n1,2\n", "the header must name user_id,item_id"),
        (
            "user_id,item_id\n" + "".join(f"u{u},i{i}\n" for u in range(6) for i in range(6)),
            "too few users for the protocol",
        ),
        ("user_id,item_id,rating\n1,2,high\n", "line 2: rating 'high' is not a number"),
    ],
)
def test_bad_files_exit_2_with_a_message(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    code, out, err = evaluate("--interactions", str(path))
    assert code == 2
    assert message in err
    assert out == ""


def test_unreadable_or_missing_files_and_wrong_options_exit_2(tmp_path: Path) -> None:
    binary = tmp_path / "image.csv"
    binary.write_bytes(bytes(range(256)))
    for args, message in [
        (["--interactions", str(binary)], "not UTF-8"),
        (["--interactions", str(tmp_path / "nowhere.csv")], "no such file"),
        (["--interactions", str(tmp_path)], "is a folder"),
        ([], "give either --interactions FILE or both --train FILE and --test FILE"),
        (["--train", str(binary)], "both --train FILE and --test FILE"),
    ]:
        code, _, err = evaluate(*args)
        assert code == 2, args
        assert message in err, (args, err)


def test_test_users_missing_from_training_are_refused(tmp_path: Path) -> None:
    train = tmp_path / "train.csv"
    test = tmp_path / "test.csv"
    train.write_text("user_id,item_id\n" + "".join(f"u{u},i{u}\n" for u in range(30)))
    test.write_text("user_id,item_id\nstranger,i1\n")
    code, _, err = evaluate("--train", str(train), "--test", str(test))
    assert code == 2
    assert "have no interactions in train.csv" in err
