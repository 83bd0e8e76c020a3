//! The pull reader against serde_json: the same strings, the same number
//! grammar, the same verdict on what is well-formed JSON.

use serde_json::Value;

use crate::json::read::MAX_JSON_NESTING;
use crate::json::{JsonError, decode_logs, decode_metrics, decode_traces};

/// The schema URL of a trace request whose value is the JSON text `literal`.
fn schema_url(literal: &str) -> Result<String, JsonError> {
    let body = format!(r#"{{"resourceSpans":[{{"schemaUrl":{literal}}}]}}"#);
    decode_traces(body.as_bytes()).map(|r| r.resource_spans[0].schema_url.clone())
}

#[test]
fn strings_decode_as_serde_json_does() {
    for literal in [
        r#""plain""#,
        r#""""#,
        r#""tab\there""#,
        r#""\"quoted\" \\ \/ \b\f\n\r\t""#,
        r#""\u00e9\u00E9 é ✓ 𝄞""#,
        r#""\ud834\udd1e surrogate pair""#,
        r#""\u0000 nul""#,
        r#""mixed ✓ then \n escape""#,
        // Invalid: lone surrogates, bad escapes, raw control characters.
        r#""\ud834 lone high""#,
        r#""\udd1e lone low""#,
        r#""\ud834\u0041 high then not low""#,
        r#""\x41""#,
        r#""\u12""#,
        "\"raw\ttab\"",
        "\"raw\nnewline\"",
        r#""unterminated"#,
        r#""ends in backslash\"#,
    ] {
        let ours = schema_url(literal);
        match serde_json::from_str::<String>(literal) {
            Ok(want) => assert_eq!(ours.unwrap(), want, "{literal}"),
            Err(_) => assert!(
                matches!(ours, Err(JsonError::Syntax { .. })),
                "{literal}: {ours:?}"
            ),
        }
    }
}

#[test]
fn numbers_follow_the_json_grammar() {
    let as_double = |text: &str| {
        let body = format!(
            r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[{{"gauge":{{"dataPoints":[{{"asDouble":{text}}}]}}}}]}}]}}]}}"#
        );
        decode_metrics(body.as_bytes())
    };
    for text in [
        "0",
        "-0",
        "1",
        "-1",
        "0.5",
        "1e3",
        "1E+3",
        "1e-3",
        "-1.25e-7",
        "123456789012345678901234567890",
        "01",
        "-",
        "1.",
        ".5",
        "+1",
        "1e",
        "1e+",
        "0x10",
        "1.e3",
        "--1",
        "Infinity",
        "NaN",
    ] {
        let ours = as_double(text);
        match serde_json::from_str::<f64>(text) {
            Ok(_) => assert!(ours.is_ok(), "{text}: {ours:?}"),
            Err(_) => assert!(ours.is_err(), "{text} is not a JSON number"),
        }
    }
}

#[test]
fn well_formedness_agrees_with_serde_json_under_mutation() {
    let samples = [
        include_str!("../../../../../testdata/otlp-json/spec_traces.json"),
        include_str!("../../../../../testdata/otlp-json/spec_metrics.json"),
        include_str!("../../../../../testdata/otlp-json/spec_logs.json"),
    ];
    const NOISE: &[u8] = b"{}[]:,\"\\ 0-.eE9tfnu\n";
    let mut rng = crate::synth::Rng::new(0x2545_F491_4F6C_DD1D);
    let mut next = || rng.next();
    let mut checked = 0;
    for (i, sample) in samples.iter().enumerate() {
        let decode: fn(&[u8]) -> Result<(), JsonError> = match i {
            0 => |b| decode_traces(b).map(drop),
            1 => |b| decode_metrics(b).map(drop),
            _ => |b| decode_logs(b).map(drop),
        };
        for _ in 0..700 {
            let mut body = sample.as_bytes().to_vec();
            for _ in 0..1 + next() % 2 {
                let at = (next() % body.len() as u64) as usize;
                let noise = NOISE[(next() % NOISE.len() as u64) as usize];
                match next() % 3 {
                    0 => body[at] = noise,
                    1 => body.insert(at, noise),
                    _ => {
                        body.remove(at);
                    }
                }
            }
            let ours = decode(&body);
            if serde_json::from_slice::<Value>(&body).is_ok() {
                assert!(
                    !matches!(ours, Err(JsonError::Syntax { .. })),
                    "well-formed, called malformed: {}\n{ours:?}",
                    String::from_utf8_lossy(&body)
                );
            } else {
                assert!(
                    ours.is_err(),
                    "malformed, accepted: {}",
                    String::from_utf8_lossy(&body)
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 2100);
}

#[test]
fn nesting_is_bounded_in_skipped_values_too() {
    let unknown =
        |levels: usize| format!(r#"{{"zz":{}1{}}}"#, "[".repeat(levels), "]".repeat(levels));
    // The request object is one level.
    let limit = MAX_JSON_NESTING as usize;
    assert!(decode_traces(unknown(limit - 1).as_bytes()).is_ok());
    let err = decode_traces(unknown(limit).as_bytes()).unwrap_err();
    assert!(
        matches!(&err, JsonError::Syntax { message, .. } if message.contains("nesting")),
        "{err}"
    );
}

#[test]
fn syntax_errors_name_line_and_column() {
    let err = decode_traces(b"{\n  \"resourceSpans\": [\n    {,}\n  ]\n}").unwrap_err();
    let JsonError::Syntax { line, column, .. } = err else {
        panic!("{err}")
    };
    assert_eq!((line, column), (3, 6));
    assert!(err.to_string().contains("line 3 column 6"), "{err}");
}

#[test]
fn invalid_utf8_is_a_syntax_error() {
    let err = decode_traces(b"{\"resourceSpans\":[{\"schemaUrl\":\"\xc3\x28\"}]}").unwrap_err();
    assert!(matches!(err, JsonError::Syntax { .. }), "{err}");
}
