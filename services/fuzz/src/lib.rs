//! Helpers shared by the fuzz targets in `fuzz_targets/`: the round-trip checks of the command
//! codecs and the token verifiers with the keys the targets sign with.
//!
//! The targets assert more than "no panic": a frame that decodes must encode back to commands
//! that decode to the same thing, so a codec that silently loses or changes a field is a crash
//! too.

pub mod commands;
pub mod tokens;
