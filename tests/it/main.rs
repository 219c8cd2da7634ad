//! Integration tests: the real binary on loopback, queried with dig.

mod authoritative;
mod cli;
mod harness;
mod policies;
mod reload;
mod robustness;
