//! Runs a SQL query against a running TelemetryFlow server and prints the rows.
//!
//! ```sh
//! cargo run --example query -- "SELECT service_name, count(*) FROM otel_traces GROUP BY 1"
//! cargo run --example query -- --server http://127.0.0.1:14318 --tenant acme "SELECT ..."
//! ```
//!
//! `POST {server}/api/v2/sql` with `{"sql": "..."}` and the `x-tenant-id`
//! header; the answer is `{"columns": [{"name", "type"}], "rows": [[...]]}`.
//! Each row is printed as one JSON object (column name → value).

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use serde_json::{Map, Value, json};

#[derive(Debug, Parser)]
#[command(about = "POST a SQL query to a TelemetryFlow server and print the JSON rows")]
struct Args {
    /// The SQL query, e.g. "SELECT count(*) FROM otel_logs".
    sql: String,
    /// Base URL of the server's HTTP API.
    #[arg(long, default_value = "http://127.0.0.1:4318")]
    server: String,
    /// Tenant whose tables are queried (`x-tenant-id` header).
    #[arg(long, default_value = "default")]
    tenant: String,
    /// Workspace (`x-workspace-id` header); omitted when not given.
    #[arg(long)]
    workspace: Option<String>,
    /// Print the raw response body instead of one object per row.
    #[arg(long)]
    raw: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let url = format!("{}/api/v2/sql", args.server.trim_end_matches('/'));
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let mut req = client
        .post(&url)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .header("x-tenant-id", &args.tenant)
        .body(json!({ "sql": args.sql }).to_string());
    if let Some(ws) = &args.workspace {
        req = req.header("x-workspace-id", ws);
    }
    let resp = req.send().map_err(|e| format!("POST {url}: {e}"))?;
    let status = resp.status();
    let body = resp.text()?;
    if !status.is_success() {
        let msg = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or(body);
        return Err(format!("{status}: {msg}").into());
    }
    if args.raw {
        println!("{body}");
        return Ok(());
    }
    let v: Value = serde_json::from_str(&body)?;
    let names: Vec<&str> = v["columns"]
        .as_array()
        .map(|cols| cols.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    let rows = v["rows"].as_array().map(Vec::as_slice).unwrap_or_default();
    for row in rows {
        let obj: Map<String, Value> = names
            .iter()
            .zip(row.as_array().map(Vec::as_slice).unwrap_or_default())
            .map(|(n, v)| ((*n).to_owned(), v.clone()))
            .collect();
        println!("{}", Value::Object(obj));
    }
    eprintln!(
        "({} row{})",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    );
    Ok(())
}
