//! Unit tests of the value decoders on byte images.
use super::*;
