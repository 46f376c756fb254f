//! A JSON request body as the API server decodes it on create and update: the body decoder
//! by `Content-Type` (`rest::negotiate::decode_body`), the object envelope
//! (`DynamicObject::from_value`) and the typed check of a built-in kind's fields
//! (`admission::unknown_fields`, what `?fieldValidation=Strict` reports).
#![no_main]

use libfuzzer_sys::fuzz_target;
use orch_types::{registry, DynamicObject};

fuzz_target!(|data: &[u8]| {
    let headers = orch_fuzz::content_type("application/json");
    let body = bytes::Bytes::copy_from_slice(data);
    let Ok(value) = orch_apiserver::rest::negotiate::decode_body(&headers, &body) else {
        return;
    };
    if !value.is_object() {
        return;
    }
    let Ok(obj) = DynamicObject::from_value(value) else {
        return;
    };
    if let Some(info) = registry::by_kind(&obj.types.api_version, &obj.types.kind) {
        let _ = orch_apiserver::admission::unknown_fields(info, &obj);
    }
});
