//! Architecture invariants from ARCHITECTURE.md, checked on the workspace's
//! dependency graph: the layers are crates, so what a layer may use is what
//! its `Cargo.toml` lets it name (Rust code can only import direct
//! dependencies).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each workspace crate and the names of its (normal) dependencies.
type Graph = BTreeMap<String, BTreeSet<String>>;

fn manifest_deps(text: &str) -> (String, BTreeSet<String>) {
    let v: toml::Value = toml::from_str(text).expect("valid Cargo.toml");
    let name = v["package"]["name"]
        .as_str()
        .expect("package.name")
        .to_owned();
    let deps = v
        .get("dependencies")
        .and_then(|d| d.as_table())
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default();
    (name, deps)
}

fn workspace() -> Graph {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut graph = Graph::new();
    let mut manifests = vec![root.join("Cargo.toml")];
    for e in std::fs::read_dir(root.join("crates")).unwrap().flatten() {
        manifests.push(e.path().join("Cargo.toml"));
    }
    for m in manifests {
        let (name, deps) = manifest_deps(&std::fs::read_to_string(&m).unwrap());
        graph.insert(name, deps);
    }
    graph
}

/// Every crate `name` reaches through workspace crates, and the external
/// crates any of them names directly.
fn reachable(graph: &Graph, name: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut internal = BTreeSet::new();
    let mut external = BTreeSet::new();
    let mut stack = vec![name.to_owned()];
    while let Some(c) = stack.pop() {
        for d in &graph[&c] {
            if graph.contains_key(d) {
                if internal.insert(d.clone()) {
                    stack.push(d.clone());
                }
            } else {
                external.insert(d.clone());
            }
        }
    }
    (internal, external)
}

/// Violations of "`name` reaches only `allowed_internal` and none of
/// `forbidden_external`".
fn violations(
    graph: &Graph,
    name: &str,
    allowed_internal: &[&str],
    forbidden_external: &[&str],
) -> Vec<String> {
    let (internal, external) = reachable(graph, name);
    let mut bad: Vec<String> = internal
        .iter()
        .filter(|c| !allowed_internal.contains(&c.as_str()))
        .map(|c| format!("{name} depends on {c}"))
        .collect();
    bad.extend(
        external
            .iter()
            .filter(|c| forbidden_external.contains(&c.as_str()))
            .map(|c| format!("{name} (or a layer beneath it) depends on {c}")),
    );
    bad
}

/// What no layer below the adapters may use: protocols, file formats,
/// object stores, the query engine.
const ADAPTER_CRATES: [&str; 9] = [
    "tonic",
    "tonic-prost",
    "hyper",
    "axum",
    "prost",
    "opentelemetry-proto",
    "parquet",
    "datafusion",
    "object_store",
];

#[test]
fn the_domain_depends_on_no_io_columnar_or_wire_crate() {
    let graph = workspace();
    let mut forbidden = ADAPTER_CRATES.to_vec();
    forbidden.extend(["tokio", "arrow", "reqwest", "serde_json", "futures"]);
    let bad = violations(&graph, "tf-domain", &[], &forbidden);
    assert!(
        bad.is_empty(),
        "the domain must stay pure:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_application_knows_no_protocol_storage_or_engine() {
    let graph = workspace();
    let bad = violations(&graph, "tf-application", &["tf-domain"], &ADAPTER_CRATES);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    let bad = violations(
        &graph,
        "tf-schema",
        &["tf-domain", "tf-application"],
        &ADAPTER_CRATES,
    );
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Every `.rs` file under `dir`, recursively.
fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The query engine's dialect stays in the engine adapter: no statement is
/// written in the application layer (its read use cases ask typed ports).
/// The dependency graph cannot say this, so the sources are read: a string
/// literal starting a statement is what writing SQL looks like.
#[test]
fn the_application_writes_no_sql() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/application/src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    assert!(
        files.len() > 10,
        "{} files under {}",
        files.len(),
        root.display()
    );
    let mut found = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            if ["\"SELECT ", "\"WITH ", "\"select "]
                .iter()
                .any(|k| code.contains(k))
            {
                found.push(format!("{}:{}: {}", f.display(), i + 1, code));
            }
        }
    }
    assert!(
        found.is_empty(),
        "SQL in the application layer:\n{}",
        found.join("\n")
    );
    // The check does see a statement where one is written.
    let engine = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/query/src/reads/traces.rs");
    assert!(
        std::fs::read_to_string(engine)
            .unwrap()
            .contains("\"SELECT ")
    );
}

#[test]
fn adapters_do_not_depend_on_each_other_or_on_the_composition_root() {
    let graph = workspace();
    let beneath = ["tf-domain", "tf-application", "tf-schema"];
    for adapter in ["tf-otlp", "tf-storage", "tf-query"] {
        let bad = violations(&graph, adapter, &beneath, &[]);
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    }
    // Only the composition root (the `telemetryflow` package) sees every layer.
    for (name, deps) in &graph {
        assert!(
            !deps.contains("telemetryflow"),
            "{name} depends on the server"
        );
    }
    assert!(
        graph.len() >= 7,
        "workspace crates found: {:?}",
        graph.keys()
    );
}

#[test]
fn the_checker_catches_a_violation() {
    let (name, deps) = manifest_deps(
        "[package]\nname = \"tf-domain\"\n[dependencies]\narrow = \"59\"\ntf-query = { path = \"x\" }\n",
    );
    let mut graph = Graph::new();
    graph.insert(name, deps);
    graph.insert("tf-query".into(), ["datafusion".to_owned()].into());
    let bad = violations(&graph, "tf-domain", &[], &["arrow", "datafusion"]);
    assert_eq!(bad.len(), 3, "{bad:?}");
}
