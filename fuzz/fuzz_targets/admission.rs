//! Admission of a built-in object as the API server's `admit` runs it, in its order, with the
//! public pieces it calls: the typed field check (`admission::unknown_fields`), defaulting
//! (`defaults::apply_defaults`), the DefaultTolerationSeconds plugin, validation for create
//! (`validation::validate_defaulted`) and for an update to itself
//! (`validation::validate_update_defaulted`), and the status strategy's defaulting. Input: a
//! JSON object with `apiVersion` and `kind`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use orch_types::{registry, validation, DynamicObject};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(mut obj) = DynamicObject::from_value(value) else {
        return;
    };
    let Some(info) = registry::by_kind(&obj.types.api_version, &obj.types.kind) else {
        return;
    };
    let _ = orch_apiserver::admission::unknown_fields(info, &obj);
    if orch_types::defaults::apply_defaults(&mut obj).is_err() {
        return;
    }
    orch_apiserver::admission::default_tolerations::admit(info, &mut obj);
    let _ = validation::validate_defaulted(&obj);
    let old = obj.clone();
    let _ = validation::validate_update_defaulted(&obj, &old);
    let _ = orch_types::defaults::apply_status_defaults(&mut obj);
});
