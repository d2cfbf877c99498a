# Two commands do all setup on a fresh machine (see README):
#   make run    install, then serve the champion (the shipped release is registered in models/ on first start)
#   make test   install (with test tools and system packages), then run the test suite
# and, for ML engineers:
#   make train  fine-tune on the shipped data, evaluate against the baseline, register, promote if at least as good
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export MLFLOW_DISABLE_TELEMETRY := true
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: run train test install system-deps checklist bench cv cv-distilled label-review

$(BIN)/frontline: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	# torch first, pinned: it is the CPU build here; a looser pin downloads gigabytes of CUDA packages
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/frontline

system-deps:
	@# Debian packages the tests use: Chromium (report rendering) and a JRE (Spark); root installs them.
	@command -v chromium >/dev/null && command -v java >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium default-jre-headless >/dev/null; } || \
	  echo "warning: chromium/java missing and not root: browser and Spark tests will be skipped"

run: install
	$(BIN)/frontline serve --host $(or $(HOST),127.0.0.1) --port $(or $(PORT),8000)

train: install
	$(BIN)/frontline train

# The long runs behind `make train`, each run once and kept as data artefacts (see README "Cross-validation"):
cv: install             # 5-fold CV of the multi-task recipe: the teacher ensemble (~50 min on 2 cores)
	$(BIN)/frontline cv --out data/cv/multitask
cv-distilled: install   # 5-fold CV of the distilled student: the shipped recipe's yardstick and policy (~50 min)
	$(BIN)/frontline cv --soft-targets data/cv/multitask/oof.npz --out data/cv/distilled
label-review: install   # confident learning on the out-of-fold predictions -> data/label_review.csv
	$(BIN)/frontline label-review --oof data/cv/multitask/oof.npz

test: install system-deps
	$(BIN)/python -m pytest -q

checklist: install
	$(BIN)/python -m pytest -q -m checklist

# ~15 min on 2 cores. FP32_BUNDLE=dir (a bundle with model.safetensors) adds the export steps to bench/network.py
bench: install
	$(BIN)/python bench/network.py $(if $(FP32_BUNDLE),--bundle $(FP32_BUNDLE))
	$(BIN)/python bench/label.py
	$(BIN)/python bench/serve.py
