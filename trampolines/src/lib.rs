//! Pure machine-code work for gohook: analysis of Go function prologues and epilogues, trampoline
//! generation, and the shared ring/record format. Nothing here touches a process.

pub mod decode;
pub mod epilogue;
pub mod plan;
pub mod prologue;
pub mod record;
pub mod ring_layout;
pub mod stub;
pub mod unsafe_points;
