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


@app.command()
def train(
    data: Annotated[Path, typer.Option(help="Labelled JSONL file.")] = Path(__file__).resolve().parent.parent / "data" / "train.jsonl",
    base: Annotated[str, typer.Option(help="'minilm' (packaged encoder), 'tiny' (random, for tests) or a local directory.")] = "minilm",
    epochs: Annotated[int, typer.Option(min=1)] = 6,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    lr_encoder: float = 8e-5,
    lr_heads: float = 2e-3,
    max_length: int = 128,
    class_weight_power: Annotated[float, typer.Option(help="0 none, 0.5 sqrt inverse frequency, 1 balanced.")] = 0.5,
    patience: int = 2,
    seed: int = 13,
    fuse_lexical: Annotated[bool, typer.Option(help="Blend TF-IDF probabilities in, weights tuned on validation.")] = True,
    export_onnx: Annotated[bool, typer.Option(help="Add the ONNX runtime (int8 where it keeps parity with torch) to the model.")] = True,
    limit: Annotated[Optional[int], typer.Option(help="Use only the first N training posts (smoke runs).")] = None,
    register: bool = True,
    promote: Annotated[bool, typer.Option(help="Make this version champion if there is none or it is at least as good on validation.")] = True,
    summary_json: Annotated[Optional[Path], typer.Option(help="Also write the run summary here.")] = None,
):
    """Fine-tune, evaluate against the TF-IDF baseline, log to MLflow and register as 'frontline'."""
    from training.experiment import comparison_table, run
    from training.train import TrainConfig

    cfg = TrainConfig(data=str(data), base=base, epochs=epochs, batch_size=batch_size, lr_encoder=lr_encoder,
                      lr_heads=lr_heads, max_length=max_length, class_weight_power=class_weight_power,
                      patience=patience, seed=seed, fuse_lexical=fuse_lexical, export_onnx=export_onnx, limit=limit)
    summary = run(cfg, register=register, promote=promote)
    if summary is None:  # a non-zero torchrun rank
        return
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
def evaluate(
    model: Annotated[str, typer.Option(help="MLflow model URI or bundle directory.")] = "models:/frontline@champion",
    data: Annotated[Path, typer.Option(help="Labelled JSONL file to score (every row).")] = Path("data/train.jsonl"),
    out: Annotated[Optional[Path], typer.Option(help="Directory for metrics.json and plots.")] = None,
):
    """Score a model on a labelled file: per-head metrics, and plots if --out is given."""
    from training.data import Targets, read_labelled
    from training.evaluate import compute_metrics, save_plots
    from training.tracking import load

    loaded = load(model)
    ds = read_labelled(data, loaded.predictor.schema)
    probs = loaded.predictor.probabilities(ds["text"])
    y = Targets.of(ds)
    metrics = compute_metrics(y, probs, loaded.predictor.policy, loaded.predictor.schema)
    table = Table(title=f"{model} on {data} ({len(ds)} posts)")
    table.add_column("metric")
    table.add_column("value")
    for k, v in metrics.items():
        if k.count("_") <= 3 or k.endswith(("macro_f1", "micro_f1", "qwk", "recall")):
            table.add_row(k, f"{v:.4f}")
    console.print(table)
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        save_plots(y, probs, loaded.predictor.policy, out, loaded.predictor.schema)
        console.print(f"wrote {out}/metrics.json and plots")


@app.command()
def promote(
    version: Annotated[Optional[str], typer.Argument(help="Registered version (default: the newest).")] = None,
    force: Annotated[bool, typer.Option(help="Promote even if worse than the champion on validation.")] = False,
):
    """Point the 'champion' alias at a version, refusing one worse than the current champion."""
    from training import tracking

    tracking.configure()
    try:
        new, old = tracking.promote(version, force=force)
    except tracking.PromotionRefused as exc:
        console.print(f"[red]refused:[/red] {exc}")
        raise typer.Exit(1)
    was = f" (was version {old.version}, {old.score:.4f})" if old and old.version != new.version else ""
    console.print(f"champion → version {new.version}, validation score {new.score:.4f}{was}")
