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
    WriterBuilder as JsonWriterBuilder,
};
use arrow::record_batch::RecordBatch;
use arrow::util::pretty::pretty_format_batches;
use serde_json::{Map, Value, json};

use tf_application::ports::QueryResult;

#[derive(Debug, thiserror::Error)]
#[error("formatting query result: {0}")]
pub struct FormatError(#[from] arrow::error::ArrowError);

pub type Result<T, E = FormatError> = std::result::Result<T, E>;

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
        match self {
            Format::Table => to_table(result).map(String::into_bytes),
            Format::Json => to_json(result).map(|v| v.to_string().into_bytes()),
            Format::Ndjson => to_ndjson(result),
            Format::Csv => to_csv(result),
            Format::Arrow => to_arrow_ipc(result),
        }
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
    let mut out = Vec::new();
    for batch in batches {
        if batch.num_rows() == 0 {
            continue;
        }
        let mut buf = Vec::new();
        {
            let mut w = json_writer().build::<_, JsonArray>(&mut buf);
            w.write(batch)?;
            w.finish()?;
        }
        let objects: Vec<Map<String, Value>> = serde_json::from_slice(&buf)
            .map_err(|e| FormatError(arrow::error::ArrowError::JsonError(e.to_string())))?;
        out.extend(objects);
    }
    Ok(out)
}

/// `{"columns":[{"name","type"}],"rows":[[…]],"truncated":bool}`.
pub fn to_json(result: &QueryResult) -> Result<Value> {
    let columns: Vec<Value> = result
        .schema
        .fields()
        .iter()
        .map(|f| json!({"name": f.name(), "type": f.data_type().to_string()}))
        .collect();
    let rows: Vec<Value> = to_objects(&result.batches)?
        .into_iter()
        .map(|mut obj| {
            Value::Array(
                result
                    .schema
                    .fields()
                    .iter()
                    .map(|f| obj.remove(f.name()).unwrap_or(Value::Null))
                    .collect(),
            )
        })
        .collect();
    Ok(json!({"columns": columns, "rows": rows, "truncated": result.truncated}))
}

/// Newline-delimited JSON: one object per row.
pub fn to_ndjson(result: &QueryResult) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    for b in &result.batches {
        if b.num_rows() == 0 {
            continue;
        }
        let mut w = json_writer().build::<_, arrow::json::writer::LineDelimited>(&mut buf);
        w.write(b)?;
        w.finish()?;
    }
    Ok(buf)
}

pub fn to_csv(result: &QueryResult) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    {
        let mut w = CsvWriterBuilder::new().with_header(true).build(&mut buf);
        if result.batches.is_empty() {
            w.write(&RecordBatch::new_empty(result.schema.clone()))?;
        }
        for b in &result.batches {
            w.write(b)?;
        }
    }
    Ok(buf)
}

pub fn to_table(result: &QueryResult) -> Result<String> {
    if result.batches.iter().all(|b| b.num_rows() == 0) {
        let empty = RecordBatch::new_empty(result.schema.clone());
        return Ok(pretty_format_batches(&[empty])?.to_string());
    }
    Ok(pretty_format_batches(&result.batches)?.to_string())
}

/// Arrow IPC stream format.
pub fn to_arrow_ipc(result: &QueryResult) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    {
        let mut w = StreamWriter::try_new(&mut buf, &result.schema)?;
        for b in &result.batches {
            w.write(b)?;
        }
        w.finish()?;
    }
    Ok(buf)
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
        let lines = String::from_utf8(to_ndjson(&result).unwrap()).unwrap();
        assert_eq!(
            lines.lines().nth(1),
            Some(r#"{"v":"NaN","f":"NaN","l":null}"#)
        );
    }
}
