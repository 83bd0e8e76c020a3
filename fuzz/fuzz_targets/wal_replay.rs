//! The WAL reader on arbitrary bytes (a segment after any crash or disk
//! corruption): it must never panic, must return only records whose checksum
//! holds, in order, and every payload it accepts must decode or be reported as
//! malformed — never panic in the Arrow IPC reader either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tf_storage::wal::record::{HEADER_LEN, Tail, decode_payload, read_records};

fuzz_target!(|data: &[u8]| {
    let (records, tail) = read_records(data);
    let mut end = 0;
    for r in &records {
        end += HEADER_LEN + r.payload.len();
        let _ = decode_payload(r.seq, r.payload);
    }
    match tail {
        Tail::Clean => assert_eq!(end, data.len()),
        Tail::Torn { offset } | Tail::Corrupt { offset } => assert_eq!(offset, end),
    }
});
