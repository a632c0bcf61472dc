//! What the browser tests need: Debian's Chromium (or `$CHROMIUM`) and playwright-core in
//! tests/browser, both installed by `bash .ci/install-test-deps`.

use std::path::PathBuf;

pub const INSTALL_HINT: &str = "run `bash .ci/install-test-deps` from the repository root";

/// Chromium and the scripts' directory, or `None` (printed) outside CI; under CI (`CI=true`)
/// missing ones fail the test.
pub fn tools() -> Option<(PathBuf, PathBuf)> {
    let chromium =
        PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let driver = dir.join("node_modules/playwright-core/package.json");
    let missing = match (chromium.is_file(), driver.is_file()) {
        (true, true) => return Some((chromium, dir)),
        (false, _) => format!("Chromium not found at {}", chromium.display()),
        (true, false) => format!("playwright-core not installed in {}", dir.display()),
    };
    if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0") {
        panic!("{missing}: {INSTALL_HINT}");
    }
    eprintln!("SKIPPED the browser test: {missing} ({INSTALL_HINT})");
    None
}
