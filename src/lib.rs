//! gohook as a library: the command-line grammar and commands, the hook engine's planning and
//! orchestration, and the record-to-span pipeline. The `gohook` binary is a thin `main` over it;
//! integration tests and benchmarks use it directly.

pub mod capture;
pub mod cli;
pub mod clock;
pub mod collector;
pub mod commands;
pub mod engine;
pub mod export;
pub mod glob;
pub mod hookplan;
pub mod lines;
pub mod ordering;
pub mod pairing;
pub mod record;
pub mod script;
pub mod sink;
pub mod spans;
pub mod status;
pub mod summary;
pub mod trace;
