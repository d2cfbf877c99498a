"""K-fold cross-validation: the yardstick for every modelling choice, and the source of the decision policy.

``frontline cv`` (``run_cv``) splits ALL labelled posts into k folds (stratified on urgency × issue type ×
tried-another-channel; normalised-text duplicates kept in one fold, ``training.data.cv_folds``), and for
each fold fine-tunes the encoder and fits the TF-IDF half on the other folds, then predicts the held-out
fold. What comes out:

- ``oof.npz`` in the output directory (default ``data/cv/``): every post's out-of-fold probabilities from
  the encoder and from TF-IDF, with ids, folds and the data's sha256. It is a data artefact, committed:
  ``frontline train`` reads it to fit the decision policy on ~10,000 posts instead of 631, and it feeds
  the label review (``training.label_review``). Each fold is also kept (``fold-K.npz``) so a killed run
  resumes where it stopped.
- ``cv_metrics.json`` and an MLflow run: mean ± sd over folds of every metric, for each ablation row
  (``ROWS``). The policy is nested: fold k is scored with a policy tuned on the other folds' out-of-fold
  predictions, so no figure is scored on what chose it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from training.data import DEFAULT_DATA, Targets, cv_folds, data_hash, read_labelled
from training.evaluate import compute_metrics
from training.policy import Policy
from training.schema import TRIED
from training.train import RECIPE_FIELDS

CV_DIR = DEFAULT_DATA.parent / "cv" / "multitask"
HEADLINE = ("urgency_macro_f1", "urgency_critical_recall", "urgency_critical_precision", "issue_type_macro_f1",
            "tried_other_channel_f1", "prior_channels_micro_f1", "needs_review_rate", "kept_urgency_accuracy",
            "kept_issue_type_accuracy", "possible_critical_recall")


def _without(probs: dict | None, key: str) -> dict | None:
    return None if probs is None else {k: v for k, v in probs.items() if k != key}


# Ablation rows scored from one cross-validation run: (name, encoder used?, lexical used?, tried output used?, tuned?)
ROWS = (
    ("tfidf_argmax", False, True, True, False),
    ("tfidf_tuned", False, True, True, True),
    ("encoder_argmax", True, False, False, False),
    ("encoder_tuned_no_tried_output", True, False, False, True),
    ("encoder_tuned", True, False, True, True),
    ("frontline", True, True, True, True),
)


def _row_inputs(row: tuple, enc: dict, lex: dict) -> tuple[dict, dict | None]:
    _, use_enc, use_lex, use_tried, _ = row
    if use_enc:
        e, x = enc, (lex if use_lex else None)
    else:
        e, x = lex, None
    if not use_tried:
        e, x = _without(e, TRIED), _without(x, TRIED)
    return e, x


def _subset(probs: dict | None, rows: np.ndarray) -> dict | None:
    return None if probs is None else {k: v[rows] for k, v in probs.items()}


def nested(y: Targets, folds: np.ndarray, enc: dict, lex: dict | None, tuned: bool = True,
           review_accuracy: float = 0.85, critical_recall: float = 0.90) -> list[tuple[np.ndarray, Policy, dict]]:
    """Per fold: (its rows, the policy tuned on the other folds' out-of-fold predictions, its fused
    probabilities). Nothing in fold k is decided by what fold k chose."""
    from training.tune import tune_policy

    out = []
    for f in np.unique(folds):
        test, rest = folds == f, folds != f
        policy = tune_policy(y.subset(rest), _subset(enc, rest), _subset(lex, rest), review_accuracy, critical_recall) \
            if tuned else Policy()
        out.append((test, policy, policy.fuse(_subset(enc, test), _subset(lex, test))))
    return out


def score_rows(y: Targets, folds: np.ndarray, enc: dict, lex: dict) -> tuple[dict, list]:
    """Per ablation row, the metrics of each fold under its nested policy; and the shipped row's nested
    (rows, policy, probabilities) per fold, which the risk–coverage sweep reuses."""
    out: dict[str, list[dict]] = {}
    shipped = []
    for row in ROWS:
        per_fold = nested(y, folds, *_row_inputs(row, enc, lex), tuned=row[4])
        out[row[0]] = [compute_metrics(y.subset(test), probs, policy) for test, policy, probs in per_fold]
        if row[0] == "frontline":
            shipped = per_fold
    return out, shipped


def summarise(per_fold: list[dict]) -> dict[str, dict[str, float]]:
    keys = [k for k in per_fold[0] if isinstance(per_fold[0][k], float)]
    return {k: {"mean": float(np.mean([m[k] for m in per_fold])), "sd": float(np.std([m[k] for m in per_fold], ddof=1))
                if len(per_fold) > 1 else 0.0} for k in keys}


def _same_fold(saved: dict, wanted: dict) -> bool:
    """A fold file left by a killed run is reused only for the same data, folds and recipe."""
    same = all(saved.get(k) == wanted[k] for k in ("sha256", "k", "fold", "n"))
    return same and {k: saved["recipe"].get(k) for k in RECIPE_FIELDS} == wanted["recipe"]


def run_cv(cfg, k: int = 5, out_dir: Path = CV_DIR, limit: int | None = None, progress: bool = True,
           log_mlflow: bool = True) -> dict:
    """Run (or resume) k-fold CV of ``cfg`` (a ``TrainConfig``); write ``oof.npz`` and ``cv_metrics.json``."""
    from training.lexical import LexicalModel
    from training.model import load_tokenizer
    from training.normalise import NormaliserConfig
    from training.train import Encoded, fit, predict_encoded, teacher_targets
    from training.train import recipe as train_recipe

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ds = read_labelled(cfg.data).sort("id")
    if limit:
        ds = ds.select(range(min(limit, len(ds))))
    folds = cv_folds(ds, k, cfg.seed)
    y = Targets.of(ds)
    ids = np.asarray(ds["id"])
    texts = ds["text"]
    sha = data_hash(cfg.data)
    recipe = train_recipe(cfg)
    tokenizer = load_tokenizer(cfg.base)
    encoded = Encoded(texts, tokenizer, cfg.max_length, NormaliserConfig.from_dict(cfg.normaliser))
    soft = teacher_targets(cfg, ids)
    enc: dict[str, np.ndarray] = {}
    lex: dict[str, np.ndarray] = {}
    seconds = []
    for f in range(k):
        part = out_dir / f"fold-{f}.npz"
        test = np.flatnonzero(folds == f)
        train_idx = np.flatnonzero(folds != f)
        stamp = {"sha256": sha, "k": k, "fold": f, "n": len(ds), "recipe": recipe}
        if part.exists() and _same_fold(json.loads(str(np.load(part, allow_pickle=False)["stamp"])), stamp):
            saved = np.load(part, allow_pickle=False)
        else:
            started = time.perf_counter()
            fitted = fit(cfg, encoded.subset(train_idx), y.subset(train_idx), vocab_size=tokenizer.vocab_size,
                         progress=progress, label=f"fold {f + 1}/{k} ",
                         soft=None if soft is None else {n: v[train_idx] for n, v in soft.items()})
            e = predict_encoded(fitted.model, encoded.subset(test))
            lexical = LexicalModel().fit([texts[i] for i in train_idx], y.subset(train_idx))
            x = lexical.predict_proba([texts[i] for i in test])
            took = time.perf_counter() - started
            arrays = {f"enc__{n}": v for n, v in e.items()} | {f"lex__{n}": v for n, v in x.items()}
            np.savez_compressed(part.with_suffix(".tmp.npz"), stamp=json.dumps(stamp, sort_keys=True), seconds=took, **arrays)
            part.with_suffix(".tmp.npz").replace(part)
            saved = np.load(part, allow_pickle=False)
        seconds.append(float(saved["seconds"]))
        for name in saved.files:
            if "__" not in name:
                continue
            kind, output = name.split("__", 1)
            target = enc if kind == "enc" else lex
            arr = saved[name]
            if output not in target:
                target[output] = np.zeros((len(ds),) + arr.shape[1:], dtype=np.float32)
            target[output][test] = arr

    np.savez_compressed(out_dir / "oof.npz", ids=ids, folds=folds, sha256=sha, recipe=json.dumps(recipe),
                        seconds=np.asarray(seconds), **{f"enc__{n}": v for n, v in enc.items()},
                        **{f"lex__{n}": v for n, v in lex.items()})
    for f in range(k):  # the folds are in oof.npz now
        (out_dir / f"fold-{f}.npz").unlink(missing_ok=True)
    return score_oof(out_dir / "oof.npz", cfg.data, log_mlflow=log_mlflow)


def score_oof(oof_path: Path, data: Path | str = DEFAULT_DATA, log_mlflow: bool = False) -> dict:
    """Score stored out-of-fold predictions: every ablation row (nested policy) and the risk–coverage
    sweep; write ``cv_metrics.json``, ``risk_coverage.csv`` and ``risk_coverage.png`` beside them."""
    oof_path = Path(oof_path)
    out_dir = oof_path.parent
    oof = OutOfFold(oof_path)
    ds = read_labelled(data).sort("id")
    y = Targets.of(ds)
    enc, lex = oof.aligned(ds["id"])
    folds = oof.folds_for(ds["id"])
    per_row, shipped = score_rows(y, folds, enc, lex)
    sweep = risk_coverage(y, shipped)
    seconds = oof.seconds
    if not seconds and (out_dir / "cv_metrics.json").exists():  # files written before oof.npz kept them
        seconds = json.loads((out_dir / "cv_metrics.json").read_text()).get("fold_train_seconds", [])
    summary = {"k": int(folds.max()) + 1, "n": len(ds), "data_sha256": oof.sha256, "recipe": oof.recipe,
               "fold_train_seconds": seconds, "rows": {name: summarise(v) for name, v in per_row.items()},
               "risk_coverage": sweep}
    (out_dir / "cv_metrics.json").write_text(json.dumps(summary, indent=2))
    _plot_risk_coverage(sweep, out_dir)
    if log_mlflow:
        _log(summary, out_dir)
    return summary


RC_TARGETS = tuple(round(t, 2) for t in np.arange(0.70, 0.981, 0.02))
RC_COLUMNS = ("target_accuracy", "needs_review_rate", "review_heads_rate", "kept_urgency_accuracy", "kept_issue_type_accuracy",
              "kept_tried_accuracy", "possible_critical_recall")


def risk_coverage(y: Targets, per_fold: list, targets=RC_TARGETS) -> list[dict]:
    """Review rate against accuracy of the posts not flagged, one point per target accuracy, from the
    shipped row's nested policies (``nested``), mean over folds."""
    per_target: dict[float, list[dict]] = {t: [] for t in targets}
    for test, policy, probs in per_fold:
        for t in targets:
            per_target[t].append(compute_metrics(y.subset(test), probs, policy.for_targets(t)))
    return [{"target_accuracy": t, **{c: float(np.mean([m[c] for m in ms])) for c in RC_COLUMNS[1:]}}
            for t, ms in per_target.items()]


def _plot_risk_coverage(sweep: list[dict], out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with (out_dir / "risk_coverage.csv").open("w") as fh:
        fh.write(",".join(RC_COLUMNS) + "\n")
        for row in sweep:
            fh.write(",".join(f"{row[c]:.4f}" for c in RC_COLUMNS) + "\n")
    fig, ax = plt.subplots(figsize=(5.5, 4))
    rate = [100 * r["needs_review_rate"] for r in sweep]
    for key, label in (("kept_urgency_accuracy", "urgency"), ("kept_issue_type_accuracy", "issue type"),
                       ("kept_tried_accuracy", "tried another channel")):
        ax.plot(rate, [r[key] for r in sweep], marker="o", ms=3, label=label)
    ax.set_xlabel("posts flagged needs_review (%)")
    ax.set_ylabel("accuracy of the posts not flagged")
    ax.set_title("risk–coverage, 5-fold out-of-fold (nested)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "risk_coverage.png", dpi=110)
    plt.close(fig)


TABLE_METRICS = (("urgency_macro_f1", "urgency macro-F1"), ("urgency_critical_recall", "critical recall"),
                 ("urgency_critical_precision", "critical precision"), ("issue_type_macro_f1", "issue macro-F1"),
                 ("tried_other_channel_f1", "tried F1"), ("prior_channels_micro_f1", "channels micro-F1"),
                 ("needs_review_rate", "review rate"), ("kept_urgency_accuracy", "urgency acc. kept"),
                 ("kept_issue_type_accuracy", "issue acc. kept"), ("possible_critical_recall", "critical caught"))


def markdown_rows(summaries: dict[str, dict], rows: dict[str, str]) -> str:
    """Ablation table rows in markdown: ``rows`` maps (summary name, row name) labels → display names.
    ``summaries``: name → a cv_metrics.json; keys of ``rows`` are "summary:row"."""
    head = "| configuration | " + " | ".join(label for _, label in TABLE_METRICS) + " | training (min, 5 folds) |"
    lines = [head, "|" + "---|" * (len(TABLE_METRICS) + 2)]
    for key, label in rows.items():
        name, row = key.split(":")
        m = summaries[name]["rows"][row]
        cells = [f"{m[k]['mean']:.3f} ± {m[k]['sd']:.3f}" for k, _ in TABLE_METRICS]
        minutes = sum(summaries[name].get("fold_train_seconds") or []) / 60
        trained = "–" if row.startswith("tfidf") else f"{minutes:.0f}"  # TF-IDF rows need no fine-tuning
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {trained} |")
    return "\n".join(lines)


def _log(summary: dict, out_dir: Path) -> None:
    import mlflow

    from training import tracking

    tracking.configure()
    with mlflow.start_run(run_name=f"cv{summary['k']}"):
        mlflow.set_tag("kind", "cross-validation")
        mlflow.log_params({"k": summary["k"], "n": summary["n"], "data_sha256": summary["data_sha256"],
                           **{k: v for k, v in summary["recipe"].items() if k != "normaliser"}})
        for row, metrics in summary["rows"].items():
            prefix = "cv" if row == "frontline" else f"cv_{row}"
            mlflow.log_metrics({f"{prefix}_{k}_{s}": v[s] for k, v in metrics.items() if "__" not in k
                                for s in ("mean", "sd")})
        mlflow.log_metric("cv_fold_train_seconds_mean", float(np.mean(summary["fold_train_seconds"])))
        mlflow.log_artifact(str(out_dir / "cv_metrics.json"))


class OutOfFold:
    """The stored out-of-fold predictions, aligned to a dataset's ids."""

    def __init__(self, path: Path = CV_DIR / "oof.npz"):
        z = np.load(path, allow_pickle=False)
        self.ids = z["ids"]
        self.folds = z["folds"]
        self.sha256 = str(z["sha256"])
        self.recipe = json.loads(str(z["recipe"]))
        self.seconds = z["seconds"].tolist() if "seconds" in z.files else []
        self.enc = {n.split("__", 1)[1]: z[n] for n in z.files if n.startswith("enc__")}
        self.lex = {n.split("__", 1)[1]: z[n] for n in z.files if n.startswith("lex__")}

    def _rows(self, ids) -> np.ndarray:
        pos = {i: n for n, i in enumerate(self.ids.tolist())}
        missing = [i for i in ids if i not in pos]
        if missing:
            raise KeyError(f"{len(missing)} ids have no out-of-fold prediction (first: {missing[0]!r}); rerun `frontline cv`")
        return np.array([pos[i] for i in ids])

    def aligned(self, ids) -> tuple[dict, dict]:
        """(encoder, TF-IDF) out-of-fold probabilities for these ids, in their order."""
        idx = self._rows(ids)
        return {k: v[idx] for k, v in self.enc.items()}, {k: v[idx] for k, v in self.lex.items()}

    def folds_for(self, ids) -> np.ndarray:
        return self.folds[self._rows(ids)]

    def blended(self, ds) -> dict[str, np.ndarray]:
        """Out-of-fold probabilities for the rows of labelled ``ds``, encoder and TF-IDF blended per output
        with weights chosen on ``ds`` (as the decision policy blends them)."""
        from training.tune import tune_lexical_weight

        enc, lex = self.aligned(ds["id"])
        return Policy(lexical_weight=tune_lexical_weight(Targets.of(ds), enc, lex)).fuse(enc, lex)
