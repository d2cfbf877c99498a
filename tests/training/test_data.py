import json

import pytest

from tests.conftest import DATA
from training.data import (
    DataError,
    Targets,
    data_hash,
    load_splits,
    read_labelled,
    split,
)
from training.schema import SCHEMA

GOOD = {"id": "a1", "text": "my parcel is late", "urgency": "medium", "issue_type": "delivery", "prior_channels": ["phone"]}


def write(tmp_path, rows):
    path = tmp_path / "posts.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_shipped_data_loads_and_splits_deterministically():
    ds = read_labelled(DATA)
    assert len(ds) == 10275
    a, b = load_splits(DATA), split(ds.shuffle(seed=1))  # file order must not matter
    for name in ("train", "validation", "test"):
        assert a[name]["id"] == b[name]["id"]
    sizes = {k: len(v) for k, v in a.items()}
    assert sizes == {"train": 8220, "validation": 1027, "test": 1028}
    assert not set(a["train"]["id"]) & set(a["test"]["id"])
    crit = SCHEMA.urgency.index("critical")
    for name in ("validation", "test"):  # stratified: the rare class is in every split
        assert 15 <= sum(1 for u in a[name]["urgency"] if u == crit) <= 35


def test_targets_encode_multilabel_channels(tmp_path):
    path = write(tmp_path, [GOOD, {**GOOD, "id": "a2", "prior_channels": []}])
    y = Targets.of(read_labelled(path))
    assert y.prior_channels.tolist()[0][SCHEMA.prior_channels.index("phone")] == 1.0
    assert y.prior_channels[1].sum() == 0


@pytest.mark.parametrize(
    "bad, problem",
    [
        ({**GOOD, "id": "a2", "urgency": "urgent"}, "unknown urgency label 'urgent'"),
        ({**GOOD, "id": "a2", "issue_type": "refund"}, "unknown issue_type label 'refund'"),
        ({**GOOD, "id": "a2", "prior_channels": ["fax"]}, "unknown prior_channels label 'fax'"),
        ({**GOOD, "id": "a2", "text": "   "}, "empty text"),
        ({**GOOD}, "duplicate id 'a1' (first on line 1)"),
        ('{"id": "a2", "text": ', "malformed JSON"),
        ({k: v for k, v in GOOD.items() if k != "urgency"} | {"id": "a2"}, "missing field 'urgency'"),
    ],
)
def test_bad_rows_name_file_line_and_problem(tmp_path, bad, problem):
    path = write(tmp_path, [GOOD, bad])
    with pytest.raises(DataError) as err:
        read_labelled(path)
    assert err.value.line == 2
    assert problem in str(err.value)
    assert str(path) in str(err.value)


def test_data_hash_changes_with_content(tmp_path):
    p1 = write(tmp_path, [GOOD])
    h1 = data_hash(p1)
    p1.write_text(json.dumps({**GOOD, "urgency": "high"}) + "\n")
    assert data_hash(p1) != h1
