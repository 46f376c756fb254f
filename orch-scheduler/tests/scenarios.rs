//! Snapshot tests of explained decisions for the scenario files in `tests/scenarios/`.

use orch_scheduler::simulate::ClusterInput;
use orch_scheduler::Scheduler;

fn run(file: &str) -> Vec<orch_scheduler::Decision> {
    let path = format!("{}/tests/scenarios/{file}.yaml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("scenario file");
    let input = ClusterInput::from_yaml(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut s = Scheduler::default();
    s.set_explain(true);
    input.run(&mut s)
}

macro_rules! scenario {
    ($name:ident) => {
        #[test]
        fn $name() {
            insta::assert_yaml_snapshot!(stringify!($name), run(stringify!($name)));
        }
    };
}

scenario!(taints);
scenario!(affinity);
scenario!(spread);
scenario!(resource_fit);
scenario!(preemption);
scenario!(cordoned);
scenario!(unschedulable_messages);
scenario!(volumes);

#[test]
fn bad_input_names_document_and_field() {
    let e = ClusterInput::from_yaml(
        "apiVersion: v1\nkind: Node\nmetadata: {name: n}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    resources: {requests: {cpu: lots}}\n",
    )
    .unwrap_err();
    assert!(
        e.to_string().starts_with(
            "document 2: Pod/p: pod default/p: invalid quantity \"lots\" for resource cpu"
        ),
        "{e}"
    );
    let e = ClusterInput::from_yaml(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containerz: []\n",
    )
    .unwrap_err();
    assert!(e.to_string().contains("containerz"), "{e}");
    let e = ClusterInput::from_yaml("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  priorityClassName: nope\n  containers: [{name: c}]\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "document 1: Pod/p: spec.priorityClassName: no PriorityClass with name nope was found"
    );
    let e = ClusterInput::from_yaml("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
        .unwrap_err();
    assert!(e.to_string().contains("kind not supported"), "{e}");
}
