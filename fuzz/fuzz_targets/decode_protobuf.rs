//! A request body sent as `application/vnd.kubernetes.protobuf` (the `k8s\0` envelope and the
//! generated-message wire format), through the server's body decoder
//! (`rest::negotiate::decode_body`, which calls `protobuf::decode`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let headers = orch_fuzz::content_type(orch_apiserver::protobuf::CONTENT_TYPE);
    let body = bytes::Bytes::copy_from_slice(data);
    let _ = orch_apiserver::rest::negotiate::decode_body(&headers, &body);
});
