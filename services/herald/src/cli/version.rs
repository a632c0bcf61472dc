//! `herald version`: what this binary is, for bug reports and for checking a rollout.

use serde::Serialize;

/// The build of this binary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuildInfo {
    pub version: &'static str,
    /// The commit it was built from (`unknown` when built outside git without `HERALD_COMMIT`).
    pub commit: &'static str,
    /// Target triple, e.g. `x86_64-unknown-linux-gnu`.
    pub target: &'static str,
    /// Cargo profile: `release` or `debug`.
    pub profile: &'static str,
    /// `rustc --version` of the compiler that built it.
    pub rustc: &'static str,
}

impl BuildInfo {
    pub const fn current() -> BuildInfo {
        BuildInfo {
            version: crate::build_info::VERSION,
            commit: crate::build_info::COMMIT,
            target: env!("HERALD_TARGET"),
            profile: env!("HERALD_PROFILE"),
            rustc: env!("HERALD_RUSTC"),
        }
    }

    /// `herald <version> (commit <commit>)`, then one `key: value` line per detail.
    pub fn text(&self) -> String {
        format!(
            "herald {} (commit {})\ntarget:  {}\nprofile: {}\nrustc:   {}\n",
            self.version, self.commit, self.target, self.profile, self.rustc
        )
    }

    /// One JSON object, for scripts.
    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default() + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_json_carry_the_same_build() {
        let info = BuildInfo::current();
        let first = info.text().lines().next().unwrap().to_owned();
        assert_eq!(
            first,
            format!("herald {} (commit {})", info.version, info.commit)
        );
        let json: serde_json::Value = serde_json::from_str(&info.json()).unwrap();
        assert_eq!(json["version"], info.version);
        assert_eq!(json["commit"], info.commit);
        assert_eq!(json["target"], info.target);
        assert!(info.rustc.starts_with("rustc "), "{}", info.rustc);
    }
}
