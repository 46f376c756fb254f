//! `application/strategic-merge-patch+json` on a built-in kind, through the server's one
//! patch dispatch (`rest::patch::apply_patch`). Input: `apiVersion Kind` line, the live
//! object's JSON, the patch's JSON (see `orch_fuzz`).
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
    let _ = apply_patch(info, PatchType::Strategic, &docs[0], &docs[1]);
});
