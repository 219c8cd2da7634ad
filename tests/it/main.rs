//! Integration tests: the real binary on loopback, queried with dig.

mod authoritative;
mod cli;
mod geo;
mod harness;
mod policies;
mod reload;
mod robustness;
