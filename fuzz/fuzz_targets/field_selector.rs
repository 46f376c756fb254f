//! Field selector parsing (`metadata.name=web,spec.nodeName!=`), as `?fieldSelector=` is: a
//! parsed selector that the per-kind check of supported fields accepts prints in a form that
//! parses back to the same selector; matching an object does not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use orch_types::fields::FieldSelector;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(sel) = text.parse::<FieldSelector>() else {
        return;
    };
    let printed = sel.to_string();
    let again: FieldSelector = printed
        .parse()
        .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which does not parse: {e}"));
    // The server uses a selector only once `for_kind` accepted its fields; a field name that
    // ends in `!` (`a!=b` read as `a!` `=` `b`) prints ambiguously, here as upstream.
    let Ok(pods) = sel.for_kind("", "Pod") else {
        return;
    };
    assert_eq!(again, sel, "{text:?} printed as {printed:?}");
    let pod = serde_json::json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"nodeName": "n1"},
        "status": {"phase": "Running"}
    });
    let _ = pods.matches(&pod);
});
