//! Support code for the benchmarks.
