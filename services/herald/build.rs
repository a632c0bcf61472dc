//! Stamps the binary with the commit it was built from (`herald version`, `herald_build_info`):
//! `HERALD_COMMIT` when the build sets it (the Docker build, whose context has no .git), else
//! `git rev-parse`, else "unknown". Also the target triple, profile and compiler, which
//! `herald version` reports. Converts docs/openapi.yaml to the JSON served at
//! `/api/openapi.json`, so the served document is the YAML and a YAML mistake fails the build.

#[path = "build/yaml_json.rs"]
mod yaml_json;

use std::path::{Path, PathBuf};
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
    openapi_json();
}

fn openapi_json() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let source = manifest.join("../../docs/openapi.yaml");
    println!("cargo:rerun-if-changed={}", source.display());
    println!("cargo:rerun-if-changed=build/yaml_json.rs");
    let yaml = std::fs::read_to_string(&source)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", source.display()));
    let json = yaml_json::convert(&yaml)
        .unwrap_or_else(|e| panic!("{} is not a JSON document: {e}", source.display()));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("openapi.json");
    std::fs::write(&out, json.to_string())
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
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
