"""ONNX export and the torch-free runtime."""

import subprocess
import sys

import numpy as np

from training.export import export_onnx
from training.predict import ONNX_FILE, OnnxBackend, Predictor
from training.schema import HEADS

TEXTS = ["@Delta on hold 2 hours, flight cancelled", "love the app", "my card was charged twice, emailed twice",
         "where is my parcel??", "x " * 300]


def test_fp32_onnx_matches_torch(tiny_model, tmp_path):
    torch_p = Predictor(tiny_model.bundle_dir, runtime="torch")
    ref = torch_p.encoder_probabilities(TEXTS)
    path = export_onnx(torch_p.backend.model, tmp_path / "m.onnx")
    torch_p.backend = OnnxBackend(path, 1)
    got = torch_p.encoder_probabilities(TEXTS)
    for h in HEADS:
        np.testing.assert_allclose(got[h], ref[h], atol=1e-4)


def test_tokenizers_library_matches_the_training_tokenizer(tiny_predictor):
    from training.model import load_tokenizer

    hf = load_tokenizer("tiny")
    ids, mask = tiny_predictor.encode(["Hello @user, my order #123 is late! 😡", "short"])
    ref = hf(["Hello @user, my order #123 is late! 😡", "short"], padding=True, truncation=True, max_length=128)
    assert ids.tolist() == ref["input_ids"]
    assert mask.tolist() == ref["attention_mask"]


def test_run_ships_onnx_within_the_parity_bar(tiny_model):
    import json

    from training.export import PARITY_MIN
    from training.predict import BUNDLE_FILE

    m = tiny_model.summary["metrics"]
    runtime = json.loads((tiny_model.bundle_dir / BUNDLE_FILE).read_text())["runtime"]
    assert (tiny_model.bundle_dir / ONNX_FILE).exists()
    assert runtime["precision"] in ("int8", "int8+fp32-ffn", "fp32")
    bar = PARITY_MIN["fp32" if runtime["precision"] == "fp32" else "int8"]
    for h in HEADS:
        assert m[f"parity_fp32_{h}_agreement"] >= PARITY_MIN["fp32"]
        assert m[f"parity_onnx_{h}_agreement"] >= bar
        assert 0.0 <= m[f"parity_onnx_test_{h}_agreement"] <= 1.0
    assert Predictor(tiny_model.bundle_dir).runtime == "onnx"
    assert Predictor(tiny_model.bundle_dir, runtime="torch").runtime == "torch"


def test_matmul_groups_find_heads_and_feed_forward_blocks(tiny_predictor, tmp_path):
    from training.export import matmul_groups

    path = export_onnx(Predictor(tiny_predictor.path, runtime="torch").backend.model, tmp_path / "m.onnx")
    heads, ffn = matmul_groups(path)
    assert len(heads) == 4  # urgency, issue_type, prior_channels, tried
    assert sorted(ffn) == [0, 1] and all(len(v) == 2 for v in ffn.values())  # tiny encoder: 2 layers


def test_onnx_runtime_does_not_import_torch(tiny_model, tmp_path):
    import shutil

    bundle = tmp_path / "b"
    shutil.copytree(tiny_model.bundle_dir, bundle)
    (bundle / "model.safetensors").unlink()  # nothing torch could load: the ONNX path must do it all
    code = (f"import sys; from training.predict import Predictor; p = Predictor({str(bundle)!r}); "
            "r = p.classify(['my parcel is late']); "
            "print(p.runtime, 'torch' in sys.modules, 'transformers' in sys.modules, r[0]['urgency']['label'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    runtime, torch_loaded, transformers_loaded, label = out.stdout.split()
    assert (runtime, torch_loaded, transformers_loaded) == ("onnx", "False", "False")


def test_export_fuses_the_encoder_and_leaves_the_model_in_eval_mode(tiny_model, tmp_path):
    from training.export import optimise

    torch_p = Predictor(tiny_model.bundle_dir, runtime="torch")
    ref = torch_p.encoder_probabilities(TEXTS)
    model = torch_p.backend.model
    cfg = model.encoder.config
    attn = cfg._attn_implementation
    raw = export_onnx(model, tmp_path / "raw.onnx", eager_attention=True)
    assert not any(m.training for m in model.modules())  # export restores a mode: it must be eval
    assert cfg._attn_implementation == attn
    fused, ops = optimise(raw, tmp_path / "fused.onnx", cfg.num_attention_heads, cfg.hidden_size)
    assert ops.get("Attention") == cfg.num_hidden_layers and ops.get("SkipLayerNormalization")
    torch_p.backend = OnnxBackend(fused, 1)
    got = torch_p.encoder_probabilities(TEXTS)
    for h in HEADS:
        np.testing.assert_allclose(got[h], ref[h], atol=1e-4)


def test_the_release_runs_fused_int8_within_the_bar():
    import json

    import onnx

    from training.export import PARITY_MIN
    from training.release import RELEASE_DIR

    runtime = json.loads((RELEASE_DIR / "frontline.json").read_text())["runtime"]
    ops = {n.op_type for n in onnx.load(str(RELEASE_DIR / ONNX_FILE)).graph.node}
    assert runtime["precision"].startswith("int8") and min(runtime["validation_agreement"].values()) >= PARITY_MIN["int8"]
    if runtime.get("fused_ops"):
        assert {"QAttention", "SkipLayerNormalization", "EmbedLayerNormalization"} <= ops


def test_default_threads_never_exceed_the_cores_this_process_may_use():
    import os

    from training.predict import physical_cores

    n = physical_cores()
    assert 1 <= n <= len(os.sched_getaffinity(0)) <= (os.cpu_count() or 1)


def test_choose_fp32_keeps_the_fewest_sensitive_matmuls():
    from training.export import choose_fp32

    ffn = {k: [f"/l/layer.{k}/intermediate/dense/MatMul", f"/l/layer.{k}/output/dense/MatMul"] for k in range(3)}
    # agreement rises with each fp32 matmul; layer 1's output matmul matters most
    weight = {n: 0.001 for names in ffn.values() for n in names} | {ffn[1][1]: 0.02, ffn[1][0]: 0.004}

    def score(names):
        return {"urgency": 0.97 + sum(weight[n] for n in names), "issue_type": 0.999}

    assert choose_fp32(ffn, score, lambda a: min(a.values()) >= 0.98) == [ffn[1][1]]  # half a block is enough
    assert choose_fp32(ffn, score, lambda a: min(a.values()) >= 0.9935) == ffn[1]  # needs the whole block
    assert choose_fp32(ffn, score, lambda a: min(a.values()) >= 0.96) == []  # plain int8 passes
    assert sorted(choose_fp32(ffn, score, lambda a: False)) == sorted(n for v in ffn.values() for n in v)
