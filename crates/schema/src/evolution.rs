//! How a table's schema may change: it gains nullable columns. Rows written
//! under an earlier schema — Parquet files, WAL records — are read under the
//! current one with the new columns null, and files of old and new schema
//! merge into one.

use std::sync::Arc;

use arrow::array::{ArrayRef, new_null_array};
use arrow::datatypes::{Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};

/// `batch` under `target`: its columns by name in `target`'s order, a
/// column `target` has and `batch` lacks all null. An error when a column
/// differs in type, when `batch` has a column `target` lacks, or when a
/// missing column may not be null: those are not a schema that gained
/// nullable columns.
pub fn conform(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    if batch.schema_ref() == target {
        return Ok(batch.clone());
    }
    let schema = batch.schema();
    if let Some(extra) = schema
        .fields()
        .iter()
        .find(|f| target.field_with_name(f.name()).is_err())
    {
        return Err(ArrowError::SchemaError(format!(
            "column {:?} is not in the table's schema",
            extra.name()
        )));
    }
    let columns = target
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(c) if c.data_type() == field.data_type() => Ok(Arc::clone(c)),
            Some(c) => Err(ArrowError::SchemaError(format!(
                "column {:?} is {}, the table's schema says {}",
                field.name(),
                c.data_type(),
                field.data_type()
            ))),
            None if field.is_nullable() => Ok(new_null_array(field.data_type(), batch.num_rows())),
            None => Err(ArrowError::SchemaError(format!(
                "column {:?} is missing and may not be null",
                field.name()
            ))),
        })
        .collect::<Result<Vec<ArrayRef>, _>>()?;
    RecordBatch::try_new_with_options(
        Arc::clone(target),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
}

/// The schema that holds rows of every one of `schemas`: the one with the
/// most columns (the newest) first, so its order wins, and every column
/// another adds. An error when a column's type differs between them.
pub fn union(schemas: &[SchemaRef]) -> Result<SchemaRef, ArrowError> {
    let Some(widest) = schemas.iter().max_by_key(|s| s.fields().len()) else {
        return Ok(Arc::new(Schema::empty()));
    };
    if schemas.iter().all(|s| s == widest) {
        return Ok(Arc::clone(widest));
    }
    let mut all = vec![widest.as_ref().clone()];
    all.extend(schemas.iter().map(|s| s.as_ref().clone()));
    let merged = Schema::try_merge(all)?;
    // A column some schemas lack is null in their rows.
    let fields: Vec<_> = merged
        .fields()
        .iter()
        .map(|f| {
            let everywhere = schemas.iter().all(|s| s.field_with_name(f.name()).is_ok());
            if everywhere {
                Arc::clone(f)
            } else {
                Arc::new(f.as_ref().clone().with_nullable(true))
            }
        })
        .collect();
    Ok(Arc::new(Schema::new_with_metadata(
        fields,
        merged.metadata().clone(),
    )))
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field};

    use super::*;

    fn old() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("b", DataType::Utf8, false),
        ]))
    }

    fn new() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("source", DataType::Utf8, true),
            Field::new("b", DataType::Utf8, false),
        ]))
    }

    fn old_rows() -> RecordBatch {
        RecordBatch::try_new(
            old(),
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec!["x", "y"])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn old_rows_read_under_the_new_schema_with_the_new_column_null() {
        let b = conform(&old_rows(), &new()).unwrap();
        assert_eq!(b.schema(), new());
        assert_eq!(b.column(1).null_count(), 2);
        assert_eq!(b.column(2).as_ref(), old_rows().column(1).as_ref());
        // Already conforming: the same batch.
        assert_eq!(conform(&b, &new()).unwrap(), b);
    }

    #[test]
    fn anything_but_added_nullable_columns_is_refused() {
        let required = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("b", DataType::Utf8, false),
            Field::new("c", DataType::Utf8, false),
        ]));
        let e = conform(&old_rows(), &required).unwrap_err().to_string();
        assert!(e.contains("\"c\" is missing"), "{e}");
        let retyped = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Utf8, false),
            Field::new("b", DataType::Utf8, false),
        ]));
        let e = conform(&old_rows(), &retyped).unwrap_err().to_string();
        assert!(e.contains("\"a\" is Int64"), "{e}");
        let narrower = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)]));
        let e = conform(&old_rows(), &narrower).unwrap_err().to_string();
        assert!(e.contains("\"b\" is not in"), "{e}");
    }

    #[test]
    fn the_union_takes_the_newest_order_and_makes_added_columns_nullable() {
        assert_eq!(union(&[old(), new(), old()]).unwrap(), new());
        assert_eq!(union(&[old(), old()]).unwrap(), old());
        let required_new = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("b", DataType::Utf8, false),
            Field::new("c", DataType::Utf8, false),
        ]));
        let u = union(&[old(), required_new]).unwrap();
        assert!(u.field_with_name("c").unwrap().is_nullable());
        assert!(!u.field_with_name("a").unwrap().is_nullable());
        let clash = Arc::new(Schema::new(vec![Field::new("a", DataType::Utf8, false)]));
        assert!(union(&[old(), clash]).is_err());
    }
}
