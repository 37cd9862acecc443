//! Pure machine-code work for gohook: analysis of Go function prologues and epilogues, trampoline
//! generation, and the shared ring/record format. Nothing here touches a process.
//!
//! Flow for one hook (addresses are *runtime* addresses: decode the bytes read from the target at
//! the address they run at, i.e. with the PIE load bias applied):
//!
//! 1. [`decode::DecodedFunction::decode`] the function's bytes (bounds from pclntab).
//! 2. [`plan::plan_entry`] with the function's flags and its `PCDATA_UnsafePoint` table
//!    ([`unsafe_points`]) → an [`plan::EntryPlan`] or a [`plan::Refusal`] a user can read.
//!    [`epilogue::exits`] lists every RET with an [`epilogue::ExitPlan`] or an
//!    [`epilogue::ExitRefusal`], plus tail jumps that cannot be recorded.
//! 3. [`stub::entry_trampoline`] / [`stub::exit_trampoline`] generate code for a given trampoline
//!    address, hook id, ring region and `g` offsets; [`stub::patch_bytes`] gives the `JMP rel32`
//!    to write over the site.
//! 4. The consumer reads rings laid out by [`ring_layout`] and parses slots with
//!    [`record::Record::parse`].

pub mod decode;
pub mod disasm;
pub mod epilogue;
pub mod plan;
pub mod prologue;
pub mod record;
pub mod ring_layout;
pub mod stub;
pub mod syscall_stub;
pub mod unsafe_points;
