//! Ephemeral containers (`spec.ephemeralContainers`, added to a running pod through the
//! `pods/ephemeralcontainers` subresource, e.g. by `kubectl debug`).
//!
//! Upstream's `EphemeralContainerCommon` is field for field a `Container` and the API server and
//! kubelet read it as one (`(*core.Container)(&ec.EphemeralContainerCommon)`); k8s-openapi has
//! two unrelated structs, so [`as_container`] is that cast. Which fields an ephemeral container
//! may set is validation's business (`validation::core`, upstream
//! `allowedEphemeralContainerFields`).
//!
//! ```
//! use k8s_openapi::api::core::v1::EphemeralContainer;
//! let e = EphemeralContainer {
//!     name: "dbg".into(),
//!     image: Some("busybox".into()),
//!     command: Some(vec!["sh".into()]),
//!     target_container_name: Some("app".into()),
//!     ..Default::default()
//! };
//! let c = orch_types::ephemeral::as_container(&e);
//! assert_eq!((c.name.as_str(), c.image.as_deref()), ("dbg", Some("busybox")));
//! assert_eq!(c.command, e.command);
//! ```

use k8s_openapi::api::core::v1::{Container, EphemeralContainer};

/// The ephemeral container as a `Container` (everything but `targetContainerName`).
pub fn as_container(e: &EphemeralContainer) -> Container {
    Container {
        args: e.args.clone(),
        command: e.command.clone(),
        env: e.env.clone(),
        env_from: e.env_from.clone(),
        image: e.image.clone(),
        image_pull_policy: e.image_pull_policy.clone(),
        lifecycle: e.lifecycle.clone(),
        liveness_probe: e.liveness_probe.clone(),
        name: e.name.clone(),
        ports: e.ports.clone(),
        readiness_probe: e.readiness_probe.clone(),
        resize_policy: e.resize_policy.clone(),
        resources: e.resources.clone(),
        restart_policy: e.restart_policy.clone(),
        security_context: e.security_context.clone(),
        startup_probe: e.startup_probe.clone(),
        stdin: e.stdin,
        stdin_once: e.stdin_once,
        termination_message_path: e.termination_message_path.clone(),
        termination_message_policy: e.termination_message_policy.clone(),
        tty: e.tty,
        volume_devices: e.volume_devices.clone(),
        volume_mounts: e.volume_mounts.clone(),
        working_dir: e.working_dir.clone(),
    }
}
