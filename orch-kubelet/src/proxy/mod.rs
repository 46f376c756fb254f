//! The service proxy: traffic to a Service's cluster IP, external IPs and node ports reaches
//! one of its ready endpoints, through the kernel's packet filter (nftables), as kube-proxy's
//! `nftables` mode does. [`model`] turns Services and their endpoints into plain data,
//! [`rules`] generates the ruleset from it (pure, snapshot-tested).

pub mod model;
pub mod rules;
