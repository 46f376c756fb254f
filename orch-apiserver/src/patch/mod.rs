//! Patch formats applied by the server.
//!
//! [`strategic`]: strategic merge patch (`application/strategic-merge-patch+json`), driven by
//! the merge semantics in [`crate::schema`].

pub mod strategic;
