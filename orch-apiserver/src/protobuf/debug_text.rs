//! Reads back the `Debug` text that prost derives for a message (`Name { field: Some(1),
//! list: [..], map: {"k": ..} }`) as a tree.
//!
//! The grammar is the subset of Rust's `Debug` output that prost-derived messages print:
//! structs with named fields (a message without fields prints its bare name), `Some(..)` and
//! `None`, strings with `escape_debug` escapes, integers and floats, `true`/`false`, lists and
//! maps.

/// One value of the text.
#[derive(Debug, Clone, PartialEq)]
pub enum Dv {
    /// `None`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number as printed (`-3`, `0.5`, `1e100`, `NaN`, `inf`).
    Num(String),
    /// A string, unescaped.
    Str(String),
    /// `[a, b]`.
    List(Vec<Dv>),
    /// `{k: v, …}`.
    Map(Vec<(Dv, Dv)>),
    /// `Name { field: value, … }` (`Some(x)` reads as `x`).
    Struct(String, Vec<(String, Dv)>),
}

/// Parses one value that spans the whole text.
pub fn parse(text: &str) -> Result<Dv, String> {
    let mut p = Parser {
        chars: text.chars().collect(),
        pos: 0,
    };
    let v = p.value()?;
    p.skip_ws();
    if p.pos != p.chars.len() {
        return Err(p.error("trailing text"));
    }
    Ok(v)
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn error(&self, what: &str) -> String {
        format!("unreadable decoded message: {what} at offset {}", self.pos)
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(&format!("expected {c:?}")))
        }
    }

    /// Whether the next non-space character is `c` (consumed if so).
    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn word(&mut self) -> String {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_alphanumeric() || matches!(c, '_' | '#' | '.' | '+' | '-'))
        {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    /// Items up to `close`, separated by commas, each read by `item`.
    fn items<T>(
        &mut self,
        close: char,
        mut item: impl FnMut(&mut Self) -> Result<T, String>,
    ) -> Result<Vec<T>, String> {
        let mut out = Vec::new();
        if self.eat(close) {
            return Ok(out);
        }
        loop {
            out.push(item(self)?);
            if self.eat(close) {
                return Ok(out);
            }
            self.expect(',')?;
        }
    }

    fn value(&mut self) -> Result<Dv, String> {
        self.skip_ws();
        match self.peek() {
            None => Err(self.error("unexpected end")),
            Some('"') => self.string().map(Dv::Str),
            Some('[') => {
                self.pos += 1;
                self.items(']', Self::value).map(Dv::List)
            }
            Some('{') => {
                self.pos += 1;
                self.items('}', |p| {
                    let k = p.value()?;
                    p.expect(':')?;
                    Ok((k, p.value()?))
                })
                .map(Dv::Map)
            }
            Some(c) if c.is_ascii_digit() || c == '-' => Ok(Dv::Num(self.word())),
            Some(_) => {
                let word = self.word();
                match word.as_str() {
                    "" => Err(self.error("unexpected character")),
                    "None" => Ok(Dv::Null),
                    "true" => Ok(Dv::Bool(true)),
                    "false" => Ok(Dv::Bool(false)),
                    "NaN" | "inf" => Ok(Dv::Num(word)),
                    "Some" => {
                        self.expect('(')?;
                        let v = self.value()?;
                        self.expect(')')?;
                        Ok(v)
                    }
                    _ if self.eat('{') => {
                        let fields = self.items('}', |p| {
                            p.skip_ws();
                            let name = p.word();
                            if name.is_empty() {
                                return Err(p.error("expected a field name"));
                            }
                            p.expect(':')?;
                            Ok((name, p.value()?))
                        })?;
                        Ok(Dv::Struct(word, fields))
                    }
                    _ => Ok(Dv::Struct(word, Vec::new())),
                }
            }
        }
    }

    /// A string literal with Rust's `escape_debug` escapes.
    fn string(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.error("unterminated string"));
            };
            self.pos += 1;
            match c {
                '"' => return Ok(out),
                '\\' => {
                    let e = self
                        .peek()
                        .ok_or_else(|| self.error("unterminated escape"))?;
                    self.pos += 1;
                    match e {
                        'n' => out.push('\n'),
                        'r' => out.push('\r'),
                        't' => out.push('\t'),
                        '0' => out.push('\0'),
                        'u' => {
                            self.expect('{')?;
                            let hex = self.word();
                            self.expect('}')?;
                            let ch = u32::from_str_radix(&hex, 16)
                                .ok()
                                .and_then(char::from_u32)
                                .ok_or_else(|| self.error("bad unicode escape"))?;
                            out.push(ch);
                        }
                        other => out.push(other),
                    }
                }
                c => out.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_prost_prints() {
        let text = r#"Probe { handler: Some(ProbeHandler { exec: None, http_get: Some(HttpGetAction { path: None, port: Some(IntOrString { r#type: Some(1), int_val: None, str_val: Some("a\"\u{1}é\\") }), http_headers: [] }) }), period_seconds: Some(-5), data: {"pw": [104, 105]}, ratio: 0.5, on: true, empty: EmptyDirVolumeSource }"#;
        let v = parse(text).expect("parses");
        let Dv::Struct(name, fields) = v else {
            panic!("struct")
        };
        assert_eq!(name, "Probe");
        let Dv::Struct(_, handler) = &fields[0].1 else {
            panic!("handler")
        };
        let Dv::Struct(_, http) = &handler[1].1 else {
            panic!("http_get")
        };
        assert_eq!(
            http[1].1,
            Dv::Struct(
                "IntOrString".into(),
                vec![
                    ("r#type".into(), Dv::Num("1".into())),
                    ("int_val".into(), Dv::Null),
                    ("str_val".into(), Dv::Str("a\"\u{1}é\\".into())),
                ]
            )
        );
        assert_eq!(http[2].1, Dv::List(vec![]));
        assert_eq!(fields[1].1, Dv::Num("-5".into()));
        assert_eq!(
            fields[2].1,
            Dv::Map(vec![(
                Dv::Str("pw".into()),
                Dv::List(vec![Dv::Num("104".into()), Dv::Num("105".into())])
            )])
        );
        assert_eq!(fields[3].1, Dv::Num("0.5".into()));
        assert_eq!(fields[4].1, Dv::Bool(true));
        assert_eq!(
            fields[5].1,
            Dv::Struct("EmptyDirVolumeSource".into(), vec![])
        );
    }

    #[test]
    fn malformed_text_is_an_error() {
        for bad in [
            "",
            "X { a: }",
            "\"open",
            "[1, 2",
            "Some(1",
            "X { a: 1 } tail",
            "\"\\u{zz}\"",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
