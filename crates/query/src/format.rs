//! Rendering query results: JSON (`{"columns":[…],"rows":[[…]]}`),
//! newline-delimited JSON, CSV, a text table, and Arrow IPC streams; the
//! [`Format`] that the command line and the HTTP API name them by.

use std::str::FromStr;
use std::sync::Arc;

use arrow::array::{Array, AsArray, PrimitiveArray};
use arrow::csv::WriterBuilder as CsvWriterBuilder;
use arrow::datatypes::{ArrowPrimitiveType, DataType, FieldRef, Float32Type, Float64Type};
use arrow::error::ArrowError;
use arrow::ipc::writer::StreamWriter;
use arrow::json::writer::{
    Encoder, EncoderFactory, EncoderOptions, JsonArray, NullableEncoder,
    WriterBuilder as JsonWriterBuilder, make_encoder,
};
use arrow::record_batch::RecordBatch;
use arrow::util::pretty::pretty_format_batches;
use serde_json::{Map, Value, json};

use tf_application::ports::QueryResult;

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("formatting query result: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// The rendered answer would be larger than it may be.
    #[error("the rendered answer is larger than {limit} bytes")]
    TooLarge { limit: usize },
}

pub type Result<T, E = FormatError> = std::result::Result<T, E>;

/// A byte buffer that refuses to grow beyond `limit` bytes: answers are
/// rendered into it, so rendering one stops at the limit instead of growing
/// the heap. Its capacity grows with what is written, never up front.
#[derive(Debug)]
pub struct Capped {
    buf: Vec<u8>,
    limit: usize,
    over: bool,
}

impl Capped {
    pub fn new(limit: usize) -> Self {
        Self {
            buf: Vec::new(),
            limit,
            over: false,
        }
    }

    /// The bytes written; `TooLarge` if a write went past the limit.
    pub fn finish(self) -> Result<Vec<u8>> {
        if self.over {
            return Err(FormatError::TooLarge { limit: self.limit });
        }
        Ok(self.buf)
    }

    /// `e` (from a writer over this buffer), or `TooLarge` if the buffer
    /// refused a write.
    fn error(&self, e: arrow::error::ArrowError) -> FormatError {
        if self.over {
            FormatError::TooLarge { limit: self.limit }
        } else {
            FormatError::Arrow(e)
        }
    }

    /// Appends `bytes`; `TooLarge` past the limit.
    pub fn put(&mut self, bytes: &[u8]) -> Result<()> {
        std::io::Write::write_all(self, bytes)
            .map_err(|_| FormatError::TooLarge { limit: self.limit })
    }
}

impl std::io::Write for Capped {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if self.over || self.buf.len().saturating_add(bytes.len()) > self.limit {
            self.over = true;
            return Err(std::io::Error::other(format!(
                "the rendered answer is larger than {} bytes",
                self.limit
            )));
        }
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How a query result is rendered: `telemetryflow sql --format` (clap's
/// `value_enum`) and `POST /api/v2/sql?format=` ([`FromStr`]), by
/// [`Format::name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A text table (the command line's default).
    Table,
    /// `{"columns":[…],"rows":[[…]],"truncated":bool}` (the HTTP API's default).
    Json,
    /// One JSON object per row and line.
    Ndjson,
    Csv,
    /// An Arrow IPC stream (binary: for the HTTP API).
    Arrow,
}

impl Format {
    pub const ALL: [Format; 5] = [
        Format::Table,
        Format::Json,
        Format::Ndjson,
        Format::Csv,
        Format::Arrow,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Json => "json",
            Format::Ndjson => "ndjson",
            Format::Csv => "csv",
            Format::Arrow => "arrow",
        }
    }

    /// The media type of [`Format::render`]'s output.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Table => "text/plain; charset=utf-8",
            Format::Json => "application/json",
            Format::Ndjson => "application/x-ndjson",
            Format::Csv => "text/csv",
            Format::Arrow => "application/vnd.apache.arrow.stream",
        }
    }

    pub fn render(self, result: &QueryResult) -> Result<Vec<u8>> {
        self.render_within(result, usize::MAX)
    }

    /// Renders `result` into at most `limit` bytes (`TooLarge` beyond),
    /// writing straight into the answer's buffer.
    pub fn render_within(self, result: &QueryResult, limit: usize) -> Result<Vec<u8>> {
        let mut out = Capped::new(limit);
        match self {
            Format::Table => out.put(to_table(result)?.as_bytes())?,
            Format::Json => write_json(result, &mut out)?,
            Format::Ndjson => write_ndjson(result, &mut out)?,
            Format::Csv => write_csv(result, &mut out)?,
            Format::Arrow => write_arrow_ipc(result, &mut out)?,
        }
        out.finish()
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| format!("{s:?} is not table, json, ndjson, csv or arrow"))
    }
}

impl clap::ValueEnum for Format {
    fn value_variants<'a>() -> &'a [Self] {
        &Format::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()))
    }
}

/// The JSON writer of the JSON formats: nulls explicit, non-finite floats
/// as strings (see [`NonFiniteFloats`]).
fn json_writer() -> JsonWriterBuilder {
    JsonWriterBuilder::new()
        .with_explicit_nulls(true)
        .with_encoder_factory(Arc::new(NonFiniteFloats))
}

/// Floats (at any depth) as JSON numbers, but NaN, +Inf and -Inf as the
/// strings `"NaN"`, `"Infinity"` and `"-Infinity"` (OTLP/JSON's spelling,
/// proto3's JSON mapping): arrow-json writes them as `null`, so a stored
/// NaN gauge would read back as a missing value.
#[derive(Debug)]
struct NonFiniteFloats;

impl EncoderFactory for NonFiniteFloats {
    fn make_default_encoder<'a>(
        &self,
        _field: &'a FieldRef,
        array: &'a dyn Array,
        _options: &'a EncoderOptions,
    ) -> std::result::Result<Option<NullableEncoder<'a>>, ArrowError> {
        let encoder: Box<dyn Encoder + 'a> = match array.data_type() {
            DataType::Float64 => Box::new(Floats {
                array: array.as_primitive::<Float64Type>(),
                finite: |v, out| {
                    let _ = serde_json::to_writer(out, &v);
                },
            }),
            DataType::Float32 => Box::new(Floats {
                array: array.as_primitive::<Float32Type>(),
                finite: |v, out| {
                    let _ = serde_json::to_writer(out, &v);
                },
            }),
            _ => return Ok(None),
        };
        Ok(Some(NullableEncoder::new(encoder, array.nulls().cloned())))
    }
}

/// A float column's values; `finite` writes a finite one (a JSON number,
/// which it always is).
struct Floats<'a, T: ArrowPrimitiveType> {
    array: &'a PrimitiveArray<T>,
    finite: fn(T::Native, &mut Vec<u8>),
}

impl<T> Encoder for Floats<'_, T>
where
    T: ArrowPrimitiveType,
    T::Native: Into<f64>,
{
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        let v = self.array.value(idx);
        let wide: f64 = v.into();
        let text: &[u8] = if wide.is_nan() {
            b"\"NaN\""
        } else if wide == f64::INFINITY {
            b"\"Infinity\""
        } else if wide == f64::NEG_INFINITY {
            b"\"-Infinity\""
        } else {
            (self.finite)(v, out);
            return;
        };
        out.extend_from_slice(text);
    }
}

/// Each row as a JSON object keyed by column name (maps as objects, nested
/// lists and structs as arrays and objects, timestamps as RFC 3339 strings,
/// nulls explicit, non-finite floats as strings).
pub fn to_objects(batches: &[RecordBatch]) -> Result<Vec<Map<String, Value>>> {
    let mut out = Capped::new(usize::MAX);
    write_objects(batches, &mut out)?;
    serde_json::from_slice(&out.finish()?)
        .map_err(|e| FormatError::Arrow(arrow::error::ArrowError::JsonError(e.to_string())))
}

/// The rows of `batches` as a JSON array of objects (as [`to_objects`]),
/// written into `out`: no copy of the answer beside the rendered bytes.
pub fn write_objects(batches: &[RecordBatch], out: &mut Capped) -> Result<()> {
    let written = (|| {
        let mut w = json_writer().build::<_, JsonArray>(&mut *out);
        for batch in batches {
            w.write(batch)?;
        }
        w.finish()
    })();
    written.map_err(|e| out.error(e))
}

/// Writes `{"columns":[{"name","type"}],"rows":[[…]],"truncated":bool}`.
fn write_json(result: &QueryResult, out: &mut Capped) -> Result<()> {
    let columns: Vec<Value> = result
        .schema
        .fields()
        .iter()
        .map(|f| json!({"name": f.name(), "type": f.data_type().to_string()}))
        .collect();
    out.put(b"{\"columns\":")?;
    out.put(Value::Array(columns).to_string().as_bytes())?;
    out.put(b",\"rows\":[")?;
    let options = EncoderOptions::default()
        .with_explicit_nulls(true)
        .with_encoder_factory(Arc::new(NonFiniteFloats));
    let mut row_bytes = Vec::new();
    let mut first = true;
    for batch in &result.batches {
        let fields = batch.schema().fields().clone();
        let mut encoders = fields
            .iter()
            .zip(batch.columns())
            .map(|(f, c)| make_encoder(f, c.as_ref(), &options))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            row_bytes.clear();
            if !first {
                row_bytes.push(b',');
            }
            first = false;
            row_bytes.push(b'[');
            for (i, e) in encoders.iter_mut().enumerate() {
                if i > 0 {
                    row_bytes.push(b',');
                }
                if e.is_null(row) {
                    row_bytes.extend_from_slice(b"null");
                } else {
                    e.encode(row, &mut row_bytes);
                }
            }
            row_bytes.push(b']');
            out.put(&row_bytes)?;
        }
    }
    out.put(format!("],\"truncated\":{}}}", result.truncated).as_bytes())
}

/// `{"columns":[{"name","type"}],"rows":[[…]],"truncated":bool}`.
pub fn to_json(result: &QueryResult) -> Result<Value> {
    let mut out = Capped::new(usize::MAX);
    write_json(result, &mut out)?;
    serde_json::from_slice(&out.finish()?)
        .map_err(|e| FormatError::Arrow(arrow::error::ArrowError::JsonError(e.to_string())))
}

/// Newline-delimited JSON: one object per row.
fn write_ndjson(result: &QueryResult, out: &mut Capped) -> Result<()> {
    let written = (|| {
        let mut w = json_writer().build::<_, arrow::json::writer::LineDelimited>(&mut *out);
        for b in &result.batches {
            w.write(b)?;
        }
        w.finish()
    })();
    written.map_err(|e| out.error(e))
}

pub fn to_ndjson(result: &QueryResult) -> Result<Vec<u8>> {
    Format::Ndjson.render(result)
}

fn write_csv(result: &QueryResult, out: &mut Capped) -> Result<()> {
    let written = (|| {
        let mut w = CsvWriterBuilder::new().with_header(true).build(&mut *out);
        if result.batches.is_empty() {
            w.write(&RecordBatch::new_empty(result.schema.clone()))?;
        }
        for b in &result.batches {
            w.write(b)?;
        }
        Ok(())
    })();
    written.map_err(|e| out.error(e))
}

pub fn to_csv(result: &QueryResult) -> Result<Vec<u8>> {
    Format::Csv.render(result)
}

pub fn to_table(result: &QueryResult) -> Result<String> {
    if result.batches.iter().all(|b| b.num_rows() == 0) {
        let empty = RecordBatch::new_empty(result.schema.clone());
        return Ok(pretty_format_batches(&[empty])?.to_string());
    }
    Ok(pretty_format_batches(&result.batches)?.to_string())
}

fn write_arrow_ipc(result: &QueryResult, out: &mut Capped) -> Result<()> {
    let written = (|| {
        let mut w = StreamWriter::try_new(&mut *out, &result.schema)?;
        for b in &result.batches {
            w.write(b)?;
        }
        w.finish()
    })();
    written.map_err(|e| out.error(e))
}

/// Arrow IPC stream format.
pub fn to_arrow_ipc(result: &QueryResult) -> Result<Vec<u8>> {
    Format::Arrow.render(result)
}

/// Reads an Arrow IPC stream back.
pub fn from_arrow_ipc(bytes: &[u8], truncated: bool) -> Result<QueryResult> {
    let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)?;
    let schema = reader.schema();
    let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(QueryResult {
        schema,
        batches,
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_by_name_on_the_command_line_and_in_urls() {
        for f in Format::ALL {
            assert_eq!(f.name().parse::<Format>(), Ok(f));
            assert_eq!(
                <Format as clap::ValueEnum>::from_str(f.name(), false),
                Ok(f)
            );
        }
        assert!("xml".parse::<Format>().unwrap_err().contains("ndjson"));
    }

    fn result(rows: usize) -> QueryResult {
        use arrow::array::{Int64Array, StringArray};
        use arrow::datatypes::{DataType, Field, Schema};
        let schema = std::sync::Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new("s", DataType::Utf8, true),
        ]));
        let n = Int64Array::from_iter_values(0..rows as i64);
        let s = StringArray::from_iter((0..rows).map(|i| (i % 2 == 0).then_some("a\u{1}")));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![std::sync::Arc::new(n), std::sync::Arc::new(s)],
        )
        .unwrap();
        QueryResult {
            schema,
            batches: vec![
                batch.slice(0, rows / 2),
                batch.slice(rows / 2, rows - rows / 2),
            ],
            truncated: false,
        }
    }

    #[test]
    fn answers_render_as_before_and_within_their_limit() {
        let r = result(3);
        let json: Value = serde_json::from_slice(&Format::Json.render(&r).unwrap()).unwrap();
        assert_eq!(
            json,
            json!({
                "columns": [{"name": "n", "type": "Int64"}, {"name": "s", "type": "Utf8"}],
                "rows": [[0, "a\u{1}"], [1, null], [2, "a\u{1}"]],
                "truncated": false,
            })
        );
        assert_eq!(
            Value::Array(
                to_objects(&r.batches)
                    .unwrap()
                    .into_iter()
                    .map(Value::Object)
                    .collect()
            ),
            json!([{"n": 0, "s": "a\u{1}"}, {"n": 1, "s": null}, {"n": 2, "s": "a\u{1}"}])
        );
        let empty = QueryResult {
            batches: vec![],
            ..r.clone()
        };
        assert!(to_objects(&empty.batches).unwrap().is_empty());
        // Each format stops at its limit, whichever writer fills it.
        let big = result(10_000);
        for format in [
            Format::Json,
            Format::Ndjson,
            Format::Csv,
            Format::Arrow,
            Format::Table,
        ] {
            let full = format.render(&big).unwrap();
            assert_eq!(format.render_within(&big, full.len()).unwrap(), full);
            let e = format.render_within(&big, full.len() - 1).unwrap_err();
            assert!(matches!(e, FormatError::TooLarge { .. }), "{format:?}: {e}");
        }
        let mut out = Capped::new(10);
        write_objects(&big.batches, &mut out).unwrap_err();
    }

    #[test]
    fn non_finite_floats_are_strings_and_nulls_stay_null() {
        use arrow::array::{ArrayRef, Float32Array, Float64Array, ListArray};
        use arrow::datatypes::Float64Type;
        let values = Float64Array::from(vec![
            Some(1.5),
            Some(f64::NAN),
            Some(f64::INFINITY),
            Some(f64::NEG_INFINITY),
            None,
        ]);
        let narrow = Float32Array::from(vec![Some(0.1), Some(f32::NAN), None, None, None]);
        let lists = ListArray::from_iter_primitive::<Float64Type, _, _>(vec![
            Some(vec![Some(f64::NEG_INFINITY), Some(2.0)]),
            None,
            Some(vec![]),
            Some(vec![Some(f64::NAN)]),
            Some(vec![None]),
        ]);
        let batch = RecordBatch::try_from_iter([
            ("v", Arc::new(values) as ArrayRef),
            ("f", Arc::new(narrow) as ArrayRef),
            ("l", Arc::new(lists) as ArrayRef),
        ])
        .unwrap();
        let rows: Vec<Value> = to_objects(std::slice::from_ref(&batch))
            .unwrap()
            .into_iter()
            .map(Value::Object)
            .collect();
        assert_eq!(
            Value::Array(rows),
            json!([
                {"v": 1.5, "f": 0.1, "l": ["-Infinity", 2.0]},
                {"v": "NaN", "f": "NaN", "l": null},
                {"v": "Infinity", "f": null, "l": []},
                {"v": "-Infinity", "f": null, "l": ["NaN"]},
                {"v": null, "f": null, "l": [null]},
            ])
        );
        let result = QueryResult {
            schema: batch.schema(),
            batches: vec![batch],
            truncated: false,
        };
        let lines = String::from_utf8(Format::Ndjson.render(&result).unwrap()).unwrap();
        assert_eq!(
            lines.lines().nth(1),
            Some(r#"{"v":"NaN","f":"NaN","l":null}"#)
        );
    }
}
