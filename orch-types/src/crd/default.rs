//! Defaulting (upstream `schema/defaulting/algorithm.go`): top-down, a missing field or a `null`
//! in a non-nullable field with a `default` gets a copy of the default, and the defaulting then
//! goes on inside it (so defaults nested in a defaulted object apply too).

use serde_json::Value;

use super::node::{Additional, Node};

/// Whether `v` is a `null` that `node` does not allow (and so gets the default).
fn non_nullable_null(v: &Value, node: &Node) -> bool {
    v.is_null() && !node.nullable
}

/// Applies the defaults of `node` to `v`.
pub(crate) fn apply(v: &mut Value, node: &Node) {
    match v {
        Value::Object(o) => {
            for (k, prop) in &node.properties {
                let Some(d) = &prop.default else { continue };
                let missing = o.get(k).is_none_or(|x| non_nullable_null(x, prop));
                if missing {
                    o.insert(k.clone(), d.clone());
                }
            }
            let additional = match &node.additional {
                Some(Additional::Schema(s)) => Some(&**s),
                _ => None,
            };
            for (k, x) in o.iter_mut() {
                if let Some(prop) = node.properties.get(k) {
                    apply(x, prop);
                } else if let Some(add) = additional {
                    if let Some(d) = add.default.as_ref().filter(|_| non_nullable_null(x, add)) {
                        *x = d.clone();
                    }
                    apply(x, add);
                }
            }
        }
        Value::Array(a) => {
            let Some(items) = node.items.as_deref() else {
                return;
            };
            for x in a.iter_mut() {
                if let Some(d) = items
                    .default
                    .as_ref()
                    .filter(|_| non_nullable_null(x, items))
                {
                    *x = d.clone();
                }
                apply(x, items);
            }
        }
        _ => {}
    }
}
