//! Pure machine-code work for gohook: analysis of Go function prologues and epilogues, trampoline
//! generation, and the shared ring/record format. Nothing here touches a process.

pub mod record;
pub mod ring_layout;
