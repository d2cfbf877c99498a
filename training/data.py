"""Loading, validating and splitting the labelled posts.

Every row is checked before anything trains on it, because a silent bad label poisons a small data set:
an unknown label, an empty text or a duplicate id stops the load with the file, line and problem.
The split is a pure function of the ids, the labels and a seed (rows are sorted by id first), so
train / validation / test are the same on every machine whatever order the file comes in.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from training.schema import SCHEMA, LabelSchema

DEFAULT_DATA = Path(__file__).resolve().parent.parent / "data" / "train.jsonl"
SPLITS = ("train", "validation", "test")


class DataError(ValueError):
    """A labelled file that cannot be trusted; the message names the file, line and problem."""

    def __init__(self, path: Path | str, line: int, problem: str):
        self.path, self.line, self.problem = str(path), line, problem
        super().__init__(f"{path}:{line}: {problem}")


def features(schema: LabelSchema = SCHEMA) -> datasets.Features:
    return datasets.Features(
        {
            "id": datasets.Value("string"),
            "text": datasets.Value("string"),
            "company": datasets.Value("string"),
            "source": datasets.Value("string"),
            "urgency": datasets.ClassLabel(names=list(schema.urgency)),
            "issue_type": datasets.ClassLabel(names=list(schema.issue_type)),
            "prior_channels": datasets.Sequence(datasets.ClassLabel(names=list(schema.prior_channels))),
        }
    )


def _validate(obj: object, path: Path, line: int, schema: LabelSchema) -> dict:
    if not isinstance(obj, dict):
        raise DataError(path, line, f"expected a JSON object, got {type(obj).__name__}")
    for key in ("id", "text", "urgency", "issue_type", "prior_channels"):
        if key not in obj:
            raise DataError(path, line, f"missing field {key!r}")
    if not isinstance(obj["id"], str) or not obj["id"].strip():
        raise DataError(path, line, "empty id")
    if not isinstance(obj["text"], str) or not obj["text"].strip():
        raise DataError(path, line, f"empty text for id {obj['id']!r}")
    for head in ("urgency", "issue_type"):
        if obj[head] not in schema.labels(head):
            raise DataError(path, line, f"unknown {head} label {obj[head]!r}; expected one of {schema.labels(head)}")
    channels = obj["prior_channels"]
    if not isinstance(channels, list):
        raise DataError(path, line, "prior_channels must be a list")
    for ch in channels:
        if ch not in schema.prior_channels:
            raise DataError(path, line, f"unknown prior_channels label {ch!r}; expected any of {schema.prior_channels}")
    return {
        "id": obj["id"],
        "text": obj["text"],
        "company": str(obj.get("company") or ""),
        "source": str(obj.get("source") or ""),
        "urgency": obj["urgency"],
        "issue_type": obj["issue_type"],
        "prior_channels": sorted(set(channels), key=schema.prior_channels.index),
    }


def read_labelled(path: Path | str = DEFAULT_DATA, schema: LabelSchema = SCHEMA) -> datasets.Dataset:
    """Read a labelled JSONL file into a ``datasets.Dataset``, validating every row."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"labelled data not found: {path}")
    rows, seen = [], {}
    with path.open("rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise DataError(path, line_no, f"not UTF-8 ({exc.reason})") from None
            except json.JSONDecodeError as exc:
                raise DataError(path, line_no, f"malformed JSON ({exc.msg} at column {exc.colno})") from None
            row = _validate(obj, path, line_no, schema)
            if row["id"] in seen:
                raise DataError(path, line_no, f"duplicate id {row['id']!r} (first on line {seen[row['id']]})")
            seen[row["id"]] = line_no
            rows.append(row)
    if not rows:
        raise DataError(path, 0, "no labelled rows")
    return datasets.Dataset.from_list(rows, features=features(schema))


def _strata(ds: datasets.Dataset, min_size: int = 10) -> list[str]:
    """Urgency × issue type × tried-another-channel, folding cells too small to split into coarser ones."""
    fine = [
        f"{u}|{i}|{bool(c)}" for u, i, c in zip(ds["urgency"], ds["issue_type"], ds["prior_channels"])
    ]
    counts = Counter(fine)
    coarse = [k if counts[k] >= min_size else k.split("|")[0] + "|" + k.split("|")[2] for k in fine]
    counts = Counter(coarse)
    return [k if counts[k] >= min_size else k.split("|")[0] for k in coarse]


def _fold_singletons(strata: np.ndarray) -> np.ndarray:
    """A stratum with one member in the held-out part cannot be split in two: fold it into its urgency."""
    counts = Counter(strata.tolist())
    out = np.array([k if counts[k] >= 2 else k.split("|")[0] for k in strata.tolist()], dtype=object)
    counts = Counter(out.tolist())
    small = [k for k in counts if counts[k] < 2]
    if len(small) == 1:  # a lone leftover joins the largest stratum rather than stand alone
        out[out == small[0]] = max(counts, key=counts.get)
    elif small:
        out[np.isin(out, small)] = "rest"
    return out


def split(ds: datasets.Dataset, seed: int = 13, fractions=(0.8, 0.1, 0.1)) -> datasets.DatasetDict:
    """Deterministic stratified train / validation / test split."""
    ds = ds.sort("id")
    idx = np.arange(len(ds))
    strata = np.array(_strata(ds))
    rest = fractions[1] + fractions[2]
    train_idx, hold_idx = train_test_split(idx, test_size=rest, stratify=_fold_singletons(strata), random_state=seed)
    val_idx, test_idx = train_test_split(
        hold_idx, test_size=fractions[2] / rest, stratify=_fold_singletons(strata[hold_idx]), random_state=seed
    )
    return datasets.DatasetDict(
        {name: ds.select(sorted(part)) for name, part in zip(SPLITS, (train_idx, val_idx, test_idx))}
    )


def duplicate_key(text: str) -> str:
    """What makes two posts the same post for cross-validation: the normalised text (``training.normalise``:
    every handle is ``@user``, every link ``http``), lower-cased, punctuation and spacing ignored. A
    re-post of one complaint to another handle or with another link, in two folds, would let a fold be
    scored on text it trained on."""
    from training.normalise import normalise

    return re.sub(r"[\W_]+", " ", normalise(text).lower()).strip()


def cv_folds(ds: datasets.Dataset, k: int = 5, seed: int = 13) -> np.ndarray:
    """Fold number (0..k-1) of every row of ``ds`` (rows in the order given): stratified on urgency ×
    issue type × tried-another-channel, with normalised-text duplicates always in the same fold."""
    strata = np.array(_strata(ds, min_size=k))
    keys = [duplicate_key(t) for t in ds["text"]]
    groups = np.unique(keys, return_inverse=True)[1]
    folds = np.empty(len(ds), dtype=np.int64)
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    for f, (_, test) in enumerate(splitter.split(np.zeros(len(ds)), strata, groups)):
        folds[test] = f
    return folds


def load_splits(path: Path | str = DEFAULT_DATA, seed: int = 13) -> datasets.DatasetDict:
    return split(read_labelled(path), seed=seed)


@dataclass(frozen=True)
class Targets:
    """Label arrays for one split, in schema order: what the loss and the metrics consume."""

    urgency: np.ndarray  # (n,) int
    issue_type: np.ndarray  # (n,) int
    prior_channels: np.ndarray  # (n, n_channels) float 0/1

    @classmethod
    def of(cls, ds: datasets.Dataset, schema: LabelSchema = SCHEMA) -> "Targets":
        multi = np.zeros((len(ds), len(schema.prior_channels)), dtype=np.float32)
        for r, chans in enumerate(ds["prior_channels"]):
            multi[r, chans] = 1.0
        return cls(np.asarray(ds["urgency"]), np.asarray(ds["issue_type"]), multi)

    def subset(self, idx) -> "Targets":
        return Targets(self.urgency[idx], self.issue_type[idx], self.prior_channels[idx])

    def __len__(self) -> int:
        return len(self.urgency)


def data_hash(path: Path | str, splits: datasets.DatasetDict | None = None) -> str:
    """sha256 of the file's bytes and, if given, of the split membership: what a run was trained on."""
    h = hashlib.sha256(Path(path).read_bytes())
    if splits is not None:
        for name in SPLITS:
            h.update(name.encode())
            h.update("\n".join(splits[name]["id"]).encode())
    return h.hexdigest()


EXTRA_PREFIX = "extra:"  # ids of merged corrections, so they never collide with the shipped ids


def merge_extra(splits: datasets.DatasetDict, extra: datasets.Dataset) -> tuple[datasets.DatasetDict, dict]:
    """Add corrections (``frontline feedback export``) to the training split, corrections winning.

    Two posts are the same post when their ``duplicate_key`` is (normalised text). Within ``extra`` the last
    row of a key wins (the export writes oldest change first). Every shipped post that a correction
    duplicates leaves its split, whichever it is: in train the correction replaces it, and validation and
    test never score a text the model trained on. The corrections join train only, with ids
    ``extra:<post id>``, so validation and test stay shipped posts (less the few a correction duplicates).
    Returns the new splits and the counts a run records."""
    by_key: dict[str, int] = {}
    for i, text in enumerate(extra["text"]):
        by_key[duplicate_key(text)] = i
    n_rows, keep = len(extra), sorted(by_key.values())
    rows = [{**r, "id": EXTRA_PREFIX + r["id"]} for r in extra.select(keep).to_list()]
    extra = datasets.Dataset.from_list(rows, features=splits["train"].features)
    keys = set(by_key)
    out, replaced = {}, {}
    for name, ds in splits.items():
        stays = [i for i, t in enumerate(ds["text"]) if duplicate_key(t) not in keys]
        replaced[name] = len(ds) - len(stays)
        out[name] = ds.select(stays) if replaced[name] else ds
    out["train"] = datasets.concatenate_datasets([out["train"], extra])
    info = {"extra_rows": n_rows, "extra_used": len(extra), "extra_duplicates_dropped": n_rows - len(keep),
            "extra_replaced": replaced}
    return datasets.DatasetDict(out), info


def with_corrections(ds: datasets.Dataset, extra: datasets.Dataset) -> tuple[datasets.Dataset, int]:
    """``ds`` with the labels of every post a correction duplicates (``duplicate_key``) replaced by the
    correction's (the last one of a key wins); and how many were replaced. Ids and texts are kept."""
    by_key = {duplicate_key(r["text"]): r for r in extra.to_list()}
    rows, n = ds.to_list(), 0
    for r in rows:
        c = by_key.get(duplicate_key(r["text"]))
        if c is not None:
            r.update(urgency=c["urgency"], issue_type=c["issue_type"], prior_channels=c["prior_channels"])
            n += 1
    return (datasets.Dataset.from_list(rows, features=ds.features) if n else ds), n
