"""Export to the inference runtime: ONNX (legacy ``torch.onnx.export``) and int8 dynamic quantisation.

On 2 CPU cores onnxruntime runs the network faster than torch and loads without importing torch; int8
weights make it faster still, but quantisation changes numbers, and on this fine-tuned MiniLM plain
per-tensor int8 changed about 8% of urgency decisions on validation. So the int8 model is built to a
parity bar, measured on decisions (blend, offsets and thresholds applied), not raw scores:

1. quantise every encoder matmul (per-channel weights; the three small heads stay fp32);
2. if agreement with torch is under ``PARITY_MIN["int8"]`` on any head, rank the feed-forward blocks by
   how much keeping each one in fp32 helps (their GELU outputs carry the outliers int8 handles worst) and
   keep blocks in fp32, most sensitive first, until the bar is met;
3. if even that fails, ship the fp32 ONNX model (exact parity, still torch-free).

The choice is made on the validation split; agreement on the test split is reported beside it as the
figure nobody tuned on. All of it is logged to MLflow (``parity_*``) and written into ``frontline.json``.
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


class _Probabilities(nn.Module):
    """The classifier with its output activations, so the ONNX graph returns probabilities."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return probabilities(self.model(input_ids, attention_mask))


def export_onnx(model: nn.Module, path: Path, opset: int = 17) -> Path:
    model = model.eval().cpu()
    ids = torch.ones((2, 16), dtype=torch.long)
    mask = torch.ones((2, 16), dtype=torch.long)
    dyn = {0: "batch", 1: "tokens"}
    names = output_names(model)
    torch.onnx.export(
        _Probabilities(model), (ids, mask), str(path), dynamo=False, opset_version=opset,
        input_names=["input_ids", "attention_mask"], output_names=names,
        dynamic_axes={"input_ids": dyn, "attention_mask": dyn, **{h: {0: "batch"} for h in names}},
    )
    return path


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
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                     nodes_to_exclude=keep_fp32 or [])
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


def export_bundle_runtime(bundle_dir: Path, model: nn.Module, val_texts: list[str], y_val, policy: Policy,
                          val_lexical: dict | None = None, test_texts: list[str] | None = None,
                          test_lexical: dict | None = None) -> tuple[dict[str, float], dict]:
    """Write ``ONNX_FILE`` into the bundle (int8, mixed or fp32, see module doc); return MLflow metrics and
    the runtime description stored in ``frontline.json``."""
    from training.evaluate import compute_metrics

    torch_p = Predictor(bundle_dir, runtime="torch")
    val = _Judge(torch_p, val_texts, policy, val_lexical)
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(model, Path(tmp) / "fp32.onnx")
        heads, ffn = matmul_groups(fp32)

        tried: dict[tuple[int, ...], tuple[Path, dict[str, float]]] = {}

        def attempt(keep_layers: list[int]) -> tuple[Path, dict[str, float]]:
            """Quantise with these feed-forward blocks in fp32 and score it (once per set of blocks)."""
            key = tuple(keep_layers)
            if key not in tried:
                path = Path(tmp) / f"int8-{'-'.join(map(str, key)) or 'all'}.onnx"
                quantize_int8(fp32, path, heads + [n for k in key for n in ffn[k]])
                tried[key] = (path, val.agreement(path))
            return tried[key]

        passes = (lambda a: min(a.values()) >= PARITY_MIN["int8"])
        fp32_agree = val.agreement(fp32)
        keep: list[int] = []
        path, agree = attempt(keep)
        if not passes(agree):
            gain = {k: min(attempt([k])[1].values()) for k in sorted(ffn)}
            for k in sorted(ffn, key=lambda k: -gain[k]):
                keep.append(k)
                path, agree = attempt(keep)
                if passes(agree):
                    break
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
        out["parity_onnx_fp32_ffn_layers"] = float(len(keep) if precision != "fp32" else len(ffn))
        out["onnx_mb"] = chosen.stat().st_size / 1e6
    runtime = {"file": ONNX_FILE, "precision": precision, "fp32_ffn_layers": keep if precision != "fp32" else sorted(ffn),
               "parity_min": PARITY_MIN, "validation_agreement": final}
    return out, runtime
