//! `orch validate -f FILE|DIR|- [-o json|yaml] [--defaults]`: decode every object of every
//! manifest (multi-document YAML, JSON, `kind: List`), check it like
//! `kubectl apply --validate=strict` against kube-apiserver would (unknown kinds and fields are
//! errors naming the field, then the API validation rules), and either print the objects
//! (defaulted with `--defaults`) or one line per problem:
//!
//! ```text
//! FILE: <kind>/<name>: <field.path>: <message>
//! ```
//!
//! Exit status 0 when everything is valid, 1 otherwise (errors go to stderr).

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use orch_types::decode::{decode_documents, strict_errors};
use orch_types::defaults::apply_defaults;
use orch_types::validation::validate;
use orch_types::DynamicObject;

/// Output format of the valid objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// One YAML document per object.
    Yaml,
    /// One object, or a `kind: List` of several.
    Json,
}

/// Arguments of `orch validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Manifest file, directory (searched recursively for .yaml, .yml and .json) or `-` for
    /// standard input. Repeatable.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
    /// Print the objects in this format when they are valid (default: yaml).
    #[arg(short = 'o', long = "output", value_enum)]
    pub output: Option<OutputFormat>,
    /// Apply the API server's defaults before printing.
    #[arg(long)]
    pub defaults: bool,
}

/// One input: its display name and text.
struct Input {
    name: String,
    text: String,
}

fn collect_dir(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect_dir(&p, out)?;
        } else if matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(p);
        }
    }
    Ok(())
}

fn read_inputs(specs: &[String]) -> Result<Vec<Input>, String> {
    let mut inputs = Vec::new();
    for spec in specs {
        if spec == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| format!("-: cannot read standard input: {e}"))?;
            inputs.push(Input {
                name: "-".into(),
                text,
            });
            continue;
        }
        let path = Path::new(spec);
        let mut files = Vec::new();
        if path.is_dir() {
            collect_dir(path, &mut files).map_err(|e| format!("{spec}: {e}"))?;
            if files.is_empty() {
                return Err(format!("{spec}: no .yaml, .yml or .json files"));
            }
        } else {
            files.push(path.to_path_buf());
        }
        for f in files {
            let text = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
            inputs.push(Input {
                name: f.display().to_string(),
                text,
            });
        }
    }
    Ok(inputs)
}

/// Validates one input; returns its objects and the error lines.
fn check(input: &Input, defaults: bool) -> (Vec<DynamicObject>, Vec<String>) {
    let mut lines = Vec::new();
    let docs = match decode_documents(&input.text) {
        Ok(d) => d,
        Err(e) => return (Vec::new(), vec![format!("{}: {e}", input.name)]),
    };
    let mut objects = Vec::new();
    for d in docs {
        let who = format!("{}/{}", d.object.types.kind, d.object.name());
        let strict = strict_errors(&d, &input.text);
        if !strict.is_empty() {
            for e in strict {
                let field = if e.field.is_empty() {
                    "<root>"
                } else {
                    e.field.as_str()
                };
                lines.push(format!("{}: {who}: {field}: {}", input.name, e.message));
            }
            continue;
        }
        for e in validate(&d.object) {
            let field = if e.path.is_empty() {
                "<root>"
            } else {
                e.path.as_str()
            };
            lines.push(format!("{}: {who}: {field}: {}", input.name, e.body()));
        }
        let mut obj = d.object;
        if defaults {
            if let Err(e) = apply_defaults(&mut obj) {
                lines.push(format!("{}: {who}: <root>: {e}", input.name));
            }
        }
        objects.push(obj);
    }
    (objects, lines)
}

fn print_objects(objects: &[DynamicObject], format: OutputFormat) -> Result<(), String> {
    match format {
        OutputFormat::Json => {
            let value = if objects.len() == 1 {
                objects[0].to_value()
            } else {
                serde_json::json!({
                    "apiVersion": "v1",
                    "kind": "List",
                    "metadata": {"resourceVersion": ""},
                    "items": objects.iter().map(DynamicObject::to_value).collect::<Vec<_>>(),
                })
            };
            let s = serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?;
            println!("{s}");
        }
        OutputFormat::Yaml => {
            for (i, o) in objects.iter().enumerate() {
                if i > 0 {
                    println!("---");
                }
                let s = serde_yaml_ng::to_string(&o.to_value()).map_err(|e| e.to_string())?;
                print!("{s}");
            }
        }
    }
    Ok(())
}

/// Runs `orch validate`; returns the exit code.
pub fn run(args: ValidateArgs) -> i32 {
    let inputs = match read_inputs(&args.files) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let mut all = Vec::new();
    let mut errors = Vec::new();
    for input in &inputs {
        let (objs, errs) = check(input, args.defaults);
        all.extend(objs);
        errors.extend(errs);
    }
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("{e}");
        }
        return 1;
    }
    match print_objects(&all, args.output.unwrap_or(OutputFormat::Yaml)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("cannot print objects: {e}");
            1
        }
    }
}
