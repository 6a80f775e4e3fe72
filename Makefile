# The two commands of the README: `make demo` and `make test`.
.PHONY: demo test bench

DEMO_FILE ?= tests/fixtures/audio/03.wav

## Build and run the main job on a sample recording (the default model comes with the models issue).
demo:
	cargo run --release --bin emomon -- segment $(DEMO_FILE)

## Run every test (those needing ../shared/data skip with a notice when it is absent).
test:
	cargo test --workspace --locked

## Front-end throughput as a multiple of real time (one thread).
bench:
	cargo run --release --bin emomon -- bench frontend tests/fixtures/audio/*.wav
