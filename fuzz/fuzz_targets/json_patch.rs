//! `application/json-patch+json` (RFC 6902, a patch that is an array) and
//! `application/merge-patch+json` (RFC 7386, any other patch) through the server's patch
//! dispatch (`rest::patch::apply_patch`). Input: `apiVersion Kind` line, the live object's
//! JSON, the patch's JSON (see `orch_fuzz`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use orch_apiserver::rest::patch::{apply_patch, PatchType};

fuzz_target!(|data: &[u8]| {
    let Some((info, rest)) = orch_fuzz::split_kind(data) else {
        return;
    };
    let Some(docs) = orch_fuzz::json_values(rest, 2) else {
        return;
    };
    let kind = if docs[1].is_array() {
        PatchType::Json
    } else {
        PatchType::Merge
    };
    let _ = apply_patch(info, kind, &docs[0], &docs[1]);
});
