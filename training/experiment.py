"""One tracked training run, end to end: train → fit the lexical half → tune → evaluate → log → register.

The test split is touched only here, after every choice has been made on validation, and the baseline
(TF-IDF + logistic regression alone, argmax / 0.5) is scored on the same split in the same run, so the
comparison in MLflow and in the README is like for like.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import mlflow

from training import tracking
from training.data import data_hash
from training.export import export_bundle_runtime
from training.evaluate import compute_metrics, save_plots
from training.lexical import LexicalModel
from training.normalise import NormaliserConfig
from training.predict import BUNDLE_FILE, Policy, save_bundle
from training.train import TrainConfig, finish_distributed, predict_encoded, rank_is_main, train
from training.tune import tune_policy


def _prefixed(prefix: str, metrics: dict) -> dict:
    return {f"{prefix}_{k}": float(v) for k, v in metrics.items()}


def run(cfg: TrainConfig, register: bool = True, promote: bool = True, out_dir: Path | None = None,
        progress: bool = True) -> dict | None:
    """Train and log one run; return a summary dict on rank 0 (None on other ranks)."""
    started = time.perf_counter()

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

        policy = tune_policy(y["validation"], enc["validation"], lex["validation"] if cfg.fuse_lexical else None,
                             cfg.review_precision)
        fused = {s: policy.fuse(enc[s], lex[s] if cfg.fuse_lexical else None) for s in ("validation", "test")}

        metrics = {}
        metrics.update(_prefixed("val", compute_metrics(y["validation"], fused["validation"], policy)))
        metrics.update(_prefixed("test", compute_metrics(y["test"], fused["test"], policy)))
        metrics.update(_prefixed("test_encoder_only", compute_metrics(y["test"], enc["test"], Policy())))
        # the ablation in between: the encoder with its own policy tuned on validation, no lexical half
        enc_policy = tune_policy(y["validation"], enc["validation"], None, cfg.review_precision)
        metrics.update(_prefixed("test_encoder_tuned", compute_metrics(y["test"], enc["test"], enc_policy)))
        metrics.update(_prefixed("test_baseline", compute_metrics(y["test"], lex["test"], Policy())))
        metrics.update(_prefixed("val_baseline", compute_metrics(y["validation"], lex["validation"], Policy())))
        metrics["train_seconds"] = result.train_seconds
        metrics["best_epoch"] = result.best_epoch
        mlflow.log_metrics(metrics)
        mlflow.log_params({"data_sha256": data_hash(cfg.data, splits), "n_train": len(splits["train"]),
                           "n_validation": len(splits["validation"]), "n_test": len(splits["test"])})
        mlflow.set_tags({"base": cfg.base, "best_epoch": result.best_epoch})

        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            for p in save_plots(y["test"], fused["test"], policy, tmp / "plots"):
                mlflow.log_artifact(str(p), "plots")
            (tmp / "history.json").write_text(json.dumps(result.history, indent=2))
            mlflow.log_artifact(str(tmp / "history.json"))
            bundle_dir = Path(out_dir) if out_dir else tmp / "bundle"
            card_metrics = {k: v for k, v in metrics.items() if k.startswith(("val_", "test_")) and "__" not in k}
            save_bundle(bundle_dir, result.model, result.tokenizer, policy,
                        normaliser=NormaliserConfig.from_dict(cfg.normaliser), max_length=cfg.max_length,
                        base=cfg.base, lexical=lexical if cfg.fuse_lexical else None, metrics=card_metrics)
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
            version = tracking.log_model(bundle_dir, register=register)

        promoted, refused = False, None
        if register and promote:  # champion when there is none, or when at least as good on validation
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
    }


def comparison_table(metrics: dict) -> list[tuple[str, float, float, float]]:
    """(metric, frontline, encoder tuned, encoder only, baseline) on the test split, for the CLI and the README."""
    keys = ["urgency_macro_f1", "urgency_accuracy", "urgency_qwk", "urgency_within_one_accuracy",
            "urgency_critical_recall", "issue_type_macro_f1", "issue_type_accuracy", "tried_other_channel_f1",
            "prior_channels_micro_f1", "prior_channels_macro_f1"]
    return [(k, metrics[f"test_{k}"], metrics.get(f"test_encoder_tuned_{k}", float("nan")),
             metrics[f"test_encoder_only_{k}"], metrics[f"test_baseline_{k}"]) for k in keys]

