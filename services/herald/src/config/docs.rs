//! Keeps docs/configuration.md complete: every key the configuration accepts has a row there
//! with its environment variable, and every row names a key that exists.

use crate::config::keys::{self, Key};

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
