"""Network benchmark: each step of the ONNX export against the shipped ``model.onnx``, in the same run.

For every variant: decision parity with the torch fp32 model (the full policy, lexical blend included,
per head, on the validation + test split posts) and speed as a RATIO to the shipped network measured in
the same process, repetitions interleaved (variant A, B, C, A, B, C, ...) so that load from other work
on the machine hits them alike. Speed is measured at two thread settings, one intra-op thread and one per
core, for a single post (no padding) and for a 64-post batch (random posts, padded to the longest).

The export steps need the torch weights (``model.safetensors``): pass a bundle that has them with
``--bundle`` (a ``make train`` run's, or a copy of the release's MLflow run). Without it only the thread
settings of the shipped network are measured. Writes the "Network" section of bench/RESULTS.md.

    .venv/bin/python bench/network.py [--bundle DIR] [--posts 1000] [--reps 5]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, write_section  # noqa: E402

SHIPPED = ROOT / "models" / "release" / "model.onnx"


def session(path: Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as the service runs it
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def speed(paths: dict[str, Path], tokens: list[list[int]], pad_id: int, threads: int, reps: int) -> dict:
    """Mean ms per single post and per 64-post batch, per variant. Interleaved call by call, in an order
    that rotates, so a burst of load from other work hits every variant alike."""
    from training.predict import pad

    sessions = {k: session(p, threads) for k, p in paths.items()}
    names = list(sessions)
    singles = [pad([t], pad_id) for t in tokens[:40]]
    rng = np.random.default_rng(0)
    batches = [pad([tokens[i] for i in rng.choice(len(tokens), 64, replace=False)], pad_id) for _ in range(2)]
    for s in sessions.values():  # warm-up
        for ids, mask in singles[:3] + batches[:1]:
            s.run(None, {"input_ids": ids, "attention_mask": mask})
    total = {(k, kind): 0.0 for k in names for kind in ("one", "many")}
    turn = 0
    for _ in range(reps):
        for kind, items in (("one", singles), ("many", batches)):
            for ids, mask in items:
                turn += 1
                for k in names[turn % len(names):] + names[: turn % len(names)]:
                    t0 = time.perf_counter()
                    sessions[k].run(None, {"input_ids": ids, "attention_mask": mask})
                    total[k, kind] += time.perf_counter() - t0
    return {k: (1000 * total[k, "one"] / (reps * len(singles)), 1000 * total[k, "many"] / (reps * len(batches)))
            for k in names}


def variants(bundle: Path, tmp: Path, runtime: dict) -> tuple[dict[str, Path], dict]:
    """The export steps, each an ONNX file: plain fp32, fused fp32, and int8 before and after fusion."""
    from training.export import export_onnx, matmul_groups, optimise, quantize_int8
    from training.predict import Predictor

    model = Predictor(bundle, runtime="torch").backend.model
    cfg = model.encoder.config
    raw = export_onnx(model, tmp / "raw.onnx")
    eager = export_onnx(model, tmp / "eager.onnx", eager_attention=True)
    fused, ops = optimise(eager, tmp / "fused.onnx", cfg.num_attention_heads, cfg.hidden_size)
    heads_raw, ffn_raw = matmul_groups(raw)
    heads, ffn = matmul_groups(fused)
    layers = list(runtime.get("fp32_ffn_layers", []))
    # the shipped choice: its fp32 matmuls (names are the same in both graphs), or its whole blocks
    keep = runtime.get("fp32_matmuls") or [n for k in layers for n in ffn_raw[k]]
    keep_raw = keep
    keep_layers = [k for k in sorted(ffn_raw) if any(n in ffn_raw[k] for n in keep)]
    blocks = [n for k in keep_layers for n in ffn_raw[k]]
    out = {
        "fp32, plain export": raw,
        "fp32, fused": fused,
        "int8 dynamic, unfused, every block": quantize_int8(raw, tmp / "q_raw.onnx", heads_raw),
        f"int8 dynamic, unfused, FFN {keep_layers} fp32, whole block(s)": quantize_int8(raw, tmp / "q_raw_block.onnx", heads_raw + blocks),
        f"int8 dynamic, unfused, {len(keep)} fp32 matmul(s) (the shipped recipe, rebuilt)": quantize_int8(raw, tmp / "q_raw_keep.onnx", heads_raw + keep_raw),
        "int8 dynamic, fused, every block": quantize_int8(fused, tmp / "q_fused.onnx", heads),
        f"int8 dynamic, fused, {len(keep)} fp32 matmul(s) as shipped": quantize_int8(fused, tmp / "q_fused_keep.onnx", heads + keep),
    }
    return out, ops


def parity(bundle: Path, texts: list[str], paths: dict[str, Path]) -> dict[str, dict[str, float]]:
    """Per variant and head, the share of posts whose decision equals the torch fp32 model's."""
    from training.export import agreement
    from training.predict import OnnxBackend, Predictor

    p = Predictor(bundle, runtime="torch")
    lex = p.lexical.predict_proba(texts) if p.lexical is not None else None
    ref = p.policy.fuse(p.encoder_probabilities(texts), lex)
    out = {}
    for name, path in paths.items():
        p.backend = OnnxBackend(path, None)
        out[name] = agreement(ref, p.policy.fuse(p.encoder_probabilities(texts), lex), p.policy)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, default=None, help="a bundle with torch weights (model.safetensors)")
    ap.add_argument("--posts", type=int, default=1000, help="posts for the parity figures (validation + test split)")
    ap.add_argument("--reps", type=int, default=3, help="passes over the posts per speed figure")
    args = ap.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from training.data import load_splits
    from training.predict import Predictor

    shipped = Predictor(SHIPPED.parent)
    runtime = shipped.meta.get("runtime", {})
    splits = load_splits()
    texts = (list(splits["validation"]["text"]) + list(splits["test"]["text"]))[: args.posts]
    tokens = shipped.tokenize(texts)
    cores = os.cpu_count() or 1
    started = time.perf_counter()

    with tempfile.TemporaryDirectory() as tmp:
        paths = {"shipped model.onnx": SHIPPED}
        agree, ops = {}, {}
        weights = args.bundle is not None and (args.bundle / "model.safetensors").exists()
        if weights:
            built, ops = variants(args.bundle, Path(tmp), runtime)
            paths.update(built)
            print(f"built {len(built)} variants; parity on {len(texts)} posts ...", flush=True)
            agree = parity(args.bundle, texts, paths)
        else:
            print("no --bundle with model.safetensors: measuring only the shipped network's thread settings")
        figures = {}
        for threads in sorted({1, cores}):
            print(f"speed at {threads} intra-op thread(s) ...", flush=True)
            figures[threads] = speed(paths, tokens, shipped.pad_id, threads, args.reps)

    base = {t: f["shipped model.onnx"] for t, f in figures.items()}
    head = "| variant | " + " | ".join(f"single post, {t} thr. | 64 posts, {t} thr." for t in figures) + \
           " | urgency | issue type | channels |"
    lines = [head, "|---|" + "---:|" * (2 * len(figures) + 3)]
    for name in paths:
        cells = []
        for t, f in figures.items():
            one, many = f[name]
            cells += [f"{base[t][0] / one:.2f}×", f"{base[t][1] / many:.2f}×"]
        a = agree.get(name)
        par = [f"{100 * a[h]:.1f}%" for h in ("urgency", "issue_type", "prior_channels")] if a else ["", "", ""]
        lines.append(f"| {name} | " + " | ".join(cells + par) + " |")
    absolute = "; ".join(f"{t} thread(s): single post {f['shipped model.onnx'][0]:.1f} ms, 64 posts "
                         f"{f['shipped model.onnx'][1]:.0f} ms" for t, f in figures.items())
    thr = ("; ".join(f"{t} thread(s) {v:.2f}×" for t, v in
                     ((t, base[t][0] / base[1][0]) for t in figures if t != 1)) if len(figures) > 1 else "")
    body = f"""Speed is a ratio to the shipped `models/release/model.onnx` (precision {runtime.get('precision')}, fp32
matmuls {runtime.get('fp32_matmuls') or runtime.get('fp32_ffn_layers')}) measured in this run, interleaved over
{args.reps} passes, call by call; > 1× is faster. Parity: share of {len(texts)} validation + test posts whose decision (policy and
lexical blend applied) equals the torch fp32 model's{'' if agree else ' (not measured: no torch weights given)'}.
Fused ops in the optimised graph: {json.dumps(ops) if ops else 'n/a'}.

{chr(10).join(lines)}

The "shipped recipe, rebuilt" row is the shipped network built again: its distance from 1.00× is this run's
noise. The shipped network itself (the reference row; absolute times move with the machine's load): {absolute}.
Single post, time at one thread per core ÷ time at one thread, shipped network: {thr or 'one core only'} (< 1×: more
threads are faster; the two settings run one after the other, not interleaved, so this one is indicative only).
Measured in {time.perf_counter() - started:.0f} s.
"""
    print(body)
    write_section("Network: export steps vs the shipped model.onnx", body)


if __name__ == "__main__":
    main()
