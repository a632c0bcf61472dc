//! What this binary is: its version and the commit it was built from (stamped by build.rs), for
//! the connect reply, `herald version`, `herald_build_info` and the traces' resource.

/// The version clients see in the connect reply.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The commit the binary was built from, or "unknown".
pub const COMMIT: &str = env!("HERALD_COMMIT");
