//! Live process access.
