//! What SQL from API callers may do, checked on the parsed statement before
//! DataFusion plans it: read only the tenant's tables ([`ReadGuard`]), and
//! stay within sizes the planner handles in bounded time and stack
//! ([`SqlLimits`]).
//!
//! The size limits exist because DataFusion's planner, optimizer and the
//! derived `Clone`/`Drop`/`Display` of its expression trees recurse once per
//! level: a flat `1+1+…+1` or `a OR b OR …` (which sqlparser parses without
//! recursion, so its own recursion limit does not bound it) becomes a
//! left-deep tree that overflows any thread's stack — an abort, not an
//! error. A very long `IN` list plans for tens of seconds. Both are refused
//! here with a 400 that names the limit.

use std::ops::ControlFlow;

use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    Expr, ObjectName, Query, SetExpr, TableFactor, Visit, Visitor,
};

use tf_application::ports::QueryError;

/// Sizes a SQL statement from an API caller may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlLimits {
    /// Bytes of SQL text; checked before parsing. It also bounds the depth
    /// of what the parser builds (one level per two bytes at most), so the
    /// parsed tree can always be walked and dropped on a query thread.
    pub max_sql_bytes: usize,
    /// Nesting depth of expressions (each operand of a binary operator, each
    /// function argument, each parenthesis is one level deeper); also the
    /// most set operations (`UNION`, `EXCEPT`, `INTERSECT`) chained in one
    /// query and the most joins in one `FROM` item, which plan the same way.
    pub max_expr_depth: usize,
    /// Elements of one `IN (…)` list.
    pub max_in_list: usize,
}

impl Default for SqlLimits {
    fn default() -> Self {
        Self {
            max_sql_bytes: 256 << 10,
            max_expr_depth: 1000,
            max_in_list: 10_000,
        }
    }
}

impl SqlLimits {
    /// `Invalid` if the text is over `max_sql_bytes` (before parsing).
    pub(super) fn check_text(&self, sql: &str) -> Result<(), QueryError> {
        if sql.len() > self.max_sql_bytes {
            return Err(QueryError::Invalid(format!(
                "SQL text of {} bytes exceeds the limit of {} bytes (query.max_sql_bytes)",
                sql.len(),
                self.max_sql_bytes
            )));
        }
        Ok(())
    }
}

/// Measures expression depth and `IN` list sizes; stops at the first limit
/// exceeded, so its own recursion never goes deeper than the limit.
struct SizeGuard<'a> {
    limits: &'a SqlLimits,
    depth: usize,
    refused: Option<String>,
}

impl<'a> SizeGuard<'a> {
    fn new(limits: &'a SqlLimits) -> Self {
        Self {
            limits,
            depth: 0,
            refused: None,
        }
    }
}

impl SizeGuard<'_> {
    fn refuse(&mut self, what: &str) -> ControlFlow<()> {
        self.refused = Some(format!(
            "{what} deeper than the limit of {} levels (query.max_expr_depth)",
            self.limits.max_expr_depth
        ));
        ControlFlow::Break(())
    }
}

impl Visitor for SizeGuard<'_> {
    type Break = ();

    /// Set operations parse into a left-deep tree without recursion, and
    /// joins into a list that plans as a left-deep tree: both are measured
    /// here, without recursion, before the derived visit descends into them.
    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        let max = self.limits.max_expr_depth;
        let mut stack = vec![(query.body.as_ref(), 1usize)];
        while let Some((set, depth)) = stack.pop() {
            if depth > max {
                return self.refuse("set operations (UNION, EXCEPT, INTERSECT) chained");
            }
            match set {
                SetExpr::SetOperation { left, right, .. } => {
                    stack.push((left, depth + 1));
                    stack.push((right, depth + 1));
                }
                SetExpr::Select(select) if select.from.iter().any(|t| t.joins.len() >= max) => {
                    return self.refuse("joins nested");
                }
                _ => {}
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        self.depth += 1;
        if self.depth > self.limits.max_expr_depth {
            self.refused = Some(format!(
                "expression nested deeper than the limit of {} levels (query.max_expr_depth); \
                 long chains of operators such as a + b + … or x = 1 OR x = 2 OR … count one \
                 level per operator: use IN (…) or split the query",
                self.limits.max_expr_depth
            ));
            return ControlFlow::Break(());
        }
        if let Expr::InList { list, .. } = expr
            && list.len() > self.limits.max_in_list
        {
            self.refused = Some(format!(
                "IN list of {} elements exceeds the limit of {} (query.max_in_list)",
                list.len(),
                self.limits.max_in_list
            ));
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
}

/// Table functions API callers may use: they generate rows, read nothing.
const ALLOWED_TABLE_FUNCTIONS: [&str; 2] = ["generate_series", "range"];

/// Refuses what could read anything but the tenant's tables: table functions
/// other than generators, and file paths or URLs in `FROM` (DataFusion would
/// not resolve them in our sessions either; this says so with a 403).
struct ReadGuard(Option<String>);

impl ReadGuard {
    fn check_name(&mut self, name: &ObjectName, is_function: bool) {
        let text = name.to_string();
        let last = name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(|i| (i.value.as_str(), i.quote_style));
        let lower = text.to_ascii_lowercase();
        if is_function {
            let fname = last
                .map(|(v, _)| v.to_ascii_lowercase())
                .unwrap_or_default();
            if name.0.len() != 1 || !ALLOWED_TABLE_FUNCTIONS.contains(&fname.as_str()) {
                self.0 = Some(format!(
                    "table function {text} is not allowed: queries may read only the tenant's \
                     tables (allowed table functions: {})",
                    ALLOWED_TABLE_FUNCTIONS.join(", ")
                ));
            }
        } else if last.is_some_and(|(v, q)| {
            q == Some('\'') || v.contains('/') || v.contains("://") || v.contains('\\')
        }) || lower.contains("://")
        {
            self.0 = Some(format!(
                "reading files or URLs ({text}) is not allowed: queries may read only the \
                 tenant's tables"
            ));
        }
    }
}

impl Visitor for ReadGuard {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        match factor {
            TableFactor::Table { name, args, .. } => self.check_name(name, args.is_some()),
            TableFactor::Function { name, .. } => self.check_name(name, true),
            TableFactor::TableFunction { expr, .. } => {
                self.0 = Some(format!("table function TABLE({expr}) is not allowed"));
            }
            TableFactor::JsonTable { .. }
            | TableFactor::OpenJsonTable { .. }
            | TableFactor::XmlTable { .. } => {
                self.0 = Some("JSON_TABLE/OPENJSON/XMLTABLE are not allowed".into());
            }
            _ => {}
        }
        if self.0.is_some() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

/// `Forbidden` for statements that are not a read of the tenant's tables;
/// `Invalid` for statements beyond the size limits.
pub(super) fn guard(statement: &DfStatement, limits: &SqlLimits) -> Result<(), QueryError> {
    match statement {
        DfStatement::Statement(s) => {
            let mut size = SizeGuard::new(limits);
            if s.visit(&mut size).is_break() {
                return Err(QueryError::Invalid(size.refused.unwrap_or_default()));
            }
            let mut g = ReadGuard(None);
            let _ = s.visit(&mut g);
            match g.0 {
                Some(msg) => Err(QueryError::Forbidden(msg)),
                None => Ok(()),
            }
        }
        DfStatement::Explain(e) => guard(&e.statement, limits),
        DfStatement::CreateExternalTable(_) => Err(QueryError::Forbidden(
            "CREATE EXTERNAL TABLE is not allowed: DDL is not supported".into(),
        )),
        DfStatement::CopyTo(_) => Err(QueryError::Forbidden(
            "COPY is not allowed: DML is not supported".into(),
        )),
        DfStatement::Reset(_) => Err(QueryError::Forbidden(
            "RESET is not allowed: Statement is not supported".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::parser::DFParser;

    use super::*;

    fn check(sql: &str, limits: &SqlLimits) -> Result<(), QueryError> {
        limits.check_text(sql)?;
        let mut statements = DFParser::parse_sql(sql).expect("parses");
        guard(&statements.pop_front().expect("one statement"), limits)
    }

    fn chain(n: usize, op: &str) -> String {
        let terms: Vec<String> = (0..n).map(|i| format!("x = {i}")).collect();
        format!("SELECT * FROM t WHERE {}", terms.join(op))
    }

    #[test]
    fn depth_is_counted_per_operator() {
        let limits = SqlLimits {
            max_expr_depth: 100,
            ..SqlLimits::default()
        };
        // 40 ORs of `x = i`: 40 levels of OR, one of `=`, one for the operand.
        assert!(check(&chain(40, " OR "), &limits).is_ok());
        let err = check(&chain(200, " OR "), &limits).unwrap_err();
        assert!(
            matches!(&err, QueryError::Invalid(m) if m.contains("query.max_expr_depth")),
            "{err}"
        );
        let sum = format!("SELECT {}", vec!["1"; 150].join("+"));
        assert!(check(&sum, &limits).is_err());
        let sum = format!("SELECT {}", vec!["1"; 90].join("+"));
        assert!(check(&sum, &limits).is_ok());
        // Set operations and joins count too.
        let union = vec!["SELECT 1"; 150].join(" UNION ALL ");
        let err = check(&union, &limits).unwrap_err();
        assert!(err.to_string().contains("set operations"), "{err}");
        assert!(check(&vec!["SELECT 1"; 50].join(" UNION ALL "), &limits).is_ok());
        let joins = format!("SELECT 1 FROM t{}", " JOIN t USING (x)".repeat(150));
        let err = check(&joins, &limits).unwrap_err();
        assert!(err.to_string().contains("joins"), "{err}");
    }

    #[test]
    fn in_lists_and_text_are_bounded() {
        let limits = SqlLimits {
            max_in_list: 100,
            max_sql_bytes: 2_000,
            ..SqlLimits::default()
        };
        let list = |n: usize| {
            let items: Vec<String> = (0..n).map(|i| i.to_string()).collect();
            format!("SELECT * FROM t WHERE x IN ({})", items.join(","))
        };
        assert!(check(&list(100), &limits).is_ok());
        let err = check(&list(101), &limits).unwrap_err();
        assert!(err.to_string().contains("IN list of 101 elements"), "{err}");
        let err = check(&list(1_000), &limits).unwrap_err();
        assert!(err.to_string().contains("query.max_sql_bytes"), "{err}");
    }
}
