//! Label selectors: the API form (`LabelSelector` with `matchLabels` + `matchExpressions`) and
//! the string form used by `?labelSelector=` and `kubectl -l`, as upstream
//! `apimachinery/pkg/labels/selector.go` and `apis/meta/v1/helpers.go`.
//!
//! String grammar (comma-joined requirements, whitespace ignored around tokens):
//!
//! ```text
//! requirement ::= KEY | !KEY | KEY (=|==|!=) VALUE? | KEY (in|notin) ( VALUE,... ) | KEY (>|<) INT
//! ```
//!
//! ```
//! use orch_types::labels::Selector;
//! use std::collections::BTreeMap;
//! let sel: Selector = "app=web,tier in (frontend,edge),!canary".parse().unwrap();
//! let labels = BTreeMap::from([("app".to_string(), "web".to_string()),
//!                              ("tier".to_string(), "edge".to_string())]);
//! assert!(sel.matches(&labels));
//! // Requirements print sorted by key, in kubectl syntax.
//! assert_eq!(sel.to_string(), "app=web,!canary,tier in (edge,frontend)");
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use crate::names;

/// A selector operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operator {
    /// `key=value` (also `key==value`).
    ///
    /// ```
    /// # use orch_types::labels::Selector;
    /// assert_eq!("a==b".parse::<Selector>().unwrap().to_string(), "a=b");
    /// ```
    Equals,
    /// `key!=value`: the label is absent or has another value.
    ///
    /// ```
    /// # use orch_types::labels::Selector;
    /// assert_eq!("a != b".parse::<Selector>().unwrap().to_string(), "a!=b");
    /// ```
    NotEquals,
    /// `key in (v1,v2)`.
    ///
    /// ```
    /// # use orch_types::labels::Selector;
    /// assert_eq!("a in (y, x)".parse::<Selector>().unwrap().to_string(), "a in (x,y)");
    /// ```
    In,
    /// `key notin (v1,v2)`: the label is absent or has none of the values.
    ///
    /// ```
    /// # use orch_types::labels::Selector;
    /// assert_eq!("a notin (x)".parse::<Selector>().unwrap().to_string(), "a notin (x)");
    /// ```
    NotIn,
    /// `key`: the label is present.
    ///
    /// ```
    /// # use orch_types::labels::Selector;
    /// assert_eq!(" a ".parse::<Selector>().unwrap().to_string(), "a");
    /// ```
    Exists,
    /// `!key`: the label is absent.
    ///
    /// ```
    /// # use orch_types::labels::Selector;
    /// assert_eq!("! a".parse::<Selector>().unwrap().to_string(), "!a");
    /// ```
    DoesNotExist,
    /// `key>N`: the label's value parses as an integer greater than N.
    ///
    /// ```
    /// # use orch_types::labels::Selector;
    /// assert_eq!("gen > 3".parse::<Selector>().unwrap().to_string(), "gen>3");
    /// ```
    Gt,
    /// `key<N`: the label's value parses as an integer less than N.
    ///
    /// ```
    /// # use orch_types::labels::Selector;
    /// assert_eq!("gen<3".parse::<Selector>().unwrap().to_string(), "gen<3");
    /// ```
    Lt,
}

impl Operator {
    /// The API spelling (`In`, `NotIn`, `Exists`, `DoesNotExist`, `Gt`, `Lt`); `Equals` and
    /// `NotEquals` have none (they are `In`/`NotIn` with one value in the API form).
    pub fn api_name(self) -> &'static str {
        match self {
            Operator::Equals => "=",
            Operator::NotEquals => "!=",
            Operator::In => "In",
            Operator::NotIn => "NotIn",
            Operator::Exists => "Exists",
            Operator::DoesNotExist => "DoesNotExist",
            Operator::Gt => "Gt",
            Operator::Lt => "Lt",
        }
    }
}

/// A selector parse or conversion error. `position` is the byte offset of the offending token
/// in the input string (0 for API-form conversions).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unable to parse requirement: {message} (at position {position})")]
pub struct SelectorError {
    /// Byte offset of the bad token.
    pub position: usize,
    /// What is wrong.
    pub message: String,
}

impl SelectorError {
    fn at(position: usize, message: impl Into<String>) -> Self {
        Self {
            position,
            message: message.into(),
        }
    }
}

/// One requirement: key, operator, values (sorted and de-duplicated for `In`/`NotIn`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// The operator.
    pub operator: Operator,
    /// Values (empty for Exists/DoesNotExist, one for Equals/NotEquals/Gt/Lt).
    pub values: Vec<String>,
}

impl Requirement {
    /// Builds a requirement, validating key and values as upstream `NewRequirement`.
    pub fn new(
        key: &str,
        operator: Operator,
        values: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<Self, SelectorError> {
        let mut values: Vec<String> = values.into_iter().map(Into::into).collect();
        if let Some(e) = names::is_qualified_name(key).into_iter().next() {
            return Err(SelectorError::at(
                0,
                format!("invalid label key {key:?}: {e}"),
            ));
        }
        match operator {
            Operator::In | Operator::NotIn => {
                if values.is_empty() {
                    return Err(SelectorError::at(
                        0,
                        "for 'in', 'notin' operators, values set can't be empty",
                    ));
                }
            }
            Operator::Equals | Operator::NotEquals => {
                if values.len() != 1 {
                    return Err(SelectorError::at(
                        0,
                        "exact-match compatibility requires one single value",
                    ));
                }
            }
            Operator::Exists | Operator::DoesNotExist => {
                if !values.is_empty() {
                    return Err(SelectorError::at(
                        0,
                        "values set must be empty for exists and does not exist",
                    ));
                }
            }
            Operator::Gt | Operator::Lt => {
                if values.len() != 1 {
                    return Err(SelectorError::at(
                        0,
                        "for 'Gt', 'Lt' operators, exactly one value is required",
                    ));
                }
                if values[0].parse::<i64>().is_err() {
                    return Err(SelectorError::at(
                        0,
                        "for 'Gt', 'Lt' operators, the value must be an integer",
                    ));
                }
            }
        }
        if !matches!(operator, Operator::Gt | Operator::Lt) {
            for v in &values {
                if let Some(e) = names::is_valid_label_value(v).into_iter().next() {
                    return Err(SelectorError::at(
                        0,
                        format!("invalid label value: {v:?}: {e}"),
                    ));
                }
            }
        }
        values.sort();
        values.dedup();
        Ok(Self {
            key: key.to_string(),
            operator,
            values,
        })
    }

    /// Whether a label set satisfies this requirement (upstream `Requirement.Matches`).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_value(labels.get(&self.key).map(String::as_str))
    }

    /// Whether the value found for this requirement's key (or its absence) satisfies it.
    pub fn matches_value(&self, value: Option<&str>) -> bool {
        let has = |v: &str| self.values.iter().any(|x| x == v);
        match self.operator {
            Operator::In | Operator::Equals => value.is_some_and(has),
            Operator::NotIn | Operator::NotEquals => !value.is_some_and(has),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::Gt | Operator::Lt => {
                let (Some(v), Some(bound)) = (
                    value.and_then(|v| v.parse::<i64>().ok()),
                    self.values.first().and_then(|b| b.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                if self.operator == Operator::Gt {
                    v > bound
                } else {
                    v < bound
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = &self.key;
        let first = self.values.first().map(String::as_str).unwrap_or("");
        match self.operator {
            Operator::Equals => write!(f, "{k}={first}"),
            Operator::NotEquals => write!(f, "{k}!={first}"),
            Operator::In => write!(f, "{k} in ({})", self.values.join(",")),
            Operator::NotIn => write!(f, "{k} notin ({})", self.values.join(",")),
            Operator::Exists => write!(f, "{k}"),
            Operator::DoesNotExist => write!(f, "!{k}"),
            Operator::Gt => write!(f, "{k}>{first}"),
            Operator::Lt => write!(f, "{k}<{first}"),
        }
    }
}

/// A parsed label selector: all requirements must hold. `Selector::nothing()` (from a nil API
/// selector) matches no object; an empty selector matches every object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Selector {
    requirements: Vec<Requirement>,
    nothing: bool,
}

impl Selector {
    /// Matches everything (the empty selector, `""`).
    pub fn everything() -> Self {
        Self::default()
    }

    /// Matches nothing (what a missing API selector means, upstream `labels.Nothing()`).
    pub fn nothing() -> Self {
        Self {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// `k1=v1,k2=v2` from a label map (upstream `SelectorFromSet`), without validation.
    pub fn from_map(labels: &BTreeMap<String, String>) -> Self {
        Self::from_requirements(
            labels
                .iter()
                .map(|(k, v)| Requirement {
                    key: k.clone(),
                    operator: Operator::Equals,
                    values: vec![v.clone()],
                })
                .collect(),
        )
    }

    /// A selector of the given requirements, sorted by key (stable) as upstream.
    pub fn from_requirements(mut requirements: Vec<Requirement>) -> Self {
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Self {
            requirements,
            nothing: false,
        }
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// True for the match-everything selector.
    pub fn is_everything(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// True for the match-nothing selector.
    pub fn is_nothing(&self) -> bool {
        self.nothing
    }

    /// Whether the label set satisfies every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Like [`Selector::matches`] on an optional label map (absent = no labels).
    pub fn matches_opt(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        self.matches(labels.unwrap_or(&EMPTY))
    }

    /// Adds a requirement (kept sorted by key).
    pub fn with_requirement(mut self, r: Requirement) -> Self {
        self.requirements.push(r);
        self.requirements.sort_by(|a, b| a.key.cmp(&b.key));
        self
    }

    /// The API form (upstream `ParseToLabelSelector`): every requirement becomes a
    /// `matchExpressions` entry (`=` → `In`, `!=` → `NotIn`). `Gt`/`Lt` have no API form.
    pub fn to_label_selector(&self) -> Result<LabelSelector, SelectorError> {
        let mut exprs = Vec::new();
        for r in &self.requirements {
            let op = match r.operator {
                Operator::Equals | Operator::In => "In",
                Operator::NotEquals | Operator::NotIn => "NotIn",
                Operator::Exists => "Exists",
                Operator::DoesNotExist => "DoesNotExist",
                Operator::Gt | Operator::Lt => {
                    return Err(SelectorError::at(
                        0,
                        format!("{:?} is not a valid label selector operator", r.operator),
                    ))
                }
            };
            exprs.push(LabelSelectorRequirement {
                key: r.key.clone(),
                operator: op.into(),
                values: if r.values.is_empty() {
                    None
                } else {
                    Some(r.values.clone())
                },
            });
        }
        Ok(LabelSelector {
            match_labels: None,
            match_expressions: if exprs.is_empty() { None } else { Some(exprs) },
        })
    }

    /// Converts an optional API selector: `None` matches nothing (upstream semantics for a nil
    /// `*LabelSelector`), an empty one matches everything.
    pub fn from_optional(sel: Option<&LabelSelector>) -> Result<Self, SelectorError> {
        match sel {
            None => Ok(Self::nothing()),
            Some(s) => Self::try_from(s),
        }
    }
}

impl TryFrom<&LabelSelector> for Selector {
    type Error = SelectorError;

    /// Upstream `LabelSelectorAsSelector`.
    fn try_from(sel: &LabelSelector) -> Result<Self, Self::Error> {
        let mut reqs = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            reqs.push(Requirement::new(k, Operator::Equals, [v.as_str()])?);
        }
        for e in sel.match_expressions.iter().flatten() {
            let op = match e.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    return Err(SelectorError::at(
                        0,
                        format!("{other:?} is not a valid label selector operator"),
                    ))
                }
            };
            reqs.push(Requirement::new(
                &e.key,
                op,
                e.values.iter().flatten().map(String::as_str),
            )?);
        }
        Ok(Self::from_requirements(reqs))
    }
}

impl TryFrom<LabelSelector> for Selector {
    type Error = SelectorError;
    fn try_from(sel: LabelSelector) -> Result<Self, Self::Error> {
        Selector::try_from(&sel)
    }
}

impl fmt::Display for Selector {
    /// kubectl syntax; the match-nothing selector prints as the empty string, like upstream.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok<'a> {
    Ident(&'a str),
    Bang,
    Eq,
    DoubleEq,
    NotEq,
    Gt,
    Lt,
    Open,
    Close,
    Comma,
    In,
    NotIn,
    End,
}

impl Tok<'_> {
    fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("'{s}'"),
            Tok::Bang => "'!'".into(),
            Tok::Eq => "'='".into(),
            Tok::DoubleEq => "'=='".into(),
            Tok::NotEq => "'!='".into(),
            Tok::Gt => "'>'".into(),
            Tok::Lt => "'<'".into(),
            Tok::Open => "'('".into(),
            Tok::Close => "')'".into(),
            Tok::Comma => "','".into(),
            Tok::In => "'in'".into(),
            Tok::NotIn => "'notin'".into(),
            Tok::End => "end of string".into(),
        }
    }
}

/// Tokenizes as upstream `labels.Lexer`.
fn lex(s: &str) -> Vec<(usize, Tok<'_>)> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let special = |c: u8| matches!(c, b'!' | b'=' | b'(' | b')' | b',' | b'>' | b'<');
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let two = b.get(i + 1).copied();
        let tok = match (c, two) {
            (b'!', Some(b'=')) => {
                i += 2;
                Tok::NotEq
            }
            (b'=', Some(b'=')) => {
                i += 2;
                Tok::DoubleEq
            }
            (b'!', _) => {
                i += 1;
                Tok::Bang
            }
            (b'=', _) => {
                i += 1;
                Tok::Eq
            }
            (b'>', _) => {
                i += 1;
                Tok::Gt
            }
            (b'<', _) => {
                i += 1;
                Tok::Lt
            }
            (b'(', _) => {
                i += 1;
                Tok::Open
            }
            (b')', _) => {
                i += 1;
                Tok::Close
            }
            (b',', _) => {
                i += 1;
                Tok::Comma
            }
            _ => {
                while i < b.len() && !b[i].is_ascii_whitespace() && !special(b[i]) {
                    i += 1;
                }
                match &s[start..i] {
                    "in" => Tok::In,
                    "notin" => Tok::NotIn,
                    w => Tok::Ident(w),
                }
            }
        };
        out.push((start, tok));
    }
    out.push((s.len(), Tok::End));
    out
}

struct Parser<'a> {
    toks: Vec<(usize, Tok<'a>)>,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> &(usize, Tok<'a>) {
        &self.toks[self.pos.min(self.toks.len() - 1)]
    }
    fn next(&mut self) -> (usize, Tok<'a>) {
        let t = self.peek().clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        let (kpos, first) = self.next();
        let (negated, (kpos, key)) = match first {
            Tok::Bang => (true, self.next()),
            t => (false, (kpos, t)),
        };
        let key = match key {
            Tok::Ident(k) => k,
            t => {
                return Err(SelectorError::at(
                    kpos,
                    format!("found {}, expected: identifier", t.describe()),
                ))
            }
        };
        let check_key = |key: &str| {
            if let Some(e) = names::is_qualified_name(key).into_iter().next() {
                Err(SelectorError::at(
                    kpos,
                    format!("invalid label key {key:?}: {e}"),
                ))
            } else {
                Ok(())
            }
        };
        check_key(key)?;
        if negated {
            return Ok(Requirement {
                key: key.into(),
                operator: Operator::DoesNotExist,
                values: vec![],
            });
        }
        let (opos, op) = self.peek().clone();
        let operator = match op {
            Tok::Comma | Tok::End => {
                return Ok(Requirement {
                    key: key.into(),
                    operator: Operator::Exists,
                    values: vec![],
                })
            }
            Tok::Eq | Tok::DoubleEq => Operator::Equals,
            Tok::NotEq => Operator::NotEquals,
            Tok::In => Operator::In,
            Tok::NotIn => Operator::NotIn,
            Tok::Gt => Operator::Gt,
            Tok::Lt => Operator::Lt,
            t => {
                return Err(SelectorError::at(
                    opos,
                    format!(
                        "found {}, expected: in, notin, =, ==, !=, gt, lt",
                        t.describe()
                    ),
                ))
            }
        };
        self.next();
        let values: Vec<(usize, &str)> = match operator {
            Operator::In | Operator::NotIn => self.value_list()?,
            _ => {
                let (vpos, v) = self.peek().clone();
                match v {
                    Tok::Ident(v) => {
                        self.next();
                        vec![(vpos, v)]
                    }
                    // `a=` selects the empty value.
                    Tok::Comma | Tok::End => vec![(vpos, "")],
                    // `in`/`notin` are valid values in exact-match position.
                    Tok::In => {
                        self.next();
                        vec![(vpos, "in")]
                    }
                    Tok::NotIn => {
                        self.next();
                        vec![(vpos, "notin")]
                    }
                    t => {
                        return Err(SelectorError::at(
                            vpos,
                            format!("found {}, expected: identifier", t.describe()),
                        ))
                    }
                }
            }
        };
        for (vpos, v) in &values {
            if matches!(operator, Operator::Gt | Operator::Lt) {
                if v.parse::<i64>().is_err() {
                    return Err(SelectorError::at(
                        *vpos,
                        format!(
                            "for 'Gt', 'Lt' operators, the value must be an integer, got {v:?}"
                        ),
                    ));
                }
            } else if let Some(e) = names::is_valid_label_value(v).into_iter().next() {
                return Err(SelectorError::at(
                    *vpos,
                    format!("invalid label value: {v:?}: {e}"),
                ));
            }
        }
        let mut values: Vec<String> = values.into_iter().map(|(_, v)| v.to_string()).collect();
        values.sort();
        values.dedup();
        Ok(Requirement {
            key: key.into(),
            operator,
            values,
        })
    }

    /// `( v1, v2 )`; empty list is an error for in/notin.
    fn value_list(&mut self) -> Result<Vec<(usize, &'a str)>, SelectorError> {
        let (p, t) = self.next();
        if t != Tok::Open {
            return Err(SelectorError::at(
                p,
                format!("found {}, expected: '('", t.describe()),
            ));
        }
        let mut out = Vec::new();
        loop {
            let (p, t) = self.next();
            match t {
                Tok::Ident(v) => out.push((p, v)),
                Tok::In => out.push((p, "in")),
                Tok::NotIn => out.push((p, "notin")),
                Tok::Close if out.is_empty() => {
                    return Err(SelectorError::at(
                        p,
                        "for 'in', 'notin' operators, values set can't be empty",
                    ))
                }
                t => {
                    return Err(SelectorError::at(
                        p,
                        format!("found {}, expected: identifier", t.describe()),
                    ))
                }
            }
            let (p, t) = self.next();
            match t {
                Tok::Comma => continue,
                Tok::Close => return Ok(out),
                t => {
                    return Err(SelectorError::at(
                        p,
                        format!("found {}, expected: ',' or ')'", t.describe()),
                    ))
                }
            }
        }
    }
}

impl FromStr for Selector {
    type Err = SelectorError;

    /// Parses kubectl syntax; the empty string selects everything.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut p = Parser {
            toks: lex(s),
            pos: 0,
        };
        let mut reqs = Vec::new();
        if p.peek().1 == Tok::End {
            return Ok(Self::everything());
        }
        loop {
            let (pos, t) = p.peek().clone();
            match t {
                Tok::Ident(_) | Tok::Bang => reqs.push(p.requirement()?),
                t => {
                    return Err(SelectorError::at(
                        pos,
                        format!(
                            "found {}, expected: !, identifier, or 'end of string'",
                            t.describe()
                        ),
                    ))
                }
            }
            let (pos, t) = p.next();
            match t {
                Tok::End => break,
                Tok::Comma => {
                    if p.peek().1 == Tok::End {
                        return Err(SelectorError::at(
                            p.peek().0,
                            "found 'end of string', expected: identifier after ','",
                        ));
                    }
                }
                t => {
                    return Err(SelectorError::at(
                        pos,
                        format!("found {}, expected: ',' or 'end of string'", t.describe()),
                    ))
                }
            }
        }
        Ok(Self::from_requirements(reqs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Parse/print cases after upstream selector_test.go TestSelectorParse.
    #[test]
    fn parse_and_display() {
        let cases = [
            ("", ""),
            ("x=a,y=b,z=c", "x=a,y=b,z=c"),
            ("z=c,x=a,y=b", "x=a,y=b,z=c"),
            ("x!=a,y=b", "x!=a,y=b"),
            ("x=", "x="),
            ("x= ", "x="),
            ("x=,z= ", "x=,z="),
            ("x in (a)", "x in (a)"),
            ("x in (b,a,a)", "x in (a,b)"),
            ("x notin (a,b)", "x notin (a,b)"),
            ("!x", "!x"),
            ("x>1", "x>1"),
            ("x<1,y", "x<1,y"),
            ("w in (a),x", "w in (a),x"),
            ("example.com/key = v", "example.com/key=v"),
            ("x=in", "x=in"),
        ];
        for (input, want) in cases {
            let s: Selector = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(s.to_string(), want, "input {input:?}");
            let again: Selector = s.to_string().parse().unwrap();
            assert_eq!(again, s, "reparse {input:?}");
        }
    }

    /// Malformed inputs report the position of the bad token.
    #[test]
    fn errors_point_at_token() {
        let cases = [
            ("x=a||y=b", 2),
            ("x==a==b", 4),
            ("!x=a", 2),
            ("x>a", 2),
            ("x in ()", 6),
            ("x in (a", 7),
            ("x in a", 5),
            ("x notin", 7),
            ("x=a,", 4),
            (",x", 0),
            ("-bad=a", 0),
            ("x=-bad", 2),
            ("a b", 2),
            ("x=(", 2),
        ];
        for (input, pos) in cases {
            let e = input
                .parse::<Selector>()
                .expect_err(&format!("{input:?} must not parse"));
            assert_eq!(e.position, pos, "{input:?}: {e}");
        }
        let e = "x in ()".parse::<Selector>().unwrap_err();
        assert!(e.to_string().contains("values set can't be empty"), "{e}");
    }

    /// Matching semantics after upstream TestSelectorMatches / TestRequirementMatches.
    #[test]
    fn matching() {
        let l = labels(&[("x", "a"), ("y", "b"), ("n", "5")]);
        for (sel, want) in [
            ("", true),
            ("x=a", true),
            ("x==a", true),
            ("x=b", false),
            ("x!=b", true),
            ("z!=b", true),
            ("x in (a,c)", true),
            ("x notin (a)", false),
            ("z notin (a)", true),
            ("x", true),
            ("z", false),
            ("!z", true),
            ("!x", false),
            ("n>4", true),
            ("n<5", false),
            ("x>1", false),
            ("x=a,y=b", true),
            ("x=a,y=c", false),
        ] {
            let s: Selector = sel.parse().unwrap();
            assert_eq!(s.matches(&l), want, "{sel}");
        }
        assert!(!Selector::nothing().matches(&l));
        assert!(Selector::everything().matches(&BTreeMap::new()));
    }

    #[test]
    fn api_form_conversion() {
        let api = LabelSelector {
            match_labels: Some(BTreeMap::from([("app".into(), "web".into())])),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "env".into(),
                    operator: "NotIn".into(),
                    values: Some(vec!["prod".into(), "dev".into()]),
                },
                LabelSelectorRequirement {
                    key: "canary".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
            ]),
        };
        let s = Selector::try_from(&api).unwrap();
        assert_eq!(s.to_string(), "app=web,!canary,env notin (dev,prod)");
        assert!(s.matches(&labels(&[("app", "web"), ("env", "qa")])));
        let back = Selector::try_from(&s.to_label_selector().unwrap()).unwrap();
        assert!(back.matches(&labels(&[("app", "web")])));
        assert!(!back.matches(&labels(&[("app", "web"), ("canary", "1")])));
        // Empty API selector matches everything, a missing one nothing.
        assert!(Selector::try_from(&LabelSelector::default())
            .unwrap()
            .is_everything());
        assert!(Selector::from_optional(None).unwrap().is_nothing());
        // Bad operator and empty In values are errors.
        let bad = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "a".into(),
                operator: "Gt".into(),
                values: Some(vec!["1".into()]),
            }]),
            ..Default::default()
        };
        assert!(Selector::try_from(&bad).is_err());
        let empty_in = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "a".into(),
                operator: "In".into(),
                values: Some(vec![]),
            }]),
            ..Default::default()
        };
        assert!(Selector::try_from(&empty_in).is_err());
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        fn key() -> impl Strategy<Value = String> {
            prop::sample::select(vec![
                "app",
                "tier",
                "example.com/team",
                "k8s.io/x-y",
                "a.b_c",
            ])
            .prop_map(str::to_string)
        }

        fn value() -> impl Strategy<Value = String> {
            "[a-z0-9]([a-z0-9._-]{0,6}[a-z0-9])?"
        }

        fn requirement() -> impl Strategy<Value = Requirement> {
            (key(), 0..8usize, prop::collection::vec(value(), 1..4)).prop_map(|(k, op, vals)| {
                let (operator, values) = match op {
                    0 => (Operator::Equals, vec![vals[0].clone()]),
                    1 => (Operator::NotEquals, vec![vals[0].clone()]),
                    2 => (Operator::In, vals),
                    3 => (Operator::NotIn, vals),
                    4 => (Operator::Exists, vec![]),
                    5 => (Operator::DoesNotExist, vec![]),
                    6 => (Operator::Gt, vec![vals.len().to_string()]),
                    _ => (Operator::Lt, vec![vals.len().to_string()]),
                };
                Requirement::new(&k, operator, values).expect("generated requirement is valid")
            })
        }

        proptest! {
            /// display → parse gives the same selector, and it matches the same label sets.
            #[test]
            fn display_parse_round_trip(reqs in prop::collection::vec(requirement(), 0..5),
                                        labels in prop::collection::btree_map(key(), value(), 0..4)) {
                let sel = Selector::from_requirements(reqs);
                let printed = sel.to_string();
                let parsed: Selector = printed.parse().unwrap();
                prop_assert_eq!(&parsed, &sel, "{}", printed);
                prop_assert_eq!(parsed.matches(&labels), sel.matches(&labels));
            }

            /// Arbitrary input never panics the parser.
            #[test]
            fn junk_never_panics(s in "[a-z!=(), <>.-]{0,16}") {
                let _ = s.parse::<Selector>();
            }
        }
    }
}
