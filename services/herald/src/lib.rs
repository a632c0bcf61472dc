//! # herald
//!
//! The Herald node binary's library: configuration, CLI, and the actix-web application.
pub mod cli;
pub mod config;
