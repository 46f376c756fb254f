//! Implementations of [`orch_types::client::Client`]: [`local::LocalClient`] (in-process, no
//! HTTP, no JSON) and [`HttpClient`] (any Kubernetes API server over HTTP).

mod discover;
mod http;
pub mod local;

pub use http::HttpClient;
pub use local::LocalClient;
