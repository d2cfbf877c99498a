"""Corrections merged into training (``training.data.merge_extra``): dedup by normalised text, corrections win,
the held-out splits never keep a text the model trains on, and distillation targets a correction's own label."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import DATA, ROOT
from training.data import EXTRA_PREFIX, Targets, load_splits, merge_extra, read_labelled, with_corrections

TEACHER = ROOT / "data" / "cv" / "multitask" / "oof.npz"


@pytest.fixture(scope="module")
def splits():
    return load_splits(DATA)


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return read_labelled(path)


def _row(pid, text, urgency="critical", issue="billing", channels=("chat",)):
    return {"id": pid, "text": text, "urgency": urgency, "issue_type": issue, "prior_channels": list(channels)}


def test_corrections_join_train_replace_duplicates_everywhere_and_win(splits, tmp_path):
    in_test, in_train = splits["test"][0], splits["train"][5]
    extra = _write(tmp_path / "x.jsonl", [
        _row("a", "@AcmeBank charged me twice, called three times"),
        _row("b", "@AcmeCo parcel lost again http://t.co/1", "low", "delivery", ()),
        _row("c", "@someone PARCEL lost again!! https://bit.ly/zz", "high", "delivery", ()),  # same post as b
        _row(in_test["id"], in_test["text"].upper()),  # a shipped test post, relabelled
        _row("e", in_train["text"], "low", "other", ()),  # a shipped train post under another id
    ])
    merged, info = merge_extra(splits, extra)
    assert info == {"extra_rows": 5, "extra_used": 4, "extra_duplicates_dropped": 1,
                    "extra_replaced": {"train": 1, "validation": 0, "test": 1}}
    assert len(merged["test"]) == len(splits["test"]) - 1 and in_test["id"] not in merged["test"]["id"]
    assert in_train["id"] not in merged["train"]["id"]
    assert len(merged["train"]) == len(splits["train"]) - 1 + 4
    assert len(merged["validation"]) == len(splits["validation"])
    added = merged["train"].filter(lambda r: r["id"].startswith(EXTRA_PREFIX))
    assert sorted(added["id"]) == [EXTRA_PREFIX + i for i in sorted(["a", "c", in_test["id"], "e"])]
    c = added.filter(lambda r: r["id"] == EXTRA_PREFIX + "c")[0]  # the later of the two duplicates won
    names = merged["train"].features["urgency"].names
    assert names[c["urgency"]] == "high"
    e = added.filter(lambda r: r["id"] == EXTRA_PREFIX + "e")[0]
    assert names[e["urgency"]] == "low" and e["prior_channels"] == []


def test_with_corrections_relabels_the_tuning_set(splits, tmp_path):
    post = splits["validation"][3]
    extra = _write(tmp_path / "x.jsonl", [_row("z", post["text"] + " ", "critical", "account_access", ("email",))])
    fixed, n = with_corrections(splits["validation"], extra)
    assert n == 1 and fixed["id"] == splits["validation"]["id"]
    row = fixed[3]
    assert fixed.features["issue_type"].names[row["issue_type"]] == "account_access"
    assert with_corrections(splits["validation"], _write(tmp_path / "y.jsonl", [_row("q", "nothing alike")]))[1] == 0


def test_a_correction_is_distilled_towards_its_own_label(tmp_path):
    from training.train import TrainConfig, teacher_targets

    if not TEACHER.exists():
        pytest.skip("no stored teacher")
    shipped = read_labelled(DATA).sort("id")
    extra = _write(tmp_path / "x.jsonl", [_row("new", "a brand new complaint", "critical", "billing", ("chat", "email"))])
    merged = merge_extra({"train": shipped.select(range(3))}, extra)[0]["train"]
    cfg = TrainConfig(data=str(DATA), base="tiny", soft_targets=str(TEACHER), distill_alpha=0.5)
    soft = teacher_targets(cfg, merged["id"], Targets.of(merged))
    assert np.allclose(soft["urgency"][:3].sum(1), 1, atol=1e-4)  # the teacher for shipped posts
    assert soft["urgency"][3].tolist() == [0, 0, 0, 1]  # the correction's own label
    assert soft["issue_type"][3].argmax() == 0 and soft["issue_type"][3].sum() == 1
    assert soft["prior_channels"][3].tolist() == [0, 1, 1, 0, 0, 0]
    assert soft["tried_other_channel"][3] == 1
    with pytest.raises(KeyError):  # without the labels an unknown id is still an error
        teacher_targets(cfg, merged["id"])
