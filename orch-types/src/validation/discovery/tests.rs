use crate::validation::{validate, validate_update};
use crate::DynamicObject;
use serde_json::{json, Value};

fn slice(address_type: &str, endpoints: Value, ports: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-abcde", "namespace": "default"},
        "addressType": address_type, "endpoints": endpoints, "ports": ports,
    }))
    .unwrap()
}

fn errors(d: &DynamicObject) -> Vec<String> {
    validate(d).iter().map(ToString::to_string).collect()
}

#[test]
fn a_controller_written_slice_is_valid_and_defaulted_ports_pass() {
    let d = slice(
        "IPv4",
        json!([{"addresses": ["10.244.0.5"], "conditions": {"ready": true, "serving": true, "terminating": false},
                "nodeName": "node-1", "zone": "a", "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "default"},
                "hints": {"forZones": [{"name": "a"}]}}]),
        // No name, no protocol: defaulted to "" and TCP before validation.
        json!([{"port": 8080}]),
    );
    assert_eq!(errors(&d), Vec::<String>::new());
    // Loopback addresses are accepted (a difference from upstream, see the module).
    let lo = slice("IPv4", json!([{"addresses": ["127.0.0.1"]}]), json!([]));
    assert_eq!(errors(&lo), Vec::<String>::new());
    let mut d = d.clone();
    crate::defaults::apply_defaults(&mut d).unwrap();
    assert_eq!(
        d.data["ports"],
        json!([{"name": "", "port": 8080, "protocol": "TCP"}])
    );
}

#[test]
fn address_type_is_required_known_and_immutable() {
    assert_eq!(
        errors(&slice("", json!([]), json!([]))),
        ["addressType: Required value"]
    );
    assert_eq!(
        errors(&slice("IP", json!([]), json!([]))),
        ["addressType: Unsupported value: \"IP\": supported values: \"FQDN\", \"IPv4\", \"IPv6\""]
    );
    let old = slice("IPv4", json!([]), json!([]));
    let new = slice("IPv6", json!([]), json!([]));
    let errs: Vec<String> = validate_update(&new, &old)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errs,
        ["addressType: Invalid value: \"IPv6\": field is immutable"]
    );
}

#[test]
fn addresses_are_checked_for_the_address_type() {
    let d = slice(
        "IPv4",
        json!([
            {"addresses": []},
            {"addresses": ["fd00::1", "127.0.0.1", "169.254.1.1", "0.0.0.0", "224.0.0.5", "nope"]},
        ]),
        json!([]),
    );
    assert_eq!(
        errors(&d),
        [
            "endpoints[0].addresses: Required value: must contain at least 1 address",
            "endpoints[1].addresses[0]: Invalid value: \"fd00::1\": must be a valid IPv4 address",
            "endpoints[1].addresses[2]: Invalid value: \"169.254.1.1\": may not be in the link-local range (169.254.0.0/16, fe80::/10)",
            "endpoints[1].addresses[3]: Invalid value: \"0.0.0.0\": may not be unspecified (0.0.0.0)",
            "endpoints[1].addresses[4]: Invalid value: \"224.0.0.5\": may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
            "endpoints[1].addresses[5]: Invalid value: \"nope\": must be a valid IPv4 address",
            "endpoints[1].addresses[5]: Invalid value: \"nope\": must be a valid IP address",
        ]
    );
    let d = slice(
        "IPv6",
        json!([{"addresses": ["fe80::1", "10.0.0.1", "::1"]}]),
        json!([]),
    );
    assert_eq!(
        errors(&d),
        [
            "endpoints[0].addresses[0]: Invalid value: \"fe80::1\": may not be in the link-local range (169.254.0.0/16, fe80::/10)",
            "endpoints[0].addresses[1]: Invalid value: \"10.0.0.1\": must be a valid IPv6 address",
        ]
    );
    let d = slice(
        "FQDN",
        json!([{"addresses": ["example.com.", "single", "Bad_Name.com"]}]),
        json!([]),
    );
    let errs = errors(&d);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert_eq!(
        errs[0],
        "endpoints[0].addresses[1]: Invalid value: \"single\": should be a domain with at least two segments separated by dots"
    );
    assert!(errs[1].starts_with("endpoints[0].addresses[2]: Invalid value: \"Bad_Name.com\": a lowercase RFC 1123 subdomain"), "{errs:?}");
}

#[test]
fn too_many_endpoints_and_addresses() {
    let many: Vec<Value> = (0..1001)
        .map(|_| json!({"addresses": ["10.0.0.1"]}))
        .collect();
    assert_eq!(
        errors(&slice("IPv4", Value::Array(many), json!([]))),
        ["endpoints: Too many: 1001: must have at most 1000 items"]
    );
    let addrs: Vec<String> = (0..101)
        .map(|i| format!("10.0.{}.{}", i / 200, i % 200 + 1))
        .collect();
    assert_eq!(
        errors(&slice("IPv4", json!([{"addresses": addrs}]), json!([]))),
        ["endpoints[0].addresses: Too many: 101: must have at most 100 items"]
    );
}

#[test]
fn endpoint_names_topology_and_hints() {
    let d = slice(
        "IPv4",
        json!([{"addresses": ["10.0.0.1"], "nodeName": "Node_1", "hostname": "a.b",
                "deprecatedTopology": {"bad key!": "v"},
                "hints": {"forZones": [{"name": "a"}, {"name": "a"}]}}]),
        json!([]),
    );
    let errs = errors(&d);
    assert_eq!(errs.len(), 4, "{errs:?}");
    assert!(errs[0].starts_with(
        "endpoints[0].nodeName: Invalid value: \"Node_1\": a lowercase RFC 1123 subdomain"
    ));
    assert!(errs[1].starts_with(
        "endpoints[0].deprecatedTopology: Invalid value: \"bad key!\": name part must consist of"
    ));
    assert!(errs[2]
        .starts_with("endpoints[0].hostname: Invalid value: \"a.b\": a lowercase RFC 1123 label"));
    assert_eq!(
        errs[3],
        "endpoints[0].hints.forZones[1].name: Duplicate value: \"a\""
    );
    let zones: Vec<Value> = (0..9).map(|i| json!({"name": format!("z{i}")})).collect();
    assert_eq!(
        errors(&slice(
            "IPv4",
            json!([{"addresses": ["10.0.0.1"], "hints": {"forZones": zones}}]),
            json!([])
        )),
        ["endpoints[0].hints.forZones: Too many: 9: must have at most 8 items"]
    );
}

#[test]
fn ports_names_protocols_and_app_protocols() {
    let d = slice(
        "IPv4",
        json!([]),
        json!([
            {"name": "http", "port": 80},
            {"name": "http", "port": 81},
            {"name": "Bad_Name", "port": 82, "protocol": "ICMP"},
            {"port": 83, "appProtocol": "not a name"},
        ]),
    );
    let errs = errors(&d);
    assert_eq!(errs.len(), 4, "{errs:?}");
    assert_eq!(errs[0], "ports[1].name: Duplicate value: \"http\"");
    assert!(errs[1]
        .starts_with("ports[2].name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 label"));
    assert_eq!(
        errs[2],
        "ports[2].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\""
    );
    assert!(errs[3].starts_with(
        "ports[3].appProtocol: Invalid value: \"not a name\": name part must consist of"
    ));
}
