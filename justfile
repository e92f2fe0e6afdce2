# Everyday recipes. `just --list` shows them.

# Build the release binary.
build:
    cargo build --release

# Run the whole test suite (what CI runs).
test:
    cargo test --workspace

# Run the quickstart study on the embedded dataset.
demo:
    cargo run --release -- run experiments/quickstart.toml

# Benchmarks: the core's 2,000-node manifest, and the networks' training speed.
bench:
    cargo bench -p tarun-core
    cargo run --release -- bench train

# Formatting and lints, as CI checks them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
