//! The layers hold: nothing below the API layer imports axum or the
//! application container (`crate::app`). The API layer (`src/api/`), the
//! container itself (`src/app.rs`), start-up (`src/daemon.rs`), the HTTP
//! server (`src/server.rs`) and the binaries (`src/main.rs`, `src/bin/`)
//! are above that line; the container itself knows no HTTP either.

use std::path::{Path, PathBuf};

const ABOVE: &[&str] = &["api", "app.rs", "daemon.rs", "server.rs", "main.rs", "bin"];
const FORBIDDEN: &[&str] = &["axum", "crate::app", "crate::api"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// The offending lines of one file: a forbidden path in product code
/// (comments, doc comments and the `#[cfg(test)]` module at the end of a
/// file are not the product).
fn offences(text: &str) -> Vec<String> {
    text.lines()
        .take_while(|l| *l != "#[cfg(test)]")
        .filter(|l| !l.trim_start().starts_with("//"))
        .filter(|l| {
            FORBIDDEN.iter().any(|f| {
                l.match_indices(f).any(|(i, _)| {
                    // A whole path segment: `axum::`, `axum` in a use
                    // list, not `my_axum`.
                    let before = l[..i].chars().last();
                    !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
                })
            })
        })
        .map(|l| l.trim().to_owned())
        .collect()
}

#[test]
fn nothing_below_the_api_layer_imports_axum_or_the_container() -> std::io::Result<()> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files)?;
    let mut bad = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap_or(f);
        let top = rel
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned());
        if top.as_deref().is_some_and(|t| ABOVE.contains(&t)) || rel == Path::new("lib.rs") {
            continue;
        }
        for line in offences(&std::fs::read_to_string(f)?) {
            bad.push(format!("{}: {line}", rel.display()));
        }
    }
    assert!(
        files.len() > 30,
        "only {} files found under {}",
        files.len(),
        src.display()
    );
    assert!(bad.is_empty(), "layer violations:\n{}", bad.join("\n"));
    Ok(())
}

/// The container wires the parts; the API layer sits on it, not the other
/// way round (the authenticator goes to `api::router`, not into `App`).
#[test]
fn the_container_knows_no_http() -> std::io::Result<()> {
    let app = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/app.rs");
    let text = std::fs::read_to_string(&app)?;
    let bad: Vec<String> = offences(&text)
        .into_iter()
        .filter(|l| l.contains("axum") || l.contains("crate::api"))
        .collect();
    assert!(
        bad.is_empty(),
        "app.rs imports the HTTP layer:\n{}",
        bad.join("\n")
    );
    Ok(())
}

#[test]
fn the_check_sees_what_it_must() {
    assert_eq!(offences("use axum::Router;").len(), 1);
    assert_eq!(offences("    let a: crate::app::App;").len(), 1);
    assert_eq!(
        offences("use crate::{api, app};").len(),
        0,
        "documented limit: grouped imports"
    );
    assert_eq!(offences("//! axum is used above").len(), 0);
    assert_eq!(offences("let my_axum = 1;").len(), 0);
    assert_eq!(
        offences("fn f() {}\n#[cfg(test)]\nmod tests { use axum::Router; }").len(),
        0
    );
}

/// The Ironic client reports through its `CallObserver`; it knows no
/// metrics type (issue 12).
#[test]
fn the_ironic_client_does_not_import_the_metrics() -> std::io::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ironic");
    let mut files = Vec::new();
    rust_files(&dir, &mut files)?;
    assert!(
        files.len() >= 3,
        "only {} files in {}",
        files.len(),
        dir.display()
    );
    for f in &files {
        let text = std::fs::read_to_string(f)?;
        let bad: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .filter(|l| l.contains("crate::metrics") || l.contains("metrics::Metrics"))
            .collect();
        assert!(bad.is_empty(), "{}: {bad:?}", f.display());
    }
    Ok(())
}
