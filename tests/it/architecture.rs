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
    let bad = violations(&graph, "tf-schema", &["tf-domain"], &ADAPTER_CRATES);
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

/// The source directory of every crate of the workspace.
fn crate_sources() -> Vec<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![root.join("src")];
    for e in std::fs::read_dir(root.join("crates")).unwrap() {
        let src = e.unwrap().path().join("src");
        if src.is_dir() {
            dirs.push(src);
        }
    }
    dirs.sort();
    dirs
}

/// The modules a module directory holds: `name.rs` files and
/// subdirectories (tests aside).
fn child_modules(dir: &Path) -> BTreeMap<String, std::path::PathBuf> {
    let mut modules = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        let code_file = p.extension().is_some_and(|x| x == "rs")
            && !["lib", "main", "mod", "tests"].contains(&name.as_str());
        if code_file || (p.is_dir() && name != "tests") {
            modules.insert(name, p);
        }
    }
    modules
}

/// A source file's code: no inline test module, no comment lines.
fn code_of(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    let code = text.split("#[cfg(test)]\nmod tests {").next().unwrap_or("");
    code.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The identifiers that follow each `prefix` in `code`, and those inside a
/// `prefix{…}` group.
fn named_after(code: &str, prefix: &str, out: &mut BTreeSet<String>) {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in code.match_indices(prefix) {
        let before = code[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let rest = &code[i + prefix.len()..];
        match rest.strip_prefix('{') {
            Some(group) => {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                out.extend(group.split(',').map(|g| ident(g.trim())));
            }
            None => {
                out.insert(ident(rest));
            }
        }
    }
}

/// The child modules of the module directory `dir` (of the crate whose
/// sources are `src`) and, per child, the siblings its code names: by path
/// from the crate root, or with `super::` from the child's own file. Tests
/// do not count: a test may reach anywhere.
fn module_graph(src: &Path, dir: &Path) -> Graph {
    let modules = child_modules(dir);
    let rel = dir.strip_prefix(src).unwrap();
    let mut path = String::from("crate::");
    for part in rel.components() {
        path.push_str(&part.as_os_str().to_string_lossy());
        path.push_str("::");
    }
    let mut graph = Graph::new();
    for (name, module) in &modules {
        let mut files = Vec::new();
        if module.is_dir() {
            sources(module, &mut files);
        } else {
            files.push(module.clone());
        }
        let own = [module.clone(), module.join("mod.rs")];
        let mut named = BTreeSet::new();
        for f in files {
            let is_test = f.file_name().is_some_and(|n| n == "tests.rs")
                || f.components().any(|c| c.as_os_str() == "tests");
            if is_test {
                continue;
            }
            let code = code_of(&f);
            named_after(&code, &path, &mut named);
            if own.contains(&f) {
                named_after(&code, "super::", &mut named);
            }
        }
        named.retain(|m| m != name && modules.contains_key(m));
        graph.insert(name.clone(), named);
    }
    graph
}

/// Every module directory of the crate at `src`: `src` and the directories
/// under it, tests aside.
fn module_dirs(src: &Path) -> Vec<std::path::PathBuf> {
    let mut dirs = vec![src.to_owned()];
    let mut i = 0;
    while i < dirs.len() {
        for e in std::fs::read_dir(&dirs[i]).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() && p.file_name().is_some_and(|n| n != "tests") {
                dirs.push(p);
            }
        }
        i += 1;
    }
    dirs
}

/// The module pairs of `graph` that reach each other.
fn cycles(graph: &Graph) -> Vec<(String, String)> {
    let reaches = |from: &str, to: &str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_owned()];
        while let Some(m) = stack.pop() {
            for next in graph.get(&m).into_iter().flatten() {
                if next == to {
                    return true;
                }
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        false
    };
    let mut out = Vec::new();
    for (a, uses) in graph {
        for b in uses {
            if a < b && reaches(b, a) {
                out.push((a.clone(), b.clone()));
            }
        }
    }
    out
}

/// Modules of a crate form layers too: no two modules of one directory (the
/// top-level modules of a crate, the files of a module directory) import
/// each other, directly or through others.
#[test]
fn no_import_cycle_between_the_modules_of_a_crate() {
    let crates = crate_sources();
    assert!(crates.len() >= 7, "{crates:?}");
    let mut found = Vec::new();
    let mut dirs_checked = 0;
    for src in &crates {
        for dir in module_dirs(src) {
            dirs_checked += 1;
            for (a, b) in cycles(&module_graph(src, &dir)) {
                found.push(format!("{}: {a} <-> {b}", dir.display()));
            }
        }
    }
    assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
    assert!(dirs_checked > 20, "{dirs_checked} module directories");
    // The check does see the imports it is about: by path from the crate
    // root, and with `super::` between the files of a directory.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let app = root.join("crates/application/src");
    assert!(module_graph(&app, &app)["forward"].contains("records"));
    let storage = root.join("crates/storage/src");
    let files = module_graph(&storage, &storage.join("storage"));
    assert!(files["compact"].contains("file_index"), "{files:?}");
    assert!(files["object_store"].contains("compact"), "{files:?}");
    let mut cyclic = Graph::new();
    cyclic.insert("a".into(), ["b".to_owned()].into());
    cyclic.insert("b".into(), ["c".to_owned()].into());
    cyclic.insert("c".into(), ["a".to_owned()].into());
    assert_eq!(cycles(&cyclic).len(), 2, "{:?}", cycles(&cyclic));
}

/// Where a path ARCHITECTURE.md names may live: relative to the
/// repository, or the end of a path in the code (`pipeline/buffer.rs`,
/// `to_otlp/values.rs`), or in a crate by its short name (`otlp/grpc.rs` is
/// `crates/otlp/src/grpc.rs`).
fn resolves(path: &str, code: &[String]) -> bool {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let short_crate = path.split_once('/').is_some_and(|(first, rest)| {
        root.join("crates")
            .join(first)
            .join("src")
            .join(rest)
            .exists()
    });
    let suffix = format!("/{path}");
    root.join(path).exists() || short_crate || code.iter().any(|c| c.ends_with(&suffix))
}

/// Every file and directory under `dir`, as paths.
fn all_paths(dir: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        out.push(p.to_string_lossy().into_owned());
        if p.is_dir() {
            all_paths(&p, out);
        }
    }
}

/// ARCHITECTURE.md stays true: every file or directory it names in
/// backticks exists (routes and the store's own prefixes such as
/// `_system/` are not files of the repository).
#[test]
fn every_path_architecture_md_names_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let mut named = BTreeSet::new();
    for (i, token) in text.split('`').enumerate() {
        let looks_like_a_path = i % 2 == 1
            && (token.contains('/') || token.ends_with(".rs") || token.ends_with(".md"))
            && !token.starts_with(['/', '_'])
            && !token.contains(['…', '*', '<', '{', ' ', '=', ':']);
        if looks_like_a_path {
            named.insert(token.trim_end_matches('/').to_owned());
        }
    }
    assert!(named.len() > 30, "{named:?}");
    let mut code = Vec::new();
    for dir in [
        "src", "crates", "tests", "benches", "examples", "scripts", "fuzz",
    ] {
        all_paths(&root.join(dir), &mut code);
    }
    let missing: Vec<_> = named.iter().filter(|p| !resolves(p, &code)).collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names paths that do not exist: {missing:?}"
    );
    assert!(!resolves("pipeline/no_such_file.rs", &code));
    assert!(resolves("pipeline/buffer.rs", &code));
}

/// Every HTTP route is declared in the route table with the `Need` its
/// requests must meet (`api/http.rs` `routes()`), where the auth test walks
/// it: outside the table the only routes are the router's loop over it, the
/// private `/metrics` listener's one route, and the OTLP receiver's paths
/// (which the router puts behind `Need::Ingest` as a whole).
#[test]
fn routes_are_declared_only_in_the_route_table() {
    let allowed = [
        (
            "src/infrastructure/api/http.rs",
            "router = router.route(route.path,",
        ),
        (
            "src/infrastructure/api/http.rs",
            ".route(\"/metrics\", get(metrics))",
        ),
        ("src/infrastructure/api/http.rs", ".merge(otlp_routes)"),
        ("crates/otlp/src/http.rs", ".route(Traces::HTTP_PATH,"),
        ("crates/otlp/src/http.rs", ".route(Metrics::HTTP_PATH,"),
        ("crates/otlp/src/http.rs", ".route(Logs::HTTP_PATH,"),
    ];
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in crate_sources() {
        sources(&dir, &mut files);
    }
    let mut stray = Vec::new();
    for file in &files {
        let rel = file
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        for line in code_of(file).lines() {
            let line = line.trim();
            let adds_routes = [
                ".route(",
                ".route_service(",
                ".nest(",
                ".nest_service(",
                ".merge(",
                ".fallback_service(",
            ]
            .iter()
            .any(|m| line.contains(m));
            if !adds_routes {
                continue;
            }
            if !allowed
                .iter()
                .any(|(f, l)| *f == rel && line.starts_with(l))
            {
                stray.push(format!("{rel}: {line}"));
            }
        }
    }
    assert!(
        stray.is_empty(),
        "routes outside the route table:\n{}",
        stray.join("\n")
    );
}
