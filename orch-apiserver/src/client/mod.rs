//! Implementations of [`orch_types::client::Client`]: [`local::LocalClient`] (in-process, no
//! HTTP, no JSON) and [`HttpClient`] (any Kubernetes API server over HTTP).

pub mod local;

pub use local::LocalClient;
