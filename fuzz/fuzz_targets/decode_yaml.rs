//! YAML: a request body sent as `application/yaml` (`rest::negotiate::decode_body`) and a
//! multi-document manifest as `orch apply -f` reads it (`orch_types::decode::decode_documents`
//! with the strict-decoding report of each document).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let headers = orch_fuzz::content_type("application/yaml");
    let body = bytes::Bytes::copy_from_slice(data);
    let _ = orch_apiserver::rest::negotiate::decode_body(&headers, &body);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(docs) = orch_types::decode::decode_documents(text) {
        for d in &docs {
            let _ = orch_types::decode::strict_errors(d, text);
        }
    }
});
