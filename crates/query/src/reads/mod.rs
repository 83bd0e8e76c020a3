//! The read model's typed questions ([`TraceReadModel`], [`MetricReadModel`])
//! answered in SQL over the tenant's tables: the statements, in DataFusion's
//! dialect, live here with the engine, never in the application layer. Values
//! are bound as parameters (`$1`, `$2`, …), never spliced; the only literals
//! written into the text are numbers the application validated and
//! attribute keys, quoted by [`sql_string`].
//!
//! [`TraceReadModel`]: tf_application::queries::TraceReadModel
//! [`MetricReadModel`]: tf_application::queries::MetricReadModel

mod metrics;
mod rows;
mod stored;
mod traces;

use tf_application::queries::params::TimeWindow;
use tf_application::queries::{LabelMatcher, MatchOp};

use crate::engine::SqlParam;

/// A single-quoted SQL string literal.
fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Builds `AND …` clauses with `$n` placeholders, starting from a time window.
struct Where {
    sql: String,
    params: Vec<SqlParam>,
}

impl Where {
    fn window(w: &TimeWindow) -> Self {
        Self {
            sql: "timestamp >= $1 AND timestamp < $2".into(),
            params: vec![
                SqlParam::TimestampNs(w.start_ns),
                SqlParam::TimestampNs(w.end_ns),
            ],
        }
    }

    /// `clause` with its one `?` bound to `param`.
    fn and(&mut self, clause: &str, param: SqlParam) {
        self.params.push(param);
        let n = self.params.len();
        self.sql.push_str(" AND ");
        self.sql.push_str(&clause.replace('?', &format!("${n}")));
    }

    /// `AND` every matcher, over the item's own attribute map `attrs`
    /// (else the resource's; `service.name` is the service column). An
    /// absent label is the empty string, and regexes are fully anchored
    /// ([`LabelMatcher`]'s semantics).
    fn matchers(&mut self, filters: &[LabelMatcher], attrs: &str) {
        for m in filters {
            let (op, value) = match m.op() {
                MatchOp::Equal => ("=", m.value().to_owned()),
                MatchOp::NotEqual => ("<>", m.value().to_owned()),
                MatchOp::Regex => ("~", m.anchored_pattern().unwrap_or_default()),
                MatchOp::NotRegex => ("!~", m.anchored_pattern().unwrap_or_default()),
            };
            self.params.push(SqlParam::Utf8(value));
            let n = self.params.len();
            let label = label_value(m.key(), attrs);
            self.sql
                .push_str(&format!(" AND COALESCE({label}, '') {op} ${n}"));
        }
    }
}

/// The value of label `key` of an item: its own attribute `attrs[key]`,
/// else the resource's; `service.name` is the service column. Null when
/// neither has it.
fn label_value(key: &str, attrs: &str) -> String {
    if key == "service.name" {
        return "service_name".to_owned();
    }
    let lit = sql_string(key);
    format!("COALESCE({attrs}[{lit}], resource_attributes[{lit}])")
}

#[cfg(test)]
mod tests {
    use super::sql_string;

    #[test]
    fn string_literals_double_their_quotes() {
        assert_eq!(sql_string("it's"), "'it''s'");
    }
}
