"""Ablation: what each ingredient of the recipe gives, on the same split (``python -m training.ablation``).

Trains several configurations (no MLflow registration) and scores each on the test split four ways:
the encoder alone with argmax/0.5, the encoder with its decision policy tuned on validation, the
encoder blended with the TF-IDF half and tuned, and the TF-IDF baseline. Writes a JSON file and prints a
table. Runs on a GPU when there is one; on 2 CPU cores each configuration takes ~10-15 minutes.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict

from training.evaluate import compute_metrics
from training.lexical import LexicalModel
from training.predict import Policy
from training.train import TrainConfig, predict_encoded, train
from training.tune import tune_policy

KEYS = ("urgency_macro_f1", "issue_type_macro_f1", "tried_other_channel_f1", "urgency_critical_recall",
        "prior_channels_micro_f1")

CONFIGS = {
    "plain (no weights, lr 5e-5 everywhere, 4 epochs)": dict(class_weight_power=0.0, lr_heads=5e-5, lr_encoder=5e-5,
                                                             epochs=4, patience=99),
    "class weights (sqrt)": dict(class_weight_power=0.5, lr_heads=5e-5, lr_encoder=5e-5, epochs=4, patience=99),
    "+ head lr 2e-3, encoder 8e-5, early stopping (default)": dict(),
    "balanced weights (power 1)": dict(class_weight_power=1.0),
    "encoder lr 5e-5": dict(lr_encoder=5e-5),
    "10 epochs, patience 3": dict(epochs=10, patience=3),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="minilm")
    ap.add_argument("--only", nargs="*", help="substrings of config names to run")
    ap.add_argument("--out", default="outputs/ablation.json")
    args = ap.parse_args()
    results, lexical, lex = {}, None, None
    for name, overrides in CONFIGS.items():
        if args.only and not any(o in name for o in args.only):
            continue
        cfg = TrainConfig(base=args.base, **overrides)
        t0 = time.perf_counter()
        res = train(cfg, progress=False)
        y, splits = res.targets, res.splits
        enc = {s: predict_encoded(res.model.to("cpu"), res.encoded[s]) for s in ("validation", "test")}
        if lexical is None:
            lexical = LexicalModel().fit(splits["train"]["text"], y["train"])
            lex = {s: lexical.predict_proba(splits[s]["text"]) for s in ("validation", "test")}
        rows = {"baseline": compute_metrics(y["test"], lex["test"], Policy()),
                "encoder argmax/0.5": compute_metrics(y["test"], enc["test"], Policy())}
        p = tune_policy(y["validation"], enc["validation"], None)
        rows["encoder tuned"] = compute_metrics(y["test"], enc["test"], p)
        p = tune_policy(y["validation"], enc["validation"], lex["validation"])
        rows["encoder + lexical tuned"] = compute_metrics(y["test"], p.fuse(enc["test"], lex["test"]), p)
        results[name] = {"config": asdict(cfg), "best_epoch": res.best_epoch, "seconds": time.perf_counter() - t0,
                         "test": {k: {m: v[m] for m in KEYS} for k, v in rows.items()},
                         "lexical_weight": p.lexical_weight}
        print(f"\n== {name}: best epoch {res.best_epoch}, {results[name]['seconds']:.0f}s")
        for k, v in rows.items():
            print(f"  {k:26s} " + "  ".join(f"{m}={v[m]:.3f}" for m in KEYS), flush=True)
        with open(args.out, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
