//! The on-disk record format of the write-ahead log.
//!
//! ```text
//! record  := len:u32le crc:u32le seq:u64le payload[len]
//! crc     := crc32(seq:u64le ++ payload)
//! payload := version:u8 tenant_len:u16le tenant n:u16le { table:u8 ipc_len:u32le ipc }* origin
//! origin  := ""                                   (version 1: rows received directly)
//!          | node_len:u16le node workspace_len:u16le workspace signal:u8 first:u64le last:u64le
//!                                                 (version 2: rows another node forwarded)
//! ```
//! `ipc` is one Arrow IPC stream (schema + one record batch). A record is
//! applied only if it is complete and its checksum matches; reading stops at
//! the first record that is not (a torn tail after a crash).

use std::io::Cursor;

use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;

use tf_application::TableBatch;
use tf_application::ports::{Origin, WalRecord};
use tf_domain::Table;
use tf_domain::telemetry::Signal;
use tf_domain::{NodeId, Principal, SourceBatch, TenantId, WorkspaceId};
use tf_schema::evolution::conform;
use tf_schema::table_schema;

pub const HEADER_LEN: usize = 16;
const VERSION: u8 = 1;
const VERSION_WITH_ORIGIN: u8 = 2;
/// Upper bound for one record (a request is at most 64 MiB decompressed by
/// default; its Arrow form is of the same order).
pub const MAX_RECORD_LEN: usize = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("encoding the WAL record: {0}")]
    Encode(#[source] arrow::error::ArrowError),
    #[error("WAL record payload is malformed: {0}")]
    Malformed(String),
    /// Well-formed, but this build cannot take its rows: a table it does
    /// not declare, or a column whose type changed. Skipping the record
    /// would drop acknowledged rows, so the log does not open.
    #[error("WAL record holds rows this build cannot read: {0}")]
    Incompatible(String),
}

pub type Result<T, E = RecordError> = std::result::Result<T, E>;

fn signal_code(s: Signal) -> u8 {
    match s {
        Signal::Traces => 0,
        Signal::Metrics => 1,
        Signal::Logs => 2,
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// The code of a declared table, whose name follows it.
const DECLARED_TABLE: u8 = u8::MAX;

fn put_table(out: &mut Vec<u8>, t: Table) {
    match t.otlp_code() {
        Some(code) => out.push(code),
        None => {
            out.push(DECLARED_TABLE);
            put_str(out, t.name());
        }
    }
}

/// Encodes a record's payload (everything after the header): the accepted
/// rows of one request, and where they were forwarded from.
pub fn encode_payload(
    tenant: &TenantId,
    batches: &[TableBatch],
    origin: Option<&Origin>,
) -> Result<Vec<u8>> {
    let tenant = tenant.as_str().as_bytes();
    let approx: usize = batches
        .iter()
        .map(|b| b.batch.get_array_memory_size())
        .sum();
    let mut out = Vec::with_capacity(approx / 2 + 64);
    out.push(if origin.is_some() {
        VERSION_WITH_ORIGIN
    } else {
        VERSION
    });
    out.extend_from_slice(&(tenant.len() as u16).to_le_bytes());
    out.extend_from_slice(tenant);
    out.extend_from_slice(&(batches.len() as u16).to_le_bytes());
    for b in batches {
        put_table(&mut out, b.table);
        let len_at = out.len();
        out.extend_from_slice(&[0; 4]);
        {
            let mut w =
                StreamWriter::try_new(&mut out, &b.batch.schema()).map_err(RecordError::Encode)?;
            w.write(&b.batch).map_err(RecordError::Encode)?;
            w.finish().map_err(RecordError::Encode)?;
        }
        let ipc_len = (out.len() - len_at - 4) as u32;
        out[len_at..len_at + 4].copy_from_slice(&ipc_len.to_le_bytes());
    }
    if let Some(o) = origin {
        put_str(&mut out, o.batch.node().as_str());
        put_str(&mut out, o.workspace.as_str());
        out.push(signal_code(o.signal));
        out.extend_from_slice(&o.batch.first().to_le_bytes());
        out.extend_from_slice(&o.batch.last().to_le_bytes());
        // Last, so that records written before relays were named decode
        // with none.
        if let Some(relay) = o.batch.relay() {
            put_str(&mut out, relay.as_str());
        }
    }
    Ok(out)
}

fn u64le(buf: &mut &[u8]) -> Result<u64> {
    let b = take(buf, 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Ok(u64::from_le_bytes(a))
}

fn get_str<'a>(buf: &mut &'a [u8]) -> Result<&'a str> {
    let len = u16le(buf)? as usize;
    std::str::from_utf8(take(buf, len)?).map_err(|e| RecordError::Malformed(e.to_string()))
}

fn decode_origin(buf: &mut &[u8]) -> Result<Origin> {
    let bad = |e: &dyn std::fmt::Display| RecordError::Malformed(format!("origin: {e}"));
    let node = NodeId::parse(get_str(buf)?).map_err(|e| bad(&e))?;
    let workspace = WorkspaceId::parse(get_str(buf)?).map_err(|e| bad(&e))?;
    let signal = match take(buf, 1)?[0] {
        0 => Signal::Traces,
        1 => Signal::Metrics,
        2 => Signal::Logs,
        other => return Err(bad(&format!("unknown signal code {other}"))),
    };
    let (first, last) = (u64le(buf)?, u64le(buf)?);
    let relay = if buf.is_empty() {
        None
    } else {
        Some(Principal::parse(get_str(buf)?).map_err(|e| bad(&e))?)
    };
    let batch = SourceBatch::new(node, first, last)
        .map_err(|e| bad(&e))?
        .relayed_by(relay);
    Ok(Origin {
        batch,
        workspace,
        signal,
    })
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
    if buf.len() < n {
        return Err(RecordError::Malformed(format!(
            "needs {n} more bytes, has {}",
            buf.len()
        )));
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

fn u16le(buf: &mut &[u8]) -> Result<u16> {
    let b = take(buf, 2)?;
    Ok(u16::from_le_bytes([b[0], b[1]]))
}

fn u32le(buf: &mut &[u8]) -> Result<u32> {
    let b = take(buf, 4)?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Decodes the payload of record `seq`, written by [`encode_payload`].
pub fn decode_payload(seq: u64, mut buf: &[u8]) -> Result<WalRecord> {
    let version = take(&mut buf, 1)?[0];
    if version != VERSION && version != VERSION_WITH_ORIGIN {
        return Err(RecordError::Malformed(format!("unknown version {version}")));
    }
    let tlen = u16le(&mut buf)? as usize;
    let tenant = std::str::from_utf8(take(&mut buf, tlen)?)
        .map_err(|e| RecordError::Malformed(e.to_string()))?;
    let tenant = TenantId::parse(tenant).map_err(|e| RecordError::Malformed(e.to_string()))?;
    let n = u16le(&mut buf)? as usize;
    let mut batches = Vec::with_capacity(n.min(16));
    for _ in 0..n {
        let code = take(&mut buf, 1)?[0];
        let table = if code == DECLARED_TABLE {
            let name = get_str(&mut buf)?;
            Table::from_name(name).ok_or_else(|| {
                RecordError::Incompatible(format!("table {name:?} is not declared"))
            })?
        } else {
            Table::from_otlp_code(code)
                .ok_or_else(|| RecordError::Malformed(format!("unknown table code {code}")))?
        };
        let len = u32le(&mut buf)? as usize;
        let ipc = take(&mut buf, len)?;
        let reader = StreamReader::try_new(Cursor::new(ipc), None)
            .map_err(|e| RecordError::Malformed(e.to_string()))?;
        for batch in reader {
            let batch: RecordBatch = batch.map_err(|e| RecordError::Malformed(e.to_string()))?;
            // A record written before the table gained a column reads with
            // it null, as files of that time do.
            let batch = conform(&batch, &table_schema(table))
                .map_err(|e| RecordError::Incompatible(format!("{table}: {e}")))?;
            batches.push(TableBatch { table, batch });
        }
    }
    let origin = if version == VERSION_WITH_ORIGIN {
        Some(decode_origin(&mut buf)?)
    } else {
        None
    };
    if !buf.is_empty() {
        return Err(RecordError::Malformed(format!(
            "{} trailing bytes",
            buf.len()
        )));
    }
    Ok(WalRecord {
        seq,
        tenant,
        batches,
        origin,
        otlp: None,
    })
}

/// CRC of `seq ++ payload`, with the payload's CRC computed earlier.
pub fn record_crc(seq: u64, payload_crc: &crc32fast::Hasher) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&seq.to_le_bytes());
    h.combine(payload_crc);
    h.finalize()
}

/// Appends a complete record to `out`.
pub fn write_record(out: &mut Vec<u8>, seq: u64, payload: &[u8], payload_crc: &crc32fast::Hasher) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&record_crc(seq, payload_crc).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
}

/// A record's header: payload length, CRC, sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub len: usize,
    pub crc: u32,
    pub seq: u64,
}

impl Header {
    /// The header at the start of `data`; `None` when it is shorter.
    pub fn parse(data: &[u8]) -> Option<Self> {
        let h: &[u8; HEADER_LEN] = data.get(..HEADER_LEN)?.try_into().ok()?;
        let [l0, l1, l2, l3, c0, c1, c2, c3, s @ ..] = *h;
        Some(Self {
            len: u32::from_le_bytes([l0, l1, l2, l3]) as usize,
            crc: u32::from_le_bytes([c0, c1, c2, c3]),
            seq: u64::from_le_bytes(s),
        })
    }

    /// Whether `payload` is what a record with this `crc` and `seq` holds.
    pub fn checks(crc: u32, seq: u64, payload: &[u8]) -> bool {
        let mut h = crc32fast::Hasher::new();
        h.update(payload);
        record_crc(seq, &h) == crc
    }
}

/// One record read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRecord<'a> {
    pub seq: u64,
    pub payload: &'a [u8],
}

/// Why reading a segment stopped before its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tail {
    /// Every byte belonged to a complete, valid record.
    Clean,
    /// An incomplete record at `offset` (a torn write).
    Torn { offset: usize },
    /// A complete record whose checksum or length is wrong at `offset`.
    Corrupt { offset: usize },
}

/// Reads the valid records of a segment, in order, stopping at the first
/// torn or corrupt one. Never panics, whatever the bytes.
pub fn read_records(data: &[u8]) -> (Vec<RawRecord<'_>>, Tail) {
    let mut out = Vec::new();
    let mut off = 0usize;
    while off < data.len() {
        let rest = &data[off..];
        let Some(Header { len, crc, seq }) = Header::parse(rest) else {
            return (out, Tail::Torn { offset: off });
        };
        if len > MAX_RECORD_LEN {
            return (out, Tail::Corrupt { offset: off });
        }
        if rest.len() < HEADER_LEN + len {
            return (out, Tail::Torn { offset: off });
        }
        let payload = &rest[HEADER_LEN..HEADER_LEN + len];
        if !Header::checks(crc, seq, payload) {
            return (out, Tail::Corrupt { offset: off });
        }
        out.push(RawRecord { seq, payload });
        off += HEADER_LEN + len;
    }
    (out, Tail::Clean)
}

/// A declared table the WAL's tests write.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray, TimestampNanosecondArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;
    use tf_domain::Table;

    /// `wal_test`: (timestamp, a, s).
    pub(crate) fn table() -> Table {
        let schema = Arc::new(Schema::new(vec![
            Field::new(Table::TIMESTAMP_COLUMN, tf_schema::ts_type(), false),
            Field::new("a", DataType::Int64, false),
            Field::new("s", DataType::Utf8, false),
        ]));
        tf_schema::declare_table("wal_test", schema, &["timestamp"]).expect("declared")
    }

    /// `len` rows of `wal_test`, `a` counting up from `n`.
    pub(crate) fn rows(n: i64, len: i64) -> RecordBatch {
        RecordBatch::try_new(
            tf_schema::table_schema(table()),
            vec![
                Arc::new(
                    TimestampNanosecondArray::from_iter_values(n..n + len).with_timezone("UTC"),
                ),
                Arc::new(Int64Array::from_iter_values(n..n + len)),
                Arc::new(StringArray::from_iter_values(
                    (0..len).map(|i| format!("x{i}")),
                )),
            ],
        )
        .expect("rows")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn rows_a_build_cannot_read_fail_the_record_instead_of_being_dropped() {
        let table = testing::table();
        // A column the table does not have.
        let alien = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("b", DataType::Int64, false)])),
            vec![Arc::new(Int64Array::from(vec![1]))],
        )
        .unwrap();
        let tenant = TenantId::parse("acme").unwrap();
        let rows = [TableBatch {
            table,
            batch: alien,
        }];
        let p = encode_payload(&tenant, &rows, None).unwrap();
        let e = decode_payload(1, &p).unwrap_err();
        assert!(matches!(e, RecordError::Incompatible(_)), "{e}");
        // A table this build does not declare.
        let mut p = encode_payload(
            &tenant,
            &[TableBatch {
                table,
                batch: testing::rows(0, 1),
            }],
            None,
        )
        .unwrap();
        let at = p.windows(8).position(|w| w == b"wal_test").unwrap();
        p[at..at + 8].copy_from_slice(b"wal_gone");
        let e = decode_payload(1, &p).unwrap_err();
        assert!(
            e.to_string().contains("\"wal_gone\" is not declared"),
            "{e}"
        );
    }

    fn entry(n: i64) -> WalRecord {
        WalRecord {
            seq: n as u64,
            tenant: TenantId::parse("acme").unwrap(),
            batches: vec![
                TableBatch {
                    table: testing::table(),
                    batch: testing::rows(n, 2),
                },
                TableBatch {
                    table: testing::table(),
                    batch: testing::rows(n + 10, 3),
                },
            ],
            // Every other record was forwarded by another node.
            origin: (n % 2 == 0).then(|| Origin {
                batch: SourceBatch::new(NodeId::parse("edge-7").unwrap(), n as u64, n as u64 + 9)
                    .unwrap(),
                workspace: WorkspaceId::parse("shop").unwrap(),
                signal: Signal::Metrics,
            }),
            otlp: None,
        }
    }

    fn log_of(n: u64) -> Vec<u8> {
        let mut out = Vec::new();
        for seq in 1..=n {
            let e = entry(seq as i64);
            let p = encode_payload(&e.tenant, &e.batches, e.origin.as_ref()).unwrap();
            let mut h = crc32fast::Hasher::new();
            h.update(&p);
            write_record(&mut out, seq, &p, &h);
        }
        out
    }

    #[test]
    fn records_round_trip() {
        let data = log_of(3);
        let (recs, tail) = read_records(&data);
        assert_eq!(tail, Tail::Clean);
        assert_eq!(recs.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
        let e = decode_payload(recs[1].seq, recs[1].payload).unwrap();
        assert_eq!(e.tenant.as_str(), "acme");
        assert_eq!(e.batches.len(), 2);
        assert_eq!(e.batches[1].table, testing::table());
        assert_eq!(e.batches[0].batch, entry(2).batches[0].batch);
        assert_eq!(e.origin, entry(2).origin);
        assert!(e.origin.is_some());
        let e = decode_payload(recs[2].seq, recs[2].payload).unwrap();
        assert_eq!(e.origin, None);
    }

    /// Property: truncating the log at any byte yields exactly the records
    /// wholly before the cut, and reports a torn tail unless the cut falls
    /// on a record boundary.
    #[test]
    fn every_truncation_yields_a_clean_prefix() {
        let data = log_of(4);
        let (all, _) = read_records(&data);
        let mut ends = vec![0usize];
        let mut off = 0;
        for r in &all {
            off += HEADER_LEN + r.payload.len();
            ends.push(off);
        }
        for cut in 0..=data.len() {
            let (recs, tail) = read_records(&data[..cut]);
            let whole = ends.iter().filter(|&&e| e <= cut).count() - 1;
            assert_eq!(recs.len(), whole, "cut at {cut}");
            assert_eq!(
                tail == Tail::Clean,
                ends.contains(&cut),
                "cut at {cut}: {tail:?}"
            );
        }
    }

    /// Property: flipping any single byte never yields a record that was not
    /// written, and every record returned decodes to what was written.
    #[test]
    fn corruption_is_never_applied() {
        let data = log_of(3);
        let (orig, _) = read_records(&data);
        let originals: Vec<(u64, Vec<u8>)> =
            orig.iter().map(|r| (r.seq, r.payload.to_vec())).collect();
        // Every 7th byte keeps the test fast while touching every field.
        for i in (0..data.len()).step_by(7) {
            let mut bad = data.clone();
            bad[i] ^= 0x5a;
            let (recs, tail) = read_records(&bad);
            assert!(recs.len() < 3, "flip at {i} went unnoticed");
            assert_ne!(tail, Tail::Clean, "flip at {i}");
            for r in &recs {
                assert!(
                    originals.iter().any(|(s, p)| *s == r.seq && p == r.payload),
                    "flip at {i}"
                );
            }
        }
    }

    #[test]
    fn malformed_payloads_are_errors_not_panics() {
        for n in [1, 2] {
            let e = entry(n);
            let good = encode_payload(&e.tenant, &e.batches, e.origin.as_ref()).unwrap();
            for cut in 0..good.len() {
                assert!(decode_payload(1, &good[..cut]).is_err(), "cut at {cut}");
            }
        }
        assert!(decode_payload(1, &[2, 0, 0]).is_err());
    }
}
