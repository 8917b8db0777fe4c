//! Process-wide Prometheus metrics of the shared plumbing (filled in with telemetry).
