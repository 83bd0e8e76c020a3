//! `TraceIdFilter`: which trace ids a traces file may hold — a Bloom filter
//! over the file's distinct trace ids, written beside the file when it is
//! written and read by the query engine to skip files a trace-by-id lookup
//! cannot match without opening them. Shared here because the storage
//! adapter writes it and the engine reads it.
//!
//! Stored beside its file as `<file>.tid` ([`sidecar_path`]).
//!
//! Encoding (`to_bytes`/`from_bytes`): a 4-byte magic `TFB1`, the number of
//! hash probes (u8), then the bit set (a power-of-two number of u64 words,
//! little endian). Hashing follows Kirsch–Mitzenmacher: two 64-bit hashes of
//! the id's text, combined per probe.

/// Where the filter of the data file at `path` is stored.
pub fn sidecar_path(path: &str) -> String {
    format!("{path}.tid")
}

/// The data file a sidecar belongs to.
pub fn sidecar_of(path: &str) -> Option<&str> {
    path.strip_suffix(".tid")
}

/// The filter of these ids, sized by their distinct count.
pub fn filter_of(fingerprints: &std::collections::HashSet<(u64, u64)>) -> TraceIdFilter {
    let mut f = TraceIdFilter::with_capacity(fingerprints.len());
    for h in fingerprints {
        f.insert_hashes(*h);
    }
    f
}

/// False-positive rate the filters are sized for.
pub const TARGET_FPP: f64 = 0.01;
const MAGIC: &[u8; 4] = b"TFB1";
/// Probes per id: optimal for 1% (−log2(0.01) ≈ 6.6).
const PROBES: u8 = 7;

/// A Bloom filter of trace ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceIdFilter {
    probes: u8,
    words: Vec<u64>,
}

/// The filter's two 64-bit hashes of `id` (also a compact fingerprint for
/// counting distinct ids before sizing a filter) (FNV-1a, then a murmur3 finalizer
/// over each, seeded differently): ids are hex text and usually random, but
/// nothing relies on that.
pub fn hashes(id: &[u8]) -> (u64, u64) {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in id {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mix = |mut x: u64| {
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^ (x >> 33)
    };
    (mix(h), mix(h ^ 0x9e37_79b9_7f4a_7c15) | 1)
}

impl TraceIdFilter {
    /// An empty filter sized for `distinct` ids at [`TARGET_FPP`].
    pub fn with_capacity(distinct: usize) -> Self {
        // m = -n ln p / (ln 2)^2 bits, rounded up to a power of two words.
        let bits = (distinct.max(1) as f64 * -TARGET_FPP.ln() / (2f64.ln().powi(2))).ceil();
        let words = ((bits / 64.0).ceil() as usize).next_power_of_two();
        Self {
            probes: PROBES,
            words: vec![0; words],
        }
    }

    /// A filter of exactly `ids` (duplicates are fine).
    pub fn from_ids<'a>(ids: impl IntoIterator<Item = &'a str>, distinct_hint: usize) -> Self {
        let mut f = Self::with_capacity(distinct_hint);
        for id in ids {
            f.insert(id);
        }
        f
    }

    fn positions(&self, id: &str) -> impl Iterator<Item = (usize, u64)> + use<> {
        self.positions_of(hashes(id.as_bytes()))
    }

    fn positions_of(&self, (h1, h2): (u64, u64)) -> impl Iterator<Item = (usize, u64)> + use<> {
        let mask = (self.words.len() * 64 - 1) as u64;
        (0..u64::from(self.probes)).map(move |i| {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) & mask;
            ((bit / 64) as usize, 1u64 << (bit % 64))
        })
    }

    pub fn insert(&mut self, id: &str) {
        self.insert_hashes(hashes(id.as_bytes()));
    }

    /// Inserts an id given by its [`hashes`].
    pub fn insert_hashes(&mut self, h: (u64, u64)) {
        for (w, m) in self.positions_of(h) {
            if let Some(word) = self.words.get_mut(w) {
                *word |= m;
            }
        }
    }

    /// `false`: the file certainly holds no span of the trace.
    pub fn may_contain(&self, id: &str) -> bool {
        self.positions(id)
            .all(|(w, m)| self.words.get(w).is_some_and(|word| word & m != 0))
    }

    /// Size of the encoded filter.
    pub fn encoded_len(&self) -> usize {
        MAGIC.len() + 1 + self.words.len() * 8
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.extend_from_slice(MAGIC);
        out.push(self.probes);
        for w in &self.words {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// `None` for anything that is not an encoded filter (the caller then
    /// treats the file as possibly holding every trace).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let rest = bytes.strip_prefix(MAGIC.as_slice())?;
        let (&probes, bits) = rest.split_first()?;
        if probes == 0 || probes > 16 || bits.is_empty() || bits.len() % 8 != 0 {
            return None;
        }
        let words: Vec<u64> = bits
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect();
        words
            .len()
            .is_power_of_two()
            .then_some(Self { probes, words })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: u64) -> String {
        format!("{:032x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i << 7))
    }

    #[test]
    fn no_false_negatives_and_about_one_percent_false_positives() {
        let n = 20_000;
        let ids: Vec<String> = (0..n).map(id).collect();
        let f = TraceIdFilter::from_ids(ids.iter().map(String::as_str), ids.len());
        assert!(ids.iter().all(|i| f.may_contain(i)));
        let false_pos = (n..n + 100_000).filter(|&i| f.may_contain(&id(i))).count();
        // Sized for 1%; the power-of-two rounding only lowers it.
        assert!(false_pos < 1_500, "{false_pos} of 100000");
        // Roughly 1.2 bytes per id, at most twice that after rounding.
        assert!(
            f.encoded_len() < n as usize * 3,
            "{} bytes",
            f.encoded_len()
        );
    }

    #[test]
    fn encoding_round_trips_and_rejects_garbage() {
        let f = TraceIdFilter::from_ids(["a", "b", "c"], 3);
        let back = TraceIdFilter::from_bytes(&f.to_bytes()).unwrap();
        assert_eq!(back, f);
        assert!(back.may_contain("b"));
        for bad in [
            &b""[..],
            b"TFB1",
            b"TFB1\x07",
            b"TFB1\x07\x01\x02",
            b"XXXX\x07\x00\x00\x00\x00\x00\x00\x00\x00",
            b"TFB1\x00\x00\x00\x00\x00\x00\x00\x00\x00",
        ] {
            assert_eq!(TraceIdFilter::from_bytes(bad), None, "{bad:?}");
        }
        // Three words is not a power of two.
        let mut three = b"TFB1\x07".to_vec();
        three.extend_from_slice(&[0; 24]);
        assert_eq!(TraceIdFilter::from_bytes(&three), None);
    }
}
