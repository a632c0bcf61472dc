//! Stamps the binary with the commit it was built from (`herald version`, `herald_build_info`):
//! `HERALD_COMMIT` when the build sets it (the Docker build, whose context has no .git), else
//! `git rev-parse`, else "unknown". Also the target triple, profile and compiler, which
//! `herald version` reports.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=HERALD_COMMIT");
    let commit = std::env::var("HERALD_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=HERALD_COMMIT={}", commit.trim());
    // Cargo sets these for build scripts only; hand them on to the crate.
    for (from, to) in [("TARGET", "HERALD_TARGET"), ("PROFILE", "HERALD_PROFILE")] {
        let value = std::env::var(from).unwrap_or_else(|_| "unknown".to_string());
        println!("cargo:rustc-env={to}={value}");
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let rustc_version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=HERALD_RUSTC={rustc_version}");
}

fn git_commit() -> Option<String> {
    let git = |args: &[&str]| {
        let out = Command::new("git").args(args).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    // Rebuild when HEAD moves: HEAD itself (a branch switch) and the ref it points at (a commit).
    // In a worktree, HEAD lives in the worktree's git dir and refs in the common one.
    let git_dir = git(&["rev-parse", "--git-dir"])?;
    let common_dir = git(&["rev-parse", "--git-common-dir"]).unwrap_or_else(|| git_dir.clone());
    println!(
        "cargo:rerun-if-changed={}",
        Path::new(&git_dir).join("HEAD").display()
    );
    if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
        for dir in [&git_dir, &common_dir] {
            let path = Path::new(dir).join(&head_ref);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
        println!(
            "cargo:rerun-if-changed={}",
            Path::new(&common_dir).join("packed-refs").display()
        );
    }
    git(&["rev-parse", "--short=12", "HEAD"])
}
