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


def test_run_records_parity_and_auto_runtime_follows_the_bundle(tiny_model):
    m = tiny_model.summary["metrics"]
    for h in HEADS:
        assert 0.0 <= m[f"parity_int8_{h}_agreement"] <= 1.0
        assert m[f"parity_fp32_{h}_agreement"] >= 0.99
    has_int8 = (tiny_model.bundle_dir / ONNX_FILE).exists()
    assert has_int8 == bool(m["parity_int8_passed"])
    assert Predictor(tiny_model.bundle_dir).runtime == ("onnx" if has_int8 else "torch")


def test_onnx_runtime_does_not_import_torch(tiny_model, tmp_path):
    import shutil

    bundle = tmp_path / "b"
    shutil.copytree(tiny_model.bundle_dir, bundle)
    if not (bundle / ONNX_FILE).exists():  # tiny random nets may fail int8 parity; test the path anyway
        from onnxruntime.quantization import quantize_dynamic

        export_onnx(Predictor(bundle, runtime="torch").backend.model, tmp_path / "fp32.onnx")
        quantize_dynamic(str(tmp_path / "fp32.onnx"), str(bundle / ONNX_FILE))
    code = (f"import sys; from training.predict import Predictor; p = Predictor({str(bundle)!r}); "
            "r = p.classify(['my parcel is late']); "
            "print(p.runtime, 'torch' in sys.modules, 'transformers' in sys.modules, r[0]['urgency']['label'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    runtime, torch_loaded, transformers_loaded, label = out.stdout.split()
    assert (runtime, torch_loaded, transformers_loaded) == ("onnx", "False", "False")
