//! Architecture invariants from ARCHITECTURE.md, checked as tests.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

fn src(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(sub)
}

/// Lines of `file` that mention any of `crates` as a path root.
fn offending(file: &Path, crates: &[&str]) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines()
        .filter(|l| {
            let t = l.trim_start();
            !t.starts_with("//")
                && crates.iter().any(|c| {
                    t.contains(&format!("{c}::")) || t.starts_with(&format!("extern crate {c}"))
                })
        })
        .map(|l| format!("{}: {}", file.display(), l.trim()))
        .collect()
}

#[test]
fn the_domain_imports_no_io_or_columnar_crate() {
    let forbidden = [
        "tokio",
        "tonic",
        "hyper",
        "axum",
        "arrow",
        "parquet",
        "datafusion",
        "object_store",
        "prost",
        "opentelemetry_proto",
        "reqwest",
        "serde_json",
        "crate::application",
        "crate::infrastructure",
        "crate::bootstrap",
    ];
    let files = rust_files(&src("domain"));
    assert!(files.len() >= 10, "domain files found: {files:?}");
    let bad: Vec<String> = files
        .iter()
        .flat_map(|f| offending(f, &forbidden))
        .collect();
    assert!(
        bad.is_empty(),
        "the domain must stay pure:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_application_knows_no_protocol_storage_or_engine() {
    let forbidden = [
        "tonic",
        "hyper",
        "axum",
        "parquet",
        "datafusion",
        "object_store",
        "opentelemetry_proto",
        "prost",
        "crate::infrastructure",
        "crate::bootstrap",
    ];
    let bad: Vec<String> = rust_files(&src("application"))
        .iter()
        .flat_map(|f| offending(f, &forbidden))
        .collect();
    assert!(
        bad.is_empty(),
        "application must not depend on adapters:\n{}",
        bad.join("\n")
    );
}

#[test]
fn only_the_composition_root_wires_layers() {
    // Infrastructure never reaches into the composition root or the CLI.
    let bad: Vec<String> = rust_files(&src("infrastructure"))
        .iter()
        .flat_map(|f| offending(f, &["crate::bootstrap", "crate::cli"]))
        .collect();
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn the_checker_catches_a_violation() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x.rs");
    std::fs::write(
        &f,
        "// arrow:: in a comment is fine\nuse arrow::array::Int32Array;\n",
    )
    .unwrap();
    assert_eq!(offending(&f, &["arrow"]).len(), 1);
}
