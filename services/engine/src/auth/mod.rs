//! placeholder, replaced by the auth module
