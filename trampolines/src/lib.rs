//! Machine-code work.
