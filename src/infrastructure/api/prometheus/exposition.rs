//! The Prometheus text format (version 0.0.4): a metric family declared
//! once as a [`MetricDef`], its `# HELP` and `# TYPE` lines written from the
//! declaration, then its samples under the declared name.

use std::fmt::{Display, Write as _};

/// A metric's type, as `# TYPE` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
    Summary,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
            Kind::Summary => "summary",
        }
    }
}

/// One metric family: the name its samples carry, its type, its help text.
#[derive(Debug)]
pub(super) struct MetricDef {
    pub(super) name: &'static str,
    kind: Kind,
    help: &'static str,
}

impl MetricDef {
    const fn new(name: &'static str, kind: Kind, help: &'static str) -> Self {
        Self { name, kind, help }
    }

    pub(super) const fn counter(name: &'static str, help: &'static str) -> Self {
        Self::new(name, Kind::Counter, help)
    }

    pub(super) const fn gauge(name: &'static str, help: &'static str) -> Self {
        Self::new(name, Kind::Gauge, help)
    }

    pub(super) const fn histogram(name: &'static str, help: &'static str) -> Self {
        Self::new(name, Kind::Histogram, help)
    }

    pub(super) const fn summary(name: &'static str, help: &'static str) -> Self {
        Self::new(name, Kind::Summary, help)
    }
}

/// The text being written.
#[derive(Default)]
pub(super) struct Exposition(String);

impl Exposition {
    pub(super) fn into_text(self) -> String {
        self.0
    }

    /// Starts a family (its `# HELP` and `# TYPE` lines); its samples follow.
    pub(super) fn family(&mut self, def: &MetricDef) -> Family<'_> {
        let (name, kind, help) = (def.name, def.kind.as_str(), def.help);
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
        Family {
            out: &mut self.0,
            name,
        }
    }
}

/// Label names and values of a sample, in order.
pub(super) type Labels<'a> = &'a [(&'static str, &'a dyn Display)];

/// The samples of one family.
pub(super) struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl Family<'_> {
    /// A sample without labels.
    pub(super) fn value(&mut self, value: impl Display) -> &mut Self {
        self.sample("", &[], value)
    }

    pub(super) fn labelled(&mut self, labels: Labels<'_>, value: impl Display) -> &mut Self {
        self.sample("", labels, value)
    }

    /// A sample of the series `<name><suffix>`: a histogram's `_bucket`,
    /// `_sum` and `_count`, a summary's `_sum` and `_count`.
    pub(super) fn sample(
        &mut self,
        suffix: &str,
        labels: Labels<'_>,
        value: impl Display,
    ) -> &mut Self {
        let out = &mut *self.out;
        let _ = write!(out, "{}{suffix}", self.name);
        for (i, (label, v)) in labels.iter().enumerate() {
            let open = if i == 0 { '{' } else { ',' };
            let _ = write!(out, "{open}{label}=\"{v}\"");
        }
        if !labels.is_empty() {
            out.push('}');
        }
        let _ = writeln!(out, " {value}");
        self
    }
}
