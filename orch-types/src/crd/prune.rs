//! Pruning of fields a schema does not specify (upstream `schema/pruning/algorithm.go`), and of
//! `metadata` to ObjectMeta's fields at the root and in embedded resources
//! (upstream `schema/objectmeta/coerce.go`).

use serde_json::Value;

use super::node::Node;

/// The JSON names of ObjectMeta's fields: what `metadata` keeps.
pub const OBJECT_META_FIELDS: &[&str] = &[
    "annotations",
    "creationTimestamp",
    "deletionGracePeriodSeconds",
    "deletionTimestamp",
    "finalizers",
    "generateName",
    "generation",
    "labels",
    "managedFields",
    "name",
    "namespace",
    "ownerReferences",
    "resourceVersion",
    "selfLink",
    "uid",
];

/// Prunes `v` under `node`; `resource_root` when `v` is a resource (the object itself, or an
/// embedded one): `apiVersion`, `kind` and `metadata` are then kept whatever the schema says.
/// Pruned paths are pushed to `pruned` as upstream reports them (`spec.foo`, `spec.list[0].x`).
pub(crate) fn prune(
    v: &mut Value,
    node: Option<&Node>,
    resource_root: bool,
    path: &str,
    pruned: &mut Vec<String>,
) {
    match v {
        Value::Object(o) => {
            let keep_all = node.is_some_and(Node::keeps_unknown);
            let mut drop = Vec::new();
            for (k, x) in o.iter_mut() {
                let p = join(path, k);
                if resource_root && (k == "apiVersion" || k == "kind") {
                    continue;
                }
                if resource_root && k == "metadata" {
                    prune_meta(x, &p, pruned);
                    continue;
                }
                match node.and_then(|n| n.field(k)) {
                    Some(sub) => prune(x, Some(sub), sub.embedded, &p, pruned),
                    // Kept as is (`x-kubernetes-preserve-unknown-fields`, or
                    // `additionalProperties: true`); upstream `skipPrune` only goes on below
                    // fields the schema knows.
                    None if keep_all => {}
                    None => drop.push((k.clone(), p)),
                }
            }
            for (k, p) in drop {
                o.remove(&k);
                pruned.push(p);
            }
        }
        Value::Array(a) => {
            let items = node.and_then(|n| n.items.as_deref());
            if node.is_some_and(|n| n.preserve_unknown) && items.is_none() {
                return;
            }
            for (i, x) in a.iter_mut().enumerate() {
                let p = format!("{path}[{i}]");
                prune(x, items, items.is_some_and(|it| it.embedded), &p, pruned);
            }
        }
        _ => {}
    }
}

/// `metadata` pruned to ObjectMeta's fields.
fn prune_meta(v: &mut Value, path: &str, pruned: &mut Vec<String>) {
    if let Value::Object(o) = v {
        let unknown: Vec<String> = o
            .keys()
            .filter(|k| !OBJECT_META_FIELDS.contains(&k.as_str()))
            .cloned()
            .collect();
        for k in unknown {
            o.remove(&k);
            pruned.push(join(path, &k));
        }
    }
}

fn join(path: &str, k: &str) -> String {
    if path.is_empty() {
        k.to_string()
    } else {
        format!("{path}.{k}")
    }
}
