"""Export to the inference runtime: ONNX (legacy ``torch.onnx.export``) and int8 dynamic quantisation.

On 2 CPU cores onnxruntime runs the network faster than torch and loads without importing torch; int8
weights make it faster still, but quantisation changes numbers, and on this fine-tuned MiniLM plain
per-tensor int8 changed about 8% of urgency decisions on validation. So the int8 model is built to a
parity bar, measured on decisions (blend, offsets and thresholds applied), not raw scores:

0. (off) export with eager attention (the SDPA export of transformers 5 hides the attention pattern behind NaN
   guards), so onnxruntime's transformer optimiser (``optimise``, ``model_type="bert"``) can fuse embeddings
   + LayerNorm, each layer's attention (one ``Attention`` op, ``QAttention`` once quantised), bias + GELU
   and residual + LayerNorm. Measured on this model (bench/network.py, "Network" in bench/RESULTS.md) the
   fused int8 graph was no faster than the unfused one within the run's noise (onnxruntime already fuses
   the fp32 parts at session start) and agreed with torch a little less, so ``FUSE`` is off and
   ``make train`` reproduces the shipped recipe; the step stays measured by the benchmark;
1. quantise every encoder matmul (per-channel weights; the small heads stay fp32);
2. if agreement with torch is under ``PARITY_MIN["int8"]`` on any head, rank the feed-forward blocks by
   how much keeping each one in fp32 helps (their GELU outputs carry the outliers int8 handles worst) and
   keep them in fp32, most sensitive first, until the bar is met: of each block first only its second
   matmul (the one reading the GELU output, half the block's cost), then the whole block;
3. if even that fails, ship the fp32 ONNX model (exact parity, still torch-free).

The choice is made on the validation split; agreement on the test split is reported beside it as the
figure nobody tuned on. All of it is logged to MLflow (``parity_*``) and written into ``frontline.json``.
Static int8 (QDQ, activations calibrated on 256 training posts, 99.99th percentile) was measured too and not
kept: it changed 5.7% of urgency decisions on validation (dynamic int8 of every block: 2.3%) for no measurable speed gain.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from training.model import output_names, probabilities
from training.policy import Policy
from training.predict import ONNX_FILE, OnnxBackend, Predictor
from training.schema import HEADS

PARITY_MIN = {"fp32": 0.99, "int8": 0.98}
FUSE = False  # onnxruntime's transformer optimiser before quantisation (step 0 of the module doc)


class _Probabilities(nn.Module):
    """The classifier with its output activations, so the ONNX graph returns probabilities."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return probabilities(self.model(input_ids, attention_mask))


def export_onnx(model: nn.Module, path: Path, opset: int = 17, eager_attention: bool = False) -> Path:
    """The fp32 graph; ``eager_attention`` for the pattern the optimiser recognises. The model is left as
    found (mode and attention implementation)."""
    model = model.eval().cpu()
    ids = torch.ones((2, 16), dtype=torch.long)
    mask = torch.ones((2, 16), dtype=torch.long)
    dyn = {0: "batch", 1: "tokens"}
    names = output_names(model)
    encoder = model.encoder
    attn = getattr(encoder.config, "_attn_implementation", None)
    switch = eager_attention and attn not in (None, "eager") and hasattr(encoder, "set_attn_implementation")
    if switch:
        encoder.set_attn_implementation("eager")
    try:
        # .eval() on the wrapper too: export restores the wrapper's training flag on every submodule after
        # tracing, and a fresh nn.Module is in training mode (dropout on) — that left the model in train mode
        torch.onnx.export(
            _Probabilities(model).eval(), (ids, mask), str(path), dynamo=False, opset_version=opset,
            input_names=["input_ids", "attention_mask"], output_names=names,
            dynamic_axes={"input_ids": dyn, "attention_mask": dyn, **{h: {0: "batch"} for h in names}},
        )
    finally:
        if switch:
            encoder.set_attn_implementation(attn)
    return path


def optimise(src: Path, dst: Path, num_heads: int, hidden_size: int) -> tuple[Path, dict[str, int]]:
    """onnxruntime's transformer optimiser (BERT fusions) on the fp32 graph; returns the fused-op counts.

    ``opt_level=0``: only the offline fusions, no hardware-specific rewrites baked into the file (the
    session still applies its own at load, on whatever CPU serves it)."""
    from onnxruntime.transformers import optimizer

    fused = optimizer.optimize_model(str(src), model_type="bert", num_heads=num_heads, hidden_size=hidden_size,
                                     opt_level=0, use_gpu=False)
    fused.save_model_to_file(str(dst))
    return dst, {k: v for k, v in fused.get_fused_operator_statistics().items() if v}


def matmul_groups(path: Path) -> tuple[list[str], dict[int, list[str]]]:
    """Names of the head Gemms, and of each encoder layer's feed-forward matmuls."""
    import onnx

    names = [n.name for n in onnx.load(str(path)).graph.node if n.op_type in ("MatMul", "Gemm")]
    heads = [n for n in names if "/layer." not in n]
    ffn: dict[int, list[str]] = {}
    for n in names:
        if "/layer." in n and ("/intermediate/" in n or ("/output/dense" in n and "/attention/" not in n)):
            ffn.setdefault(int(n.split("/layer.")[1].split("/")[0]), []).append(n)
    return heads, ffn


def quantize_int8(src: Path, dst: Path, keep_fp32: list[str] | None = None) -> Path:
    """Dynamic int8 (weights per channel, activations per call). ``DefaultTensorType``: shape inference
    cannot type the outputs of the fused com.microsoft ops; they are float."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                     nodes_to_exclude=keep_fp32 or [],
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    return dst


def agreement(a: dict[str, np.ndarray], b: dict[str, np.ndarray], policy: Policy) -> dict[str, float]:
    """Share of posts on which two sets of probabilities give the same decision, per head."""
    da, db = policy.decide(a), policy.decide(b)
    return {
        "urgency": float((da["urgency"] == db["urgency"]).mean()),
        "issue_type": float((da["issue_type"] == db["issue_type"]).mean()),
        "prior_channels": float((da["prior_channels"] == db["prior_channels"]).all(1).mean()),
    }


class _Judge:
    """Runs an ONNX file over fixed texts and compares its decisions with torch's."""

    def __init__(self, predictor: Predictor, texts: list[str], policy: Policy, lexical_probs: dict | None):
        self.p, self.texts, self.policy, self.lex = predictor, texts, policy, lexical_probs
        self.ref = self.fused(predictor.encoder_probabilities(texts))

    def fused(self, probs: dict) -> dict:
        return self.policy.fuse(probs, self.lex)

    def probs(self, path: Path) -> dict:
        backend, self.p.backend = self.p.backend, OnnxBackend(path, None)
        try:
            return self.fused(self.p.encoder_probabilities(self.texts))
        finally:
            self.p.backend = backend

    def agreement(self, path: Path) -> dict[str, float]:
        return agreement(self.ref, self.probs(path), self.policy)


def choose_fp32(ffn: dict[int, list[str]], score, passes) -> list[str]:
    """The feed-forward matmuls to keep in fp32 (step 2 of the module doc). ``score(names)`` gives the
    per-head agreement of the int8 model with those matmuls in fp32; ``passes(agreement)`` says whether it
    meets the bar. Returns every feed-forward matmul when nothing short of that passes."""
    if passes(score([])):
        return []
    gain = {k: min(score(ffn[k]).values()) for k in sorted(ffn)}
    keep: list[str] = []
    for k in sorted(ffn, key=lambda k: -gain[k]):
        # the block's second matmul alone first: it reads the GELU output, whose outliers int8 handles
        # worst, and costs half the block's fp32 time
        for trial in ([n for n in ffn[k] if "/output/" in n][-1:], ffn[k]):
            if trial and passes(score(keep + trial)):
                return keep + trial
        keep += ffn[k]
    return keep


def export_bundle_runtime(bundle_dir: Path, model: nn.Module, val_texts: list[str], y_val, policy: Policy,
                          val_lexical: dict | None = None, test_texts: list[str] | None = None,
                          test_lexical: dict | None = None, fuse: bool = FUSE) -> tuple[dict[str, float], dict]:
    """Write ``ONNX_FILE`` into the bundle (int8, mixed or fp32, see module doc); return MLflow metrics and
    the runtime description stored in ``frontline.json``."""
    from training.evaluate import compute_metrics

    torch_p = Predictor(bundle_dir, runtime="torch")
    val = _Judge(torch_p, val_texts, policy, val_lexical)
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        cfg = model.encoder.config
        fp32, fused_ops = export_onnx(model, Path(tmp) / "fp32.onnx", eager_attention=fuse), {}
        if fuse:
            fp32, fused_ops = optimise(fp32, Path(tmp) / "fused.onnx", cfg.num_attention_heads, cfg.hidden_size)
        heads, ffn = matmul_groups(fp32)

        tried: dict[tuple[str, ...], tuple[Path, dict[str, float]]] = {}

        def attempt(keep: list[str]) -> tuple[Path, dict[str, float]]:
            """Quantise with these feed-forward matmuls in fp32 and score it (once per set)."""
            key = tuple(sorted(keep))
            if key not in tried:
                path = Path(tmp) / f"int8-{len(tried)}.onnx"
                quantize_int8(fp32, path, heads + list(key))
                tried[key] = (path, val.agreement(path))
            return tried[key]

        passes = (lambda a: min(a.values()) >= PARITY_MIN["int8"])
        fp32_agree = val.agreement(fp32)
        keep = choose_fp32(ffn, lambda names: attempt(names)[1], passes)
        path, agree = attempt(keep)
        layers = sorted({k for k in ffn for n in keep if n in ffn[k]})
        precision = "int8" if not keep else "int8+fp32-ffn" if passes(agree) else "fp32"
        chosen = path if passes(agree) else fp32
        final = fp32_agree if precision == "fp32" else agree
        (bundle_dir / ONNX_FILE).write_bytes(chosen.read_bytes())

        ref_metrics = compute_metrics(y_val, val.ref, policy)
        got_metrics = compute_metrics(y_val, val.probs(chosen), policy)
        for h in HEADS:
            out[f"parity_fp32_{h}_agreement"] = fp32_agree[h]
            out[f"parity_onnx_{h}_agreement"] = final[h]
        for k in ("urgency_macro_f1", "issue_type_macro_f1", "tried_other_channel_f1", "prior_channels_micro_f1"):
            out[f"parity_onnx_{k}_delta"] = got_metrics[k] - ref_metrics[k]
        if test_texts is not None:
            test = _Judge(torch_p, test_texts, policy, test_lexical)
            for h, v in test.agreement(chosen).items():
                out[f"parity_onnx_test_{h}_agreement"] = v
        out["parity_onnx_fp32_ffn_layers"] = float(len(layers) if precision != "fp32" else len(ffn))
        out["parity_onnx_fp32_matmuls"] = float(len(keep) if precision != "fp32" else sum(map(len, ffn.values())))
        out["onnx_mb"] = chosen.stat().st_size / 1e6
    runtime = {"file": ONNX_FILE, "precision": precision, "fp32_ffn_layers": layers if precision != "fp32" else sorted(ffn),
               "fp32_matmuls": sorted(keep) if precision != "fp32" else None,
               "parity_min": PARITY_MIN, "validation_agreement": final, "fused_ops": fused_ops}
    return out, runtime
