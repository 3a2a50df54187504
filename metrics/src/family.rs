//! Metric families built fresh at every scrape, for collectors that mirror state kept elsewhere.
//!
//! The `prometheus` crate's `GaugeVec` keeps every label set it ever saw until someone removes
//! it; a collector that mirrors a cache or reads the kernel at scrape time would have to track
//! which series went away. Building each family from the current state instead (what
//! kube-state-metrics and cAdvisor do) makes a deleted object's series vanish at once, so the
//! number of series is bounded by the number of live objects.
//!
//! A [`FamilySpec`] is the static shape of a family (name, HELP, type, label names); its
//! [`Desc`] is what `Registry::register` checks for clashes between collectors.

use std::collections::HashMap;

use prometheus::core::Desc;
use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};

/// The static shape of one metric family.
#[derive(Debug)]
pub(crate) struct FamilySpec {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: MetricType,
    pub labels: &'static [&'static str],
}

impl FamilySpec {
    pub const fn gauge(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Self {
        Self {
            name,
            help,
            kind: MetricType::GAUGE,
            labels,
        }
    }

    pub const fn counter(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Self {
        Self {
            name,
            help,
            kind: MetricType::COUNTER,
            labels,
        }
    }

    /// The descriptor `Registry::register` checks (name syntax, label names, no clash with
    /// another collector's family).
    pub fn desc(&self) -> prometheus::Result<Desc> {
        Desc::new(
            self.name.to_owned(),
            self.help.to_owned(),
            self.labels
                .iter()
                .map(|label| (*label).to_owned())
                .collect(),
            HashMap::new(),
        )
    }

    /// An empty family of this shape, to [`Family::push`] samples into.
    pub fn start(&'static self) -> Family {
        Family {
            spec: self,
            metrics: Vec::new(),
        }
    }
}

/// The descriptors of `specs`, in order.
pub(crate) fn descs(specs: &[&FamilySpec]) -> prometheus::Result<Vec<Desc>> {
    specs.iter().map(|spec| spec.desc()).collect()
}

/// The samples of one family gathered during a scrape.
#[derive(Debug)]
pub(crate) struct Family {
    spec: &'static FamilySpec,
    metrics: Vec<Metric>,
}

impl Family {
    /// Adds one sample; `values` are the label values in the order of the spec's label names.
    /// Values beyond the label names are ignored and missing ones are empty, so a mistake in a
    /// collector shows as a wrong series rather than a panic during a scrape (the tests assert
    /// the exact series).
    pub fn push(&mut self, values: &[&str], value: f64) {
        debug_assert_eq!(
            values.len(),
            self.spec.labels.len(),
            "label values of {}",
            self.spec.name
        );
        let label = self
            .spec
            .labels
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let mut pair = LabelPair::new();
                pair.set_name((*name).to_owned());
                pair.set_value(values.get(i).copied().unwrap_or_default().to_owned());
                pair
            })
            .collect();
        let mut metric = Metric::from_label(label);
        match self.spec.kind {
            MetricType::COUNTER => {
                let mut counter = Counter::new();
                counter.set_value(value);
                metric.set_counter(counter);
            }
            _ => {
                let mut gauge = Gauge::new();
                gauge.set_value(value);
                metric.set_gauge(gauge);
            }
        }
        self.metrics.push(metric);
    }

    /// The family in the form collectors return (empty families are dropped by the registry).
    pub fn finish(self) -> MetricFamily {
        let mut family = MetricFamily::new();
        family.set_name(self.spec.name.to_owned());
        family.set_help(self.spec.help.to_owned());
        family.set_field_type(self.spec.kind);
        family.set_metric(self.metrics);
        family
    }
}

/// 1 or 0, as kube-state-metrics reports booleans.
pub(crate) fn bool_value(value: bool) -> f64 {
    if value { 1.0 } else { 0.0 }
}
