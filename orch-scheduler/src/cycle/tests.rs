//! The cycle on a [`ManualClock`]: the queue semantics an executor gets for free (unschedulable
//! pool emptied by cluster events only, back-off after bind failures, preemption's victims and
//! nominated node, binding through the Bind plugins) and determinism.

use super::*;
use crate::framework::{BindPlugin, DefaultBinder};
use crate::profile::Profile;
use orch_types::clock::ManualClock;
use orch_types::testing::{NodeBuilder, PodBuilder};
use std::time::Duration;

const T0: i64 = 1_000;

fn cycle_with(scheduler: Scheduler, clock: &ManualClock) -> SchedulingCycle {
    SchedulingCycle::new(scheduler, Arc::new(clock.clone()))
}

fn cycle(clock: &ManualClock) -> SchedulingCycle {
    cycle_with(Scheduler::default(), clock)
}

fn node(name: &str, cpu: &str) -> Arc<Node> {
    Arc::new(
        NodeBuilder::new(name)
            .capacity("cpu", cpu)
            .capacity("memory", "8Gi")
            .build(),
    )
}

fn pod(name: &str, cpu: &str) -> PodBuilder {
    PodBuilder::new(name).req("cpu", cpu)
}

fn at(secs: i64) -> Option<Timestamp> {
    Timestamp::from_second(secs).ok()
}

/// The pod as the API server returns it after the binding.
fn bound_version(pod: &PodInfo, node: &str) -> Arc<Pod> {
    let mut p = (*pod.pod).clone();
    p.spec.get_or_insert_with(Default::default).node_name = Some(node.into());
    Arc::new(p)
}

/// What an executor does with an attempt, synchronously and always successfully; returns the
/// attempt in words.
fn execute(c: &mut SchedulingCycle, a: &Attempt) -> String {
    let mut out = format!(
        "{} #{} {}",
        a.key,
        a.attempts,
        serde_json::to_string(&a.decision).unwrap()
    );
    for e in &a.effects {
        match e {
            Effect::Bind {
                pod,
                node,
                binding,
                on_success,
            } => {
                out += &format!(
                    " | bind {node} {} / {}",
                    serde_json::to_string(binding).unwrap(),
                    on_success.message
                );
                c.bind_succeeded(&pod.key);
                c.pod_updated(bound_version(pod, node));
            }
            Effect::Preempt { victims } => {
                out += &format!(" | preempt {victims:?}");
                for v in victims {
                    let victim = c.snapshot().pod(v).unwrap().pod.clone();
                    c.pod_deleted(&victim);
                }
            }
            Effect::MarkUnschedulable {
                message,
                nominated_node,
                at,
                ..
            } => out += &format!(" | unschedulable {nominated_node:?} {at} {message}"),
            Effect::Event(ev) => out += &format!(" | event {} {}", ev.reason, ev.message),
        }
    }
    out
}

#[test]
fn unschedulable_pod_waits_for_a_relevant_cluster_event() {
    let clock = ManualClock::at_epoch_seconds(T0);
    let mut c = cycle(&clock);
    c.node_added(node("n1", "1"));
    c.pod_added(Arc::new(pod("big", "2").build()));

    let a = c.step().expect("big is active");
    assert_eq!(a.key, "default/big");
    assert!(a.decision.node().is_none());
    let [Effect::MarkUnschedulable {
        message,
        nominated_node: None,
        at: t,
        ..
    }, Effect::Event(ev)] = a.effects.as_slice()
    else {
        panic!("unexpected effects {:?}", a.effects);
    };
    assert!(
        message.starts_with("0/1 nodes are available: 1 Insufficient cpu."),
        "{message}"
    );
    assert_eq!(Some(*t), at(T0));
    assert_eq!(ev.reason, reason::FAILED_SCHEDULING);
    assert_eq!(&ev.message, message);
    assert_eq!(c.stats().unschedulable, 1);

    // Not retried on time alone (short of the 5-minute flush) …
    assert!(c.step().is_none());
    clock.advance(Duration::from_secs(60));
    assert!(c.step().is_none());
    assert_eq!(c.next_due(), at(T0 + 300));
    // … nor on our own status write, nor on an event NodeResourcesFit does not care about.
    let mut written = pod("big", "2").build();
    written.status = Some(Default::default());
    c.pod_updated(Arc::new(written));
    c.pod_added(Arc::new(pod("small", "100m").node_name("n1").build()));
    assert!(c.step().is_none());
    assert_eq!(c.queue().lens(), (0, 0, 1, 0));

    // A node that fits arrives: the pod is retried (its 1 s back-off is long over) and bound
    // through DefaultBinder's Binding.
    c.node_added(node("n2", "4"));
    let a = c.step().expect("moved by NodeAdd");
    assert_eq!(a.attempts, 2);
    assert_eq!(a.decision.node(), Some("n2"));
    let [Effect::Bind {
        pod,
        node,
        binding,
        on_success,
    }] = a.effects.as_slice()
    else {
        panic!("unexpected effects {:?}", a.effects);
    };
    assert_eq!(node, "n2");
    assert_eq!(Some(&**binding), DefaultBinder.binding(pod, "n2").as_ref());
    assert_eq!(binding.metadata.name.as_deref(), Some("big"));
    assert_eq!(binding.target.name.as_deref(), Some("n2"));
    assert_eq!(on_success.reason, reason::SCHEDULED);
    assert_eq!(
        on_success.message,
        "Successfully assigned default/big to n2"
    );
    // Assumed until the executor reports back.
    assert_eq!(c.snapshot().pod_node("default/big"), Some("n2"));
    c.bind_succeeded(&a.key);
    c.pod_updated(bound_version(pod, "n2"));
    assert_eq!(c.snapshot().pod_node("default/big"), Some("n2"));
    assert_eq!(c.stats().bound, 1);
    assert!(c.step().is_none());
    assert_eq!(c.next_due(), None);
}

#[test]
fn deleting_an_assigned_pod_retries_after_the_back_off() {
    let clock = ManualClock::at_epoch_seconds(T0);
    let mut c = cycle(&clock);
    c.node_added(node("n1", "2"));
    let hog = pod("hog", "1500m").node_name("n1").build();
    c.pod_added(Arc::new(hog.clone()));
    c.pod_added(Arc::new(pod("web", "1").build()));
    assert!(c.step().unwrap().decision.node().is_none());

    c.pod_deleted(&hog);
    // The event arrived within the pod's first back-off (1 s): it waits it out.
    assert!(c.step().is_none());
    assert_eq!(c.next_due(), at(T0 + 1));
    clock.advance(Duration::from_secs(1));
    let a = c.step().expect("back-off over");
    assert_eq!(a.decision.node(), Some("n1"));
    assert!(matches!(a.effects.as_slice(), [Effect::Bind { .. }]));
}

#[test]
fn a_failed_binding_is_retried_after_its_back_off() {
    let clock = ManualClock::at_epoch_seconds(T0);
    let mut c = cycle(&clock);
    c.node_added(node("n1", "4"));
    let web = pod("web", "1").build();
    c.pod_added(Arc::new(web.clone()));
    let a = c.step().unwrap();
    assert!(matches!(a.effects.as_slice(), [Effect::Bind { .. }]));
    assert_eq!(c.snapshot().pod_node("default/web"), Some("n1"));

    c.bind_failed(&a.key, "connection reset");
    assert_eq!(c.stats().bind_errors, 1);
    assert_eq!(
        c.snapshot().pod_node("default/web"),
        None,
        "assumed pod forgotten"
    );
    assert_eq!(c.next_due(), at(T0 + 1));
    assert!(c.step().is_none(), "not retried at once");
    // Our own status writes during the back-off do not reset it.
    let mut written = web.clone();
    written.status = Some(Default::default());
    c.pod_updated(Arc::new(written));
    clock.advance(Duration::from_millis(999));
    assert!(c.step().is_none());
    assert_eq!(c.next_due(), at(T0 + 1));

    clock.advance(Duration::from_millis(1));
    let a = c.step().expect("back-off over");
    assert_eq!(a.attempts, 2);
    assert_eq!(a.decision.node(), Some("n1"));
    assert!(matches!(a.effects.as_slice(), [Effect::Bind { .. }]));
}

#[test]
fn a_pod_no_bind_plugin_handles_is_a_bind_failure() {
    let clock = ManualClock::at_epoch_seconds(T0);
    let profile = Profile {
        bind: Vec::new(),
        ..Profile::default()
    };
    let mut c = cycle_with(Scheduler::new(vec![profile]), &clock);
    c.node_added(node("n1", "4"));
    c.pod_added(Arc::new(pod("web", "1").build()));
    let a = c.step().unwrap();
    assert_eq!(a.decision.node(), Some("n1"));
    assert!(a.effects.is_empty());
    assert_eq!(a.bind_error.as_deref(), Some(NO_BIND_PLUGIN));
    assert_eq!(c.stats().bind_errors, 1);
    assert_eq!(c.snapshot().pod_node("default/web"), None);
    assert_eq!(c.next_due(), at(T0 + 1));
}

#[test]
fn preemption_yields_victims_and_a_nominated_node() {
    let clock = ManualClock::at_epoch_seconds(T0);
    let mut c = cycle(&clock);
    c.node_added(node("n1", "2"));
    c.pod_added(Arc::new(
        pod("victim", "1500m").priority(1).node_name("n1").build(),
    ));
    c.pod_added(Arc::new(pod("vip", "1").priority(100).build()));

    let a = c.step().unwrap();
    let [Effect::Preempt { victims }, Effect::MarkUnschedulable {
        nominated_node,
        message,
        at: t,
        ..
    }, Effect::Event(_)] = a.effects.as_slice()
    else {
        panic!("unexpected effects {:?}", a.effects);
    };
    assert_eq!(victims, &["default/victim".to_string()]);
    assert_eq!(nominated_node.as_deref(), Some("n1"));
    assert_eq!(c.stats().preempted, 1);
    let body = unschedulable_status(message, nominated_node.as_deref(), *t);
    assert_eq!(body["status"]["nominatedNodeName"], "n1");
    assert_eq!(body["status"]["conditions"][0]["reason"], "Unschedulable");

    // The executor deletes the victim; its deletion moves the preemptor (after its back-off).
    let victim = c.snapshot().pod("default/victim").unwrap().pod.clone();
    c.pod_deleted(&victim);
    assert!(c.step().is_none());
    clock.advance(Duration::from_secs(1));
    let a = c.step().unwrap();
    assert_eq!(a.key, "default/vip");
    assert_eq!(a.decision.node(), Some("n1"));
    let [Effect::Bind { pod, .. }] = a.effects.as_slice() else {
        panic!("unexpected effects {:?}", a.effects);
    };
    assert_eq!(pod.nominated_node.as_deref(), Some("n1"), "tried first");
}

#[test]
fn pods_of_other_schedulers_and_gated_pods_are_not_attempted() {
    let clock = ManualClock::at_epoch_seconds(T0);
    let mut c = cycle(&clock);
    c.node_added(node("n1", "4"));
    c.pod_added(Arc::new(
        pod("other", "1").scheduler_name("someone-else").build(),
    ));
    let mut gated = pod("gated", "1").build();
    if let Some(s) = gated.spec.as_mut() {
        s.scheduling_gates = Some(vec![k8s_openapi::api::core::v1::PodSchedulingGate {
            name: "wait".into(),
        }]);
    }
    c.pod_added(Arc::new(gated));
    assert!(c.step().is_none());
    assert_eq!(c.queue().lens(), (0, 0, 0, 1));
    // Removing the gate (a spec change) admits it.
    c.pod_updated(Arc::new(pod("gated", "1").build()));
    assert_eq!(c.step().unwrap().decision.node(), Some("n1"));
}

/// A scripted run: pods of mixed priority and size on three nodes, a preemption, a node added
/// later, time advancing when nothing is active. Returns every attempt in words.
fn scripted_run() -> Vec<String> {
    let clock = ManualClock::at_epoch_seconds(T0);
    let mut c = cycle_with(Scheduler::default().with_seed(7), &clock);
    c.scheduler_mut().set_explain(true);
    for (n, cpu) in [("n1", "2"), ("n2", "2"), ("n3", "1")] {
        c.node_added(node(n, cpu));
    }
    for i in 0..12 {
        let cpu = ["300m", "700m", "1"][i % 3];
        let prio = (i % 4) as i32;
        c.pod_added(Arc::new(pod(&format!("p{i}"), cpu).priority(prio).build()));
    }
    let mut log = Vec::new();
    for round in 0..6 {
        while let Some(a) = c.step() {
            log.push(execute(&mut c, &a));
        }
        match round {
            // A latecomer that only fits by preempting.
            0 => c.pod_added(Arc::new(pod("vip", "1500m").priority(1000).build())),
            2 => c.node_added(node("n4", "4")),
            _ => {}
        }
        match c.next_due() {
            Some(t) => clock.set(t),
            None => clock.advance(Duration::from_secs(1)),
        }
    }
    log.push(format!("{:?} {:?}", c.stats(), c.queue().lens()));
    log
}

#[test]
fn the_same_events_give_the_same_attempts() {
    let a = scripted_run();
    let b = scripted_run();
    assert!(a.iter().any(|l| l.contains("| preempt")), "{a:#?}");
    assert!(a.iter().any(|l| l.contains("| bind n4")), "{a:#?}");
    assert_eq!(a, b);
}

/// A pod whose claim is missing waits in the unschedulable pool until the claim appears (a
/// PVC event VolumeBinding registers for), not on node or pod events; then it is scheduled.
#[test]
fn a_pod_waiting_for_its_claim_comes_back_when_the_claim_appears() {
    let clock = ManualClock::at_epoch_seconds(T0);
    let mut c = cycle(&clock);
    c.node_added(node("n1", "2"));
    let mut p = pod("web", "100m").build();
    p.spec.as_mut().unwrap().volumes = Some(vec![serde_json::from_value(
        serde_json::json!({"name": "data", "persistentVolumeClaim": {"claimName": "data"}}),
    )
    .unwrap()]);
    c.pod_added(Arc::new(p));
    let a = c.step().expect("web is active");
    let Effect::MarkUnschedulable { message, .. } = &a.effects[0] else {
        panic!("{:?}", a.effects);
    };
    assert!(
        message.starts_with("0/1 nodes are available: persistentvolumeclaim \"data\" not found."),
        "{message}"
    );
    clock.advance(Duration::from_secs(20));
    c.pod_added(Arc::new(pod("other", "100m").node_name("n1").build()));
    c.storage_class_updated(Arc::new(
        serde_json::from_value(serde_json::json!({"metadata": {"name": "local"},
            "provisioner": "orch.dev/local", "volumeBindingMode": "WaitForFirstConsumer"}))
        .unwrap(),
    ));
    // A class event is one VolumeBinding registers for, so the pod is retried, still without
    // its claim.
    let a = c.step().expect("moved by StorageClassChange");
    assert!(a.decision.node().is_none());
    clock.advance(Duration::from_secs(20));
    assert!(c.step().is_none());
    c.claim_updated(Arc::new(
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "data", "namespace": "default"},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local",
                     "resources": {"requests": {"storage": "1Gi"}}}}))
        .unwrap(),
    ));
    let a = c.step().expect("moved by PvcChange");
    assert_eq!(a.decision.node(), Some("n1"));
}
