//! Fuzzing the parser and the evaluator together: valid rules built from
//! the whole DSL (every op, scheme, `multiple`, formatting) against
//! IPA-shaped reports and nodes, with wrong types and missing keys mixed
//! in. Nothing panics, a parsed rule shows and re-parses as itself, and
//! the same rules on the same input give the same result. Plus the sizes
//! at the edges: thousands of conditions, data as deep as the JSON parser
//! lets through.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

fn field() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "memory_mb",
        "cpus",
        "cpu_arch",
        "ipmi_address",
        "local_gb",
        "inventory.interfaces[*].name",
        "inventory.interfaces[*].ipv4_address",
        "inventory.interfaces[0].has_carrier",
        "inventory.interfaces[-1].lldp[*][1]",
        "inventory.disks[*].size",
        "inventory.disks[1:3].model",
        "inventory.disks[-1].rotational",
        "inventory.cpu.flags[*]",
        "inventory..name",
        "inventory.*",
        "$.inventory.memory.physical_mb",
        "'weird key'",
        "missing.path",
        "data://inventory.bmc_address",
        "node://properties.capabilities",
        "node://properties.memory_mb",
        "node://driver_info.deploy_kernel",
        "node://extra.tags[*]",
        "node://driver",
    ])
    .prop_map(str::to_owned)
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![Just(Value::Null), given()]
}

/// Not null: a null parameter counts as not given (as in the inspector).
fn given() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e12).prop_map(Value::from),
        "[a-zA-Z0-9_./ -]{0,10}".prop_map(Value::from),
        prop::sample::select(vec!["eno1", "x86_64", "", "65536", "10.0.0.5", "uefi"]).prop_map(Value::from),
    ]
}

fn condition() -> impl Strategy<Value = Value> {
    let check = prop_oneof![
        (
            prop::sample::select(vec!["eq", "ne", "lt", "gt", "le", "ge"]),
            given()
        )
            .prop_map(|(op, v)| json!({"op": op, "value": v})),
        prop::sample::select(vec![
            "10.0.0.0/8",
            "10.0.0.5",
            "192.168.24.0/24",
            "0.0.0.0/0",
            "::/0",
            "fe80::/10"
        ])
        .prop_map(|n| json!({"op": "in-net", "value": n})),
        (
            prop::sample::select(vec!["matches", "contains"]),
            prop::sample::select(vec![
                ".*", "eno\\d", "^H7", "[a-z]+", "(a|b)*c$", "x86_.*", "", "True"
            ])
        )
            .prop_map(|(op, re)| json!({"op": op, "value": re})),
        Just(json!({"op": "is-empty"})),
    ];
    (
        check,
        field(),
        prop::option::of(prop::sample::select(vec!["any", "all", "first"])),
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(mut c, f, multiple, invert)| {
            c["field"] = f.into();
            if let Some(m) = multiple {
                c["multiple"] = m.into();
            }
            if let Some(i) = invert {
                c["invert"] = i.into();
            }
            c
        })
}

fn template() -> impl Strategy<Value = Value> {
    prop_oneof![Just(Value::Null), filled()]
}

fn filled() -> impl Strategy<Value = Value> {
    prop_oneof![
        given(),
        prop::sample::select(vec![
            "{data[cpu_arch]}",
            "{data[inventory][disks][0][name]}",
            "{data[inventory][interfaces][9][name]}",
            "{data[nope]}",
            "{{literal}} {data[memory_mb]}",
            "{data[inventory]}",
        ])
        .prop_map(Value::from),
        (scalar(), scalar()).prop_map(|(a, b)| json!({"k": [a, "{data[cpus]}"], "{data[cpu_arch]}": b})),
    ]
}

fn action() -> impl Strategy<Value = Value> {
    let path = prop::sample::select(vec![
        "/extra/x",
        "/extra/tags",
        "properties/cpus",
        "/driver",
        "/extra/a~1b",
    ]);
    prop_oneof![
        (path.clone(), template())
            .prop_map(|(p, v)| json!({"action": "set-attribute", "path": p, "value": v})),
        ("[a-z_]{1,6}", template())
            .prop_map(|(n, v)| json!({"action": "set-capability", "name": n, "value": v})),
        (path, filled(), any::<bool>())
            .prop_map(|(p, v, u)| json!({"action": "extend-attribute", "path": p, "value": v, "unique": u})),
        "CUSTOM_[A-Z]{1,3}".prop_map(|n| json!({"action": "add-trait", "name": n})),
        "CUSTOM_[A-Z]{1,3}".prop_map(|n| json!({"action": "remove-trait", "name": n})),
        prop_oneof![given(), Just(json!("{data[cpu_arch]} is wrong"))]
            .prop_map(|m| json!({"action": "fail", "message": m})),
    ]
}

fn rule_body() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(condition(), 0..5),
        prop::collection::vec(action(), 1..4),
        prop::option::of(prop::sample::select(vec!["rack1", "rack2"])),
    )
        .prop_map(|(c, a, scope)| json!({"conditions": c, "actions": a, "scope": scope}))
}

/// An IPA report (as processed), with a wrong type or a missing key now and then.
fn report() -> impl Strategy<Value = Value> {
    let interface = (
        0u8..8,
        prop::option::of("192\\.168\\.24\\.[0-9]{1,3}"),
        any::<bool>(),
        scalar(),
    )
        .prop_map(|(i, ip, carrier, odd)| {
            json!({"name": format!("eno{i}"), "mac_address": format!("3c:fd:fe:9c:87:{i:02x}"),
                   "ipv4_address": ip, "has_carrier": carrier,
                   "lldp": [[1, "04a4bf0164866f"], [2, odd]]})
        });
    let disk = (0u8..26, any::<u64>(), any::<bool>(), scalar()).prop_map(|(i, size, rot, model)| {
        json!({"name": format!("/dev/sd{}", char::from(b'a' + i)), "size": size, "rotational": rot,
               "model": model})
    });
    (
        prop::collection::vec(interface, 0..5),
        prop::collection::vec(disk, 0..6),
        scalar(),
        scalar(),
        prop::option::of(any::<u32>()),
    )
        .prop_map(|(interfaces, disks, arch, odd, memory)| {
            json!({"inventory": {"interfaces": interfaces, "disks": disks,
                                 "cpu": {"count": 8, "architecture": arch, "flags": ["vmx", odd]},
                                 "memory": {"physical_mb": memory}, "bmc_address": odd, "name": "x"},
                   "memory_mb": memory, "cpus": odd, "cpu_arch": arch, "local_gb": 446,
                   "ipmi_address": "10.0.0.5", "weird key": [odd]})
        })
}

fn node() -> impl Strategy<Value = Value> {
    (
        "([a-z_]{1,5}:[a-z0-9]{0,4},?){0,4}",
        prop::option::of(prop::sample::select(vec!["rack1", "rack2"])),
        scalar(),
    )
        .prop_map(|(caps, scope, odd)| {
            json!({"uuid": "u", "driver": "ipmi", "driver_info": {"deploy_kernel": odd},
                   "properties": {"capabilities": caps, "inspection_scope": scope, "memory_mb": odd},
                   "extra": {"tags": ["a", odd], "x": odd}})
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Valid rules parse, show and re-parse as themselves, and run on any
    /// report and node without a panic, with the same result every time.
    #[test]
    fn rules_on_reports_are_deterministic(bodies in prop::collection::vec(rule_body(), 1..8),
                                          data in report(), node in node()) {
        let mut rules = Vec::new();
        for b in &bodies {
            let r = Rule::parse(b).map_err(|e| TestCaseError::fail(format!("{b}: {e}")))?;
            let again = Rule::parse(&r.as_json(false)).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(again.as_json(false), r.as_json(false));
            rules.push(r);
        }
        let first = apply(rules.iter(), &node, &data);
        prop_assert_eq!(&first, &apply(rules.iter(), &node, &data));
        // Conditions are pure: checking them never depends on earlier rules.
        let matched: Vec<bool> = rules.iter().map(|r| r.matches(&node, &data)).collect();
        let again: Vec<bool> = rules.iter().rev().map(|r| r.matches(&node, &data)).collect();
        prop_assert_eq!(matched, again.into_iter().rev().collect::<Vec<_>>());
    }
}

#[test]
fn thousands_of_conditions_are_refused_and_the_most_allowed_run() {
    let c = json!({"op": "is-empty", "field": "inventory..nothing"});
    let act = json!([{"action": "add-trait", "name": "CUSTOM_X"}]);
    let many = json!({"conditions": vec![c.clone(); 5000], "actions": act});
    assert!(matches!(Rule::parse(&many), Err(RuleError::Body(m)) if m.contains("more than")));
    let most = Rule::parse(&json!({"conditions": vec![c; MAX_CONDITIONS], "actions": act}))
        .unwrap_or_else(|e| panic!("{e}"));
    let e = apply([&most], &json!({}), &json!({"inventory": {"a": [{"b": 1}]}}));
    assert_eq!(e.map(|e| e.add_traits), Ok(vec!["CUSTOM_X".to_owned()]));
}

#[test]
fn data_as_deep_as_the_json_parser_allows_is_evaluated() {
    // serde_json refuses more than 128 levels: the report cannot be deeper.
    let text = format!(
        "{{\"a\": {}{{\"name\": \"x\"}}{}}}",
        "[".repeat(125),
        "]".repeat(125)
    );
    let data: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let r = Rule::parse(&json!({
        "conditions": [{"op": "eq", "field": "a..name", "value": "x"},
                       {"op": "contains", "field": "a", "value": "name"}],
        "actions": [{"action": "set-attribute", "path": "/extra/a", "value": "{data[a]}"}]}))
    .unwrap_or_else(|e| panic!("{e}"));
    let e = apply([&r], &json!({}), &data).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(e.node.len(), 1);
}
