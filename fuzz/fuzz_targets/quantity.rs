//! `Quantity` parsing (`100m`, `1.5Gi`, `1e3`) and printing: a parsed quantity prints in a
//! canonical form that parses back to the same value, and printing again reaches a fixed
//! point; the arithmetic the quota and scheduler code use on parsed quantities does not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use orch_types::quantity::Quantity;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(q) = text.parse::<Quantity>() else {
        return;
    };
    let printed = q.canonical();
    let again: Quantity = printed
        .parse()
        .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which does not parse: {e}"));
    assert_eq!(again, q, "{text:?} printed as {printed:?}");
    // The format is read from the text, so one print may change it (`312.5Ki` is BinarySI and
    // prints `320000`, which parses as DecimalSI and prints `320k`, as upstream); the second
    // print is a fixed point.
    let second = again.canonical();
    let third: Quantity = second
        .parse()
        .unwrap_or_else(|e| panic!("{text:?} printed as {second:?}, which does not parse: {e}"));
    assert_eq!(third, q, "{text:?} printed as {second:?}");
    assert_eq!(
        third.canonical(),
        second,
        "{text:?}: canonical form not stable"
    );
    let _ = (q.value(), q.milli_value(), q.is_zero());
    let _ = (q.add(&again), q.sub(&again), q.neg(), q.mul(3));
});
