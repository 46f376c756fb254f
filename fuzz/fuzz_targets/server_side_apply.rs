//! Server-side apply (`apply::apply_as`, what `PATCH` with `application/apply-patch+yaml`
//! runs in the guaranteed-update loop) with the kind's schema (`fieldmanager::schema_of`):
//! a configuration applied by one manager to the live object (`null`: a create), then a second
//! manager's apply of the same configuration without force (conflicts), and the result decoded
//! as the server stores it (`DynamicObject::from_value`). Input: `apiVersion Kind` line, the
//! live object's JSON, the configuration's JSON (see `orch_fuzz`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use orch_apiserver::apply::{apply_as, Applier};
use orch_apiserver::fieldmanager::schema_of;
use orch_types::DynamicObject;

fuzz_target!(|data: &[u8]| {
    let Some((info, rest)) = orch_fuzz::split_kind(data) else {
        return;
    };
    let Some(docs) = orch_fuzz::json_values(rest, 2) else {
        return;
    };
    let (live, config) = (&docs[0], &docs[1]);
    let schema = schema_of(info, None);
    let by = |manager| Applier {
        manager,
        subresource: "",
        force: false,
        now: jiff::Timestamp::UNIX_EPOCH,
    };
    let Ok(applied) = apply_as((!live.is_null()).then_some(live), config, &by("a"), schema) else {
        return;
    };
    let _ = apply_as(Some(&applied), config, &by("b"), schema);
    let _ = DynamicObject::from_value(applied);
});
