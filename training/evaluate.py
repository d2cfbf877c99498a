"""Metrics, plots and the one number runs are ranked by.

Macro-F1 is the headline for every head because the rare classes (critical, chat, direct_message) are
the ones a helpdesk most needs right. Urgency is ordinal, so within-one accuracy and quadratic weighted
kappa say how far off the misses are, and critical recall is reported on its own. ``selection_score``
(mean of urgency macro-F1, issue-type macro-F1 and tried-another-channel F1) picks the best epoch and
decides promotions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import cohen_kappa_score, confusion_matrix, f1_score, precision_recall_fscore_support

from training.data import Targets
from training.policy import Policy
from training.schema import SCHEMA, LabelSchema

SELECTION_METRICS = ("urgency_macro_f1", "issue_type_macro_f1", "tried_other_channel_f1")


def selection_score(metrics: dict) -> float:
    return float(np.mean([metrics[k] for k in SELECTION_METRICS]))


def _per_class(prefix: str, y_true, y_pred, labels) -> dict:
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=range(len(labels)), zero_division=0)
    out = {}
    for i, name in enumerate(labels):
        out[f"{prefix}_{name}_precision"] = float(p[i])
        out[f"{prefix}_{name}_recall"] = float(r[i])
        out[f"{prefix}_{name}_f1"] = float(f[i])
    return out


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (confidence > lo) & (confidence <= hi)
        if sel.any():
            ece += sel.mean() * abs(correct[sel].mean() - confidence[sel].mean())
    return float(ece)


def compute_metrics(y: Targets, probs: dict[str, np.ndarray], policy: Policy, schema: LabelSchema = SCHEMA) -> dict:
    """Every metric of the issue, flat (``head_metric``), ready for MLflow."""
    d = policy.decide(probs)
    m: dict[str, float] = {}
    n_urg = len(schema.urgency)
    m["urgency_macro_f1"] = float(f1_score(y.urgency, d["urgency"], average="macro", labels=range(n_urg), zero_division=0))
    m["urgency_accuracy"] = float((d["urgency"] == y.urgency).mean())
    m["urgency_within_one_accuracy"] = float((np.abs(d["urgency"] - y.urgency) <= 1).mean())
    m["urgency_qwk"] = float(cohen_kappa_score(y.urgency, d["urgency"], weights="quadratic", labels=list(range(n_urg))))
    crit = schema.urgency.index("critical")
    m["urgency_critical_recall"] = float((d["urgency"][y.urgency == crit] == crit).mean()) if (y.urgency == crit).any() else 0.0
    m["urgency_critical_precision"] = float((y.urgency[d["urgency"] == crit] == crit).mean()) if (d["urgency"] == crit).any() else 0.0
    m.update(_per_class("urgency", y.urgency, d["urgency"], schema.urgency))

    n_iss = len(schema.issue_type)
    m["issue_type_macro_f1"] = float(f1_score(y.issue_type, d["issue_type"], average="macro", labels=range(n_iss), zero_division=0))
    m["issue_type_accuracy"] = float((d["issue_type"] == y.issue_type).mean())
    m.update(_per_class("issue_type", y.issue_type, d["issue_type"], schema.issue_type))

    true_ch, pred_ch = y.prior_channels.astype(bool), d["prior_channels"]
    m["tried_other_channel_f1"] = float(f1_score(true_ch.any(1), pred_ch.any(1), zero_division=0))
    m["prior_channels_micro_f1"] = float(f1_score(true_ch, pred_ch, average="micro", zero_division=0))
    m["prior_channels_macro_f1"] = float(f1_score(true_ch, pred_ch, average="macro", zero_division=0))
    for c, name in enumerate(schema.prior_channels):
        p, r, f, _ = precision_recall_fscore_support(true_ch[:, c], pred_ch[:, c], average="binary", zero_division=0)
        m[f"prior_channels_{name}_precision"], m[f"prior_channels_{name}_recall"], m[f"prior_channels_{name}_f1"] = float(p), float(r), float(f)

    # Calibration: does a 0.8 score mean right 80% of the time?
    m["urgency_ece"] = expected_calibration_error(d["confidence"]["urgency"], d["urgency"] == y.urgency)
    m["issue_type_ece"] = expected_calibration_error(d["confidence"]["issue_type"], d["issue_type"] == y.issue_type)
    m["prior_channels_ece"] = expected_calibration_error(d["confidence"]["prior_channels"], pred_ch.any(1) == true_ch.any(1))
    # Selective prediction: how often a person is asked to look, and how right the rest are.
    kept = ~d["needs_review"]
    m["needs_review_rate"] = float(d["needs_review"].mean())
    for r, flags in d["review_reasons"].items():
        m[f"review_{r}_rate"] = float(flags.mean())
    heads_unsure = np.zeros(len(kept), dtype=bool)
    for h in ("urgency", "issue_type", "prior_channels"):
        heads_unsure |= d["review_reasons"][h]
    m["review_heads_rate"] = float(heads_unsure.mean())  # flagged by an unsure head, the safety net aside
    m["kept_urgency_accuracy"] = float((d["urgency"] == y.urgency)[kept].mean()) if kept.any() else 0.0
    m["kept_issue_type_accuracy"] = float((d["issue_type"] == y.issue_type)[kept].mean()) if kept.any() else 0.0
    m["kept_tried_accuracy"] = float((pred_ch.any(1) == true_ch.any(1))[kept].mean()) if kept.any() else 0.0
    is_crit = y.urgency == crit
    caught = (d["urgency"] == crit) | d["review_reasons"]["possible_critical"]
    m["possible_critical_recall"] = float(caught[is_crit].mean()) if is_crit.any() else 0.0
    m["selection_score"] = selection_score(m)
    return m


def save_plots(y: Targets, probs: dict[str, np.ndarray], policy: Policy, out_dir: Path, schema: LabelSchema = SCHEMA) -> list[Path]:
    """Confusion matrices for the single-label heads and tried-another-channel, and a reliability diagram."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    d = policy.decide(probs)
    paths = []
    panels = [
        ("urgency", y.urgency, d["urgency"], schema.urgency),
        ("issue_type", y.issue_type, d["issue_type"], schema.issue_type),
        ("tried_other_channel", y.prior_channels.any(1).astype(int), d["prior_channels"].any(1).astype(int), ("no", "yes")),
    ]
    for name, t, p, labels in panels:
        cm = confusion_matrix(t, p, labels=range(len(labels)))
        fig, ax = plt.subplots(figsize=(1.0 + 0.6 * len(labels), 0.8 + 0.6 * len(labels)))
        ax.imshow(cm, cmap="Blues")
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), labels)
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=8, color="black" if v < cm.max() / 2 else "white")
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{name} confusion")
        fig.tight_layout()
        path = out_dir / f"confusion_{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    edges = np.linspace(0, 1, 11)
    for head, correct in (("urgency", d["urgency"] == y.urgency), ("issue_type", d["issue_type"] == y.issue_type)):
        conf = d["confidence"][head]
        xs, ys = [], []
        for lo, hi in zip(edges[:-1], edges[1:]):
            sel = (conf > lo) & (conf <= hi)
            if sel.sum() >= 5:
                xs.append(conf[sel].mean())
                ys.append(correct[sel].mean())
        ax.plot(xs, ys, marker="o", label=head)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title("calibration")
    ax.legend()
    fig.tight_layout()
    path = out_dir / "calibration.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(path)
    return paths


EVAL_SPLITS = ("train", "validation", "test", "all")


class EvaluationError(ValueError):
    """An evaluation that cannot say honestly what it scored (unknown split name)."""


@dataclass
class Evaluation:
    """Metrics of one model on one set of posts, and which posts: ``scored`` says file, split and count."""

    metrics: dict
    scored: str
    split: str
    data: str
    n: int
    targets: Targets
    probs: dict
    policy: Policy
    schema: LabelSchema

    def save(self, out: Path) -> None:
        import json

        out.mkdir(parents=True, exist_ok=True)
        record = {"scored": {"data": self.data, "split": self.split, "n": self.n, "description": self.scored},
                  "metrics": self.metrics}
        (out / "metrics.json").write_text(json.dumps(record, indent=2))
        save_plots(self.targets, self.probs, self.policy, out, self.schema)


def evaluate_model(loaded, data: Path | str, split: str = "test", seed: int = 13) -> Evaluation:
    """Score ``loaded`` (``training.tracking.LoadedModel``) on ``split`` of ``data`` (``all``: every row).

    The default is the held-out test split of the shipped data (``training.data.split``, the same seed as
    training): scoring the whole file would count the posts the model trained on and flatter it."""
    from training.data import read_labelled, split as split_data

    if split not in EVAL_SPLITS:
        raise EvaluationError(f"unknown split {split!r}; choose one of {', '.join(EVAL_SPLITS)}")
    p = loaded.predictor
    ds = read_labelled(data, p.schema)
    total = len(ds)
    if split != "all":
        ds = split_data(ds, seed=seed)[split]
    probs = p.probabilities(ds["text"])
    y = Targets.of(ds, p.schema)
    what = (f"every row of {data} ({len(ds)} posts)" if split == "all" else
            f"the {split} split of {data} ({len(ds)} of {total} posts, seed {seed})")
    return Evaluation(compute_metrics(y, probs, p.policy, p.schema), what, split, str(data), len(ds), y, probs,
                      p.policy, p.schema)
