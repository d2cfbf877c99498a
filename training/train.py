"""The training loop: seeded, class-weighted, validated every epoch, best epoch kept.

What it takes to beat TF-IDF on 6k posts with rare classes (see README "What we tried"):
- class-weighted losses (square root of inverse frequency, so critical / chat / DM count without
  swamping the rest);
- a learning rate for the freshly initialised heads far higher than for the pretrained encoder;
- batches of similar length (padding is most of the cost on short posts), a linear warm-up/decay;
- validation after every epoch, early stopping, and the best epoch's weights restored.

The same entry point runs under ``torchrun --nproc_per_node N``: each process trains on its shard
(DistributedDataParallel, gloo on CPU, NCCL on GPU), every rank evaluates the same validation set so the
early-stopping decision needs no messages, and only rank 0 writes anything.
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from training.data import DEFAULT_DATA, EXTRA_PREFIX, Targets, load_splits, merge_extra, read_labelled
from training.evaluate import compute_metrics
from training.model import MINILM, MultiHeadClassifier, build_encoder, load_tokenizer, output_names, probabilities
from training.normalise import NormaliserConfig, normalise
from training.predict import Policy, pad
from training.schema import SCHEMA, TRIED


@dataclass
class TrainConfig:
    data: str = str(DEFAULT_DATA)
    base: str = MINILM
    epochs: int = 3
    batch_size: int = 32
    lr_encoder: float = 8e-5
    lr_heads: float = 2e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    max_length: int = 128
    dropout: float = 0.1
    class_weight_power: float = 0.5  # 0 = no weighting, 0.5 = sqrt inverse frequency, 1 = balanced
    patience: int = 2
    seed: int = 13
    fuse_lexical: bool = True
    export_onnx: bool = True  # ONNX for onnxruntime, int8 where it keeps parity with torch (training.export)
    review_accuracy: float = 0.85  # needs_review: posts not flagged are right this often (out-of-fold)
    critical_recall: float = 0.90  # the critical safety net catches this share of critical posts (out-of-fold)
    limit: int | None = None  # train on the first N training posts (tests, smoke runs)
    tried_head: bool = True  # the dedicated tried-another-channel output (training.model)
    merge_validation: bool = False  # train on train + validation, fixed epochs; policy from CV out-of-fold
    distill_alpha: float = 0.0  # weight of the teacher's soft targets in the loss (0 = no distillation)
    soft_targets: str | None = None  # the teacher: an out-of-fold file of `frontline cv` (data/cv/<name>/oof.npz)
    extra: str | None = None  # corrections (`frontline feedback export`) added to train, winning over duplicates
    normaliser: dict = field(default_factory=lambda: NormaliserConfig().to_dict())


# What defines the network a recipe trains: two runs agreeing on these train the same model (seeded), so
# out-of-fold predictions of one may tune the policy of the other.
RECIPE_FIELDS = ("base", "epochs", "batch_size", "lr_encoder", "lr_heads", "weight_decay", "warmup_ratio",
                 "max_length", "dropout", "class_weight_power", "seed", "tried_head", "normaliser", "distill_alpha",
                 "soft_targets")


def recipe(cfg: "TrainConfig") -> dict:
    out = {k: getattr(cfg, k) for k in RECIPE_FIELDS}
    if out["soft_targets"]:  # the teacher by content, not by where it lies on this machine
        out["soft_targets"] = hashlib.sha256(Path(out["soft_targets"]).read_bytes()).hexdigest()[:16]
    return out


def teacher_targets(cfg: "TrainConfig", ids, targets: Targets | None = None) -> dict[str, np.ndarray] | None:
    """The teacher's soft targets for these ids: its out-of-fold probabilities, blended with its TF-IDF half
    as the decision policy would blend them (so the student also learns what the lexical model knows).
    A merged correction (id ``extra:...``, see ``training.data.merge_extra``) has no teacher: its target is
    its own label (from ``targets``), so distillation never pulls it back to the answer it corrects."""
    if not (cfg.soft_targets and cfg.distill_alpha > 0):
        return None
    from training.crossval import OutOfFold

    everything = read_labelled(cfg.data).sort("id")  # the blend weights are chosen on all labelled posts
    fused = OutOfFold(Path(cfg.soft_targets)).blended(everything)
    known, ids = np.asarray(everything["id"]), np.asarray(ids)
    own = np.array([str(i).startswith(EXTRA_PREFIX) for i in ids], dtype=bool) if targets is not None \
        else np.zeros(len(ids), dtype=bool)
    rows = np.minimum(np.searchsorted(known, ids[~own]), len(known) - 1)
    if not (known[rows] == ids[~own]).all():
        raise KeyError(f"{int((known[rows] != ids[~own]).sum())} ids are not in {cfg.data}")
    out = {k: np.zeros((len(ids),) + v.shape[1:], dtype=np.float32) for k, v in fused.items()}
    for k, v in fused.items():
        out[k][~own] = v[rows]
    if own.any():
        y = targets.subset(own)
        labels = {"urgency": np.eye(len(SCHEMA.urgency))[y.urgency], "issue_type": np.eye(len(SCHEMA.issue_type))[y.issue_type],
                  "prior_channels": y.prior_channels, TRIED: y.prior_channels.any(1).astype(np.float32)}
        for k in out:
            out[k][own] = labels[k]
    return out


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed() -> Dist:
    """Join the process group when launched by torchrun; a plain run is a world of one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def class_weights(counts: np.ndarray, power: float) -> torch.Tensor:
    counts = np.maximum(counts, 1).astype(np.float64)
    w = (counts.sum() / (len(counts) * counts)) ** power
    return torch.tensor(w / w.mean(), dtype=torch.float32)


def channel_pos_weight(y: np.ndarray, power: float, cap: float = 20.0) -> torch.Tensor:
    pos = np.maximum(y.sum(0), 1)
    return torch.tensor(np.minimum(((len(y) - pos) / pos) ** power, cap), dtype=torch.float32)


def length_batches(lengths: list[int], indices: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffle, sort inside windows of 50 batches by length, cut batches, shuffle the batches."""
    indices = indices[:]
    rng.shuffle(indices)
    window = batch_size * 50
    batches = []
    for s in range(0, len(indices), window):
        chunk = sorted(indices[s : s + window], key=lambda i: lengths[i])
        batches += [chunk[b : b + batch_size] for b in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


class Encoded:
    """Token ids of a split, normalised and tokenised once."""

    def __init__(self, texts: list[str], tokenizer, max_length: int, normaliser: NormaliserConfig):
        self.ids = tokenizer([normalise(t, normaliser) for t in texts], truncation=True, max_length=max_length)["input_ids"]
        self.lengths = [len(x) for x in self.ids]
        self.pad = tokenizer.pad_token_id

    def subset(self, idx) -> "Encoded":
        out = copy.copy(self)
        out.ids = [self.ids[i] for i in idx]
        out.lengths = [self.lengths[i] for i in idx]
        return out

    def batch(self, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = pad([self.ids[i] for i in idx], self.pad)
        return torch.from_numpy(ids), torch.from_numpy(mask)


@torch.inference_mode()
def predict_encoded(model: nn.Module, enc: Encoded, batch_size: int = 128, device="cpu") -> dict[str, np.ndarray]:
    """Probabilities for every post of ``enc``, in its order: one array per model output (``OUTPUTS``)."""
    model.eval()
    order = sorted(range(len(enc.ids)), key=lambda i: enc.lengths[i])
    names = output_names(model)
    outs: dict[str, list] = {n: [] for n in names}
    for s in range(0, len(order), batch_size):
        ids, mask = enc.batch(order[s : s + batch_size])
        for n, p in zip(names, probabilities(model(ids.to(device), mask.to(device)))):
            outs[n].append(p.float().cpu().numpy())
    inverse = np.argsort(order)
    return {h: np.concatenate(v)[inverse] for h, v in outs.items()}


@dataclass
class Fitted:
    model: MultiHeadClassifier
    history: list[dict]
    best_epoch: int
    train_seconds: float


@dataclass
class TrainResult:
    model: MultiHeadClassifier
    tokenizer: object
    splits: object
    targets: dict
    history: list[dict]
    best_epoch: int
    train_seconds: float
    encoded: dict
    extra: dict | None = None  # what merging the corrections did (training.data.merge_extra), when there were any


def soft_loss(outputs: tuple, soft: list[torch.Tensor]) -> torch.Tensor:
    """Distillation: cross-entropy against the teacher's probabilities (softmax heads), binary
    cross-entropy against them (channels, tried)."""
    u, i, c, *tried = outputs
    loss = -(soft[0] * torch.log_softmax(u, -1)).sum(-1).mean() - (soft[1] * torch.log_softmax(i, -1)).sum(-1).mean()
    loss = loss + nn.functional.binary_cross_entropy_with_logits(c, soft[2])
    if tried:
        loss = loss + nn.functional.binary_cross_entropy_with_logits(tried[0], soft[3])
    return loss


def fit(cfg: TrainConfig, train_enc: Encoded, y: Targets, val_enc: Encoded | None = None, y_val: Targets | None = None,
        vocab_size: int | None = None, on_epoch=None, progress: bool = True, label: str = "",
        soft: dict[str, np.ndarray] | None = None) -> Fitted:
    """Fine-tune a fresh model on (``train_enc``, ``y``).

    With a validation set: validated after every epoch, early stopping, best epoch restored (the
    single-split run). Without one (a cross-validation fold, or the final model whose policy comes from
    out-of-fold predictions): exactly ``cfg.epochs`` epochs, the last one kept, so every fold and the
    final model follow the same recipe.

    ``soft`` (output name → teacher probabilities, aligned with ``y``) turns on distillation: the loss is
    ``(1 - cfg.distill_alpha) × hard-label loss + cfg.distill_alpha × soft_loss``.
    """
    ddp = init_distributed()
    seed_everything(cfg.seed)
    device = torch.device(f"cuda:{ddp.local_rank}" if torch.cuda.is_available() else "cpu")
    model = MultiHeadClassifier(build_encoder(cfg.base, vocab_size), SCHEMA, cfg.dropout, cfg.tried_head).to(device)
    tried_y = y.prior_channels.any(1).astype(np.float32)
    losses = [
        nn.CrossEntropyLoss(weight=class_weights(np.bincount(y.urgency, minlength=len(SCHEMA.urgency)), cfg.class_weight_power).to(device)),
        nn.CrossEntropyLoss(weight=class_weights(np.bincount(y.issue_type, minlength=len(SCHEMA.issue_type)), cfg.class_weight_power).to(device)),
        nn.BCEWithLogitsLoss(pos_weight=channel_pos_weight(y.prior_channels, cfg.class_weight_power).to(device)),
        nn.BCEWithLogitsLoss(pos_weight=channel_pos_weight(tried_y[:, None], cfg.class_weight_power).to(device)),
    ]
    head_ids = {id(p) for p in model.head_parameters()}
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in model.parameters() if id(p) not in head_ids], "lr": cfg.lr_encoder},
            {"params": list(model.head_parameters()), "lr": cfg.lr_heads},
        ],
        weight_decay=cfg.weight_decay,
    )
    net = nn.parallel.DistributedDataParallel(model) if ddp.world > 1 else model

    # Every rank gets the same number of batches (DistributedSampler pads the shard), so DDP never hangs.
    n_train = len(y.urgency)
    per_rank = math.ceil(n_train / ddp.world)
    steps_per_epoch = math.ceil(per_rank / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    warmup = max(1, int(cfg.warmup_ratio * total))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup)))
    )
    yt = [torch.as_tensor(y.urgency), torch.as_tensor(y.issue_type), torch.as_tensor(y.prior_channels),
          torch.as_tensor(tried_y)[:, None]]
    soft_t = None
    if soft is not None and cfg.distill_alpha > 0:
        soft_t = [torch.as_tensor(soft[n], dtype=torch.float32) for n in ("urgency", "issue_type", "prior_channels")]
        soft_t.append(torch.as_tensor(soft[TRIED], dtype=torch.float32)[:, None])
    history, best, best_state, best_epoch, stale = [], -1.0, None, 0, 0
    rng = random.Random(cfg.seed)
    start = time.perf_counter()
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), TimeRemainingColumn(), disable=not (progress and ddp.main)) as bar:
        for epoch in range(1, cfg.epochs + 1):
            net.train()
            order = list(range(n_train))
            rng_epoch = random.Random(cfg.seed * 1000 + epoch)
            rng_epoch.shuffle(order)
            order = (order * 2)[: per_rank * ddp.world][ddp.rank :: ddp.world]
            batches = length_batches(train_enc.lengths, order, cfg.batch_size, rng)
            task = bar.add_task(f"{label}epoch {epoch}/{cfg.epochs}", total=len(batches))
            running = 0.0
            for step, idx in enumerate(batches, 1):
                ids, mask = train_enc.batch(idx)
                t = torch.as_tensor(idx)
                outputs = net(ids.to(device), mask.to(device))
                loss = sum(fn(o, target[t].to(device)) for fn, o, target in zip(losses, outputs, yt))
                if soft_t is not None:
                    loss = (1 - cfg.distill_alpha) * loss + cfg.distill_alpha * soft_loss(outputs, [q[t].to(device) for q in soft_t])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                running += loss.item()
                bar.update(task, advance=1, description=f"{label}epoch {epoch}/{cfg.epochs} loss {running / step:.3f}")
            record = {"epoch": epoch, "train_loss": running / max(1, len(batches)), "elapsed_s": time.perf_counter() - start}
            if val_enc is not None:
                record.update(compute_metrics(y_val, predict_encoded(model, val_enc, device=device), Policy()))
            history.append(record)
            if ddp.main and on_epoch:
                on_epoch(epoch, record)
            if val_enc is None:
                best_epoch = epoch
                continue
            if record["selection_score"] > best + 1e-6:
                best, best_epoch, stale = record["selection_score"], epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                stale += 1
                if stale >= cfg.patience:
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    if ddp.world > 1:
        dist.barrier()
    return Fitted(model.cpu(), history, best_epoch, time.perf_counter() - start)


def train(cfg: TrainConfig, on_epoch=None, progress: bool = True) -> TrainResult:
    """The single-split run: train on ``train`` (early stopping on ``validation``), or, with
    ``cfg.merge_validation``, on train + validation for exactly ``cfg.epochs`` epochs (the policy then comes
    from cross-validated out-of-fold predictions). ``on_epoch(epoch, metrics)`` is called on rank 0."""
    seed_everything(cfg.seed)
    splits = load_splits(cfg.data, seed=cfg.seed)
    if cfg.merge_validation:
        splits["train"] = datasets.concatenate_datasets([splits["train"], splits["validation"]]).sort("id")
    if cfg.limit:
        splits["train"] = splits["train"].select(range(min(cfg.limit, len(splits["train"]))))
    extra = None
    if cfg.extra:
        splits, extra = merge_extra(splits, read_labelled(cfg.extra))
    targets = {name: Targets.of(ds) for name, ds in splits.items()}
    tokenizer = load_tokenizer(cfg.base)
    normaliser = NormaliserConfig.from_dict(cfg.normaliser)
    encoded = {name: Encoded(ds["text"], tokenizer, cfg.max_length, normaliser) for name, ds in splits.items()}
    val = (None, None) if cfg.merge_validation else (encoded["validation"], targets["validation"])
    fitted = fit(cfg, encoded["train"], targets["train"], *val, vocab_size=tokenizer.vocab_size,
                 on_epoch=on_epoch, progress=progress, soft=teacher_targets(cfg, splits["train"]["id"], targets["train"]))
    return TrainResult(fitted.model, tokenizer, splits, targets, fitted.history, fitted.best_epoch,
                       fitted.train_seconds, encoded, extra)


def rank_is_main() -> bool:
    """Rank 0, whether or not the process group is up yet (torchrun sets RANK before we start)."""
    return (dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", "0"))) == 0


def finish_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
