//! Kubernetes-compatible manifest types, JSON Schema and validation. No I/O.
