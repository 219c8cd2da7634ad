//! Integration tests: the real binary on loopback, queried with dig.

mod adaptive;
mod api;
mod authoritative;
mod backend;
mod certs;
mod cli;
mod cluster;
mod cookies;
mod dnssec;
mod dot;
mod edns;
mod etcd;
mod geo;
mod harness;
mod health;
mod journal;
mod ops;
mod policies;
mod protocols;
mod proxy;
mod ratelimit;
mod registrations;
mod reload;
mod robustness;
mod simulate;
mod wildcard;
