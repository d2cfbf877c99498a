"""The packaged pretrained encoder loads with the hub unreachable and gives real embeddings."""

import os
import subprocess
import sys

import pytest

SCRIPT = r"""
import torch
from training.model import build_encoder, load_tokenizer, mean_pool
tok = load_tokenizer("minilm")
enc = build_encoder("minilm").eval()
texts = ["my flight was cancelled", "the airline cancelled my flight", "I love this chocolate"]
b = tok(texts, padding=True, return_tensors="pt")
with torch.inference_mode():
    e = torch.nn.functional.normalize(mean_pool(enc(**b).last_hidden_state, b["attention_mask"]), dim=-1)
print(e.shape[1], float(e[0] @ e[1]), float(e[0] @ e[2]))
"""


@pytest.mark.real_encoder
def test_packaged_encoder_loads_offline_with_hub_unreachable():
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_ENDPOINT": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dim, similar, unrelated = proc.stdout.split()[-3:]
    assert int(dim) == 384
    # pretrained weights, not random ones: paraphrases are close, unrelated texts are not
    assert float(similar) > 0.7 > float(unrelated) + 0.3
