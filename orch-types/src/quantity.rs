//! [`Quantity`]: Kubernetes resource quantities in fixed point, printed in canonical form.
//!
//! Port of apimachinery `pkg/api/resource/quantity.go`. The value is held as a signed count of
//! nano-units (`i128`), so every quantity Kubernetes can represent down to `1n` is exact and no
//! floating point is ever involved.
//!
//! # Grammar
//!
//! ```text
//! <quantity>        ::= <signedNumber><suffix>
//! <signedNumber>    ::= <number> | +<number> | -<number>
//! <number>          ::= <digits> | <digits>.<digits> | <digits>. | .<digits>
//! <suffix>          ::= <binarySI> | <decimalExponent> | <decimalSI>
//! <binarySI>        ::= Ki | Mi | Gi | Ti | Pi | Ei
//! <decimalSI>       ::= n | u | m | "" | k | M | G | T | P | E
//! <decimalExponent> ::= "e" <signedNumber> | "E" <signedNumber>
//! ```
//!
//! Parsing keeps precision down to nano and rounds finer non-zero values away from zero
//! (`0.9n` → `1n`); binary-SI values are capped at 2^63-1 as upstream. Printing is always the
//! canonical form: no fractional digits, the largest exponent that loses no precision, and the
//! suffix family the value was parsed with (`1.5` → `1500m`, `1.5Gi` → `1536Mi`, `1e3` → `1e3`).
//!
//! Deviation: upstream keeps arbitrarily large decimal values (`inf.Dec`); orch rejects values
//! whose magnitude is at or above about 1.7·10^29 units with [`QuantityError::TooLarge`].
//!
//! ```
//! use orch_types::quantity::Quantity;
//! let q: Quantity = "1.5Gi".parse().unwrap();
//! assert_eq!(q.to_string(), "1536Mi");
//! assert_eq!("0.1".parse::<Quantity>().unwrap().to_string(), "100m");
//! assert_eq!("100m".parse::<Quantity>().unwrap().milli_value(), 100);
//! assert_eq!("100m".parse::<Quantity>().unwrap().value(), 1); // rounded up
//! ```

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const NANOS_PER_UNIT: i128 = 1_000_000_000;
/// 2^63-1 units: upstream's cap for binary-SI quantities.
const MAX_BINARY_NANOS: i128 = (i64::MAX as i128) * NANOS_PER_UNIT;

/// How a quantity prints: the suffix family it was parsed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Format {
    /// `12e6`.
    DecimalExponent,
    /// `12Mi` (powers of 1024).
    BinarySI,
    /// `12M`, `100m` (powers of 1000).
    #[default]
    DecimalSI,
}

/// Errors parsing a quantity. Messages match apimachinery's where it has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The string does not match the quantity grammar.
    #[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")]
    FormatWrong,
    /// The numeric part could not be parsed.
    #[error("unable to parse numeric part of quantity")]
    Numeric,
    /// The suffix is not one of the known suffixes.
    #[error("unable to parse quantity's suffix")]
    Suffix,
    /// The value does not fit orch's fixed-point range.
    #[error("quantity is too large")]
    TooLarge,
}

/// A fixed-point Kubernetes quantity. Equality, ordering and hashing look at the value only
/// (`1Ki == 1024`), like upstream `Cmp`/`Equal`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quantity {
    nanos: i128,
    format: Format,
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}
impl Eq for Quantity {}
impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}
impl std::hash::Hash for Quantity {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.nanos.hash(state);
    }
}

/// Scanner output: sign, integer digits, fraction digits, suffix.
struct Scanned<'a> {
    positive: bool,
    num: &'a str,
    denom: &'a str,
    suffix: &'a str,
}

/// Port of upstream `parseQuantityString` (byte-for-byte the same acceptance).
fn scan(s: &str) -> Result<Scanned<'_>, QuantityError> {
    let b = s.as_bytes();
    let end = b.len();
    let mut positive = true;
    let mut pos = 0;
    if pos < end {
        match b[0] {
            b'-' => {
                positive = false;
                pos += 1;
            }
            b'+' => pos += 1,
            _ => {}
        }
    }
    // Strip leading zeros.
    while pos < end && b[pos] == b'0' {
        pos += 1;
    }
    if pos >= end {
        return Ok(Scanned {
            positive,
            num: "0",
            denom: "",
            suffix: "",
        });
    }
    let start = pos;
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    let mut num = &s[start..pos];
    if num.is_empty() {
        num = "0";
    }
    let mut denom = "";
    if pos < end && b[pos] == b'.' {
        pos += 1;
        let ds = pos;
        while pos < end && b[pos].is_ascii_digit() {
            pos += 1;
        }
        denom = &s[ds..pos];
    }
    let suffix_start = pos;
    while pos < end && b"eEinumkKMGTP".contains(&b[pos]) {
        pos += 1;
    }
    if pos < end && (b[pos] == b'-' || b[pos] == b'+') {
        pos += 1;
    }
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos < end {
        return Err(QuantityError::FormatWrong);
    }
    Ok(Scanned {
        positive,
        num,
        denom,
        suffix: &s[suffix_start..],
    })
}

/// (base, exponent, format) of a suffix, as upstream `suffixer.interpret`.
fn interpret(suffix: &str) -> Option<(u32, i32, Format)> {
    let dec = |e| Some((10, e, Format::DecimalSI));
    let bin = |e| Some((2, e, Format::BinarySI));
    match suffix {
        "" => dec(0),
        "n" => dec(-9),
        "u" => dec(-6),
        "m" => dec(-3),
        "k" => dec(3),
        "M" => dec(6),
        "G" => dec(9),
        "T" => dec(12),
        "P" => dec(15),
        "E" => dec(18),
        "Ki" => bin(10),
        "Mi" => bin(20),
        "Gi" => bin(30),
        "Ti" => bin(40),
        "Pi" => bin(50),
        "Ei" => bin(60),
        _ => {
            let rest = suffix
                .strip_prefix('e')
                .or_else(|| suffix.strip_prefix('E'))?;
            if rest.is_empty() {
                return None;
            }
            let e: i64 = rest.parse().ok()?;
            Some((10, i32::try_from(e).ok()?, Format::DecimalExponent))
        }
    }
}

fn pow10(k: u32) -> Option<i128> {
    10i128.checked_pow(k)
}

/// `ceil(digits / 10^k)` for a non-negative decimal digit string, `k >= 0`.
fn ceil_div_pow10_str(digits: &str, k: usize) -> Result<i128, QuantityError> {
    if digits.len() <= k {
        let nonzero = digits.bytes().any(|c| c != b'0');
        return Ok(i128::from(nonzero));
    }
    let (head, tail) = digits.split_at(digits.len() - k);
    let mut v = parse_digits(head)?;
    if tail.bytes().any(|c| c != b'0') {
        v = v.checked_add(1).ok_or(QuantityError::TooLarge)?;
    }
    Ok(v)
}

fn parse_digits(d: &str) -> Result<i128, QuantityError> {
    let d = d.trim_start_matches('0');
    if d.is_empty() {
        return Ok(0);
    }
    if d.len() > 38 {
        return Err(QuantityError::TooLarge);
    }
    d.parse::<i128>().map_err(|_| QuantityError::TooLarge)
}

impl FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(QuantityError::FormatWrong);
        }
        let sc = scan(s)?;
        let (base, exponent, mut format) = interpret(sc.suffix).ok_or(QuantityError::Suffix)?;
        // Trailing zeros of the fraction do not change the value.
        let denom = sc.denom.trim_end_matches('0');
        let digits = format!("{}{}", sc.num, denom);
        let nanos = if base == 10 {
            // value = digits * 10^(exponent - len(denom)); nanos = value * 10^9
            let shift = i64::from(exponent) - denom.len() as i64 + 9;
            if shift >= 0 {
                let d = parse_digits(&digits)?;
                if d == 0 {
                    0
                } else {
                    let p = u32::try_from(shift)
                        .ok()
                        .and_then(pow10)
                        .ok_or(QuantityError::TooLarge)?;
                    d.checked_mul(p).ok_or(QuantityError::TooLarge)?
                }
            } else {
                let k = usize::try_from(-shift).map_err(|_| QuantityError::TooLarge)?;
                ceil_div_pow10_str(&digits, k)?
            }
        } else {
            // value = digits * 2^exponent / 10^len(denom)
            let d = parse_digits(&digits);
            let scaled = d.ok().and_then(|d| {
                d.checked_mul(1i128 << exponent)
                    .and_then(|v| v.checked_mul(NANOS_PER_UNIT))
            });
            match scaled {
                Some(v) => {
                    let p = u32::try_from(denom.len())
                        .ok()
                        .and_then(pow10)
                        .ok_or(QuantityError::TooLarge)?;
                    let q = v / p;
                    let n = if v % p != 0 { q + 1 } else { q };
                    n.min(MAX_BINARY_NANOS)
                }
                // Too large for i128: far above the binary-SI cap anyway.
                None => MAX_BINARY_NANOS,
            }
        };
        if format == Format::BinarySI && nanos > 0 && nanos < NANOS_PER_UNIT {
            format = Format::DecimalSI;
        }
        Ok(Quantity {
            nanos: if sc.positive { nanos } else { -nanos },
            format,
        })
    }
}

impl Quantity {
    /// Zero, printed as `0`.
    pub const ZERO: Quantity = Quantity {
        nanos: 0,
        format: Format::DecimalSI,
    };

    /// A quantity of `milli` thousandths, decimal SI (`from_milli(1500)` prints `1500m`).
    pub fn from_milli(milli: i64) -> Self {
        Self {
            nanos: i128::from(milli) * 1_000_000,
            format: Format::DecimalSI,
        }
    }

    /// A whole-unit quantity with the given format (`from_value(1024, BinarySI)` prints `1Ki`).
    pub fn from_value(value: i64, format: Format) -> Self {
        Self {
            nanos: i128::from(value) * NANOS_PER_UNIT,
            format,
        }
    }

    /// The exact value in nano-units.
    pub fn nanos(&self) -> i128 {
        self.nanos
    }

    /// The print format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// True when the value is zero.
    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// `ceil(value / 10^(-scale_exp))` rounded away from zero and saturated to `i64`, like
    /// upstream `ScaledValue`.
    fn scaled(&self, nanos_per: i128) -> i64 {
        let q = self.nanos / nanos_per;
        let r = self.nanos % nanos_per;
        let v = if r > 0 {
            q + 1
        } else if r < 0 {
            q - 1
        } else {
            q
        };
        i64::try_from(v).unwrap_or(if v > 0 { i64::MAX } else { i64::MIN })
    }

    /// The value in whole units, rounded away from zero (`100m` → 1), as upstream `Value()`.
    ///
    /// ```
    /// # use orch_types::quantity::Quantity;
    /// assert_eq!("1.1".parse::<Quantity>().unwrap().value(), 2);
    /// assert_eq!("2Ki".parse::<Quantity>().unwrap().value(), 2048);
    /// ```
    pub fn value(&self) -> i64 {
        self.scaled(NANOS_PER_UNIT)
    }

    /// The value in thousandths, rounded away from zero, as upstream `MilliValue()`.
    ///
    /// ```
    /// # use orch_types::quantity::Quantity;
    /// assert_eq!("0.5".parse::<Quantity>().unwrap().milli_value(), 500);
    /// assert_eq!("1n".parse::<Quantity>().unwrap().milli_value(), 1);
    /// ```
    pub fn milli_value(&self) -> i64 {
        self.scaled(1_000_000)
    }

    /// Sum; a zero left-hand side takes the right-hand side's format (upstream `Add`).
    /// Saturates at the representable range.
    pub fn add(&self, other: &Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos.saturating_add(other.nanos),
            format: if self.nanos == 0 {
                other.format
            } else {
                self.format
            },
        }
    }

    /// Difference; a zero left-hand side takes the right-hand side's format (upstream `Sub`).
    pub fn sub(&self, other: &Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos.saturating_sub(other.nanos),
            format: if self.nanos == 0 {
                other.format
            } else {
                self.format
            },
        }
    }

    /// The negated value, same format.
    pub fn neg(&self) -> Quantity {
        Quantity {
            nanos: -self.nanos,
            format: self.format,
        }
    }

    /// Multiplies by an integer (saturating).
    pub fn mul(&self, k: i64) -> Quantity {
        Quantity {
            nanos: self.nanos.saturating_mul(i128::from(k)),
            format: self.format,
        }
    }

    /// The canonical string form (same as `Display`).
    pub fn canonical(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Quantity {
    /// Canonical form, as upstream `CanonicalizeBytes`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nanos == 0 {
            return f.write_str("0");
        }
        let mut format = self.format;
        if format == Format::BinarySI
            && (self.nanos.abs() < 1024 * NANOS_PER_UNIT || self.nanos % NANOS_PER_UNIT != 0)
        {
            // Small or fractional binary values print as decimal SI, avoiding rounding.
            format = Format::DecimalSI;
        }
        if format == Format::BinarySI {
            let mut amount = self.nanos / NANOS_PER_UNIT;
            let mut exp = 0usize;
            while exp < 6 && amount.abs() >= 1024 && amount % 1024 == 0 {
                amount /= 1024;
                exp += 1;
            }
            const BIN: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
            return write!(f, "{amount}{}", BIN[exp]);
        }
        let mut amount = self.nanos;
        let mut exp: i32 = -9;
        while amount % 10 == 0 {
            amount /= 10;
            exp += 1;
        }
        while exp % 3 != 0 {
            // Cannot overflow: we only undo at most two of the divisions above.
            amount *= 10;
            exp -= 1;
        }
        let si = match exp {
            -9 => Some("n"),
            -6 => Some("u"),
            -3 => Some("m"),
            0 => Some(""),
            3 => Some("k"),
            6 => Some("M"),
            9 => Some("G"),
            12 => Some("T"),
            15 => Some("P"),
            18 => Some("E"),
            _ => None,
        };
        match (format, si) {
            (Format::DecimalExponent, _) | (_, None) => {
                if exp == 0 {
                    write!(f, "{amount}")
                } else {
                    write!(f, "{amount}e{exp}")
                }
            }
            (_, Some(s)) => write!(f, "{amount}{s}"),
        }
    }
}

impl std::ops::Add for Quantity {
    type Output = Quantity;
    fn add(self, rhs: Quantity) -> Quantity {
        Quantity::add(&self, &rhs)
    }
}

impl std::ops::Sub for Quantity {
    type Output = Quantity;
    fn sub(self, rhs: Quantity) -> Quantity {
        Quantity::sub(&self, &rhs)
    }
}

impl std::ops::AddAssign for Quantity {
    fn add_assign(&mut self, rhs: Quantity) {
        *self = Quantity::add(self, &rhs);
    }
}

impl std::ops::SubAssign for Quantity {
    fn sub_assign(&mut self, rhs: Quantity) {
        *self = Quantity::sub(self, &rhs);
    }
}

impl std::ops::Neg for Quantity {
    type Output = Quantity;
    fn neg(self) -> Quantity {
        Quantity::neg(&self)
    }
}

impl std::iter::Sum for Quantity {
    fn sum<I: Iterator<Item = Quantity>>(iter: I) -> Quantity {
        iter.fold(Quantity::ZERO, |a, b| Quantity::add(&a, &b))
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Upstream accepts JSON numbers as well as strings.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            S(String),
            I(i64),
            F(f64),
        }
        let s = match Repr::deserialize(d)? {
            Repr::S(s) => s,
            Repr::I(i) => i.to_string(),
            Repr::F(f) => f.to_string(),
        };
        s.trim().parse().map_err(serde::de::Error::custom)
    }
}

impl TryFrom<&k8s_openapi::apimachinery::pkg::api::resource::Quantity> for Quantity {
    type Error = QuantityError;
    fn try_from(
        q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity,
    ) -> Result<Self, Self::Error> {
        q.0.parse()
    }
}

impl TryFrom<k8s_openapi::apimachinery::pkg::api::resource::Quantity> for Quantity {
    type Error = QuantityError;
    fn try_from(
        q: k8s_openapi::apimachinery::pkg::api::resource::Quantity,
    ) -> Result<Self, Self::Error> {
        q.0.parse()
    }
}

impl From<Quantity> for k8s_openapi::apimachinery::pkg::api::resource::Quantity {
    fn from(q: Quantity) -> Self {
        k8s_openapi::apimachinery::pkg::api::resource::Quantity(q.to_string())
    }
}

impl From<&Quantity> for k8s_openapi::apimachinery::pkg::api::resource::Quantity {
    fn from(q: &Quantity) -> Self {
        k8s_openapi::apimachinery::pkg::api::resource::Quantity(q.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn q(s: &str) -> Quantity {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    /// Canonical forms from upstream quantity_test.go (TestQuantityParse, TestQuantityParseEmit)
    /// plus the issue's examples.
    #[test]
    fn canonical_forms() {
        let table = [
            ("0", "0"),
            ("0n", "0"),
            ("-0", "0"),
            ("100m", "100m"),
            ("0.5", "500m"),
            ("0.1", "100m"),
            ("1.5", "1500m"),
            ("1e3", "1e3"),
            ("1E3", "1e3"),
            ("1.5e3", "1500"),
            ("1e-3", "1e-3"),
            ("128974848", "128974848"),
            ("129e6", "129e6"),
            ("129M", "129M"),
            ("123Mi", "123Mi"),
            ("1.5Gi", "1536Mi"),
            ("1Ki", "1Ki"),
            ("1Mi", "1Mi"),
            ("1Gi", "1Gi"),
            ("1024Mi", "1Gi"),
            ("1000M", "1G"),
            (".001Ki", "1024m"),
            (".000001Ki", "1024u"),
            (".000000001Ki", "1024n"),
            (".000000000001Ki", "2n"),
            ("1Ti", "1Ti"),
            ("1Pi", "1Pi"),
            ("1Ei", "1Ei"),
            ("8Ei", "9223372036854775807"),
            ("1k", "1k"),
            ("1G", "1G"),
            ("1T", "1T"),
            ("1P", "1P"),
            ("1E", "1E"),
            ("1000E", "1e21"),
            ("1n", "1n"),
            ("1u", "1u"),
            ("0.9n", "1n"),
            ("1.0001n", "2n"),
            ("12.34", "12340m"),
            ("5.", "5"),
            (".5", "500m"),
            ("+5", "5"),
            ("-5", "-5"),
            ("-1.5Gi", "-1536Mi"),
            ("1023Ki", "1023Ki"),
            ("0.5Ki", "512"),
            ("1.5Ki", "1536"),
            ("100Ki", "100Ki"),
            ("1001m", "1001m"),
            ("1000m", "1"),
            ("1000000n", "1m"),
            ("18446744073709551616", "18446744073709551616"),
            ("1.2345", "1234500u"),
            ("000010", "10"),
        ];
        for (input, want) in table {
            assert_eq!(q(input).to_string(), want, "input {input}");
            // Negation prints with a sign (upstream TestQuantityParseEmit).
            if want != "0" && !input.starts_with(['+', '-']) {
                assert_eq!(
                    q(&format!("-{input}")).to_string(),
                    format!("-{want}"),
                    "-{input}"
                );
            }
        }
    }

    /// Invalid inputs from upstream TestQuantityParse plus a few more.
    #[test]
    fn malformed() {
        for bad in [
            "", "1.1.M", "1+1.0M", "0.1mi", "0.1am", "aoeu", ".5i", "1i", "-3.01i", "-3.01e-",
            " 1", "1 ", "1K", "1e", "1Kb", "1.5 Gi", "--1", "1e1e1",
        ] {
            assert!(bad.parse::<Quantity>().is_err(), "{bad:?} parsed");
        }
        assert_eq!("1e400".parse::<Quantity>(), Err(QuantityError::TooLarge));
        assert_eq!("1x".parse::<Quantity>(), Err(QuantityError::FormatWrong));
        assert_eq!("1Z".parse::<Quantity>(), Err(QuantityError::FormatWrong));
        assert_eq!("1Mb".parse::<Quantity>(), Err(QuantityError::FormatWrong));
        assert_eq!("1iM".parse::<Quantity>(), Err(QuantityError::Suffix));
    }

    #[test]
    fn values_round_away_from_zero() {
        assert_eq!(q("100m").value(), 1);
        assert_eq!(q("-100m").value(), -1);
        assert_eq!(q("1.5").milli_value(), 1500);
        assert_eq!(q("1.0001m").milli_value(), 2);
        assert_eq!(q("1Gi").value(), 1 << 30);
        assert_eq!(q("1Gi").milli_value(), 1_073_741_824_000);
        assert_eq!(q("1E").milli_value(), i64::MAX, "saturates");
        assert_eq!(q("9.01").value(), 10);
        assert_eq!(q("-9.01").value(), -10);
    }

    #[test]
    fn arithmetic_and_ordering() {
        assert_eq!(q("1").add(&q("500m")).to_string(), "1500m");
        assert_eq!(q("1Gi").sub(&q("512Mi")).to_string(), "512Mi");
        // Zero takes the other side's suffix (upstream TestQuantityAddZeroPreservesSuffix).
        assert_eq!(Quantity::ZERO.add(&q("1Mi")).to_string(), "1Mi");
        assert_eq!(Quantity::ZERO.sub(&q("1Mi")).to_string(), "-1Mi");
        assert_eq!(q("1Ki"), q("1024"));
        assert!(q("999m") < q("1"));
        assert!(q("1Mi") > q("1M"));
        assert_eq!(q("250m").mul(4).to_string(), "1");
        assert_eq!(q("1Ki").neg().to_string(), "-1Ki");
        // Operator forms.
        let total: Quantity = ["100m", "250m", "0.65"].iter().map(|s| q(s)).sum();
        assert_eq!(total.to_string(), "1");
        let mut acc = q("1Gi");
        acc -= q("512Mi");
        acc += q("256Mi");
        assert_eq!((acc - q("768Mi")).to_string(), "0");
        assert_eq!((-q("2k")).to_string(), "-2k");
    }

    #[test]
    fn serde_and_k8s_conversion() {
        let v: Quantity = serde_json::from_str("\"1.5Gi\"").unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"1536Mi\"");
        let n: Quantity = serde_json::from_str("2").unwrap();
        assert_eq!(n.to_string(), "2");
        let k = k8s_openapi::apimachinery::pkg::api::resource::Quantity("250m".into());
        assert_eq!(Quantity::try_from(&k).unwrap().milli_value(), 250);
        let back: k8s_openapi::apimachinery::pkg::api::resource::Quantity = q("0.25").into();
        assert_eq!(back.0, "250m");
    }

    fn suffix() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "", "n", "u", "m", "k", "M", "G", "T", "Ki", "Mi", "Gi", "Ti", "e3", "e-3", "E6",
        ])
    }

    proptest! {
        /// parse → print → parse is stable and the printed form is a fixed point.
        #[test]
        fn print_parse_stable(int in 0u64..10_000_000, frac in proptest::option::of(0u32..1000),
                              neg in any::<bool>(), sfx in suffix()) {
            let s = match frac {
                Some(f) => format!("{}{int}.{f}{sfx}", if neg { "-" } else { "" }),
                None => format!("{}{int}{sfx}", if neg { "-" } else { "" }),
            };
            let a: Quantity = s.parse().unwrap();
            let printed = a.to_string();
            let b: Quantity = printed.parse().unwrap();
            prop_assert_eq!(a, b, "{} -> {}", s, printed);
            prop_assert_eq!(b.to_string(), printed);
        }

        /// Arbitrary junk never panics.
        #[test]
        fn junk_never_panics(s in "[-+0-9.eEinumkKMGTPx ]{0,12}") {
            let _ = s.parse::<Quantity>();
        }

        /// add then sub returns the original value.
        #[test]
        fn add_sub_round_trip(a in -1_000_000_000i64..1_000_000_000, b in -1_000_000_000i64..1_000_000_000) {
            let qa = Quantity::from_milli(a);
            let qb = Quantity::from_milli(b);
            prop_assert_eq!(qa.add(&qb).sub(&qb), qa);
        }
    }
}
