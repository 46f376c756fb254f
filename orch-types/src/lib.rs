//! # orch-types — the API object model every other orch crate builds on
//!
//! Wire structs of every kind come from `k8s-openapi`; this crate adds what apimachinery and the
//! API server add on top. Modules, one concept each:
//!
//! | module | owns |
//! | --- | --- |
//! | [`registry`] | the one table of built-in kinds (group, version, plural, short names, scope, subresources) |
//! | [`dynamic`] | [`DynamicObject`]: TypeMeta + ObjectMeta + the rest as JSON |
//! | [`ephemeral`] | ephemeral containers read as the `Container`s they are upstream |
//! | [`client`] | the object-safe [`client::Client`] trait, `Api<K>`, list/watch/patch/delete options |
//! | [`status`] | [`ApiError`]: a Kubernetes `Status` with code and reason |
//! | [`clock`] | the [`clock::Clock`] trait (real and manual clocks) |
//! | [`cron`] | CronJob schedules: robfig/cron's standard grammar, next activation in a time zone |
//! | [`events`] | `EventRecorder`: core/v1 Events with aggregation |
//! | [`quantity`] | fixed-point [`quantity::Quantity`], canonical printing as `quantity.go` |
//! | [`intstr`] | `IntOrString` percentages (`25%` of 10, rounding up or down) |
//! | [`names`] | DNS-1123 / qualified-name / label-value syntax checks with upstream messages |
//! | [`labels`] | label selectors: API form and kubectl string form, parse, match, display |
//! | [`metrics`] | `metrics.k8s.io/v1beta1` NodeMetrics and PodMetrics (not in k8s-openapi) |
//! | [`fields`] | field selectors with the per-kind supported field sets |
//! | [`node_selector`] | node selector terms and required node affinity matching |
//! | [`quota`] | ResourceQuota accounting: what an object uses, which quotas and scopes it falls under, the admission check |
//! | [`resources`] | [`resources::ResourceList`] and effective pod requests/limits |
//! | [`settings`] | `settings.k8s.io/v1alpha1` PodPreset (no longer in k8s-openapi) |
//! | [`taints`] | whether a toleration tolerates a taint (the one rule scheduler, eviction and admission use) |
//! | [`image`] | image references `[registry/]repo[:tag][@digest]`, pull-policy default |
//! | [`decode`] | multi-document YAML / JSON / `kind: List` decoding, strict unknown-field paths |
//! | [`defaults`] | upstream defaulting for the wave-1 kinds (idempotent) |
//! | [`crd`] | CRD structural schemas: checks, pruning, defaulting, OpenAPI and CEL validation of custom objects |
//! | [`validation`] | upstream validation rules, [`validation::FieldError`], update immutability |
//! | `testing` | (feature `testing`) fluent `PodBuilder`, `NodeBuilder`, … for tests |
//!
//! orch-types must never depend on an HTTP stack, a storage engine or an async runtime: it is pure
//! data and logic, so that any program can `cargo add orch-types` cheaply.
//!
//! k8s-openapi needs exactly one Kubernetes version feature enabled by the final binary (orch
//! uses `v1_33`); add `k8s-openapi = { version = "0.29", features = ["v1_33"] }` beside it.
//!
//! ```
//! use orch_types::{decode::decode_all, registry, validation::validate};
//! let objs = decode_all("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\n").unwrap();
//! assert!(validate(&objs[0]).is_empty());
//! let deploy = registry::by_name("deploy")[0];
//! assert_eq!(deploy.api_version(), "apps/v1");
//! assert_eq!(deploy.api_resource().collection_path(Some("default")),
//!            "/apis/apps/v1/namespaces/default/deployments");
//! ```

pub mod client;
pub mod clock;
pub mod conditions;
pub mod crd;
pub mod cron;
pub mod decode;
pub mod defaults;
pub mod dynamic;
pub mod ephemeral;
pub mod events;
pub mod fields;
pub mod image;
pub mod intstr;
pub mod labels;
pub mod metrics;
pub mod names;
pub mod node_selector;
pub mod quantity;
pub mod quota;
pub mod registry;
pub mod resources;
pub mod settings;
pub mod status;
pub mod taints;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod validation;

pub use dynamic::{DynamicObject, TypeMeta};
pub use k8s_openapi;
pub use registry::ApiResource;
pub use status::ApiError;
