//! The layering, and that every bad value or key is an error naming it.

use std::io::Write;

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_need_no_configuration() {
    let c = Config::load(None, env(&[]), &Overrides::default()).unwrap();
    assert_eq!(c, Config::default());
    assert_eq!(c.server.grpc_addr.to_string(), "127.0.0.1:4317");
    assert_eq!(
        c.storage_location(),
        crate::infrastructure::storage::StorageLocation::Local(PathBuf::from("./data/parquet"))
    );
}

#[test]
fn flags_beat_env_beat_file_beat_defaults() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(f, "[server]\ngrpc_addr = \"127.0.0.1:1111\"\nhttp_addr = \"127.0.0.1:2222\"\n[buffer]\nflush_rows = 5").unwrap();
    let e = env(&[
        ("TELEMETRYFLOW_SERVER_HTTP_ADDR", "127.0.0.1:3333"),
        ("TELEMETRYFLOW_BUFFER_FLUSH_ROWS", "7"),
        (
            "TELEMETRYFLOW_SERVER_CORS_ALLOWED_ORIGINS",
            "https://a.example, https://b.example",
        ),
        ("PATH", "/bin"),
    ]);
    let o = Overrides {
        http_addr: Some("127.0.0.1:4444".into()),
        ..Default::default()
    };
    let c = Config::load(Some(f.path()), e.clone(), &o).unwrap();
    assert_eq!(c.server.grpc_addr.to_string(), "127.0.0.1:1111"); // file
    assert_eq!(c.server.http_addr.to_string(), "127.0.0.1:4444"); // flag over env over file
    assert_eq!(c.buffer.flush_rows.get(), 7); // env over file
    assert_eq!(
        c.server.cors_allowed_origins,
        ["https://a.example", "https://b.example"]
    );
    let c = Config::load(Some(f.path()), e, &Overrides::default()).unwrap();
    assert_eq!(c.server.http_addr.to_string(), "127.0.0.1:3333");
}

#[test]
fn unknown_keys_and_bad_values_name_the_key() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(f, "[server]\ngrpc_adr = \"x\"").unwrap();
    let e = Config::load(Some(f.path()), env(&[]), &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("grpc_adr"), "{e}");

    let e = Config::load(
        None,
        env(&[("TELEMETRYFLOW_SERVER_GRPC_ADR", "x")]),
        &Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("TELEMETRYFLOW_SERVER_GRPC_ADR"), "{e}");

    let e = Config::load(
        None,
        env(&[("TELEMETRYFLOW_BUFFER_FLUSH_ROWS", "many")]),
        &Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("flush_rows"), "{e}");

    let o = Overrides {
        grpc_addr: Some("nowhere".into()),
        ..Default::default()
    };
    let e = Config::load(None, env(&[]), &o).unwrap_err().to_string();
    assert!(e.contains("server.grpc_addr"), "{e}");
}

/// `[[forward]]` from a file and from the environment, and what is
/// refused, by key.
#[test]
fn forwarders_are_checked_and_name_the_bad_key() {
    let load = |vars: &[(&str, &str)]| Config::load(None, env(vars), &Overrides::default());
    // Checked outside any async runtime, as `serve` loads it.
    let c = load(&[
        ("TELEMETRYFLOW_STORAGE_PERSIST", "false"),
        (
            "TELEMETRYFLOW_FORWARD",
            r#"[{name = "central", endpoint = "https://central:4318", protocol = "http/protobuf", signals = ["logs"], on_full = "drop_oldest", headers = { Authorization = "Bearer x" }}, {name = "grpc", endpoint = "http://central:4317"}]"#,
        ),
    ])
    .unwrap();
    let f = c.forwarders().unwrap();
    assert_eq!(f.len(), 2);
    assert_eq!(f[0].forwarder.name, "central");
    assert_eq!(
        f[0].forwarder.signals,
        [crate::domain::telemetry::Signal::Logs]
    );
    assert_eq!(f[0].forwarder.on_full, crate::domain::OnFull::DropOldest);
    assert_eq!(
        f[0].exporter.headers,
        [("authorization".to_owned(), "Bearer x".to_owned())]
    );

    let err = |vars: &[(&str, &str)]| load(vars).unwrap_err().to_string();
    let e = err(&[("TELEMETRYFLOW_STORAGE_PERSIST", "false")]);
    assert!(e.contains("storage.persist"), "{e}");
    for (entry, key) in [
        (
            r#"{name = "a/b", endpoint = "http://c:4317"}"#,
            "forward[0].name",
        ),
        (
            r#"{name = "c", endpoint = "c:4317"}"#,
            "forward[0].endpoint",
        ),
        (
            r#"{name = "c", endpoint = "http://c:4317", protocol = "http/json"}"#,
            "forward[0].protocol",
        ),
        (
            r#"{name = "c", endpoint = "http://c:4317", compression = "lz4"}"#,
            "forward[0].compression",
        ),
        (
            r#"{name = "c", endpoint = "http://c:4317", signals = ["profiles"]}"#,
            "forward[0].signals",
        ),
        (
            r#"{name = "c", endpoint = "http://c:4317", on_full = "drop"}"#,
            "forward[0].on_full",
        ),
        (
            r#"{name = "c", endpoint = "http://c:4317", max_queue_bytes = 99999999999}"#,
            "forward[0].max_queue_bytes",
        ),
        (
            r#"{name = "c", endpoint = "http://c:4317", batch_age_ms = 0}"#,
            "forward[0].batch_age_ms",
        ),
        (
            r#"{name = "c", endpoint = "http://c:4317", headers = { "X-Tenant-ID" = "t" }}"#,
            "forward[0].headers",
        ),
        (
            r#"{name = "c", endpoint = "http://c:4317", retry_max_secs = 99999}"#,
            "forward[0].retry_max_secs",
        ),
        (
            r#"{name = "c", endpoint = "http://c:4317", tls_ca = "/etc/ca.pem"}"#,
            "forward[0].tls_ca",
        ),
    ] {
        let e = err(&[("TELEMETRYFLOW_FORWARD", &format!("[{entry}]"))]);
        assert!(e.contains(key), "{entry}: {e}");
    }
    let twice =
        r#"[{name = "c", endpoint = "http://c:4317"}, {name = "c", endpoint = "http://d:4317"}]"#;
    assert!(err(&[("TELEMETRYFLOW_FORWARD", twice)]).contains("used twice"));
}

/// `tls_ca` reaches the exporter; empty is none.
#[test]
fn a_forwarders_ca_is_a_path_for_https() {
    let load = |entry: &str| {
        Config::load(
            None,
            env(&[("TELEMETRYFLOW_FORWARD", &format!("[{entry}]"))]),
            &Overrides::default(),
        )
        .unwrap()
        .forwarders()
        .unwrap()
        .remove(0)
        .exporter
        .tls_ca
    };
    assert_eq!(
        load(r#"{name = "c", endpoint = "https://c:4317", tls_ca = "/etc/ca.pem"}"#),
        Some(PathBuf::from("/etc/ca.pem"))
    );
    assert_eq!(
        load(r#"{name = "c", endpoint = "http://c:4317", tls_ca = ""}"#),
        None
    );
}

/// `server.tls_cert` and `server.tls_key` both or neither, the client CA
/// only with them; the files' errors name their key.
#[test]
fn server_tls_keys_go_together_and_their_files_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = write("cert.pem", &made.cert.pem());
    let key = write("key.pem", &made.signing_key.serialize_pem());
    let other_key = write("other.pem", &other.signing_key.serialize_pem());
    let junk = write("junk.pem", "not PEM");
    let load = |vars: &[(&str, &str)]| Config::load(None, env(vars), &Overrides::default());

    for (vars, key_named) in [
        (
            vec![("TELEMETRYFLOW_SERVER_TLS_CERT", cert.as_str())],
            "server.tls_key",
        ),
        (
            vec![("TELEMETRYFLOW_SERVER_TLS_KEY", key.as_str())],
            "server.tls_cert",
        ),
        (
            vec![("TELEMETRYFLOW_SERVER_TLS_CLIENT_CA", cert.as_str())],
            "server.tls_client_ca",
        ),
    ] {
        let e = load(&vars).unwrap_err().to_string();
        assert!(e.contains(key_named), "{vars:?}: {e}");
    }
    let f = file(&format!("[server]\ntls_cert = {cert:?}"));
    let e = Config::load(Some(f.path()), env(&[]), &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("server.tls_key"), "{e}");

    let c = load(&[
        ("TELEMETRYFLOW_SERVER_TLS_CERT", &cert),
        ("TELEMETRYFLOW_SERVER_TLS_KEY", &key),
        ("TELEMETRYFLOW_SERVER_TLS_CLIENT_CA", &cert),
    ])
    .unwrap();
    assert_eq!(
        c.tls_files().unwrap(),
        Some(crate::infrastructure::tls::TlsFiles {
            cert: PathBuf::from(&cert),
            key: PathBuf::from(&key),
            client_ca: Some(PathBuf::from(&cert)),
        })
    );
    assert!(c.server_tls().unwrap().is_some());
    assert!(Config::default().server_tls().unwrap().is_none());

    for (cert, key, ca, key_named) in [
        (&junk, &key, None, "server.tls_cert"),
        (&cert, &junk, None, "server.tls_key"),
        (&cert, &other_key, None, "server.tls_key"),
        (&cert, &key, Some(&junk), "server.tls_client_ca"),
        (
            &cert,
            &key,
            Some(&dir.path().join("none.pem").display().to_string()),
            "server.tls_client_ca",
        ),
    ] {
        let mut c = Config::default();
        c.server.tls_cert = Some(PathBuf::from(cert));
        c.server.tls_key = Some(PathBuf::from(key));
        c.server.tls_client_ca = ca.map(PathBuf::from);
        let e = c.server_tls().unwrap_err().to_string();
        assert!(e.contains(key_named), "{cert} {key} {ca:?}: {e}");
    }
}

#[test]
fn the_documented_config_file_is_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/telemetryflow.toml");
    let c = Config::load(Some(&path), env(&[]), &Overrides::default()).unwrap();
    assert_eq!(c, Config::default());
}

#[test]
fn s3_urls_split_bucket_and_prefix() {
    let mut c = Config::default();
    c.storage.url = "s3://bucket/some/prefix".parse().unwrap();
    c.storage.s3.endpoint = "http://127.0.0.1:9000".into();
    match c.storage_location() {
        crate::infrastructure::storage::StorageLocation::S3 {
            bucket,
            prefix,
            endpoint,
            ..
        } => {
            assert_eq!(
                (bucket.as_str(), prefix.as_str()),
                ("bucket", "some/prefix")
            );
            assert_eq!(endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        }
        other => panic!("{other:?}"),
    }
}

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

/// Values of every typed kind, from a file: the error names the file, the
/// key and the line.
#[test]
fn bad_values_in_a_file_name_the_key_and_the_line() {
    for (text, key, why) in [
        (
            "[server]\nhttp_addr = \"nowhere\"",
            "server.http_addr",
            "HOST:PORT",
        ),
        (
            "[server]\nmax_request_bytes = 0",
            "server.max_request_bytes",
            "nonzero",
        ),
        (
            "[storage]\nurl = \"ftp://x\"",
            "storage.url",
            "s3://bucket/prefix",
        ),
        ("[storage]\nurl = \"s3://\"", "storage.url", "no bucket"),
        ("[wal]\nmax_bytes = 0", "wal.max_bytes", "nonzero"),
        (
            "[compaction]\nmin_files = 1",
            "compaction.min_files",
            "at least 2",
        ),
        (
            "[compaction]\nmax_cpu_share = 1.5",
            "compaction.max_cpu_share",
            "(0, 1]",
        ),
        ("[log]\nformat = \"xml\"", "log.format", "`text`"),
        (
            "[retention]\ndefault = \"7x\"",
            "retention.default",
            "units are",
        ),
        (
            "[retention.tables]\notel_lgs = \"7d\"",
            "retention.tables.otel_lgs",
            "otel_logs",
        ),
        (
            "[retention.tenants.\"a b\"]\ndefault = \"7d\"",
            "retention.tenants.a b",
            "tenant id",
        ),
        (
            "[retention.tenants.acme]\notel_logs = \"soon\"",
            "retention.tenants.acme.otel_logs",
            "soon",
        ),
        (
            "[[forward]]\nname = \"c\"\nendpoint = \"http://c:4317\"\non_full = \"drop\"",
            "forward[0].on_full",
            "`drop_oldest`",
        ),
    ] {
        let f = file(text);
        let e = Config::load(Some(f.path()), env(&[]), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains(&f.path().display().to_string()), "{e}");
        assert!(e.contains(&format!("{key}:")), "{text}: {e}");
        assert!(e.contains(why), "{text}: {e}");
        assert!(e.contains("line "), "{text}: {e}");
    }
}

/// A bad value from the environment or a flag names the variable or flag.
#[test]
fn bad_values_name_their_variable_or_flag() {
    let err = |vars: &[(&str, &str)], o: &Overrides| {
        Config::load(None, env(vars), o).unwrap_err().to_string()
    };
    let e = err(
        &[("TELEMETRYFLOW_QUERY_TIMEOUT_SECS", "0")],
        &Overrides::default(),
    );
    assert!(
        e.contains("query.timeout_secs (from TELEMETRYFLOW_QUERY_TIMEOUT_SECS)"),
        "{e}"
    );
    let o = Overrides {
        storage_url: Some("bucket".into()),
        ..Default::default()
    };
    let e = err(&[], &o);
    assert!(e.contains("storage.url (from --storage-url)"), "{e}");
    let forward = r#"[{name = "c", endpoint = "http://c:4317", protocol = "http/json"}]"#;
    let e = err(&[("TELEMETRYFLOW_FORWARD", forward)], &Overrides::default());
    assert!(
        e.contains("forward[0].protocol (from TELEMETRYFLOW_FORWARD)"),
        "{e}"
    );
}

/// What the typed settings write is what they read (the layering merges
/// the defaults' TOML form with the file's).
#[test]
fn typed_settings_read_back_what_they_write() {
    let f = file(
        r#"
[storage]
url = "file:///var/lib/tf"
[retention]
default = "1w2d"
[retention.tables]
otel_logs = "36h"
[retention.tenants.acme]
default = "0"
otel_traces = "90m"
[log]
format = "json"
[[forward]]
name = "central"
endpoint = "https://central:4318"
protocol = "http/protobuf"
compression = "zstd"
signals = ["logs", "traces"]
on_full = "drop_oldest"
"#,
    );
    let c = Config::load(Some(f.path()), env(&[]), &Overrides::default()).unwrap();
    assert_eq!(c.log.format, LogFormat::Json);
    assert_eq!(
        c.storage_location(),
        crate::infrastructure::storage::StorageLocation::Local(PathBuf::from("/var/lib/tf"))
    );
    use crate::domain::Table;
    let rules = c.retention_rules();
    let acme = crate::domain::TenantId::parse("acme").unwrap();
    assert_eq!(rules.period(&acme, Table::LOGS).to_string(), "forever");
    assert_eq!(rules.period(&acme, Table::TRACES).to_string(), "90m");
    let other = crate::domain::TenantId::parse("other").unwrap();
    assert_eq!(rules.period(&other, Table::LOGS).to_string(), "36h");
    assert_eq!(rules.period(&other, Table::TRACES).to_string(), "9d");
    let text = toml::to_string(&c).unwrap();
    let again: Config = toml::from_str(&text).unwrap();
    assert_eq!(again, c, "{text}");
}

/// The client commands' key shares the prefix but is no setting: a shell
/// that exports it still loads its configuration.
#[test]
fn the_api_key_variable_is_not_a_setting() {
    let config = Config::load(
        None,
        env(&[
            ("TELEMETRYFLOW_API_KEY", "tf_0123456789abcdef_x"),
            ("TELEMETRYFLOW_AUTH_MODE", "api_key"),
        ]),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(config.auth.mode, crate::config::AuthMode::ApiKey);
    let err = Config::load(
        None,
        env(&[("TELEMETRYFLOW_API_KEYS", "x")]),
        &Overrides::default(),
    )
    .unwrap_err();
    assert!(matches!(err, ConfigError::UnknownEnv { .. }), "{err}");
}
