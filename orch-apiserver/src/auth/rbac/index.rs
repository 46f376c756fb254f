//! The roles and bindings RBAC evaluates, followed from the watch cache: roles by name,
//! bindings by the subjects they name, so a request reads only the bindings of its user, its
//! groups and (for a service-account user) its service account.

use crate::auth::UserInfo;
use crate::cache::WatchCache;
use crate::storage::{key, Encoded};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use parking_lot::RwLock;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Weak};

/// The RBAC group.
const GROUP: &str = "rbac.authorization.k8s.io";

/// Who a binding names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum SubjectKey {
    User(String),
    Group(String),
    ServiceAccount(String, String),
}

/// Upstream `appliesToUser`: the keys a subject matches, with a service account's namespace
/// defaulting to the binding's.
fn subject_key(s: &Subject, binding_ns: &str) -> Option<SubjectKey> {
    match s.kind.as_str() {
        "User" => Some(SubjectKey::User(s.name.clone())),
        "Group" => Some(SubjectKey::Group(s.name.clone())),
        "ServiceAccount" => {
            let ns = s
                .namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_ns);
            Some(SubjectKey::ServiceAccount(ns.to_string(), s.name.clone()))
        }
        _ => None,
    }
}

/// The keys of a user: its name, its groups, and its service account
/// (`system:serviceaccount:NS:NAME`).
fn user_keys(user: &UserInfo) -> Vec<SubjectKey> {
    let name = user.username.as_deref().unwrap_or("");
    let mut keys = vec![SubjectKey::User(name.to_string())];
    keys.extend(
        user.groups
            .iter()
            .flatten()
            .map(|g| SubjectKey::Group(g.clone())),
    );
    if let Some((ns, sa)) = name
        .strip_prefix("system:serviceaccount:")
        .and_then(|r| r.split_once(':'))
    {
        keys.push(SubjectKey::ServiceAccount(ns.to_string(), sa.to_string()));
    }
    keys
}

/// A binding, either kind: its namespace (`""` for a ClusterRoleBinding), role and name.
#[derive(Debug)]
struct Binding {
    namespace: String,
    name: String,
    role_ref: RoleRef,
    subjects: Vec<SubjectKey>,
}

#[derive(Debug, Default)]
struct State {
    roles: HashMap<(String, String), Arc<Vec<PolicyRule>>>,
    cluster_roles: HashMap<String, Arc<Vec<PolicyRule>>>,
    bindings: HashMap<String, Arc<Binding>>,
    /// Subject → keys of the ClusterRoleBindings naming it.
    cluster_by_subject: HashMap<SubjectKey, BTreeSet<String>>,
    /// (namespace, subject) → keys of the RoleBindings naming it.
    namespaced_by_subject: HashMap<(String, SubjectKey), BTreeSet<String>>,
}

impl State {
    fn unbind(&mut self, key: &str) {
        let Some(old) = self.bindings.remove(key) else {
            return;
        };
        for s in &old.subjects {
            let set = if old.namespace.is_empty() {
                self.cluster_by_subject.get_mut(s)
            } else {
                self.namespaced_by_subject
                    .get_mut(&(old.namespace.clone(), s.clone()))
            };
            if let Some(set) = set {
                set.remove(key);
            }
        }
    }

    fn bind(&mut self, key: &str, b: Binding) {
        self.unbind(key);
        for s in &b.subjects {
            let set = if b.namespace.is_empty() {
                self.cluster_by_subject.entry(s.clone()).or_default()
            } else {
                self.namespaced_by_subject
                    .entry((b.namespace.clone(), s.clone()))
                    .or_default()
            };
            set.insert(key.to_string());
        }
        self.bindings.insert(key.to_string(), Arc::new(b));
    }
}

/// The four RBAC kinds the index follows.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Role,
    ClusterRole,
    RoleBinding,
    ClusterRoleBinding,
}

impl Kind {
    const ALL: [Kind; 4] = [
        Kind::Role,
        Kind::ClusterRole,
        Kind::RoleBinding,
        Kind::ClusterRoleBinding,
    ];

    fn plural(self) -> &'static str {
        match self {
            Kind::Role => "roles",
            Kind::ClusterRole => "clusterroles",
            Kind::RoleBinding => "rolebindings",
            Kind::ClusterRoleBinding => "clusterrolebindings",
        }
    }
}

/// The RBAC objects of an API server, kept up to date from its watch cache.
#[derive(Debug, Default)]
pub struct Index {
    state: RwLock<State>,
}

impl Index {
    /// An index following `cache` (one task per RBAC kind, ending when the cache is dropped).
    pub fn follow(cache: &Arc<WatchCache>) -> Arc<Self> {
        let index = Arc::new(Self::default());
        for kind in Kind::ALL {
            tokio::spawn(follow(Arc::downgrade(cache), Arc::downgrade(&index), kind));
        }
        index
    }

    fn apply(&self, kind: Kind, key: &str, encoded: Option<&Encoded>) {
        let mut st = self.state.write();
        let decoded = |e: &Encoded| -> Option<serde_json::Value> { e.decode_as().ok() };
        let Some(v) = encoded.and_then(decoded) else {
            match kind {
                Kind::Role => {
                    st.roles.retain(|k, _| role_key(key) != Some(k.clone()));
                }
                Kind::ClusterRole => {
                    if let Some(name) = key.rsplit('/').next() {
                        st.cluster_roles.remove(name);
                    }
                }
                Kind::RoleBinding | Kind::ClusterRoleBinding => st.unbind(key),
            }
            return;
        };
        match kind {
            Kind::Role => {
                if let (Ok(r), Some(k)) = (serde_json::from_value::<Role>(v), role_key(key)) {
                    st.roles.insert(k, Arc::new(r.rules.unwrap_or_default()));
                }
            }
            Kind::ClusterRole => {
                if let Ok(r) = serde_json::from_value::<ClusterRole>(v) {
                    let name = r.metadata.name.clone().unwrap_or_default();
                    st.cluster_roles
                        .insert(name, Arc::new(r.rules.unwrap_or_default()));
                }
            }
            Kind::RoleBinding => {
                if let Ok(b) = serde_json::from_value::<RoleBinding>(v) {
                    let ns = b.metadata.namespace.clone().unwrap_or_default();
                    let subjects = b
                        .subjects
                        .iter()
                        .flatten()
                        .filter_map(|s| subject_key(s, &ns))
                        .collect();
                    let binding = Binding {
                        name: b.metadata.name.clone().unwrap_or_default(),
                        namespace: ns,
                        role_ref: b.role_ref,
                        subjects,
                    };
                    st.bind(key, binding);
                }
            }
            Kind::ClusterRoleBinding => {
                if let Ok(b) = serde_json::from_value::<ClusterRoleBinding>(v) {
                    let subjects = b
                        .subjects
                        .iter()
                        .flatten()
                        .filter_map(|s| subject_key(s, ""))
                        .collect();
                    let binding = Binding {
                        name: b.metadata.name.clone().unwrap_or_default(),
                        namespace: String::new(),
                        role_ref: b.role_ref,
                        subjects,
                    };
                    st.bind(key, binding);
                }
            }
        }
    }

    /// Replaces every object of `kind` with `items`.
    fn reset(&self, kind: Kind, items: &[(String, Encoded)]) {
        {
            let mut st = self.state.write();
            match kind {
                Kind::Role => st.roles.clear(),
                Kind::ClusterRole => st.cluster_roles.clear(),
                Kind::RoleBinding | Kind::ClusterRoleBinding => {
                    let cluster = matches!(kind, Kind::ClusterRoleBinding);
                    let keys: Vec<String> = st
                        .bindings
                        .iter()
                        .filter(|(_, b)| b.namespace.is_empty() == cluster)
                        .map(|(k, _)| k.clone())
                        .collect();
                    for k in keys {
                        st.unbind(&k);
                    }
                }
            }
        }
        for (k, e) in items {
            self.apply(kind, k, Some(e));
        }
    }

    /// The rules of the role a binding in `namespace` refers to, or why there are none.
    fn role_rules(
        st: &State,
        namespace: &str,
        r: &RoleRef,
    ) -> Result<Arc<Vec<PolicyRule>>, String> {
        let found = match r.kind.as_str() {
            "ClusterRole" => st.cluster_roles.get(&r.name).cloned(),
            "Role" => st
                .roles
                .get(&(namespace.to_string(), r.name.clone()))
                .cloned(),
            _ => None,
        };
        found.ok_or_else(|| {
            format!(
                "{}.{GROUP} {:?} not found",
                r.kind.to_ascii_lowercase(),
                r.name
            )
        })
    }

    /// Calls `visit` on each rule bound to `user` cluster-wide, then in `namespace` (when not
    /// empty), until it returns true (upstream `VisitRulesFor`); returns whether it did. A
    /// binding to a missing role adds an error to `errors`.
    pub fn visit_rules(
        &self,
        user: &UserInfo,
        namespace: &str,
        visit: &mut dyn FnMut(&PolicyRule) -> bool,
        errors: &mut Vec<String>,
    ) -> bool {
        let st = self.state.read();
        let keys = user_keys(user);
        let mut seen = BTreeSet::new();
        let cluster = keys
            .iter()
            .filter_map(|k| st.cluster_by_subject.get(k))
            .flatten();
        let namespaced = keys
            .iter()
            .filter(|_| !namespace.is_empty())
            .filter_map(|k| {
                st.namespaced_by_subject
                    .get(&(namespace.to_string(), k.clone()))
            })
            .flatten();
        for key in cluster.chain(namespaced) {
            if !seen.insert(key) {
                continue;
            }
            let Some(b) = st.bindings.get(key) else {
                continue;
            };
            match Self::role_rules(&st, &b.namespace, &b.role_ref) {
                Ok(rules) => {
                    if rules.iter().any(&mut *visit) {
                        return true;
                    }
                }
                Err(e) => errors.push(if b.namespace.is_empty() {
                    format!("clusterrolebinding {:?}: {e}", b.name)
                } else {
                    format!("rolebinding {}/{}: {e}", b.namespace, b.name)
                }),
            }
        }
        false
    }

    /// The rules of the role `r` names, seen from `namespace` (for escalation checks).
    pub fn rules_of(&self, namespace: &str, r: &RoleRef) -> Result<Arc<Vec<PolicyRule>>, String> {
        Self::role_rules(&self.state.read(), namespace, r)
    }
}

/// `(namespace, name)` of a Role's storage key (`…/roles/NS/NAME`).
fn role_key(key: &str) -> Option<(String, String)> {
    let mut it = key.rsplit('/');
    let name = it.next()?;
    let ns = it.next()?;
    Some((ns.to_string(), name.to_string()))
}

/// Follows one kind: the current objects, then every change; starts over when it falls
/// behind.
async fn follow(cache: Weak<WatchCache>, index: Weak<Index>, kind: Kind) {
    let prefix = key::resource_prefix(GROUP, kind.plural());
    loop {
        let Some(c) = cache.upgrade() else { return };
        let Ok(mut w) = c.watch(&prefix, None).await else {
            return;
        };
        drop(c);
        let initial: Vec<(String, Encoded)> = w
            .initial
            .take()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|e| {
                let v: serde_json::Value = e.decode_as().ok()?;
                let ns = v["metadata"]["namespace"]
                    .as_str()
                    .filter(|n| !n.is_empty());
                let name = v["metadata"]["name"].as_str()?;
                Some((key::object_key(GROUP, kind.plural(), ns, name), e))
            })
            .collect();
        match index.upgrade() {
            Some(i) => i.reset(kind, &initial),
            None => return,
        }
        loop {
            match w.live.recv().await {
                Ok(ev) => {
                    if ev.revision <= w.start {
                        continue;
                    }
                    let Some(i) = index.upgrade() else { return };
                    i.apply(kind, &ev.key, ev.encoded.as_ref());
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}
