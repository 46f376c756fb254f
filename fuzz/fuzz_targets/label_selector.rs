//! Label selector parsing (`a in (b,c),!d`), as `?labelSelector=` is: a parsed selector prints
//! in kubectl syntax that parses back to the same selector, and matching does not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use orch_types::labels::Selector;
use std::collections::BTreeMap;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(sel) = text.parse::<Selector>() else {
        return;
    };
    let printed = sel.to_string();
    let again: Selector = printed
        .parse()
        .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which does not parse: {e}"));
    assert_eq!(again, sel, "{text:?} printed as {printed:?}");
    let labels = BTreeMap::from([
        ("app".to_string(), "web".to_string()),
        ("tier".to_string(), "1".to_string()),
    ]);
    let _ = sel.matches(&labels);
    let _ = sel.to_label_selector();
});
