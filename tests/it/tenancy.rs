//! A tenant never sees another tenant's data.

use datafusion::assert_batches_sorted_eq;
use prost::Message;

use crate::fixtures::*;
use crate::otlp_http::post;
use crate::support::{TestServer, parquet_files};

#[tokio::test]
async fn tenants_are_isolated_in_queries_and_storage() {
    let mut s = TestServer::start().await;
    for (tenant, name) in [("acme", "acme-span"), ("globex", "globex-span")] {
        let req = traces(tenant, vec![span(1, 1, name, T0)]);
        let r = post(
            &format!("{}/v1/traces", s.http),
            "application/x-protobuf",
            None,
            req.encode_to_vec(),
            Some(tenant),
        )
        .await;
        assert_eq!(r.status, 200);
    }
    check(&s).await;
    // After a flush to Parquet the same holds, and files live under the tenant's prefix.
    s.flush().await;
    check(&s).await;
    let files = parquet_files(&s.parquet_dir());
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(
        files
            .iter()
            .any(|f| f.starts_with(s.parquet_dir().join("acme/otel_traces")))
    );
    assert!(
        files
            .iter()
            .any(|f| f.starts_with(s.parquet_dir().join("globex/otel_traces")))
    );
    s.shutdown().await;
}

async fn check(s: &TestServer) {
    for (tenant, name) in [("acme", "acme-span"), ("globex", "globex-span")] {
        let b = s.sql_as(tenant, "SELECT span_name FROM otel_traces").await;
        let w = name.len().max("span_name".len());
        let line = format!("+{}+", "-".repeat(w + 2));
        let header = format!("| {:<w$} |", "span_name");
        let row = format!("| {name:<w$} |");
        assert_batches_sorted_eq!(
            [
                line.as_str(),
                header.as_str(),
                line.as_str(),
                row.as_str(),
                line.as_str()
            ],
            &b
        );
    }
    // The default tenant has nothing, and no SQL reaches other tenants.
    s.wait_for_count("SELECT count(*) FROM otel_traces", 0)
        .await;
    let (status, _) = s
        .sql_raw("acme", "SELECT * FROM globex.otel_traces", "json")
        .await;
    assert_eq!(status, 400);
}
