//! Prometheus metrics (`GET /metrics`, OpenMetrics text): requests by route, method and
//! status, latency histograms by route, requests in flight, the index's size and generation,
//! work that outlived its deadline (how long after it the cancelled work freed its slot), and
//! the process's resident memory (read at scrape time).

use std::sync::atomic::AtomicU64;

use ferret_index::Index;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: &'static str,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabels, Histogram>,
    pub in_flight: Gauge,
    /// Seconds from a request's deadline until its work stopped and freed its worker slot.
    pub overrun: Histogram,
    documents: Gauge,
    generation: Gauge,
    resident: Gauge<f64, AtomicU64>,
}

fn latency_histogram() -> Histogram {
    // 0.25 ms to about 8 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ferret");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency =
            Family::<RouteLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        let in_flight = Gauge::default();
        // 0.1 ms to about 6.5 s.
        let overrun = Histogram::new(exponential_buckets(0.000_1, 2.0, 17));
        let documents = Gauge::default();
        let generation = Gauge::default();
        let resident = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route, method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer a request, by route",
            latency.clone(),
        );
        registry.register(
            "http_requests_in_flight",
            "Requests being answered now",
            in_flight.clone(),
        );
        registry.register(
            "work_overrun_seconds",
            "For searches and reranks that outlived their deadline (and were cancelled): seconds from the deadline until the work stopped and freed its worker slot",
            overrun.clone(),
        );
        registry.register(
            "index_documents",
            "Live documents in the served index",
            documents.clone(),
        );
        registry.register(
            "index_generation",
            "Commit generation of the served index",
            generation.clone(),
        );
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory of the server process",
            resident.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            in_flight,
            overrun,
            documents,
            generation,
            resident,
        }
    }

    pub fn set_index(&self, index: &Index) {
        let m = index.manifest();
        self.documents.set(m.doc_count as i64);
        self.generation.set(m.generation as i64);
    }

    /// The registry in OpenMetrics text.
    pub fn encode(&self) -> String {
        if let Some(bytes) = resident_bytes() {
            self.resident.set(bytes as f64);
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Resident set size from `/proc/self/statm` (Linux); `None` elsewhere.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
