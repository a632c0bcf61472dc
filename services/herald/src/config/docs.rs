//! Keeps the documentation of the keys complete: every key the configuration accepts has a row
//! in docs/configuration.md with its environment variable (and every row names a key that
//! exists), and a line in the reference of config.rs (what `herald genconfig` writes) and in the
//! README's configuration block.

use crate::config::generate::{self, header};
use crate::config::keys::{self, Key, NAMESPACES};

const DOC_PATH: &str = "docs/configuration.md";
const DOC: &str = include_str!("../../../../docs/configuration.md");

/// The table row of `path`: the line whose first cell is `` `path` ``.
fn row(path: &str) -> Option<&'static str> {
    let cell = format!("| `{path}` |");
    DOC.lines().find(|line| line.starts_with(&cell))
}

#[test]
fn every_key_has_a_row_with_its_environment_variable() {
    let mut problems = Vec::new();
    for key in keys::all() {
        let path = key.path();
        let Some(row) = row(&path) else {
            problems.push(format!(
                "{path}: no row in {DOC_PATH} (add `| `{path}` | type | default | {} | what it does and checks |` to the table of [{}])",
                key.env().map_or("file only".to_owned(), |e| format!("`{e}`")),
                key.section.trim_end_matches("[]"),
            ));
            continue;
        };
        let expected = key
            .env()
            .map_or("file only".to_owned(), |e| format!("`{e}`"));
        if !row.contains(&expected) {
            problems.push(format!(
                "{path}: its row in {DOC_PATH} does not name its environment variable {expected}"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_row_names_a_key_that_exists() {
    let known: Vec<String> = keys::all().iter().map(Key::path).collect();
    let sections: Vec<String> = keys::all()
        .iter()
        .map(|k| format!("{}.", k.section))
        .collect();
    let stale: Vec<&str> = DOC
        .lines()
        .filter_map(|line| line.strip_prefix("| `")?.split('`').next())
        .filter(|cell| sections.iter().any(|s| cell.starts_with(s.as_str())))
        .filter(|cell| !known.iter().any(|k| k == cell))
        .collect();
    assert!(
        stale.is_empty(),
        "{DOC_PATH} has rows for keys the configuration does not accept: {}",
        stale.join(", ")
    );
}

/// `(section, key)` of every key line of a TOML block, commented out or not.
fn key_lines(block: &str) -> Vec<(String, String)> {
    let mut section = String::new();
    let mut found = Vec::new();
    for line in block.lines() {
        if let Some(name) = header(line) {
            section = name.to_owned();
            continue;
        }
        let line = line.trim_start_matches(['#', ' ']);
        let name: String = line
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if !name.is_empty() && line[name.len()..].trim_start().starts_with('=') {
            found.push((section.clone(), name));
        }
    }
    found
}

/// The keys a TOML block shows no line for. A namespace's keys are covered by the same key in
/// `[channels]`: a namespace takes the same options, and the blocks say so.
fn missing_from(block: &str) -> Vec<String> {
    let found = key_lines(block);
    let has = |section: &str, name: &str| found.iter().any(|(s, n)| s == section && n == name);
    keys::all()
        .into_iter()
        .filter(|key| {
            let covered = if key.path() == NAMESPACES {
                block.contains("[[channels.namespaces]]")
            } else if key.section == format!("{NAMESPACES}[]") {
                has(NAMESPACES, key.name) || has("channels", key.name)
            } else {
                has(&key.section, key.name)
            };
            !covered
        })
        .map(|key| key.path())
        .collect()
}

#[test]
fn the_reference_names_every_key() {
    let missing = missing_from(&generate::reference().unwrap());
    assert!(
        missing.is_empty(),
        "keys missing from the configuration reference (the ```toml block of the doc comment of \
         services/herald/src/config.rs, which `herald genconfig` writes; a commented-out \
         `# key = value` line counts): {}",
        missing.join(", ")
    );
}

#[test]
fn the_readme_names_every_key() {
    let readme = include_str!("../../../../README.md");
    let block = readme
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("README.md has a ```toml configuration block");
    let missing = missing_from(block);
    assert!(
        missing.is_empty(),
        "keys missing from the configuration block (```toml) of README.md (a commented-out \
         `# key = value` line counts): {}",
        missing.join(", ")
    );
}
