//! The fuzz targets' seed corpora under `fuzz/seeds/`, generated here and
//! committed: [`Synth`]'s realistic requests and [`every_field`]'s, as
//! OTLP/JSON and as protobuf, plus the protobuf form of every shared fixture
//! under `testdata/otlp-json/` (the fuzzers read that folder as a corpus
//! too); and whole OTLP/HTTP requests for the `http_router` target (see
//! [`http_router`]). The test fails when a committed seed is stale or missing;
//! `TF_UPDATE_SEEDS=1 cargo test -p tf-otlp fuzz_seeds` rewrites them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use prost::Message as _;

use super::{Synth, every_field};
use crate::json;

const START: u64 = 1_700_000_000_000_000_000;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The signal a fixture's file name announces.
fn signal_of(name: &str) -> Option<&'static str> {
    ["traces", "metrics", "logs"]
        .into_iter()
        .find(|s| name.contains(s))
}

/// Every seed file, by path relative to `fuzz/seeds/`.
fn expected() -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut put = |name: String, bytes: Vec<u8>| {
        out.insert(name, bytes);
    };
    let mut synth = Synth::new(1, START);
    let traces = synth.traces(16);
    let metrics = synth.metrics(16);
    let logs = synth.logs(16);
    put(
        "otlp_json/synth_traces.json".into(),
        json::encode_traces(&traces),
    );
    put(
        "otlp_json/synth_metrics.json".into(),
        json::encode_metrics(&metrics),
    );
    put("otlp_json/synth_logs.json".into(), json::encode_logs(&logs));
    put("otlp_proto/synth_traces.pb".into(), traces.encode_to_vec());
    put(
        "otlp_proto/synth_metrics.pb".into(),
        metrics.encode_to_vec(),
    );
    put("otlp_proto/synth_logs.pb".into(), logs.encode_to_vec());

    let (traces, metrics, logs) = (
        every_field::traces(1),
        every_field::metrics(1),
        every_field::logs(1),
    );
    put(
        "otlp_json/every_field_traces.json".into(),
        json::encode_traces(&traces),
    );
    put(
        "otlp_json/every_field_metrics.json".into(),
        json::encode_metrics(&metrics),
    );
    put(
        "otlp_json/every_field_logs.json".into(),
        json::encode_logs(&logs),
    );
    put(
        "otlp_proto/every_field_traces.pb".into(),
        traces.encode_to_vec(),
    );
    put(
        "otlp_proto/every_field_metrics.pb".into(),
        metrics.encode_to_vec(),
    );
    put(
        "otlp_proto/every_field_logs.pb".into(),
        logs.encode_to_vec(),
    );

    // Ids of the wrong length: a whole-body 400 in OTLP/JSON (the fixture),
    // per-span rejections in protobuf.
    let mut bad = Synth::new(2, START).traces(8);
    let spans = &mut bad.resource_spans[0].scope_spans[0].spans;
    spans[0].trace_id.truncate(3);
    spans[1].span_id.push(7);
    spans[2].parent_span_id = vec![1; 7];
    put(
        "otlp_proto/bad_id_lengths_traces.pb".into(),
        bad.encode_to_vec(),
    );

    for (name, body) in fixtures() {
        let stem = name.trim_end_matches(".json");
        let pb = match signal_of(&name) {
            Some("traces") => json::decode_traces(&body).map(|r| r.encode_to_vec()),
            Some("metrics") => json::decode_metrics(&body).map(|r| r.encode_to_vec()),
            Some(_) => json::decode_logs(&body).map(|r| r.encode_to_vec()),
            None => continue,
        };
        if let Ok(pb) = pb {
            put(format!("otlp_proto/{stem}.pb"), pb);
        }
    }
    for (name, bytes) in http_router() {
        put(format!("http_router/{name}"), bytes);
    }
    out
}

/// Seeds of the `http_router` target: the six selector bytes its input
/// starts with (method, path, `Content-Type`, `Content-Encoding`,
/// `Content-Length`, flags; `fuzz/fuzz_targets/http_router.rs` documents
/// them), the raw header values they select, then the body.
fn http_router() -> Vec<(String, Vec<u8>)> {
    use std::io::Write as _;

    const POST: u8 = 0;
    const GET: u8 = 4;
    const PROTOBUF: u8 = 0;
    const JSON: u8 = 1;
    const RAW: u8 = 7;
    const GZIP: u8 = 2;
    const ZSTD: u8 = 3;
    const DEFLATE: u8 = 4;
    /// The harness compresses the body with the selected encoding.
    const COMPRESS: u8 = 8;
    const TRUE_LENGTH: u8 = 1;
    const BIG_LENGTH: u8 = 3;
    const HEADERS: u8 = 1 | 2 | 4;
    let answer = |a: u8| a << 3;
    let (duplicate, overloaded, not_ready) = (answer(3), answer(4), answer(5));

    let gzip = |b: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b).expect("gzip to memory");
        e.finish().expect("gzip to memory")
    };
    let zstd = |b: &[u8]| zstd::encode_all(b, 3).expect("zstd to memory");
    let seed = |head: [u8; 6], extra: &[&[u8]], body: &[u8]| {
        let mut v = head.to_vec();
        for raw in extra {
            v.push(raw.len() as u8);
            v.extend_from_slice(raw);
        }
        v.extend_from_slice(body);
        v
    };

    let mut out = Vec::new();
    let spec: BTreeMap<String, Vec<u8>> = fixtures()
        .into_iter()
        .filter(|(name, _)| name.starts_with("spec_"))
        .collect();
    for (path, signal) in [(0u8, "traces"), (2, "metrics"), (4, "logs")] {
        let json_body = spec[&format!("spec_{signal}.json")].clone();
        let proto = match signal {
            "traces" => json::decode_traces(&json_body).map(|r| r.encode_to_vec()),
            "metrics" => json::decode_metrics(&json_body).map(|r| r.encode_to_vec()),
            _ => json::decode_logs(&json_body).map(|r| r.encode_to_vec()),
        }
        .expect("the specification's example decodes");
        let mut put = |name: &str, bytes: Vec<u8>| out.push((format!("{signal}_{name}"), bytes));
        let head = |ct, enc, len, flags| [POST, path, ct, enc, len, flags];
        put(
            "proto",
            seed(head(PROTOBUF, 0, TRUE_LENGTH, 0), &[], &proto),
        );
        put("json", seed(head(JSON, 0, TRUE_LENGTH, 0), &[], &json_body));
        put(
            "proto_gzip",
            seed(head(PROTOBUF, GZIP, 0, 0), &[], &gzip(&proto)),
        );
        put(
            "json_zstd",
            seed(head(JSON, ZSTD, TRUE_LENGTH, 0), &[], &zstd(&json_body)),
        );
        put(
            "proto_deflate_by_harness",
            seed(head(PROTOBUF, DEFLATE | COMPRESS, 0, 0), &[], &proto),
        );
        put(
            "json_gzip_by_harness",
            seed(head(JSON, GZIP | COMPRESS, 0, 0), &[], &json_body),
        );
        put(
            "proto_zstd_by_harness",
            seed(head(PROTOBUF, ZSTD | COMPRESS, 0, 0), &[], &proto),
        );
        put(
            "proto_forwarded_duplicate",
            seed(
                head(PROTOBUF, 0, 0, HEADERS | duplicate),
                &[b"acme", b"prod", b"node-a/1-5"],
                &proto,
            ),
        );
        put(
            "json_overloaded",
            seed(head(JSON, 0, 0, overloaded), &[], &json_body),
        );
        put(
            "proto_not_ready",
            seed(head(PROTOBUF, 0, 0, not_ready), &[], &proto),
        );
        let mut big = head(JSON, 0, BIG_LENGTH, 0).to_vec();
        big.extend_from_slice(&u64::MAX.to_be_bytes());
        big.extend_from_slice(&json_body);
        put("json_big_length", big);
        put(
            "raw_content_type",
            seed(
                head(RAW, 0, 0, HEADERS),
                &[
                    b"application/x-protobuf; charset=\xff",
                    b"",
                    b"tenant-\xc3\xa9",
                    b"/1-",
                ],
                &proto,
            ),
        );
    }
    out.push((
        "get_traces".into(),
        seed([GET, 0, PROTOBUF, 0, 0, 0], &[], b""),
    ));
    out.push((
        "junk_path".into(),
        seed([POST, 12, JSON, 0, 0, 0], &[], b"{}"),
    ));
    out
}

/// The shared OTLP/JSON fixtures, by file name.
pub(crate) fn fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = repo().join("testdata/otlp-json");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

fn committed(seeds: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for dir in ["otlp_json", "otlp_proto", "http_router"] {
        for e in std::fs::read_dir(seeds.join(dir)).into_iter().flatten() {
            let p = e.unwrap().path();
            let name = format!("{dir}/{}", p.file_name().unwrap().to_string_lossy());
            out.insert(name, std::fs::read(&p).unwrap());
        }
    }
    out
}

#[test]
fn fuzz_seeds_are_current() {
    let seeds = repo().join("fuzz/seeds");
    let want = expected();
    let have = committed(&seeds);
    if std::env::var_os("TF_UPDATE_SEEDS").is_some() {
        for name in have.keys().filter(|n| !want.contains_key(*n)) {
            std::fs::remove_file(seeds.join(name)).unwrap();
        }
        for (name, bytes) in &want {
            let path = seeds.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        return;
    }
    let stale: Vec<_> = want
        .keys()
        .chain(have.keys())
        .filter(|n| want.get(*n) != have.get(*n))
        .collect();
    assert!(
        stale.is_empty(),
        "fuzz/seeds is stale ({stale:?}); run `TF_UPDATE_SEEDS=1 cargo test -p tf-otlp fuzz_seeds` and commit"
    );
}
