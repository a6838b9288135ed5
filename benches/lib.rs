//! Criterion benches live beside this file; see `BENCHMARKS.md`.
