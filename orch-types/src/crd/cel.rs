//! `x-kubernetes-validations`: CEL rules compiled with the `cel` crate and evaluated against
//! custom objects (upstream `apiextensions-apiserver/pkg/apiserver/schema/cel/`).
//!
//! Values reach CEL typed by their schema as upstream's `SchemaDeclType` types them: `integer` →
//! `int`, `number` → `double` (an integral JSON number included), `string` with `format:
//! date-time`/`date` → `timestamp`, `format: duration` → `duration`, `format: byte` → `bytes`,
//! `x-kubernetes-int-or-string` → `int` or `string`; property names are escaped as upstream
//! (`__dash__`, `__dot__`, `__slash__`, `__underscores__`, `__{keyword}__`).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use cel::objects::{Key, Map, OptionalValue};
use cel::{Context, Env, ExecutionError, Program, Value as CelValue};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::ValidationRule;
use serde_json::Value;

use super::node::{Additional, Node};

/// Functions of the Kubernetes CEL libraries that the `cel` crate does not provide. A rule that
/// calls one gets a compile error naming it instead of failing on every object.
pub const UNSUPPORTED_KUBERNETES_FUNCTIONS: &[&str] = &[
    // lists library
    "isSorted",
    "sum",
    "min",
    "max",
    // regex library
    "find",
    "findAll",
    // URL library
    "url",
    "isURL",
    "getScheme",
    "getHost",
    "getHostname",
    "getPort",
    "getEscapedPath",
    "getQuery",
    // quantity library
    "quantity",
    "isQuantity",
    "isInteger",
    "asInteger",
    "asApproximateFloat",
    "compareTo",
    "isGreaterThan",
    "isLessThan",
    // IP and CIDR libraries
    "ip",
    "isIP",
    "cidr",
    "isCIDR",
    "family",
    "isUnspecified",
    "isLoopback",
    "isLinkLocalMulticast",
    "isLinkLocalUnicast",
    "isGlobalUnicast",
    "containsIP",
    "containsCIDR",
    "prefixLength",
    "masked",
    // semver library
    "semver",
    "isSemver",
    "major",
    "minor",
    "patch",
    // authorizer library (not available to CRD rules upstream either)
    "authorizer",
];

/// Functions and macros the `cel` crate provides (standard library, `strings`, `lists` and
/// `math` extensions, optionals, timestamps and durations).
const SUPPORTED_FUNCTIONS: &[&str] = &[
    "size",
    "has",
    "all",
    "exists",
    "exists_one",
    "existsOne",
    "map",
    "filter",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "bool",
    "dyn",
    "type",
    "duration",
    "timestamp",
    "matches",
    "contains",
    "startsWith",
    "endsWith",
    "lowerAscii",
    "upperAscii",
    "trim",
    "replace",
    "split",
    "substring",
    "charAt",
    "indexOf",
    "lastIndexOf",
    "join",
    "format",
    "quote",
    "reverse",
    "sort",
    "sortBy",
    "distinct",
    "flatten",
    "range",
    "slice",
    "abs",
    "ceil",
    "floor",
    "round",
    "sign",
    "sqrt",
    "trunc",
    "isFinite",
    "isInf",
    "isNaN",
    "bitAnd",
    "bitOr",
    "bitXor",
    "bitNot",
    "bitShiftLeft",
    "bitShiftRight",
    "greatest",
    "least",
    "getDate",
    "getDayOfMonth",
    "getDayOfWeek",
    "getDayOfYear",
    "getFullYear",
    "getHours",
    "getMilliseconds",
    "getMinutes",
    "getMonth",
    "getSeconds",
    "hasValue",
    "value",
    "orValue",
    "or",
    "of",
    "none",
    "ofNonZeroValue",
    "optMap",
    "optFlatMap",
    "isEmpty",
];

/// The `reason`s a rule may give (upstream `supportedValidationReason`).
pub const SUPPORTED_REASONS: &[&str] = &[
    "FieldValueDuplicate",
    "FieldValueForbidden",
    "FieldValueInvalid",
    "FieldValueRequired",
];

/// The shared CEL environment (standard library and the extensions).
fn env() -> &'static Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Env::stdlib();
        // Each extension registers distinct names on a fresh Env: these cannot collide.
        let _ = env.add_extension(cel::extensions::strings);
        let _ = env.add_extension(cel::extensions::lists);
        let _ = env.add_extension(cel::extensions::math);
        Arc::new(env)
    })
}

/// One compiled `x-kubernetes-validations` entry.
#[derive(Debug)]
pub(crate) struct Rule {
    pub source: String,
    program: Program,
    message: Option<String>,
    message_expression: Option<Program>,
    pub field_path: Option<String>,
    pub reason: Option<String>,
    /// The rule uses `oldSelf`: a transition rule, evaluated on update only (unless
    /// `optionalOldSelf`).
    pub uses_old_self: bool,
    pub optional_old_self: bool,
}

/// What a rule made of a value.
pub(crate) enum Outcome {
    Pass,
    /// The rule is false: the message to report.
    Fail(String),
    /// The rule could not be evaluated: the message to report.
    Error(String),
    /// A transition rule on create: not evaluated.
    Skipped,
}

/// Compiles `src`, with a clear error for what the `cel` crate lacks.
fn compile_expr(src: &str) -> Result<Program, String> {
    let program = env()
        .compile(src)
        .map_err(|e| format!("compilation failed: ERROR: <input>: {e}"))?;
    for f in program.references().functions() {
        let name = f.rsplit('.').next().unwrap_or(f);
        if name.starts_with('_') || name.starts_with('@') || name.starts_with('!') {
            continue; // operators
        }
        if UNSUPPORTED_KUBERNETES_FUNCTIONS.contains(&name) {
            return Err(format!(
                "compilation failed: ERROR: <input>: undeclared reference to '{name}' (the Kubernetes CEL library function {name}() is not supported by orch)"
            ));
        }
        if !SUPPORTED_FUNCTIONS.contains(&name) {
            return Err(format!(
                "compilation failed: ERROR: <input>: undeclared reference to '{name}'"
            ));
        }
    }
    Ok(program)
}

impl Rule {
    /// Compiles a rule (and its `messageExpression`); the error is upstream's compile detail.
    pub(crate) fn compile(r: &ValidationRule) -> Result<Rule, String> {
        let program = compile_expr(&r.rule)?;
        let uses_old_self = program.references().has_variable("oldSelf");
        let message_expression = match r.message_expression.as_deref().map(str::trim) {
            Some(src) if !src.is_empty() => {
                Some(compile_expr(src).map_err(|e| format!("messageExpression {e}"))?)
            }
            _ => None,
        };
        Ok(Rule {
            source: r.rule.clone(),
            program,
            message: r.message.clone().filter(|m| !m.trim().is_empty()),
            message_expression,
            field_path: r.field_path.clone().filter(|p| !p.trim().is_empty()),
            reason: r.reason.clone(),
            uses_old_self,
            optional_old_self: r.optional_old_self.unwrap_or(false),
        })
    }

    /// Upstream `ruleErrorString` / `ruleMessageOrDefault`.
    fn default_message(&self) -> String {
        match &self.message {
            Some(m) => m.clone(),
            None => format!("failed rule: {}", self.source.trim()),
        }
    }

    /// Evaluates the rule with `self` = `value` (typed by `node`) and `oldSelf` = `old`.
    pub(crate) fn evaluate(&self, node: &Node, value: &Value, old: Option<&Value>) -> Outcome {
        let old_cel = match (self.uses_old_self, old) {
            (false, _) => None,
            (true, Some(o)) if self.optional_old_self => Some(CelValue::Opaque(Arc::new(
                OptionalValue::of(to_cel(o, Some(node))),
            ))),
            (true, Some(o)) => Some(to_cel(o, Some(node))),
            (true, None) if self.optional_old_self => {
                Some(CelValue::Opaque(Arc::new(OptionalValue::none())))
            }
            (true, None) => return Outcome::Skipped,
        };
        let mut ctx = Context::with_env(env().clone());
        ctx.add_variable_from_value("self", to_cel(value, Some(node)));
        if let Some(o) = old_cel {
            ctx.add_variable_from_value("oldSelf", o);
        }
        match self.program.execute(&ctx) {
            Ok(CelValue::Bool(true)) => Outcome::Pass,
            Ok(CelValue::Bool(false)) => Outcome::Fail(self.message(&ctx)),
            Ok(other) => Outcome::Error(format!(
                "rule returned {} instead of a bool evaluating rule: {}",
                other.type_of(),
                self.source.trim()
            )),
            Err(e) => Outcome::Error(eval_error(&e, &self.source)),
        }
    }

    /// The message of a failed rule: `messageExpression` if it yields a non-empty string,
    /// else `message`, else `failed rule: <rule>` (upstream falls back the same way).
    fn message(&self, ctx: &Context) -> String {
        if let Some(expr) = &self.message_expression {
            if let Ok(CelValue::String(s)) = expr.execute(ctx) {
                if !s.trim().is_empty() && !s.contains('\n') {
                    return s.to_string();
                }
            }
        }
        self.default_message()
    }
}

/// Upstream's runtime error detail (`cel/validation.go`).
fn eval_error(e: &ExecutionError, rule: &str) -> String {
    match e {
        ExecutionError::NoSuchOverload(_) => format!(
            "'{e}': call arguments did not match a supported operator, function or macro signature for rule: {}",
            rule.trim()
        ),
        _ => format!("{e} evaluating rule: {}", rule.trim()),
    }
}

/// CEL reserved words that upstream escapes as `__{word}__` in property names.
const RESERVED: &[&str] = &[
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// Upstream `cel.Escape`: the name a property has in CEL, `None` if it cannot be accessed.
pub(crate) fn escape(name: &str) -> Option<String> {
    if RESERVED.contains(&name) {
        return Some(format!("__{name}__"));
    }
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, '_' | '.' | '-' | '/'));
    if !first_ok
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/'))
    {
        return None;
    }
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("__") {
            out.push_str("__underscores__");
            rest = &rest[2..];
            continue;
        }
        match c {
            '.' => out.push_str("__dot__"),
            '-' => out.push_str("__dash__"),
            '/' => out.push_str("__slash__"),
            c => out.push(c),
        }
        rest = &rest[c.len_utf8()..];
    }
    Some(out)
}

/// A JSON value as CEL sees it under `node` (`None`: no schema, plain JSON typing).
pub(crate) fn to_cel(v: &Value, node: Option<&Node>) -> CelValue {
    match v {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => {
            let as_double = node.is_some_and(|n| n.ty.as_deref() == Some("number"));
            match (n.as_i64(), as_double) {
                (Some(i), false) => CelValue::Int(i),
                _ => match (n.as_u64(), as_double) {
                    (Some(u), false) => CelValue::UInt(u),
                    _ => CelValue::Float(n.as_f64().unwrap_or(f64::NAN)),
                },
            }
        }
        Value::String(s) => string_to_cel(s, node.and_then(|n| n.format.as_deref())),
        Value::Array(a) => {
            let items = node.and_then(|n| n.items.as_deref());
            CelValue::List(Arc::new(a.iter().map(|x| to_cel(x, items)).collect()))
        }
        Value::Object(o) => {
            let mut map = HashMap::with_capacity(o.len());
            for (k, x) in o {
                let (key, sub) = match node {
                    Some(n) if n.properties.contains_key(k) => match escape(k) {
                        Some(e) => (e, n.properties.get(k)),
                        None => continue,
                    },
                    Some(n) => match &n.additional {
                        Some(Additional::Schema(s)) => (k.clone(), Some(&**s)),
                        _ => (k.clone(), None),
                    },
                    None => (k.clone(), None),
                };
                map.insert(Key::String(Arc::new(key)), to_cel(x, sub));
            }
            CelValue::Map(Map { map: Arc::new(map) })
        }
    }
}

fn string_to_cel(s: &str, format: Option<&str>) -> CelValue {
    match format {
        Some("date-time") => {
            if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
                return CelValue::Timestamp(t);
            }
        }
        Some("date") => {
            if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                if let Some(t) = d.and_hms_opt(0, 0, 0) {
                    return CelValue::Timestamp(t.and_utc().fixed_offset());
                }
            }
        }
        Some("duration") => {
            if let Some(d) = super::formats::parse_go_duration(s) {
                return CelValue::Duration(d);
            }
        }
        Some("byte") => {
            use base64::Engine;
            if let Ok(b) = base64::engine::general_purpose::STANDARD.decode(s) {
                return CelValue::Bytes(Arc::new(b));
            }
        }
        _ => {}
    }
    CelValue::String(Arc::new(s.to_string()))
}

/// A CEL expression evaluated over named JSON variables, without a schema (plain JSON typing):
/// the `matchConditions` of admission webhooks (upstream
/// `staging/src/k8s.io/apiserver/pkg/admission/plugin/webhook/matchconditions/`). It compiles
/// in the same environment as `x-kubernetes-validations` rules, with the same refusals.
#[derive(Debug)]
pub struct Expression {
    source: String,
    program: Program,
}

impl Expression {
    /// Compiles `src`; the error is upstream's compile detail (`compilation failed: …`).
    /// Expressions naming a variable outside `declared` fail too, as they do upstream, where
    /// the environment declares the variables.
    pub fn compile(src: &str, declared: &[&str]) -> Result<Self, String> {
        if let Ok(parsed) = env().compile(src) {
            for var in parsed.references().variables() {
                if !declared.contains(&var) && !comprehension_variable(src, var) {
                    return Err(format!(
                        "compilation failed: ERROR: <input>: undeclared reference to '{var}'"
                    ));
                }
            }
        }
        let program = compile_expr(src)?;
        Ok(Self {
            source: src.to_string(),
            program,
        })
    }

    /// The expression's text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates the expression with each `(name, value)` bound; `Err` when it does not
    /// evaluate to a bool.
    pub fn evaluate_bool(&self, vars: &[(&str, &Value)]) -> Result<bool, String> {
        let mut ctx = Context::with_env(env().clone());
        for (name, value) in vars {
            ctx.add_variable_from_value(*name, to_cel(value, None));
        }
        match self.program.execute(&ctx) {
            Ok(CelValue::Bool(b)) => Ok(b),
            Ok(other) => Err(format!(
                "expression returned {} instead of a bool: {}",
                other.type_of(),
                self.source.trim()
            )),
            Err(e) => Err(eval_error(&e, &self.source)),
        }
    }
}

/// Whether `var` is bound by a comprehension macro of `src` (`x` in `l.all(x, x > 0)`), which
/// the reference list reports as a variable.
fn comprehension_variable(src: &str, var: &str) -> bool {
    ["all", "exists", "exists_one", "map", "filter"]
        .iter()
        .any(|m| {
            src.split(&format!(".{m}(")).skip(1).any(|rest| {
                rest.trim_start()
                    .strip_prefix(var)
                    .is_some_and(|r| r.trim_start().starts_with(','))
            })
        })
}
