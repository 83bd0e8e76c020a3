//! Request bodies: content encodings and decompression with a limit on the
//! *decompressed* size, enforced while inflating (a gzip bomb is never
//! inflated in memory beyond the limit).

use std::io::Read;

use bytes::Bytes;

#[derive(Debug, thiserror::Error)]
pub(crate) enum DecodeError {
    #[error("unsupported content encoding {0:?} (supported: gzip, zstd, deflate, identity)")]
    UnsupportedEncoding(String),
    #[error("request body is larger than {limit} bytes after decompression")]
    TooLarge { limit: usize },
    #[error("corrupt {encoding} body: {source}")]
    Corrupt {
        encoding: &'static str,
        #[source]
        source: std::io::Error,
    },
}

pub(crate) type Result<T, E = DecodeError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Identity,
    Gzip,
    Zstd,
    Deflate,
}

impl Encoding {
    /// Parses a `Content-Encoding` header value.
    pub(crate) fn parse(header: Option<&str>) -> Result<Self> {
        match header.map(|h| h.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("identity") => Ok(Encoding::Identity),
            Some("gzip") | Some("x-gzip") => Ok(Encoding::Gzip),
            Some("zstd") => Ok(Encoding::Zstd),
            Some("deflate") => Ok(Encoding::Deflate),
            Some(other) => Err(DecodeError::UnsupportedEncoding(
                other.chars().take(40).collect(),
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Encoding::Identity => "identity",
            Encoding::Gzip => "gzip",
            Encoding::Zstd => "zstd",
            Encoding::Deflate => "deflate",
        }
    }
}

fn read_limited(mut r: impl Read, encoding: Encoding, limit: usize, hint: usize) -> Result<Bytes> {
    let mut out = Vec::with_capacity(hint.saturating_mul(4).min(limit).min(16 << 20));
    let n = (&mut r)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|source| DecodeError::Corrupt {
            encoding: encoding.name(),
            source,
        })?;
    if n > limit {
        return Err(DecodeError::TooLarge { limit });
    }
    Ok(Bytes::from(out))
}

/// Decompresses `body`, failing once more than `limit` bytes come out.
pub(crate) fn decompress(encoding: Encoding, body: Bytes, limit: usize) -> Result<Bytes> {
    let hint = body.len();
    match encoding {
        Encoding::Identity => {
            if body.len() > limit {
                Err(DecodeError::TooLarge { limit })
            } else {
                Ok(body)
            }
        }
        Encoding::Gzip => read_limited(
            flate2::read::MultiGzDecoder::new(&body[..]),
            encoding,
            limit,
            hint,
        ),
        Encoding::Deflate => read_limited(
            flate2::read::ZlibDecoder::new(&body[..]),
            encoding,
            limit,
            hint,
        ),
        Encoding::Zstd => {
            let dec = zstd::stream::read::Decoder::new(&body[..]).map_err(|source| {
                DecodeError::Corrupt {
                    encoding: "zstd",
                    source,
                }
            })?;
            read_limited(dec, encoding, limit, hint)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(data: &[u8]) -> Bytes {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        Bytes::from(e.finish().unwrap())
    }

    #[test]
    fn decompresses_within_the_limit() {
        let data = vec![7u8; 10_000];
        assert_eq!(
            decompress(Encoding::Gzip, gzip(&data), 10_000).unwrap(),
            data
        );
        let z = Bytes::from(zstd::encode_all(&data[..], 3).unwrap());
        assert_eq!(decompress(Encoding::Zstd, z, 10_000).unwrap(), data);
        assert_eq!(
            decompress(Encoding::Identity, Bytes::from(data.clone()), 10_000).unwrap(),
            data
        );
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        let bomb = gzip(&vec![0u8; 50 << 20]);
        assert!(bomb.len() < 100 << 10);
        assert!(matches!(
            decompress(Encoding::Gzip, bomb, 1 << 20),
            Err(DecodeError::TooLarge { limit }) if limit == 1 << 20
        ));
        assert!(matches!(
            decompress(Encoding::Identity, Bytes::from(vec![0; 11]), 10),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn garbage_and_unknown_encodings_are_errors() {
        assert!(matches!(
            decompress(Encoding::Gzip, Bytes::from_static(b"not gzip"), 100),
            Err(DecodeError::Corrupt {
                encoding: "gzip",
                ..
            })
        ));
        assert!(matches!(
            decompress(Encoding::Zstd, Bytes::from_static(b"not zstd"), 100),
            Err(DecodeError::Corrupt { .. })
        ));
        assert!(matches!(
            Encoding::parse(Some("br")),
            Err(DecodeError::UnsupportedEncoding(_))
        ));
        assert_eq!(Encoding::parse(Some(" GZIP ")).unwrap(), Encoding::Gzip);
        assert_eq!(Encoding::parse(None).unwrap(), Encoding::Identity);
    }
}
