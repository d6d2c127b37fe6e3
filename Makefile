# Two commands set everything up on a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
SAMPLE := data/samples/sample.root
EVENTS ?= 200

BROWSER_STAMP := $(VENV)/.browser-stamp

.PHONY: all install browser run test lint bench bench-client bench-sonic bench-job bench-features bench-observability train train-dqm clean

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[all,test]'
	touch $(STAMP)

install: $(STAMP)

## run: the main job on the bundled sample, direct and SONIC (local fallback server), with the comparison
run: $(STAMP)
	mkdir -p out
	$(PY) -m framework run configs/miniaod_cfg.py maxEvents=$(EVENTS) inputFiles=$(SAMPLE) outputFile=out/miniaod_direct.root
	$(PY) -m framework compare configs/miniaod_cfg.py maxEvents=$(EVENTS) inputFiles=$(SAMPLE) --out out/compare

## browser: Debian's chromium, for the report pages' browser checks (tests skip with the reason without it)
browser: $(BROWSER_STAMP)
$(BROWSER_STAMP): | $(STAMP)
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
		|| echo "make browser: could not install chromium (apt-get); the browser checks will skip, saying so"
	touch $(BROWSER_STAMP)

## test: the test suite (real ROOT files, real Triton server)
test: $(STAMP) $(BROWSER_STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check framework producers configs tests benchmarks scripts

## bench: the benchmarks; results go to benchmarks/results/
bench: bench-client bench-job bench-features
bench-client: $(STAMP)
	$(PY) benchmarks/bench_client.py --out benchmarks/results/client.json
bench-observability: $(STAMP)
	$(PY) benchmarks/bench_observability.py --out benchmarks/results/observability.json
bench-sonic: $(STAMP)
	$(PY) benchmarks/bench_sonic.py --out benchmarks/results/sonic.json
bench-job: $(STAMP)
	$(PY) benchmarks/bench_job.py --out benchmarks/results/job.json
bench-features: $(STAMP)
	$(PY) benchmarks/bench_features.py --out benchmarks/results/features.json

## train: retrain the bundled models (needs torch: pip install -e '.[train]')
train: $(STAMP)
	$(PY) -m pip install -q -e '.[train]'
	$(PY) scripts/train_part.py --out data/models
	$(PY) scripts/train_deepmet.py --out data/models
	$(PY) scripts/train_nugraph3.py --threads 2 --out data/models

## train-dqm: retrain the DQM NMF models (data/models/dqmNMF, dqmNMFJetOcc, dqmNMFMETPuppi) on 300 generated good lumi sections,
## thresholds from 600 held-out good sections of another seed (~1 min)
train-dqm: $(STAMP)
	mkdir -p out/train-dqm
	$(PY) -m framework generate --events 30000 --seed 11 --run 101 --events-per-lumi 100 --lumis-per-run 100 \
		--branches 'MET_*,PuppiMET_*,Jet_eta,Jet_phi,Jet_pt' out/train-dqm/events.root
	$(PY) -m framework generate --events 60000 --seed 12 --run 201 --events-per-lumi 100 --lumis-per-run 100 \
		--branches 'MET_*,PuppiMET_*,Jet_eta,Jet_phi,Jet_pt' out/train-dqm/held_out.root
	$(PY) -m framework run configs/dqm_cfg.py nmfModel= nmfJetOccModel= inputFiles=out/train-dqm/events.root outputFile=out/train-dqm/dqm.root
	$(PY) -m framework run configs/dqm_cfg.py nmfModel= nmfJetOccModel= inputFiles=out/train-dqm/held_out.root outputFile=out/train-dqm/held_out_dqm.root
	$(PY) scripts/train_dqm_nmf.py --root out/train-dqm/dqm.root --validate out/train-dqm/held_out_dqm.root
	$(PY) scripts/train_dqm_nmf.py --root out/train-dqm/dqm.root --validate out/train-dqm/held_out_dqm.root --me JetOcc
	$(PY) scripts/train_dqm_nmf.py --root out/train-dqm/dqm.root --validate out/train-dqm/held_out_dqm.root --me METPuppi

clean:
	rm -rf out .pytest_cache
