//! OTLP/gRPC with tonic clients: all three services, gzip and zstd, tenant metadata.

use datafusion::assert_batches_sorted_eq;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value;
use tonic::codec::CompressionEncoding;

use crate::fixtures::*;
use crate::support::TestServer;

fn with_tenant<T>(msg: T, tenant: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut()
        .insert("x-tenant-id", tenant.parse().unwrap());
    req.metadata_mut()
        .insert("x-workspace-id", "ws-1".parse().unwrap());
    req
}

#[tokio::test]
async fn all_signals_over_grpc_with_compression() {
    let s = TestServer::start().await;
    let mut traces_client = TraceServiceClient::connect(s.grpc.clone())
        .await
        .unwrap()
        .send_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Gzip);
    let resp = traces_client
        .export(with_tenant(
            traces(
                "cart",
                vec![span(1, 1, "add", T0), span(1, 2, "pay", T0 + SEC)],
            ),
            "acme",
        ))
        .await
        .unwrap();
    assert_eq!(resp.get_ref().partial_success, None);

    let mut metrics_client = MetricsServiceClient::connect(s.grpc.clone())
        .await
        .unwrap()
        .send_compressed(CompressionEncoding::Zstd);
    metrics_client
        .export(with_tenant(
            metrics(
                "cart",
                vec![gauge(
                    "queue.depth",
                    vec![number_point(T0, 0, Value::AsInt(3), vec![])],
                )],
            ),
            "acme",
        ))
        .await
        .unwrap();

    let mut logs_client = LogsServiceClient::connect(s.grpc.clone()).await.unwrap();
    logs_client
        .export(with_tenant(
            logs("cart", vec![log(T0, 17, "payment failed")]),
            "acme",
        ))
        .await
        .unwrap();

    let b = s
        .sql_as(
            "acme",
            "SELECT 'span' AS kind, span_name AS name, workspace_id FROM otel_traces \
             UNION ALL SELECT 'metric', metric_name, workspace_id FROM otel_metrics_gauge \
             UNION ALL SELECT 'log', body, workspace_id FROM otel_logs",
        )
        .await;
    assert_batches_sorted_eq!(
        [
            "+--------+----------------+--------------+",
            "| kind   | name           | workspace_id |",
            "+--------+----------------+--------------+",
            "| log    | payment failed | ws-1         |",
            "| metric | queue.depth    | ws-1         |",
            "| span   | add            | ws-1         |",
            "| span   | pay            | ws-1         |",
            "+--------+----------------+--------------+",
        ],
        &b
    );
}
