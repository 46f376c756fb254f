//! The process runtime (host processes).
