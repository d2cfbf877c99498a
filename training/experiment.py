"""One tracked training run, end to end: train → fit the lexical half → tune → evaluate → log → register.

Two ways to choose the decision policy:

- **out-of-fold** (the default when ``data/cv/oof.npz`` matches the data and the recipe): the model trains
  on train + validation for the recipe's fixed epochs, and the policy is tuned on the ~10,000
  cross-validated out-of-fold predictions (``training.crossval``); the run also carries the CV figures
  (``cv_*``, mean and sd), which promotion compares;
- **validation split** (no matching out-of-fold file: other data, another recipe, a smoke run): early
  stopping and the policy on the validation split, as before.

The test split is touched only here, after every choice has been made, and the baseline (TF-IDF +
logistic regression alone, argmax / 0.5) is scored on the same split in the same run.

Agents' corrections (``cfg.extra``, from ``frontline feedback export``) join the training split, winning over
the shipped posts they duplicate (``training.data.merge_extra``); with an out-of-fold policy they also
replace those posts' labels in the tuning set. The run records how many were used (param and metric
``n_extra_used``, the bundle's ``extra``), and every registered version carries its model card
(``training.model_card``) in its bundle.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import mlflow

from training import paths, tracking
from training.crossval import CV_DIR, OutOfFold
from training.data import Targets, data_hash, read_labelled, with_corrections
from training.export import export_bundle_runtime
from training.evaluate import compute_metrics, save_plots
from training.lexical import LexicalModel
from training.model_card import CARD_NAME, data_version, write_card
from training.normalise import NormaliserConfig
from training.policy import Policy
from training.predict import BUNDLE_FILE, save_bundle
from training.train import RECIPE_FIELDS, TrainConfig, recipe, finish_distributed, predict_encoded, rank_is_main, train
from training.tune import tune_policy


def _prefixed(prefix: str, metrics: dict) -> dict:
    return {f"{prefix}_{k}": float(v) for k, v in metrics.items()}


def matching_oof(cfg: TrainConfig, path: Path | None = None) -> tuple | None:
    """(OutOfFold, its cv_metrics.json) when the stored out-of-fold predictions were made on this data with
    this recipe; None otherwise (the run then tunes on its validation split)."""
    path = Path(path) if path else CV_DIR / "oof.npz"
    if cfg.limit or not path.exists():
        return None
    oof = OutOfFold(path)
    if oof.sha256 != data_hash(cfg.data) or {k: oof.recipe.get(k) for k in RECIPE_FIELDS} != recipe(cfg):
        return None
    cv_file = path.parent / "cv_metrics.json"
    return oof, (json.loads(cv_file.read_text()) if cv_file.exists() else None)


def run(cfg: TrainConfig, register: bool = True, promote: bool = True, out_dir: Path | None = None,
        progress: bool = True, oof_path: Path | None = None) -> dict | None:
    """Train and log one run; return a summary dict on rank 0 (None on other ranks)."""
    started = time.perf_counter()
    extra_rows = read_labelled(cfg.extra) if cfg.extra else None  # a bad file fails here, before any run starts
    oof = matching_oof(cfg, oof_path)
    cfg = replace(cfg, merge_validation=oof is not None)
    policy_source = "cv_out_of_fold" if oof is not None else "validation_split"

    if rank_is_main():
        tracking.configure()
        active = mlflow.start_run()
        mlflow.log_params({k: v for k, v in asdict(cfg).items() if k != "normaliser"})

        def on_epoch(epoch, record):
            mlflow.log_metrics({f"epoch_{k}": float(v) for k, v in record.items() if k != "epoch"}, step=epoch)
    else:
        on_epoch = None

    result = train(cfg, on_epoch=on_epoch, progress=progress)
    if not rank_is_main():
        finish_distributed()
        return None

    try:
        splits, y = result.splits, result.targets
        enc = {s: predict_encoded(result.model, result.encoded[s]) for s in ("validation", "test")}
        lexical = LexicalModel().fit(splits["train"]["text"], y["train"])
        lex = {s: lexical.predict_proba(splits[s]["text"]) for s in ("validation", "test")}

        if oof is not None:  # the policy from out-of-fold predictions on all labelled posts
            everything = read_labelled(cfg.data).sort("id")
            if extra_rows is not None:  # corrections win here too
                everything, _ = with_corrections(everything, extra_rows)
            y_tune, (enc_tune, lex_tune) = Targets.of(everything), oof[0].aligned(everything["id"])
        else:
            y_tune, enc_tune, lex_tune = y["validation"], enc["validation"], lex["validation"]
        policy = tune_policy(y_tune, enc_tune, lex_tune if cfg.fuse_lexical else None, cfg.review_accuracy,
                             cfg.critical_recall)
        fused = {s: policy.fuse(enc[s], lex[s] if cfg.fuse_lexical else None) for s in ("validation", "test")}

        metrics = {}
        if oof is None:
            metrics.update(_prefixed("val", compute_metrics(y["validation"], fused["validation"], policy)))
            metrics.update(_prefixed("val_baseline", compute_metrics(y["validation"], lex["validation"], Policy())))
        elif oof[1] is not None:  # the yardstick: cross-validated mean and sd of the same recipe
            for row, values in oof[1]["rows"].items():
                prefix = "cv" if row == "frontline" else f"cv_{row}"
                metrics.update({f"{prefix}_{k}_{s}": v[s] for k, v in values.items() if "__" not in k for s in ("mean", "sd")})
        metrics.update(_prefixed("test", compute_metrics(y["test"], fused["test"], policy)))
        metrics.update(_prefixed("test_encoder_only", compute_metrics(y["test"], enc["test"], Policy())))
        # the ablation in between: the encoder with its own policy, no lexical half
        enc_policy = tune_policy(y_tune, enc_tune, None, cfg.review_accuracy, cfg.critical_recall)
        metrics.update(_prefixed("test_encoder_tuned", compute_metrics(y["test"], enc["test"], enc_policy)))
        metrics.update(_prefixed("test_baseline", compute_metrics(y["test"], lex["test"], Policy())))
        metrics["train_seconds"] = result.train_seconds
        metrics["best_epoch"] = result.best_epoch
        extra = extra_record(cfg, result.extra)
        metrics["n_extra_used"] = float(extra["extra_used"] if extra else 0)
        metrics["n_extra_replaced"] = float(sum(extra["extra_replaced"].values()) if extra else 0)
        mlflow.log_metrics(metrics)
        data = {"file": _shown(cfg.data), "version": data_version(cfg.data), "sha256": data_hash(cfg.data),
                "split_sha256": data_hash(cfg.data, splits)}
        mlflow.log_params({"data_sha256": data["split_sha256"], "data_file_sha256": data["sha256"],
                           "data_version": data["version"], "n_train": len(splits["train"]),
                           "n_validation": len(splits["validation"]), "n_test": len(splits["test"]),
                           "n_extra_used": int(metrics["n_extra_used"])})
        if extra:
            mlflow.log_params({"extra_sha256": extra["sha256"], "extra_rows": extra["extra_rows"]})
        mlflow.set_tags({"base": cfg.base, "best_epoch": result.best_epoch, "policy_source": policy_source})

        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            for p in save_plots(y["test"], fused["test"], policy, tmp / "plots"):
                mlflow.log_artifact(str(p), "plots")
            (tmp / "history.json").write_text(json.dumps(result.history, indent=2))
            mlflow.log_artifact(str(tmp / "history.json"))
            bundle_dir = Path(out_dir) if out_dir else tmp / "bundle"
            card_metrics = {k: v for k, v in metrics.items() if k.startswith(("val_", "test_", "cv_")) and "__" not in k}
            save_bundle(bundle_dir, result.model, result.tokenizer, policy,
                        normaliser=NormaliserConfig.from_dict(cfg.normaliser), max_length=cfg.max_length,
                        base=cfg.base, lexical=lexical if cfg.fuse_lexical else None, metrics=card_metrics,
                        extra={"recipe": recipe(cfg), "policy_source": policy_source, "data": data, "extra": extra,
                               "n_labelled": len({i for n in ("train", "validation", "test") for i in splits[n]["id"]})})
            if cfg.export_onnx:
                lexical_probs = lex if cfg.fuse_lexical else {"validation": None, "test": None}
                parity, runtime = export_bundle_runtime(
                    bundle_dir, result.model, splits["validation"]["text"], y["validation"], policy,
                    lexical_probs["validation"], splits["test"]["text"], lexical_probs["test"])
                mlflow.log_metrics(parity)
                mlflow.set_tag("onnx_precision", runtime["precision"])
                metrics.update(parity)
                meta = json.loads((bundle_dir / BUNDLE_FILE).read_text())
                meta["runtime"] = runtime
                meta["metrics"].update(parity)
                (bundle_dir / BUNDLE_FILE).write_text(json.dumps(meta, indent=2))
            card = write_card(bundle_dir, json.loads((bundle_dir / BUNDLE_FILE).read_text()),
                              f"MLflow run {active.info.run_id} (experiment {tracking.EXPERIMENT})")
            mlflow.log_artifact(str(card))
            version = tracking.log_model(bundle_dir, register=register)
            if version is not None:
                tracking.tag_version(version, card_tags(metrics, data, extra))

        promoted, refused = False, None
        if register and promote:  # champion when there is none, or when at least as good (tracking.YARDSTICKS)
            try:
                tracking.promote(version)
                promoted = True
            except tracking.PromotionRefused as exc:
                refused = str(exc)
        run_id = active.info.run_id
        mlflow.end_run()
    except BaseException:
        mlflow.end_run(status="FAILED")
        raise
    finally:
        finish_distributed()
    return {
        "run_id": run_id, "version": version, "promoted": promoted, "promotion_refused": refused, "metrics": metrics,
        "policy": policy.to_dict(), "history": result.history, "best_epoch": result.best_epoch,
        "train_seconds": result.train_seconds, "total_seconds": time.perf_counter() - started,
        "policy_source": policy_source, "extra": extra, "data": data,
    }


def _shown(path) -> str:
    """A data path as the card shows it: relative to the repository when inside it."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(paths.CHECKOUT))
    except ValueError:
        return str(p)


def extra_record(cfg: TrainConfig, merged: dict | None) -> dict | None:
    """What the run says about the corrections it trained with (None without ``--extra``)."""
    if not cfg.extra or merged is None:
        return None
    import hashlib

    return {"file": _shown(cfg.extra), "sha256": hashlib.sha256(Path(cfg.extra).read_bytes()).hexdigest(), **merged}


def card_tags(metrics: dict, data: dict, extra: dict | None) -> dict[str, str]:
    """Registered-version tags: the card's provenance at a glance in the registry (the card is in the bundle)."""
    tags = {"model_card": f"{CARD_NAME} in the model's bundle artifact", "data_sha256": data["split_sha256"],
            "data_version": str(data["version"]), "n_extra_used": str(int(metrics.get("n_extra_used", 0)))}
    for k in ("cv_selection_score_mean", "test_selection_score"):
        if k in metrics:
            tags[k] = f"{metrics[k]:.4f}"
    return tags


def comparison_table(metrics: dict) -> list[tuple[str, float, float, float]]:
    """(metric, frontline, encoder tuned, encoder only, baseline) on the test split, for the CLI and the README."""
    keys = ["urgency_macro_f1", "urgency_accuracy", "urgency_qwk", "urgency_within_one_accuracy",
            "urgency_critical_recall", "issue_type_macro_f1", "issue_type_accuracy", "tried_other_channel_f1",
            "prior_channels_micro_f1", "prior_channels_macro_f1"]
    return [(k, metrics[f"test_{k}"], metrics.get(f"test_encoder_tuned_{k}", float("nan")),
             metrics[f"test_encoder_only_{k}"], metrics[f"test_baseline_{k}"]) for k in keys]

