use super::*;
use crate::testutil::written_slices as written;
use serde_json::json;

fn svc(extra: serde_json::Value) -> Service {
    let mut v = json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "svc-uid", "labels": {"tier": "fe"}},
        "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.10", "ipFamilies": ["IPv4"],
                 "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
    });
    merge(&mut v, extra);
    serde_json::from_value(v).unwrap()
}

fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
    match (a, b) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

fn pod(name: &str, ip: &str, ready: bool, extra: serde_json::Value) -> Arc<Pod> {
    let mut v = json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("u-{name}"), "labels": {"app": "web"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {"phase": "Running", "podIP": ip,
                   "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}
    });
    merge(&mut v, extra);
    Arc::new(serde_json::from_value(v).unwrap())
}

fn node(name: &str, zone: &str) -> Arc<Node> {
    Arc::new(
        serde_json::from_value(json!({"metadata": {"name": name, "labels": {LABEL_ZONE: zone}}}))
            .unwrap(),
    )
}

/// Runs one reconcile over `pods` and `slices`, with node `n1` (zone `a`) known.
fn run(s: &Service, pods: &[Arc<Pod>], slices: &[Arc<EndpointSlice>], max: usize) -> Vec<Action> {
    let n1 = node("n1", "a");
    let view = View {
        pods,
        slices,
        node: &|n| (n == "n1").then(|| n1.clone()),
        name_taken: &|n| slices.iter().any(|s| s.metadata.name.as_deref() == Some(n)),
    };
    reconcile(s, &view, max)
}

fn kinds(actions: &[Action]) -> Vec<&'static str> {
    actions
        .iter()
        .map(|a| match a {
            Action::CreateOrUpdate { .. } => "create",
            Action::Update { .. } => "update",
            Action::Delete { .. } => "delete",
            Action::Requeue(_) => "requeue",
            _ => "other",
        })
        .collect()
}

#[test]
fn ready_serving_and_terminating_conditions() {
    let s = svc(json!({}));
    let deleting = json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}});
    let pods = vec![
        pod("a", "10.0.0.1", true, json!({})),
        pod("b", "10.0.0.2", false, json!({})),
        pod("c", "10.0.0.3", true, deleting.clone()),
        pod("d", "10.0.0.4", false, deleting),
        // Terminal, without an IP, or not selected: not listed.
        pod(
            "e",
            "10.0.0.5",
            true,
            json!({"status": {"phase": "Succeeded"}}),
        ),
        pod("f", "", true, json!({})),
        pod(
            "g",
            "10.0.0.7",
            true,
            json!({"metadata": {"labels": {"app": "db"}}}),
        ),
    ];
    let actions = run(&s, &pods, &[], 100);
    let [Action::CreateOrUpdate { object, .. }] = actions.as_slice() else {
        panic!("{actions:?}")
    };
    let name = object.metadata.name.clone().unwrap();
    assert!(name.starts_with("web-") && name.len() == 9, "{name}");
    let mut v = object.to_value();
    v["metadata"]["name"] = json!("web-xxxxx");
    insta::assert_yaml_snapshot!(v, @r#"
    apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata:
      generateName: web-
      labels:
        endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io
        kubernetes.io/service-name: web
        tier: fe
      name: web-xxxxx
      namespace: default
      ownerReferences:
        - apiVersion: v1
          blockOwnerDeletion: true
          controller: true
          kind: Service
          name: web
          uid: svc-uid
    addressType: IPv4
    endpoints:
      - addresses:
          - 10.0.0.1
        conditions:
          ready: true
          serving: true
          terminating: false
        nodeName: n1
        targetRef:
          kind: Pod
          name: a
          namespace: default
          uid: u-a
        zone: a
      - addresses:
          - 10.0.0.2
        conditions:
          ready: false
          serving: false
          terminating: false
        nodeName: n1
        targetRef:
          kind: Pod
          name: b
          namespace: default
          uid: u-b
        zone: a
      - addresses:
          - 10.0.0.3
        conditions:
          ready: false
          serving: true
          terminating: true
        nodeName: n1
        targetRef:
          kind: Pod
          name: c
          namespace: default
          uid: u-c
        zone: a
      - addresses:
          - 10.0.0.4
        conditions:
          ready: false
          serving: false
          terminating: true
        nodeName: n1
        targetRef:
          kind: Pod
          name: d
          namespace: default
          uid: u-d
        zone: a
    ports:
      - name: http
        port: 8080
        protocol: TCP
    "#);
    // Stored as written: nothing more to do.
    let stored = written(&actions);
    assert!(run(&s, &pods, &stored, 100).is_empty());
    // publishNotReadyAddresses: every listed endpoint is ready.
    let s = svc(json!({"spec": {"publishNotReadyAddresses": true}}));
    let actions = run(&s, &pods, &stored, 100);
    assert_eq!(kinds(&actions), ["update"]);
    let slice = &written(&actions)[0];
    assert_eq!(slice.metadata.name, stored[0].metadata.name);
    let ready: Vec<_> = slice
        .endpoints
        .iter()
        .map(|e| e.conditions.as_ref().unwrap().ready)
        .collect();
    assert_eq!(ready, [Some(true); 4]);
}

#[test]
fn a_create_on_a_stale_cache_reuses_the_name() {
    let s = svc(json!({}));
    let pods = vec![pod("a", "10.0.0.1", true, json!({}))];
    // The cache has not seen the slice created by the first pass: the second one writes the
    // same name (create-or-update), never a second slice.
    assert_eq!(run(&s, &pods, &[], 100), run(&s, &pods, &[], 100));
}

#[test]
fn more_than_max_endpoints_are_split_and_refilled() {
    let s = svc(json!({}));
    let mut pods: Vec<Arc<Pod>> = (0..250)
        .map(|i| {
            pod(
                &format!("p{i}"),
                &format!("10.0.{}.{}", i / 200, i % 200 + 1),
                true,
                json!({}),
            )
        })
        .collect();
    let actions = run(&s, &pods, &[], 100);
    assert_eq!(kinds(&actions), ["create", "create", "create"]);
    let slices = written(&actions);
    let sizes: Vec<usize> = slices.iter().map(|s| s.endpoints.len()).collect();
    assert_eq!(sizes, [100, 100, 50]);
    let names: BTreeSet<_> = slices.iter().map(|s| s.metadata.name.clone()).collect();
    assert_eq!(names.len(), 3);
    // Ten more pods go to the unchanged slice closest to full that takes them all.
    pods.extend((250..260).map(|i| {
        pod(
            &format!("p{i}"),
            &format!("10.0.2.{}", i - 249),
            true,
            json!({}),
        )
    }));
    let actions = run(&s, &pods, &slices, 100);
    assert_eq!(kinds(&actions), ["update"]);
    let updated = &written(&actions)[0];
    assert_eq!(updated.metadata.name, slices[2].metadata.name);
    assert_eq!(updated.endpoints.len(), 60);
}

#[test]
fn pods_leaving_the_selector_are_dropped_down_to_a_placeholder() {
    let s = svc(json!({}));
    let pods = vec![
        pod("a", "10.0.0.1", true, json!({})),
        pod("b", "10.0.0.2", true, json!({})),
    ];
    let stored = written(&run(&s, &pods, &[], 100));
    let relabelled = vec![
        pods[0].clone(),
        pod(
            "b",
            "10.0.0.2",
            true,
            json!({"metadata": {"labels": {"app": "other"}}}),
        ),
    ];
    let actions = run(&s, &relabelled, &stored, 100);
    assert_eq!(kinds(&actions), ["update"]);
    let one = written(&actions);
    assert_eq!(one[0].endpoints.len(), 1);
    // No pod left: the slice becomes the empty placeholder (an update of the same slice).
    let actions = run(&s, &[], &one, 100);
    assert_eq!(kinds(&actions), ["update"]);
    let placeholder = written(&actions);
    assert_eq!(placeholder[0].metadata.name, stored[0].metadata.name);
    assert!(placeholder[0].endpoints.is_empty());
    assert_eq!(placeholder[0].ports.as_deref(), Some(&[][..]));
    // The placeholder is kept as it is.
    assert!(run(&s, &[], &placeholder, 100).is_empty());
    // A Service without endpoints from the start gets one too.
    let actions = run(&s, &[], &[], 100);
    assert_eq!(kinds(&actions), ["create"]);
}

#[test]
fn port_changes_and_named_ports_per_pod() {
    let s = svc(json!({}));
    let pods = vec![
        pod("a", "10.0.0.1", true, json!({})),
        // The same named port on another number: a slice of its own.
        pod(
            "b",
            "10.0.0.2",
            true,
            json!({"spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 9090}]}]}}),
        ),
    ];
    let actions = run(&s, &pods, &[], 100);
    assert_eq!(kinds(&actions), ["create", "create"]);
    let slices = written(&actions);
    let ports: BTreeSet<i32> = slices
        .iter()
        .map(|s| s.ports.as_ref().unwrap()[0].port.unwrap())
        .collect();
    assert_eq!(ports, BTreeSet::from([8080, 9090]));
    // A numeric target port: one port set again; the new slice replaces an old one by an
    // update, the other is deleted.
    let s2 = svc(
        json!({"spec": {"ports": [{"name": "http", "port": 80, "targetPort": 7070, "appProtocol": "http"}]}}),
    );
    let actions = run(&s2, &pods, &slices, 100);
    assert_eq!(kinds(&actions), ["update", "delete"]);
    let slice = &written(&actions)[0];
    assert_eq!(
        slice.ports.as_deref(),
        Some(
            &[EndpointPort {
                name: Some("http".into()),
                port: Some(7070),
                protocol: Some("TCP".into()),
                app_protocol: Some("http".into()),
            }][..]
        )
    );
    assert_eq!(slice.endpoints.len(), 2);
}

#[test]
fn labels_owner_headless_and_service_states() {
    // Headless without families: slices for both address types, labelled headless.
    let s = svc(json!({"spec": {"clusterIP": "None", "ipFamilies": null}}));
    let pods = vec![pod("a", "10.0.0.1", true, json!({}))];
    let slices = written(&run(&s, &pods, &[], 100));
    let types: Vec<&str> = slices.iter().map(|s| s.address_type.as_str()).collect();
    assert_eq!(types, ["IPv4", "IPv6"]);
    assert!(slices[1].endpoints.is_empty());
    assert!(slices.iter().all(|s| s
        .metadata
        .labels
        .as_ref()
        .unwrap()
        .contains_key(LABEL_HEADLESS)));
    // A Service label change is copied to its slices.
    let s = svc(json!({}));
    let stored = written(&run(&s, &pods, &[], 100));
    let relabelled = svc(json!({"metadata": {"labels": {"tier": "be"}}}));
    let actions = run(&relabelled, &pods, &stored, 100);
    assert_eq!(kinds(&actions), ["update"]);
    assert_eq!(
        written(&actions)[0].metadata.labels.as_ref().unwrap()["tier"],
        "be"
    );
    // A slice of an older Service of the same name (another uid) is deleted and replaced.
    let other = svc(json!({"metadata": {"uid": "new-uid"}}));
    let actions = run(&other, &pods, &stored, 100);
    assert_eq!(kinds(&actions), ["create", "delete"]);
    // Being deleted: no creates (the garbage collector removes the slices it owns).
    let deleting = svc(json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}}));
    assert!(run(&deleting, &pods, &[], 100).is_empty());
    // No selector, or ExternalName: not this controller's.
    assert!(run(&svc(json!({"spec": {"selector": null}})), &pods, &[], 100).is_empty());
    assert!(run(
        &svc(json!({"spec": {"type": "ExternalName"}})),
        &pods,
        &[],
        100
    )
    .is_empty());
}

#[test]
fn a_pod_on_an_unknown_node_waits_unless_not_ready_addresses_are_published() {
    let s = svc(json!({}));
    let pods = vec![pod(
        "a",
        "10.0.0.1",
        true,
        json!({"spec": {"nodeName": "gone"}}),
    )];
    let actions = run(&s, &pods, &[], 100);
    assert_eq!(kinds(&actions), ["create", "requeue"]);
    assert!(written(&actions)[0].endpoints.is_empty());
    let s = svc(json!({"spec": {"publishNotReadyAddresses": true}}));
    let actions = run(&s, &pods, &[], 100);
    assert_eq!(kinds(&actions), ["create"]);
    let e = &written(&actions)[0].endpoints[0];
    assert_eq!(
        (e.node_name.as_deref(), e.zone.as_deref()),
        (Some("gone"), None)
    );
}
