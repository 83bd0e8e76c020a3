//! Delivery between TelemetryFlow nodes: a node forwards the records of its
//! write-ahead log upstream, and the upstream accepts each of them once.
//!
//! A forwarded request names the records it holds: `SourceBatch` — the
//! sending node and the first and last sequence number of its log that the
//! request covers. The sender cuts batches so that, per stream (sending
//! node, tenant, workspace, signal), their ranges only ever increase and a
//! resent batch has the same range as the first attempt. The upstream then
//! needs only a high-water mark per stream, not a copy of every key:
//! [`admit`] decides.

use std::fmt;

use crate::tenancy::{IdError, NodeId, Principal};

/// Why a batch key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchKeyError {
    #[error("a batch key is <node id>/<first>-<last>, got {0:?}")]
    Syntax(String),
    #[error("batch key: {0}")]
    Node(#[from] IdError),
    #[error("batch key: the range {first}-{last} is empty or starts at 0")]
    Range { first: u64, last: u64 },
}

/// Which records of which node's log a forwarded request holds, and, when
/// requests are authenticated, which relay key's principal sent it: marks
/// are kept per (principal, node), so one relay cannot name another's node
/// and suppress its batches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SourceBatch {
    node: NodeId,
    first: u64,
    last: u64,
    relay: Option<Principal>,
}

impl SourceBatch {
    pub fn new(node: NodeId, first: u64, last: u64) -> Result<Self, BatchKeyError> {
        if first == 0 || first > last {
            return Err(BatchKeyError::Range { first, last });
        }
        Ok(Self {
            node,
            first,
            last,
            relay: None,
        })
    }

    /// The batch as sent by a relay key of `principal`.
    pub fn relayed_by(self, principal: Option<Principal>) -> Self {
        Self {
            relay: principal,
            ..self
        }
    }

    /// The principal of the relay key that sent it; `None` when requests
    /// are not authenticated.
    pub fn relay(&self) -> Option<&Principal> {
        self.relay.as_ref()
    }

    /// Parses the header form, `<node id>/<first>-<last>`.
    pub fn parse(s: &str) -> Result<Self, BatchKeyError> {
        let syntax = || BatchKeyError::Syntax(s.chars().take(160).collect());
        let (node, range) = s.trim().split_once('/').ok_or_else(syntax)?;
        let (first, last) = range.split_once('-').ok_or_else(syntax)?;
        let num = |n: &str| {
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                return Err(syntax());
            }
            n.parse::<u64>().map_err(|_| syntax())
        };
        Self::new(NodeId::parse(node)?, num(first)?, num(last)?)
    }

    pub fn node(&self) -> &NodeId {
        &self.node
    }

    pub fn first(&self) -> u64 {
        self.first
    }

    pub fn last(&self) -> u64 {
        self.last
    }
}

impl fmt::Display for SourceBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}-{}", self.node, self.first, self.last)
    }
}

/// What an upstream does with a forwarded batch, given the highest last
/// sequence number it has accepted on the batch's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Nothing of it was accepted before.
    New,
    /// All of it was accepted before: acknowledge, store nothing.
    Duplicate,
    /// It starts inside what was accepted and ends past it. A sender that
    /// resends with the first attempt's range never does this; storing it
    /// (at least once) is all that is left.
    Overlap,
}

/// The exactly-once rule between nodes.
pub fn admit(accepted_through: Option<u64>, batch: &SourceBatch) -> Admission {
    match accepted_through {
        None => Admission::New,
        Some(hwm) if batch.last <= hwm => Admission::Duplicate,
        Some(hwm) if batch.first > hwm => Admission::New,
        Some(_) => Admission::Overlap,
    }
}

/// What a forwarder does when its queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFull {
    /// Refuse new writes (retryably) until the upstream catches up.
    #[default]
    Backpressure,
    /// Give up the oldest undelivered items (counted and logged).
    DropOldest,
}

impl OnFull {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "backpressure" => Ok(Self::Backpressure),
            "drop_oldest" => Ok(Self::DropOldest),
            other => Err(format!(
                "on_full must be \"backpressure\" or \"drop_oldest\", got {other:?}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(first: u64, last: u64) -> SourceBatch {
        SourceBatch::new(NodeId::parse("n1").unwrap(), first, last).unwrap()
    }

    #[test]
    fn keys_parse_and_print_the_header_form() {
        let k = SourceBatch::parse("0193abc_x/17-42").unwrap();
        assert_eq!(
            (k.node().as_str(), k.first(), k.last()),
            ("0193abc_x", 17, 42)
        );
        assert_eq!(k.to_string(), "0193abc_x/17-42");
        for bad in [
            "", "n1", "n1/", "n1/5", "n1/-5", "n1/5-", "n1/+5-6", "n1/5-6-7", "/1-2",
        ] {
            assert!(SourceBatch::parse(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(
            SourceBatch::parse("a.b/1-2"),
            Err(BatchKeyError::Node(_))
        ));
        assert_eq!(
            SourceBatch::parse("n1/9-3"),
            Err(BatchKeyError::Range { first: 9, last: 3 })
        );
        assert!(SourceBatch::parse("n1/0-3").is_err());
        assert!(SourceBatch::parse("n1/1-99999999999999999999999").is_err());
    }

    #[test]
    fn a_stream_accepts_each_range_once() {
        assert_eq!(admit(None, &batch(1, 5)), Admission::New);
        assert_eq!(admit(Some(5), &batch(1, 5)), Admission::Duplicate);
        assert_eq!(admit(Some(5), &batch(3, 4)), Admission::Duplicate);
        assert_eq!(admit(Some(5), &batch(6, 9)), Admission::New);
        assert_eq!(admit(Some(5), &batch(9, 9)), Admission::New);
        assert_eq!(admit(Some(5), &batch(4, 9)), Admission::Overlap);
    }

    #[test]
    fn on_full_policies_parse() {
        assert_eq!(OnFull::parse("backpressure"), Ok(OnFull::Backpressure));
        assert_eq!(OnFull::parse("drop_oldest"), Ok(OnFull::DropOldest));
        assert!(OnFull::parse("drop").unwrap_err().contains("drop_oldest"));
    }
}
