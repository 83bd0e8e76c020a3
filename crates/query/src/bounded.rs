//! Scalar functions whose result can be far larger than their arguments
//! (`repeat('x', 1000000000)` is 30 bytes of SQL and 1 GB of result),
//! bounded by the query's memory pool.
//!
//! DataFusion counts what its operators hold (sorts, joins, aggregations)
//! against the query's pool, but a scalar function allocates its result
//! unasked. So each session replaces the functions that amplify with a
//! wrapper ([`Bounded`]) that, before the function runs, computes an upper
//! bound of the bytes its result can take from the argument values alone and
//! reserves it on the query's pool: a call whose result cannot fit is refused
//! (`ResourcesExhausted`, HTTP 422 naming `query.memory_limit_mb`) before
//! anything is allocated. The reservation is held while the function runs
//! and released when it returns; from then on the result is a batch like any
//! other, counted by whatever operator keeps it (and by the collected
//! answer, see `engine`).
//!
//! The bounds are sound and close for the common case: a function applied to
//! sane sizes reserves about what it builds. A call on constants only is
//! folded into a literal while planning, and the planner copies literals: it
//! reserves [`FOLDED_COPIES`] times its bound. Functions whose result is at
//! most a small multiple of their inputs (case mapping, `translate`,
//! `encode`, `concat`, `make_array`, …) are left alone.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, FieldRef, IntervalMonthDayNanoType, TimeUnit};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::execution::FunctionRegistry;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryLimit, MemoryPool};
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature,
};
use datafusion::prelude::SessionContext;

/// How the result of a wrapped function is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Growth {
    /// `repeat(s, n)`: `n` copies of `s`.
    Repeat,
    /// `lpad/rpad(s, n [, fill])`: `n` characters, each at most as long as
    /// the longest character of `fill` (a space by default).
    Pad,
    /// `replace(s, from, to)`: every `from` becomes `to`; an empty `from`
    /// matches between every two characters.
    Replace,
    /// `regexp_replace(s, pattern, replacement [, flags])`: like `Replace`,
    /// and each capture reference in the replacement adds at most `s`.
    RegexpReplace,
    /// `concat_ws(sep, a, b, …)`: the separator once per argument.
    ConcatWs,
    /// `array_repeat(element, n)`: `n` copies of the element.
    ArrayRepeat,
    /// `range/generate_series(start, stop, step)` as list-valued functions.
    Range,
    /// `array_resize(list, n [, value])`: up to `n` elements.
    ArrayResize,
    /// `array_to_string(list, sep [, null])`: each element's text, the
    /// separator (and null text) once per element.
    ArrayToString,
    /// `array_replace[_n|_all](list, from, to [, n])`: each element may
    /// become `to`.
    ArrayReplace,
}

/// The functions that are wrapped, by name (their aliases follow them).
const AMPLIFYING: [(&str, Growth); 14] = [
    ("repeat", Growth::Repeat),
    ("lpad", Growth::Pad),
    ("rpad", Growth::Pad),
    ("replace", Growth::Replace),
    ("regexp_replace", Growth::RegexpReplace),
    ("concat_ws", Growth::ConcatWs),
    ("array_repeat", Growth::ArrayRepeat),
    ("range", Growth::Range),
    ("generate_series", Growth::Range),
    ("array_resize", Growth::ArrayResize),
    ("array_to_string", Growth::ArrayToString),
    ("array_replace", Growth::ArrayReplace),
    ("array_replace_n", Growth::ArrayReplace),
    ("array_replace_all", Growth::ArrayReplace),
];

/// Replaces the amplifying functions of `ctx` with wrappers that reserve
/// their results on `pool` (the query's pool) before they run.
pub(crate) fn register(ctx: &SessionContext, pool: &Arc<dyn MemoryPool>) -> Result<()> {
    for (name, growth) in AMPLIFYING {
        let Ok(udf) = ctx.udf(name) else {
            continue;
        };
        if udf.inner().is::<Bounded>() {
            continue;
        }
        ctx.register_udf(ScalarUDF::new_from_impl(Bounded {
            inner: Arc::clone(udf.inner()),
            growth,
            pool: Arc::clone(pool),
        }));
    }
    Ok(())
}

/// A scalar function whose result is reserved on the query's pool before
/// it is built.
#[derive(Debug)]
struct Bounded {
    inner: Arc<dyn ScalarUDFImpl>,
    growth: Growth,
    pool: Arc<dyn MemoryPool>,
}

impl PartialEq for Bounded {
    fn eq(&self, other: &Self) -> bool {
        self.growth == other.growth
            && Arc::ptr_eq(&self.pool, &other.pool)
            && self.inner.name() == other.inner.name()
    }
}

impl Eq for Bounded {}

impl Hash for Bounded {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.name().hash(state);
        self.growth.hash(state);
    }
}

impl Bounded {
    /// Reserves `bytes` on the pool, or refuses with a message naming them.
    fn reserve(&self, bytes: u64) -> Result<datafusion::execution::memory_pool::MemoryReservation> {
        let name = self.inner.name();
        let reservation = MemoryConsumer::new(format!("{name}()")).register(&self.pool);
        let refused = || {
            let limit = match self.pool.memory_limit() {
                MemoryLimit::Finite(n) => format!(" of {n} bytes"),
                _ => String::new(),
            };
            DataFusionError::ResourcesExhausted(format!(
                "{name}() would build up to {bytes} bytes, more than the query's memory \
                 limit{limit} leaves ({} bytes in use)",
                self.pool.reserved()
            ))
        };
        let bytes = usize::try_from(bytes).map_err(|_| refused())?;
        reservation.try_grow(bytes).map_err(|_| refused())?;
        Ok(reservation)
    }
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn is_strict(&self) -> bool {
        self.inner.is_strict()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let bytes = bound(self.growth, &args.args, args.number_rows)?;
        let reservation = self.reserve(bytes)?;
        let result = self.inner.invoke_with_args(args);
        drop(reservation);
        result
    }

    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }

    fn output_ordering(&self, inputs: &[ExprProperties]) -> Result<SortProperties> {
        self.inner.output_ordering(inputs)
    }

    fn preserves_lex_ordering(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.inner.preserves_lex_ordering(inputs)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}

/// One argument of a call, read row by row without materializing scalars.
struct Arg<'a> {
    value: &'a ColumnarValue,
    /// Integers cast to Int64 once (only for integer arguments).
    ints: Option<Int64Array>,
}

impl<'a> Arg<'a> {
    fn new(value: &'a ColumnarValue) -> Self {
        let ints = match value {
            ColumnarValue::Array(a) if a.data_type().is_integer() => cast(a, &DataType::Int64)
                .ok()
                .map(|a| a.as_primitive::<arrow::datatypes::Int64Type>().clone()),
            _ => None,
        };
        Self { value, ints }
    }

    fn is_scalar(&self) -> bool {
        matches!(self.value, ColumnarValue::Scalar(_))
    }

    /// An integer argument's value (`None` for null or another type).
    fn int(&self, row: usize) -> Option<i64> {
        match self.value {
            ColumnarValue::Scalar(s) => match s.cast_to(&DataType::Int64).ok()? {
                ScalarValue::Int64(v) => v,
                _ => None,
            },
            ColumnarValue::Array(_) => {
                let a = self.ints.as_ref()?;
                a.is_valid(row).then(|| a.value(row))
            }
        }
    }

    /// Bytes of a string (or binary) value; other values by their size.
    fn len(&self, row: usize) -> u64 {
        match self.value {
            ColumnarValue::Scalar(s) => match s {
                ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => {
                    v.as_ref().map_or(0, |s| s.len() as u64)
                }
                ScalarValue::Binary(v)
                | ScalarValue::LargeBinary(v)
                | ScalarValue::BinaryView(v) => v.as_ref().map_or(0, |b| b.len() as u64),
                other => scalar_bytes(other),
            },
            ColumnarValue::Array(a) => {
                if a.is_null(row) {
                    return 0;
                }
                match a.data_type() {
                    DataType::Utf8 => a.as_string::<i32>().value(row).len() as u64,
                    DataType::LargeUtf8 => a.as_string::<i64>().value(row).len() as u64,
                    DataType::Utf8View => a.as_string_view().value(row).len() as u64,
                    DataType::Binary => a.as_binary::<i32>().value(row).len() as u64,
                    DataType::LargeBinary => a.as_binary::<i64>().value(row).len() as u64,
                    DataType::BinaryView => a.as_binary_view().value(row).len() as u64,
                    _ => value_bytes(a, row),
                }
            }
        }
    }

    /// A string value itself (for flags and replacement texts).
    fn text(&self, row: usize) -> Option<String> {
        match self.value {
            ColumnarValue::Scalar(s) => match s {
                ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => {
                    v.clone()
                }
                _ => None,
            },
            ColumnarValue::Array(a) => {
                if a.is_null(row) {
                    return None;
                }
                match a.data_type() {
                    DataType::Utf8 => Some(a.as_string::<i32>().value(row).to_owned()),
                    DataType::LargeUtf8 => Some(a.as_string::<i64>().value(row).to_owned()),
                    DataType::Utf8View => Some(a.as_string_view().value(row).to_owned()),
                    _ => None,
                }
            }
        }
    }

    /// The value of one row as an array of length one (lists: their elements).
    fn row(&self, row: usize) -> Option<ArrayRef> {
        match self.value {
            ColumnarValue::Scalar(s) => s.to_array_of_size(1).ok(),
            ColumnarValue::Array(a) => Some(a.slice(row, 1)),
        }
    }
}

/// Bytes one scalar takes in an array: its width, or its size.
fn scalar_bytes(s: &ScalarValue) -> u64 {
    s.data_type()
        .primitive_width()
        .map_or(s.size() as u64, |w| w as u64)
}

/// Bytes row `row` of `a` takes.
fn value_bytes(a: &ArrayRef, row: usize) -> u64 {
    if let Some(w) = a.data_type().primitive_width() {
        return w as u64;
    }
    a.to_data()
        .slice(row, 1)
        .get_slice_memory_size()
        .map_or_else(|_| a.get_array_memory_size() as u64, |n| n as u64)
}

/// Elements of the list in a one-row array (0 for a null or non-list).
fn elements(row: &ArrayRef) -> u64 {
    if row.is_null(0) {
        return 0;
    }
    match row.data_type() {
        DataType::List(_) => row.as_list::<i32>().value_length(0) as u64,
        DataType::LargeList(_) => row.as_list::<i64>().value_length(0) as u64,
        DataType::FixedSizeList(_, n) => *n as u64,
        _ => 1,
    }
}

/// Leaf values under a one-row list array (nested lists flattened).
fn leaves(row: &ArrayRef) -> u64 {
    fn count(a: &dyn Array) -> u64 {
        match a.data_type() {
            DataType::List(_) => {
                let l = a.as_list::<i32>();
                let (first, last) = (l.value_offsets()[0], l.value_offsets()[l.len()]);
                count(&l.values().slice(first as usize, (last - first) as usize))
            }
            DataType::LargeList(_) => {
                let l = a.as_list::<i64>();
                let (first, last) = (l.value_offsets()[0], l.value_offsets()[l.len()]);
                count(&l.values().slice(first as usize, (last - first) as usize))
            }
            DataType::FixedSizeList(_, _) => {
                let l = a.as_fixed_size_list();
                let n = l.value_length() as usize;
                count(&l.values().slice(l.offset() * n, l.len() * n))
            }
            _ => a.len() as u64,
        }
    }
    count(row.as_ref())
}

/// Upper bound of the bytes a call of a `growth` function builds.
fn bound(growth: Growth, args: &[ColumnarValue], rows: usize) -> Result<u64> {
    let args: Vec<Arg<'_>> = args.iter().map(Arg::new).collect();
    // With every argument a constant, each row is the same: count one. Such
    // a call is the planner folding constants: its result becomes a literal
    // of the plan, which planning copies (logical plan, optimizer, physical
    // plan, the literal's array), so it counts that many times.
    let (rows_to_read, times) = if args.iter().all(Arg::is_scalar) {
        (rows.min(1), (rows as u64).saturating_mul(FOLDED_COPIES))
    } else {
        (rows, 1)
    };
    let mut total: u64 = 0;
    for row in 0..rows_to_read {
        total = total.saturating_add(bound_row(growth, &args, row)?.saturating_mul(times));
    }
    Ok(total)
}

/// Copies of a constant-folded result that planning holds at once
/// (measured: `length(repeat('x', 1e9))` peaked at four times the result).
const FOLDED_COPIES: u64 = 4;

/// Offsets and validity of one list or string value.
const PER_VALUE: u64 = 8;

fn bound_row(growth: Growth, args: &[Arg<'_>], row: usize) -> Result<u64> {
    let arg = |i: usize| args.get(i);
    let len = |i: usize| arg(i).map_or(0, |a| a.len(row));
    let count = |i: usize| arg(i).and_then(|a| a.int(row)).unwrap_or(0).max(0) as u64;
    Ok(match growth {
        Growth::Repeat => len(0).saturating_mul(count(1)),
        Growth::Pad => {
            let per_char = match arg(2) {
                Some(fill) => fill.len(row).min(4),
                None => 1,
            };
            len(0).saturating_add(count(1).saturating_mul(per_char))
        }
        Growth::Replace => {
            let s = len(0);
            let matches = s / len(1).max(1) + 1;
            s.saturating_add(matches.saturating_mul(len(2)))
        }
        Growth::RegexpReplace => {
            let s = len(0);
            let replacement = arg(2).and_then(|a| a.text(row)).unwrap_or_default();
            let global = arg(3)
                .and_then(|a| a.text(row))
                .is_some_and(|f| f.contains('g'));
            // Non-overlapping matches: at most one per position (empty
            // matches), one without the `g` flag; each capture reference
            // adds at most the whole input over all matches.
            let matches = if global { s + 1 } else { 1 };
            let references = replacement.matches(['$', '\\']).count() as u64;
            s.saturating_add(matches.saturating_mul(replacement.len() as u64))
                .saturating_add(references.saturating_mul(s))
        }
        Growth::ConcatWs => {
            let parts = args.len().saturating_sub(1) as u64;
            let values: u64 = (1..args.len()).map(len).fold(0, u64::saturating_add);
            values.saturating_add(len(0).saturating_mul(parts))
        }
        Growth::ArrayRepeat => {
            let element = arg(0).map_or(0, |a| a.len(row));
            count(1).saturating_mul(element.saturating_add(PER_VALUE))
        }
        Growth::Range => range_bound(args, row)?,
        Growth::ArrayResize => {
            let list = arg(0).map_or(0, |a| a.len(row));
            let element = match arg(2) {
                Some(v) => v.len(row),
                None => arg(0)
                    .and_then(|a| a.row(row))
                    .map_or(PER_VALUE, |l| list_element_width(&l)),
            };
            list.saturating_add(count(1).saturating_mul(element.saturating_add(PER_VALUE)))
        }
        Growth::ArrayToString => {
            // A value's text: its bytes if a string, at most 40 characters
            // for numbers, dates and times.
            const TEXT: u64 = 40;
            let list = arg(0).map_or(0, |a| a.len(row));
            let n = arg(0).and_then(|a| a.row(row)).map_or(0, |l| leaves(&l));
            let per = len(1).saturating_add(len(2)).saturating_add(TEXT);
            list.saturating_add(n.saturating_mul(per))
        }
        Growth::ArrayReplace => {
            let list = arg(0).map_or(0, |a| a.len(row));
            let n = arg(0).and_then(|a| a.row(row)).map_or(0, |l| elements(&l));
            list.saturating_add(n.saturating_mul(len(2).saturating_add(PER_VALUE)))
        }
    })
}

/// Bytes of one element of a list type (a guess for variable-size ones).
fn list_element_width(row: &ArrayRef) -> u64 {
    let child = match row.data_type() {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            f.data_type().clone()
        }
        other => other.clone(),
    };
    child.primitive_width().map_or(PER_VALUE, |w| w as u64)
}

/// Elements `range`/`generate_series` makes for one row, times their width.
fn range_bound(args: &[Arg<'_>], row: usize) -> Result<u64> {
    let Some(first) = args.first() else {
        return Ok(0);
    };
    let data_type = match first.value {
        ColumnarValue::Scalar(s) => s.data_type(),
        ColumnarValue::Array(a) => a.data_type().clone(),
    };
    let (span, step, width): (u128, u128, u64) = match data_type {
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _) => {
            let dates = matches!(data_type, DataType::Date32 | DataType::Date64);
            let target = if dates {
                DataType::Date32
            } else {
                DataType::Timestamp(TimeUnit::Nanosecond, None)
            };
            let at = |i: usize| -> Option<i64> {
                let a = args.get(i)?.row(row)?;
                let a = cast(&a, &target).ok()?;
                if a.is_null(0) {
                    return None;
                }
                Some(if dates {
                    a.as_primitive::<arrow::datatypes::Date32Type>().value(0) as i64
                } else {
                    a.as_primitive::<arrow::datatypes::TimestampNanosecondType>()
                        .value(0)
                })
            };
            let step = args.get(2).and_then(|a| a.row(row)).and_then(|a| {
                (a.data_type() == &DataType::Interval(arrow::datatypes::IntervalUnit::MonthDayNano)
                    && a.is_valid(0))
                .then(|| a.as_primitive::<IntervalMonthDayNanoType>().value(0))
            });
            let (Some(start), Some(stop), Some(step)) = (at(0), at(1), step) else {
                return Ok(0);
            };
            let (months, days, nanos) = IntervalMonthDayNanoType::to_parts(step);
            let parts = [months as i64, days as i64, nanos];
            if parts.iter().any(|&p| p > 0) && parts.iter().any(|&p| p < 0) {
                return Err(DataFusionError::Execution(
                    "range/generate_series: a step whose months, days and nanoseconds have \
                     different signs is not supported"
                        .into(),
                ));
            }
            // The least a step can advance: a month is at least 28 days, a
            // day at least 23 hours (a daylight-saving change).
            const DAY_NS: u128 = 86_400_000_000_000;
            let step_ns = (months.unsigned_abs() as u128) * 28 * DAY_NS
                + (days.unsigned_abs() as u128) * 23 * 3_600_000_000_000
                + nanos.unsigned_abs() as u128;
            let span = start.abs_diff(stop) as u128;
            if dates {
                // Dates advance by whole days; nanoseconds are ignored.
                let step_days = (months.unsigned_abs() as u128) * 28 + days.unsigned_abs() as u128;
                (span, step_days.max(1), 4)
            } else {
                (span, step_ns.max(1), 8)
            }
        }
        _ => {
            let int = |i: usize| args.get(i).and_then(|a| a.int(row));
            let (start, stop, step) = match args.len() {
                1 => (Some(0), int(0), Some(1)),
                2 => (int(0), int(1), Some(1)),
                _ => (int(0), int(1), int(2)),
            };
            let (Some(start), Some(stop), Some(step)) = (start, stop, step) else {
                return Ok(0);
            };
            if step == 0 || (stop > start) != (step > 0) && stop != start {
                return Ok(PER_VALUE);
            }
            (start.abs_diff(stop) as u128, step.unsigned_abs() as u128, 8)
        }
    };
    let elements = span / step + 1;
    Ok(u64::try_from(elements.saturating_mul(width as u128)).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::memory_pool::GreedyMemoryPool;
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use datafusion::prelude::SessionConfig;

    async fn run(sql: &str, pool_bytes: usize) -> Result<Vec<arrow::record_batch::RecordBatch>> {
        let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(pool_bytes));
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::clone(&pool))
            .build_arc()?;
        let ctx = SessionContext::new_with_config_rt(SessionConfig::new(), runtime);
        register(&ctx, &pool)?;
        ctx.sql(sql).await?.collect().await
    }

    fn refused(r: Result<Vec<arrow::record_batch::RecordBatch>>) -> String {
        match r {
            Err(e) => match e.find_root() {
                DataFusionError::ResourcesExhausted(m) => m.clone(),
                other => panic!("not ResourcesExhausted: {other}"),
            },
            Ok(_) => panic!("not refused"),
        }
    }

    const MIB: usize = 1 << 20;

    #[tokio::test]
    async fn amplifying_functions_are_refused_before_they_allocate() {
        for sql in [
            "SELECT length(repeat('x', 1000000000))",
            "SELECT length(lpad('x', 1000000000))",
            "SELECT length(rpad('x', 1000000000, 'ab'))",
            "SELECT length(replace(repeat('a', 1000), 'a', repeat('b', 100000)))",
            "SELECT length(replace(repeat('a', 100000), '', repeat('b', 1000)))",
            "SELECT length(regexp_replace(repeat('a', 100000), 'a*?', repeat('b', 1000), 'g'))",
            "SELECT length(regexp_replace(repeat('a', 10000), '(a)', repeat('$1', 1000), 'g'))",
            "SELECT length(concat_ws(repeat('x', 1000000), 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', 'p', 'q', 'r', 's', 't'))",
            "SELECT cardinality(array_repeat(1, 1000000000))",
            "SELECT cardinality(array_repeat(array_repeat(1, 10000), 10000))",
            "SELECT cardinality(range(1000000000))",
            "SELECT cardinality(generate_series(1, 1000000000))",
            "SELECT cardinality(range(TIMESTAMP '2000-01-01', TIMESTAMP '2100-01-01', INTERVAL '1 second'))",
            "SELECT cardinality(generate_series(DATE '1000-01-01', DATE '9000-01-01', INTERVAL '1 day'))",
            "SELECT cardinality(array_resize([1], 1000000000))",
            "SELECT length(array_to_string(range(100000), repeat(',', 1000)))",
            "SELECT cardinality(array_replace_all(array_repeat([1], 10000), [1], range(10000)))",
        ] {
            let m = refused(run(sql, 16 * MIB).await);
            assert!(m.contains("would build up to"), "{sql}: {m}");
        }
    }

    #[tokio::test]
    async fn sane_sizes_work_and_answer_as_before() {
        let batches = run(
            "SELECT length(repeat('ab', 1000)) AS a, length(lpad('x', 100, 'é')) AS b, \
             length(rpad('x', 50)) AS c, replace('a-b-c', '-', '+') AS d, \
             regexp_replace('a1b22', '[0-9]+', '#', 'g') AS e, concat_ws(',', 'a', 'b') AS f, \
             cardinality(array_repeat(7, 1000)) AS g, cardinality(range(10)) AS h, \
             cardinality(generate_series(1, 10)) AS i, \
             cardinality(range(DATE '2024-01-01', DATE '2024-02-01', INTERVAL '1 day')) AS j, \
             cardinality(array_resize([1, 2], 5)) AS k, array_to_string([1, 2, 3], '-') AS l, \
             array_replace_all([1, 2, 1], 1, 9) AS m, \
             cardinality(generate_series(TIMESTAMP '2024-01-01', TIMESTAMP '2024-01-02', INTERVAL '1 hour')) AS n",
            MIB,
        )
        .await
        .expect("sane sizes run");
        datafusion::assert_batches_eq!(
            [
                "+------+-----+----+-------+------+-----+------+----+----+----+---+-------+-----------+----+",
                "| a    | b   | c  | d     | e    | f   | g    | h  | i  | j  | k | l     | m         | n  |",
                "+------+-----+----+-------+------+-----+------+----+----+----+---+-------+-----------+----+",
                "| 2000 | 100 | 50 | a+b+c | a#b# | a,b | 1000 | 10 | 10 | 31 | 5 | 1-2-3 | [9, 2, 9] | 25 |",
                "+------+-----+----+-------+------+-----+------+----+----+----+---+-------+-----------+----+",
            ],
            &batches
        );
    }

    #[tokio::test]
    async fn a_result_over_what_other_operators_hold_is_refused() {
        // A folded 3 MiB (four copies) fits in an empty 16 MiB pool, not
        // beside 8 MiB held elsewhere.
        let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(16 * MIB));
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::clone(&pool))
            .build_arc()
            .unwrap();
        let ctx = SessionContext::new_with_config_rt(SessionConfig::new(), runtime);
        register(&ctx, &pool).unwrap();
        let sql = "SELECT length(repeat('x', 3000000)) AS n";
        let ok = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        assert_eq!(ok[0].num_rows(), 1);
        let held = MemoryConsumer::new("sort").register(&pool);
        held.try_grow(8 * MIB).unwrap();
        let r = ctx.sql(sql).await.unwrap().collect().await;
        assert!(refused(r).contains("in use"));
        drop(held);
        assert_eq!(pool.reserved(), 0, "a call's reservation ends with it");
    }

    #[test]
    fn mixed_sign_steps_are_refused() {
        let step = ColumnarValue::Scalar(ScalarValue::IntervalMonthDayNano(Some(
            IntervalMonthDayNanoType::make_value(1, -28, 0),
        )));
        let d = |v| ColumnarValue::Scalar(ScalarValue::Date32(Some(v)));
        assert!(bound(Growth::Range, &[d(0), d(1000), step], 1).is_err());
    }
}
