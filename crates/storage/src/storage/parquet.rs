//! Parquet encoding of a table's rows: sorted for the common filters, zstd,
//! page statistics, bloom filters on trace ids.

use arrow::array::UInt32Array;
use arrow::compute::{SortColumn, lexsort_to_indices};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::schema::sort_columns;
use tf_application::gather::take_rows;
use tf_domain::Table;

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("sorting rows: {0}")]
    Sort(#[source] arrow::error::ArrowError),
    #[error("writing parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
}

pub type Result<T, E = EncodeError> = std::result::Result<T, E>;

/// Default rows per row group: small enough that statistics prune well.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;
/// Default rows per data page at most.
pub const PAGE_ROWS: usize = 20_000;

/// How rows are laid out in a file: rows per row group (the unit that
/// statistics and bloom filters skip) and per data page at most (the unit a
/// read decodes: a point lookup such as a trace by id decodes, per column,
/// only the pages that hold its rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLayout {
    pub row_group_rows: usize,
    pub page_rows: usize,
}

impl Default for FileLayout {
    fn default() -> Self {
        Self {
            row_group_rows: ROW_GROUP_ROWS,
            page_rows: PAGE_ROWS,
        }
    }
}

/// The Parquet properties of every stored file, flushed or compacted.
pub(crate) fn writer_properties(
    table: Table,
    schema: &SchemaRef,
    layout: FileLayout,
) -> WriterProperties {
    let sorting: Vec<SortingColumn> = sort_columns(table)
        .iter()
        .filter_map(|c| schema.index_of(c).ok())
        .map(|i| SortingColumn {
            column_idx: i as i32,
            descending: false,
            nulls_first: false,
        })
        .collect();
    // Page statistics for the top-level scalar columns, which queries filter
    // on; none for the leaves of maps and lists (attribute keys and values,
    // events, links, buckets): nothing prunes by them, and their min/max cost
    // ~2% of the server's CPU under load.
    let mut props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_statistics_enabled(EnabledStatistics::None)
        .set_max_row_group_row_count(Some(layout.row_group_rows))
        .set_data_page_row_count_limit(layout.page_rows)
        // The writer checks the page limit once per write batch.
        .set_write_batch_size(layout.page_rows.clamp(1, 1024))
        .set_sorting_columns(Some(sorting));
    for f in schema.fields() {
        if !f.data_type().is_nested() {
            props = props.set_column_statistics_enabled(
                ColumnPath::from(f.name().as_str()),
                EnabledStatistics::Page,
            );
        }
    }
    if matches!(table, Table::TRACES | Table::LOGS) {
        props = props
            .set_column_bloom_filter_enabled("trace_id".into(), true)
            .set_column_bloom_filter_fpp("trace_id".into(), 0.01);
    }
    props.build()
}

/// The order of `batch`'s rows by the table's sort columns; `None` when
/// there is nothing to sort.
pub fn sort_indices(table: Table, batch: &RecordBatch) -> Result<Option<UInt32Array>> {
    let cols: Vec<SortColumn> = sort_columns(table)
        .iter()
        .filter_map(|c| batch.column_by_name(c))
        .map(|a| SortColumn {
            values: a.clone(),
            options: None,
        })
        .collect();
    if cols.is_empty() || batch.num_rows() < 2 {
        return Ok(None);
    }
    lexsort_to_indices(&cols, None)
        .map(Some)
        .map_err(EncodeError::Sort)
}

/// Sorts `batch` by the table's sort columns.
pub fn sort_rows(table: Table, batch: &RecordBatch) -> Result<RecordBatch> {
    match sort_indices(table, batch)? {
        Some(idx) => take_rows(batch, &idx).map_err(EncodeError::Sort),
        None => Ok(batch.clone()),
    }
}

/// Encodes a table's rows as one Parquet file. The unsorted rows are
/// dropped once sorted, before the (longer) encoding.
pub fn encode(table: Table, batch: RecordBatch, layout: FileLayout) -> Result<Bytes> {
    let sorted = sort_rows(table, &batch)?;
    drop(batch);
    let mut out = Vec::with_capacity(sorted.get_array_memory_size() / 4);
    let mut w = ArrowWriter::try_new(
        &mut out,
        sorted.schema(),
        Some(writer_properties(table, &sorted.schema(), layout)),
    )?;
    w.write(&sorted)?;
    w.close()?;
    Ok(Bytes::from(out))
}
