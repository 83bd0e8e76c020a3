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
    assert_eq!(c.server.grpc_addr, "127.0.0.1:4317");
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
    assert_eq!(c.server.grpc_addr, "127.0.0.1:1111"); // file
    assert_eq!(c.server.http_addr, "127.0.0.1:4444"); // flag over env over file
    assert_eq!(c.buffer.flush_rows, 7); // env over file
    assert_eq!(
        c.server.cors_allowed_origins,
        ["https://a.example", "https://b.example"]
    );
    let c = Config::load(Some(f.path()), e, &Overrides::default()).unwrap();
    assert_eq!(c.server.http_addr, "127.0.0.1:3333");
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
    ] {
        let e = err(&[("TELEMETRYFLOW_FORWARD", &format!("[{entry}]"))]);
        assert!(e.contains(key), "{entry}: {e}");
    }
    let twice =
        r#"[{name = "c", endpoint = "http://c:4317"}, {name = "c", endpoint = "http://d:4317"}]"#;
    assert!(err(&[("TELEMETRYFLOW_FORWARD", twice)]).contains("used twice"));
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
    c.storage.url = "s3://bucket/some/prefix".into();
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
