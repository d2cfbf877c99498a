"""Inference: the saved model bundle, the decision policy, and the ``Predictor`` everything calls.

A bundle is a plain directory that carries everything needed to predict, so a served model never
depends on code or settings drifting on the server:

    frontline.json      schema, normaliser settings, max length, encoder config, policy, metrics
    model.safetensors   encoder + heads weights
    tokenizer/          the tokenizer files
    lexical.joblib      the TF-IDF half of the model (absent when the run did not fuse it)
    lexical.npz         the same half as plain arrays (``training.lexical.CompiledLexical``): what inference
                        loads, without importing sklearn (~130 MB of a serving process)
    model.onnx          the encoder + heads for onnxruntime: int8 dynamic quantisation where it keeps
                        decisions within the parity bar, fp32 blocks where it does not (training.export)

Inference never imports torch when ``model.onnx`` is there: onnxruntime runs the network and the
``tokenizers`` library (not transformers) tokenises. Without it, the torch weights are used.

The ``Policy`` (``training.policy``) turns probabilities into decisions: how much the lexical half weighs per
output, per-class log-offsets, channel and tried thresholds, and the review thresholds and critical safety
net behind ``needs_review`` and ``review_reasons`` (all tuned on out-of-fold predictions).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from training.normalise import NormaliserConfig, normalise
from training.policy import Policy
from training.schema import HEADS, OUTPUTS, POLICY_REVIEW_REASONS, SCHEMA, LabelSchema

BUNDLE_FILE = "frontline.json"
WEIGHTS_FILE = "model.safetensors"
LEXICAL_FILE = "lexical.joblib"
LEXICAL_ARRAYS_FILE = "lexical.npz"
ONNX_FILE = "model.onnx"
RUNTIMES = ("auto", "onnx", "torch")
# Besides one probability array per model output, ``Predictor.probabilities`` returns these two per-post
# arrays: how many tokens the network read, and whether the post was cut to the window to get there.
TOKENS, TRUNCATED = "tokens", "truncated"


@dataclass(frozen=True)
class Window:
    """How much of one post the network reads: the one rule for "too long", applied by the service
    (``truncate``) and recorded by batch labelling (the ``truncated`` column).

    The network reads at most ``limit`` tokens of the normalised post (``max_length``, its two special
    tokens included); a post with more is truncated to its first ``limit``. Characters are no measure of
    this: 128 tokens are ~500 characters of English and far fewer of emoji or CJK text.
    """

    tokens: int  # tokens the network reads, special tokens included
    total: int  # tokens the whole post has, special tokens included
    limit: int  # the model's window (max_length)

    @property
    def truncated(self) -> bool:
        return self.total > self.tokens


def save_bundle(path: Path, model, tokenizer, policy: Policy, *, normaliser: NormaliserConfig,
                max_length: int, base: str, lexical=None, metrics: dict | None = None, extra: dict | None = None) -> Path:
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path / WEIGHTS_FILE))
    tokenizer.save_pretrained(str(path / "tokenizer"))
    if lexical is not None:
        import joblib

        joblib.dump(lexical, path / LEXICAL_FILE)
        compiled = lexical.compiled()
        if compiled is not None:
            compiled.save(path / LEXICAL_ARRAYS_FILE)
    meta = {
        "format": 1,
        "base": base,
        "schema": model.schema.to_dict(),
        "normaliser": normaliser.to_dict(),
        "max_length": max_length,
        "encoder_config": model.encoder.config.to_dict(),
        "policy": policy.to_dict(),
        "tried_head": model.tried is not None,
        "metrics": metrics or {},
        **(extra or {}),  # e.g. the recipe and where the policy came from (training.experiment)
    }
    (path / BUNDLE_FILE).write_text(json.dumps(meta, indent=2))
    return path


class TorchBackend:
    """The network in torch (training's own module); used when no ONNX file is present or asked for."""

    name = "torch"

    def __init__(self, path: Path, meta: dict, schema: LabelSchema, num_threads: int | None):
        import torch
        from safetensors.torch import load_file

        from training.model import MultiHeadClassifier, encoder_from_config, probabilities

        if num_threads:
            torch.set_num_threads(num_threads)
        self.torch, self.activate = torch, probabilities
        self.model = MultiHeadClassifier(encoder_from_config(meta["encoder_config"]), schema,
                                         tried_head=bool(meta.get("tried_head", False)))
        self.model.load_state_dict(load_file(str(path / WEIGHTS_FILE)))
        self.model.eval()

    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, ...]:
        """Probabilities per model output, in ``OUTPUTS`` order (three or four of them)."""
        torch = self.torch
        with torch.inference_mode():
            return tuple(p.numpy() for p in self.activate(self.model(torch.from_numpy(ids), torch.from_numpy(mask))))


class OnnxBackend:
    """The exported network in onnxruntime; outputs are already probabilities.

    ``shared_cpu`` is for a server: intra-op threads sleep instead of spinning (they share the cores with
    the event loop) and there is no memory arena (with it, RSS grows to the largest batch ever seen and
    stays: +280 MB measured on MiniLM). Batch labelling keeps both: spinning threads and the arena were
    faster there (381 vs 341 posts/s) and used less memory (1.0 vs 1.3 GB peak over 100k rows).
    """

    name = "onnx"

    def __init__(self, path: Path, num_threads: int | None, shared_cpu: bool = False):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = num_threads or min(4, physical_cores())
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if shared_cpu:
            opts.enable_cpu_mem_arena = False
            opts.enable_mem_pattern = False
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(self.session.run(None, {"input_ids": ids, "attention_mask": mask}))


def physical_cores() -> int:
    """Cores this process may really use: the CPUs in its affinity mask (a container's cpuset), at most its
    cgroup CPU quota, counting two hyperthreads of one core once. ``os.cpu_count()`` is none of these: in a
    2-CPU container on a 64-core host it says 64, and on a cloud VM whose 2 vCPUs are the two hyperthreads
    of one core it says 2 — two intra-op threads then share one core's int8 units and lose to one."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = list(range(os.cpu_count() or 1))
    cores = set()
    try:
        proc = None
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = (x.strip() for x in line.partition(":"))
            if key == "processor":
                proc, phys = int(value), "0"
            elif key == "physical id":
                phys = value
            elif key == "core id" and proc in cpus:
                cores.add((phys, value))
    except (OSError, ValueError):
        pass
    n = len(cores) or len(cpus)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            n = min(n, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


def load_tokenizer_file(path: Path, max_length: int):
    """The bundle's tokenizer through the ``tokenizers`` library, truncating; padding is done per batch."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path / "tokenizer.json"))
    tok.enable_truncation(max_length)
    tok.no_padding()
    return tok


def pad(rows: list[list[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """int64 ids and attention mask for a batch, padded to its longest row."""
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
        mask[i, : len(r)] = 1
    return ids, mask


class Predictor:
    """Loads a bundle once and answers batches of raw texts.

    ``probabilities`` gives the fused per-head probabilities; ``classify`` gives one result dict per text
    in the shape the HTTP API and the export format use. ``runtime`` picks the network's engine: ``auto``
    takes the ONNX model when the bundle has one and onnxruntime is installed, else torch.
    Not thread-safe: callers serialise (the service's micro-batcher does).
    """

    def __init__(self, bundle_dir: Path | str, batch_size: int = 64, num_threads: int | None = None,
                 runtime: str = "auto", shared_cpu: bool = False):
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}, not {runtime!r}")
        self.path = Path(bundle_dir)
        meta = json.loads((self.path / BUNDLE_FILE).read_text())
        self.meta = meta
        self.schema = LabelSchema.from_dict(meta["schema"])
        self.normaliser = NormaliserConfig.from_dict(meta["normaliser"])
        self.max_length = int(meta["max_length"])
        self.policy = Policy.from_dict(meta["policy"])
        self.metrics = meta.get("metrics", {})
        self.batch_size = batch_size
        self.tokenizer = load_tokenizer_file(self.path / "tokenizer", self.max_length)
        self.pad_id = self.tokenizer.token_to_id("[PAD]") or 0
        post = self.tokenizer.post_processor
        self.special_tokens = post.num_special_tokens_to_add(False) if post is not None else 0
        onnx_path = self.path / ONNX_FILE
        if runtime == "onnx" or (runtime == "auto" and onnx_path.exists() and _has("onnxruntime")):
            self.backend = OnnxBackend(onnx_path, num_threads, shared_cpu)
        elif not (self.path / WEIGHTS_FILE).exists():
            raise FileNotFoundError(f"{self.path} holds only the ONNX network ({ONNX_FILE}): install onnxruntime "
                                    "to use it, or load a bundle with torch weights")
        else:
            self.backend = TorchBackend(self.path, meta, self.schema, num_threads)
        self.runtime = self.backend.name
        self.lexical = load_lexical(self.path)

    def encodings(self, texts: list[str]) -> list:
        """Normalised, tokenised and truncated to the window (``tokenizers.Encoding`` per text)."""
        return self.tokenizer.encode_batch([normalise(t, self.normaliser) for t in texts])

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.encodings(texts)]

    def window(self, encoding) -> Window:
        """The ``Window`` of one encoded post: the overflow pieces each repeat the special tokens."""
        extra = sum(len(o.ids) - self.special_tokens for o in encoding.overflowing)
        return Window(len(encoding.ids), len(encoding.ids) + extra, self.max_length)

    def windows(self, texts: list[str]) -> list[Window]:
        """How much of each text the network would read (tokenises only; no forward pass)."""
        return [self.window(e) for e in self.encodings(texts)]

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Normalise and tokenise a batch: int64 ids and attention mask, padded to the longest."""
        return pad(self.tokenize(texts), self.pad_id)

    def encoder_probabilities(self, texts: list[str], tokens: list[list[int]] | None = None) -> dict[str, np.ndarray]:
        """Network-only probabilities. Texts are tokenised once (or ``tokens`` given), sorted by token count
        and cut into batches of ``batch_size``, each padded only to its own longest post; results come back
        in input order."""
        tokens = self.tokenize(texts) if tokens is None else tokens
        order = sorted(range(len(texts)), key=lambda i: len(tokens[i]))
        out: dict[str, np.ndarray] = {}
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            ids, mask = pad([tokens[i] for i in idx], self.pad_id)
            for name, probs in zip(OUTPUTS, self.backend(ids, mask)):
                if name not in out:
                    out[name] = np.zeros((len(texts),) + probs.shape[1:], dtype=np.float32)
                out[name][idx] = probs
        return out

    def probabilities(self, texts: list[str]) -> dict[str, np.ndarray]:
        """Fused probabilities per output, plus ``TOKENS`` and ``TRUNCATED`` per post (see ``Window``)."""
        encodings = self.encodings(texts)
        ids = [e.ids for e in encodings]
        enc = self.encoder_probabilities(texts, ids)
        lex = self.lexical.predict_proba(texts) if self.lexical is not None else None
        probs = dict(self.policy.fuse(enc, lex))
        probs[TOKENS] = np.array([len(i) for i in ids], dtype=np.int64)
        probs[TRUNCATED] = np.array([bool(e.overflowing) for e in encodings], dtype=bool)
        return probs

    def policy_for(self, review_thresholds: dict[str, float] | None = None, target_accuracy: float | None = None,
                   critical_recall: float | None = None) -> Policy:
        """The model's policy, at a caller's operating point and with explicit per-head overrides on top."""
        policy = self.policy
        if target_accuracy is not None or critical_recall is not None:
            policy = policy.for_targets(target_accuracy, critical_recall)
        if review_thresholds:
            policy = replace(policy, review_thresholds={**policy.review_thresholds, **review_thresholds})
        return policy

    def results(self, probs: dict[str, np.ndarray], review_thresholds: dict[str, float] | None = None,
                policy: Policy | None = None) -> list[dict]:
        policy = policy or self.policy_for(review_thresholds)
        d = policy.decide(probs)
        reasons = list(POLICY_REVIEW_REASONS)  # in the schema's order (serving.language adds `language`)
        s = self.schema
        tokens, truncated = probs.get(TOKENS), probs.get(TRUNCATED)
        out = []
        for i in range(len(d["urgency"])):
            chans = [c for c, on in zip(s.prior_channels, d["prior_channels"][i]) if on]
            out.append({
                "urgency": {"label": s.urgency[d["urgency"][i]], "score": float(d["confidence"]["urgency"][i]),
                            "scores": dict(zip(s.urgency, map(float, probs["urgency"][i])))},
                "issue_type": {"label": s.issue_type[d["issue_type"][i]], "score": float(d["confidence"]["issue_type"][i]),
                               "scores": dict(zip(s.issue_type, map(float, probs["issue_type"][i])))},
                "prior_channels": {"tried_other_channel": bool(chans), "channels": chans,
                                   "score": float(d["confidence"]["prior_channels"][i]),
                                   "scores": dict(zip(s.prior_channels, map(float, probs["prior_channels"][i])))},
                "needs_review": bool(d["needs_review"][i]),
                "review_reasons": [r for r in reasons if d["review_reasons"][r][i]],
            })
            if tokens is not None:
                out[-1]["truncated"], out[-1]["tokens"] = bool(truncated[i]), int(tokens[i])
        return out

    def classify(self, texts: list[str], review_thresholds: dict[str, float] | None = None,
                 policy: Policy | None = None) -> list[dict]:
        if not texts:
            return []
        return self.results(self.probabilities(texts), review_thresholds, policy)


def bundle_runtime(bundle_dir: Path | str) -> str:
    """The network runtime a bundle is meant to run on: ``onnx`` when it carries ``model.onnx`` (a release
    carries nothing else), else ``torch``. The logged MLflow model loads this one and lists its packages."""
    return "onnx" if (Path(bundle_dir) / ONNX_FILE).exists() else "torch"


def load_lexical(path: Path):
    """The bundle's lexical half for inference: the plain arrays when the bundle has them (no sklearn
    import), else the pickled sklearn model (bundles saved before them), compiled when it can be; None
    when the model has no lexical half."""
    from training.lexical import CompiledLexical

    if (path / LEXICAL_ARRAYS_FILE).exists():
        return CompiledLexical.load(path / LEXICAL_ARRAYS_FILE)
    if (path / LEXICAL_FILE).exists():
        import joblib

        model = joblib.load(path / LEXICAL_FILE)
        return model.compiled() or model
    return None


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def flat_column_kinds(schema: LabelSchema = SCHEMA) -> list[tuple[str, str]]:
    """(name, kind) of each flat result column; kind is ``label`` (string), ``labels`` (list of strings),
    ``flag`` (bool) or ``score`` (float). Writers map kinds to their own types (Arrow, Spark)."""
    cols = [("urgency", "label"), ("urgency_score", "score"), ("issue_type", "label"), ("issue_type_score", "score"),
            ("prior_channels", "labels"), ("tried_other_channel", "flag"), ("prior_channels_score", "score"),
            ("needs_review", "flag"), ("review_reasons", "labels"), ("truncated", "flag"), ("language", "label")]
    for head in HEADS:
        cols += [(f"{head}__{label}", "score") for label in schema.labels(head)]
    return cols


def flat_columns(schema: LabelSchema = SCHEMA) -> list[str]:
    """Column names of the flat (tabular) result: the export format and the MLflow model's output."""
    return [name for name, _ in flat_column_kinds(schema)]


def flatten(result: dict) -> dict:
    """One API-shaped result as one flat row; channels become a sorted, comma-free list."""
    row = {
        "urgency": result["urgency"]["label"], "urgency_score": result["urgency"]["score"],
        "issue_type": result["issue_type"]["label"], "issue_type_score": result["issue_type"]["score"],
        "prior_channels": list(result["prior_channels"]["channels"]),
        "tried_other_channel": result["prior_channels"]["tried_other_channel"],
        "prior_channels_score": result["prior_channels"]["score"],
        "needs_review": result["needs_review"],
        "review_reasons": list(result.get("review_reasons", [])),
        "truncated": bool(result.get("truncated", False)),
        # ISO 639-1, set by the serving layer (serving.language); null from the bare MLflow model
        "language": result.get("language"),
    }
    for head in HEADS:
        for label, score in result[head]["scores"].items():
            row[f"{head}__{label}"] = score
    return row
