"""``frontline train | evaluate | promote``: the ML engineer's commands (typer + rich).

Imports of the heavy stack (torch, transformers, datasets, mlflow) happen inside the commands, so that
``frontline serve`` and ``frontline label``, which share this app, start without them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="frontline: triage of complaint posts (urgency, issue type, prior channels).",
                  no_args_is_help=True, pretty_exceptions_enable=False)
console = Console()
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TEACHER = ROOT / "data" / "cv" / "multitask" / "oof.npz"  # the CV ensemble of the undistilled recipe
DEFAULT_OOF = ROOT / "data" / "cv" / "distilled" / "oof.npz"  # CV of the shipped (distilled) recipe


@app.command()
def train(
    data: Annotated[Path, typer.Option(help="Labelled JSONL file.")] = Path(__file__).resolve().parent.parent / "data" / "train.jsonl",
    base: Annotated[str, typer.Option(help="'minilm' (packaged encoder), 'tiny' (random, for tests) or a local directory.")] = "minilm",
    epochs: Annotated[int, typer.Option(min=1, help="Epochs (fixed when the policy comes from CV; else the most, with early stopping).")] = 3,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    lr_encoder: float = 8e-5,
    lr_heads: float = 2e-3,
    max_length: int = 128,
    class_weight_power: Annotated[float, typer.Option(help="0 none, 0.5 sqrt inverse frequency, 1 balanced.")] = 0.5,
    patience: int = 2,
    seed: int = 13,
    fuse_lexical: Annotated[bool, typer.Option(help="Blend TF-IDF probabilities in, weights tuned out-of-fold (or on validation).")] = True,
    export_onnx: Annotated[bool, typer.Option(help="Add the ONNX runtime (int8 where it keeps parity with torch) to the model.")] = True,
    limit: Annotated[Optional[int], typer.Option(help="Use only the first N training posts (smoke runs).")] = None,
    soft_targets: Annotated[Optional[Path], typer.Option(help="Distil from this teacher (an oof.npz of `frontline cv`); 'none' to train on labels only.")] = DEFAULT_TEACHER,
    distill_alpha: Annotated[float, typer.Option(min=0.0, max=1.0, help="Weight of the teacher's soft targets in the loss.")] = 0.5,
    oof: Annotated[Optional[Path], typer.Option(help="Out-of-fold predictions of this recipe, to tune the decision policy on.")] = DEFAULT_OOF,
    extra: Annotated[Optional[Path], typer.Option(help="Agents' corrections (`frontline feedback export --out FILE`), added to the training split; they win over the shipped posts they duplicate (normalised text).")] = None,
    register: bool = True,
    promote: Annotated[bool, typer.Option(help="Make this version champion if there is none or it is at least as good (CV mean, else validation).")] = True,
    summary_json: Annotated[Optional[Path], typer.Option(help="Also write the run summary here.")] = None,
):
    """Fine-tune, evaluate against the TF-IDF baseline, log to MLflow and register as 'frontline'."""
    from training.experiment import comparison_table, run
    from training.train import TrainConfig

    cfg = TrainConfig(data=str(data), base=base, epochs=epochs, batch_size=batch_size, lr_encoder=lr_encoder,
                      lr_heads=lr_heads, max_length=max_length, class_weight_power=class_weight_power,
                      patience=patience, seed=seed, fuse_lexical=fuse_lexical, export_onnx=export_onnx, limit=limit,
                      extra=str(extra) if extra else None)
    if soft_targets and str(soft_targets) != "none" and soft_targets.exists():
        cfg.soft_targets, cfg.distill_alpha = str(soft_targets), distill_alpha
    summary = run(cfg, register=register, promote=promote, oof_path=oof)
    if summary is None:  # a non-zero torchrun rank
        return
    console.print(f"decision policy from: {summary['policy_source']}")
    if summary.get("extra"):
        x = summary["extra"]
        console.print(f"corrections: {x['extra_used']} of {x['extra_rows']} rows of {x['file']} used in training "
                      f"({x['extra_duplicates_dropped']} duplicates within the file dropped; shipped duplicates "
                      f"replaced per split: {x['extra_replaced']})")
    table = Table(title=f"test split — run {summary['run_id']}, version {summary['version']}")
    for col in ("metric", "frontline", "encoder, tuned", "encoder, argmax/0.5", "TF-IDF baseline"):
        table.add_column(col)
    for name, *values in comparison_table(summary["metrics"]):
        table.add_row(name, *(f"{v:.3f}" for v in values))
    console.print(table)
    console.print(f"best epoch {summary['best_epoch']}, training {summary['train_seconds'] / 60:.1f} min, "
                  f"total {summary['total_seconds'] / 60:.1f} min"
                  + (" — promoted to champion" if summary["promoted"] else "")
                  + (f" — not promoted: {summary['promotion_refused']}" if summary.get("promotion_refused") else ""))
    if summary_json:
        summary_json.write_text(json.dumps(summary, indent=2, default=str))


@app.command()
def cv(
    data: Annotated[Path, typer.Option(help="Labelled JSONL file.")] = Path(__file__).resolve().parent.parent / "data" / "train.jsonl",
    folds: Annotated[int, typer.Option(min=2, help="Number of folds.")] = 5,
    base: Annotated[str, typer.Option(help="'minilm', 'tiny' or a local encoder directory.")] = "minilm",
    epochs: Annotated[int, typer.Option(min=1, help="Epochs per fold (fixed: no early stopping inside a fold).")] = 3,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    max_length: int = 128,
    seed: int = 13,
    limit: Annotated[Optional[int], typer.Option(help="Use only the first N posts (by id): smoke runs, tests.")] = None,
    soft_targets: Annotated[Optional[Path], typer.Option(help="Distil from this teacher: an oof.npz of an earlier `frontline cv`.")] = None,
    distill_alpha: Annotated[float, typer.Option(min=0.0, max=1.0, help="Weight of the teacher's soft targets in the loss.")] = 0.5,
    out: Annotated[Path, typer.Option(help="Where oof.npz and cv_metrics.json go (resumes a killed run there).")] = DEFAULT_TEACHER.parent,
    mlflow_log: Annotated[bool, typer.Option("--mlflow/--no-mlflow", help="Log mean ± sd to MLflow.")] = True,
    score_only: Annotated[bool, typer.Option(help="Only re-score the oof.npz already in --out (no training).")] = False,
):
    """K-fold cross-validation over all labelled posts: out-of-fold predictions and mean ± sd per metric."""
    from training.crossval import HEADLINE, run_cv, score_oof
    from training.train import TrainConfig

    cfg = TrainConfig(data=str(data), base=base, epochs=epochs, batch_size=batch_size, max_length=max_length, seed=seed,
                      soft_targets=str(soft_targets) if soft_targets else None,
                      distill_alpha=distill_alpha if soft_targets else 0.0)
    summary = score_oof(out / "oof.npz", data, log_mlflow=mlflow_log) if score_only else \
        run_cv(cfg, k=folds, out_dir=out, limit=limit, log_mlflow=mlflow_log)
    table = Table(title=f"{folds}-fold cross-validation, {summary['n']} posts (mean ± sd over folds)")
    table.add_column("metric")
    for row in summary["rows"]:
        table.add_column(row)
    for k in HEADLINE:
        table.add_row(k, *(f"{m[k]['mean']:.3f} ± {m[k]['sd']:.3f}" for m in summary["rows"].values()))
    console.print(table)
    console.print(f"training {sum(summary['fold_train_seconds']) / 60:.1f} min over {summary['k']} folds; "
                  f"wrote {out}/oof.npz, cv_metrics.json, risk_coverage.csv/.png")


@app.command("label-review")
def label_review(
    data: Annotated[Path, typer.Option(help="Labelled JSONL file (the one cross-validated).")] = Path(__file__).resolve().parent.parent / "data" / "train.jsonl",
    oof: Annotated[Path, typer.Option(help="Out-of-fold predictions from `frontline cv`.")] = DEFAULT_TEACHER,
    top: Annotated[int, typer.Option(min=1)] = 300,
    out: Annotated[Path, typer.Option(help="CSV for the data owners.")] = Path(__file__).resolve().parent.parent / "data" / "label_review.csv",
):
    """Confident learning (cleanlab) on the out-of-fold predictions: the most suspicious labels, for review."""
    from training.label_review import review

    counts = review(data, oof, top, out)
    console.print(f"{counts['flagged']} of {counts['posts']} posts flagged (per head {counts['per_head']}); "
                  f"the {counts['written']} most suspicious written to {out}")


@app.command()
def evaluate(
    model: Annotated[str, typer.Option(help="MLflow model URI or bundle directory.")] = "models:/frontline@champion",
    data: Annotated[Optional[Path], typer.Option(help="Labelled JSONL file to score [default: the held-out test split of data/train.jsonl].")] = None,
    split: Annotated[Optional[str], typer.Option(help="train, validation, test or all [default: test for the shipped data, all rows for --data].")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the split (the one training used).")] = 13,
    out: Annotated[Optional[Path], typer.Option(help="Directory for metrics.json and plots.")] = None,
):
    """Score a model on labelled posts (by default the held-out test split) and say which posts it scored."""
    from training.data import DEFAULT_DATA
    from training.evaluate import EvaluationError, evaluate_model
    from training.tracking import load

    try:
        result = evaluate_model(load(model), data or DEFAULT_DATA, split or ("test" if data is None else "all"), seed)
    except EvaluationError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2)
    table = Table(title=f"{model} on {result.scored}")
    table.add_column("metric")
    table.add_column("value")
    for k, v in result.metrics.items():
        if k.count("_") <= 3 or k.endswith(("macro_f1", "micro_f1", "qwk", "recall")):
            table.add_row(k, f"{v:.4f}")
    console.print(table)
    console.print(f"scored: {result.scored}", soft_wrap=True)  # one line: scripts grep it
    if out:
        result.save(out)
        console.print(f"wrote {out}/metrics.json and plots")


@app.command()
def promote(
    version: Annotated[Optional[str], typer.Argument(help="Registered version (default: the newest).")] = None,
    force: Annotated[bool, typer.Option(help="Promote even if worse than the champion (CV mean, else validation).")] = False,
    min_shadow_posts: Annotated[int, typer.Option(
        min=0, help="Also require this many posts scored in shadow against the current champion (FRONTLINE_SHADOW_URI; "
                    "read from the version's frontline.shadow.* tags). --force does not lift it.")] = 0,
):
    """Point the 'champion' alias at a version, refusing one worse than the current champion."""
    from training import tracking

    tracking.configure()
    try:
        new, old = tracking.promote(version, force=force, min_shadow_posts=min_shadow_posts)
    except tracking.PromotionRefused as exc:
        console.print(f"[red]refused:[/red] {exc}")
        raise typer.Exit(1)
    was = f" (was version {old.version}, {old.score:.4f})" if old and old.version != new.version else ""
    score = f"{new.score:.4f}" if new.score is not None else "none"
    console.print(f"champion → version {new.version}, validation score {score}{was}")
    if min_shadow_posts:
        stats = tracking.shadow_stats(new.version)
        agree = ", ".join(f"{h} {n / stats['posts']:.1%}" for h, n in sorted(stats["agree"].items())) if stats["posts"] else ""
        console.print(f"shadow sample: {stats['posts']} posts against version {stats['champion_version']}; agreement {agree}")


@app.command()
def release(
    model: Annotated[str, typer.Option(help="MLflow model URI or bundle directory to ship.")] = "models:/frontline@champion",
    out: Annotated[Path, typer.Option(help="Release directory (replaced).")] = ROOT / "models" / "release",
):
    """Ship a model in the repository: its ONNX network, tokenizer, lexical half, policy and a model card."""
    from training.release import make_release
    from training.tracking import load

    loaded = load(model, runtime="onnx")
    source = f"{loaded.name} version {loaded.version}, run {loaded.run_id}" if loaded.version else model
    run_metrics = None
    if loaded.run_id:
        from mlflow import MlflowClient

        run_metrics = MlflowClient().get_run(loaded.run_id).data.metrics
    make_release(loaded.predictor.path, out, source=source, run_metrics=run_metrics)
    console.print(f"released {source} to {out}")
