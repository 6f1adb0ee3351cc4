use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::ironic::PatchOp;

fn rule(body: Value) -> Rule {
    Rule::parse(&body).unwrap_or_else(|e| panic!("{body}: {e}"))
}

fn cond(c: Value) -> Rule {
    rule(json!({"conditions": [c], "actions": [{"action": "add-trait", "name": "CUSTOM_X"}]}))
}

fn data() -> Value {
    json!({"memory_mb": 65536, "cpus": "16", "local_gb": 99.5, "ipmi_address": "10.1.2.3",
           "inventory": {"interfaces": [
               {"name": "eno1", "ipv4_address": "192.168.1.5"},
               {"name": "eth1", "ipv4_address": null}],
             "bmc_address": "10.1.2.3", "disks": []}})
}

fn node() -> Value {
    json!({"uuid": "u", "driver": "ipmi", "driver_info": {"deploy_kernel": ""},
           "properties": {"capabilities": "boot_mode:bios,x:1", "inspection_scope": "rack1"},
           "extra": {"tags": ["a"]}})
}

fn holds(c: Value) -> bool {
    apply([&cond(c)], &node(), &data()).is_ok_and(|e| !e.add_traits.is_empty())
}

#[test]
fn conditions_as_the_inspector_reads_them() {
    let yes = [
        json!({"op": "ge", "field": "memory_mb", "value": 65536}),
        json!({"op": "eq", "field": "cpus", "value": 16}),
        json!({"op": "gt", "field": "local_gb", "value": 99.0}),
        json!({"op": "lt", "field": "local_gb", "value": 100}),
        json!({"op": "ne", "field": "memory_mb", "value": "65536"}),
        json!({"op": "in-net", "field": "ipmi_address", "value": "10.1.0.0/16"}),
        json!({"op": "in-net", "field": "ipmi_address", "value": "10.1.2.3"}),
        json!({"op": "matches", "field": "data://inventory.interfaces[*].name", "value": "e.*"}),
        json!({"op": "matches", "field": "inventory.interfaces[*].name", "value": "eno\\d", "multiple": "first"}),
        json!({"op": "matches", "field": "inventory.interfaces[*].name", "value": "eth", "invert": true, "multiple": "first"}),
        json!({"op": "contains", "field": "inventory.interfaces[*].name", "value": "th"}),
        json!({"op": "is-empty", "field": "inventory.disks"}),
        json!({"op": "is-empty", "field": "inventory.nothing"}),
        json!({"op": "is-empty", "field": "node://driver_info.deploy_kernel"}),
        json!({"op": "eq", "field": "node://driver", "value": "ipmi"}),
        // Python's re.match with `$` appended: `a|b$` matches `a…`.
        json!({"op": "matches", "field": "memory_mb", "value": "6|x"}),
    ];
    for c in yes {
        assert!(holds(c.clone()), "{c} should hold");
    }
    let no = [
        json!({"op": "gt", "field": "memory_mb", "value": 65536}),
        json!({"op": "matches", "field": "inventory.interfaces[*].name", "value": "eno\\d", "multiple": "all"}),
        json!({"op": "matches", "field": "inventory.interfaces[*].name", "value": "eth", "multiple": "first"}),
        json!({"op": "matches", "field": "inventory.interfaces[*].name", "value": "no"}),
        json!({"op": "in-net", "field": "inventory.interfaces[*].ipv4_address", "value": "10.0.0.0/8"}),
        json!({"op": "eq", "field": "nothing", "value": 1}),
        json!({"op": "is-empty", "field": "memory_mb"}),
        json!({"op": "is-empty", "field": "memory_mb", "invert": false}),
        json!({"op": "lt", "field": "inventory.interfaces[0].name", "value": 3}),
    ];
    for c in no {
        assert!(!holds(c.clone()), "{c} should not hold");
    }
}

/// `node://` reads the node as Ironic sent it, not only the fields the
/// daemon itself uses.
#[test]
fn node_fields_are_every_field_ironic_sent() -> Result<(), serde_json::Error> {
    let node: crate::ironic::Node = serde_json::from_value(json!({
        "uuid": "u", "driver": "ipmi", "resource_class": "gold",
        "driver_internal_info": {"clean_steps": null}, "conductor_group": ""}))?;
    let seen = node_json(&node);
    assert_eq!(seen["resource_class"], "gold");
    assert_eq!(seen["id"], "u");
    for (c, want) in [
        (
            json!({"op": "eq", "field": "node://resource_class", "value": "gold"}),
            true,
        ),
        (
            json!({"op": "is-empty", "field": "node://driver_internal_info.clean_steps"}),
            true,
        ),
        (
            json!({"op": "eq", "field": "node://resource_class", "value": "silver"}),
            false,
        ),
    ] {
        let held = apply([&cond(c.clone())], &seen, &data()).is_ok_and(|e| !e.add_traits.is_empty());
        assert_eq!(held, want, "{c}");
    }
    Ok(())
}

#[test]
fn scope_limits_a_rule_to_nodes_of_that_scope() {
    let add = json!([{"action": "add-trait", "name": "CUSTOM_X"}]);
    let mine = rule(json!({"scope": "rack1", "actions": add}));
    let other = rule(json!({"scope": "rack2", "actions": add}));
    assert_eq!(
        apply([&mine], &node(), &data()).map(|e| e.add_traits.len()),
        Ok(1)
    );
    assert_eq!(
        apply([&other], &node(), &data()).map(|e| e.add_traits.len()),
        Ok(0)
    );
}

#[test]
fn actions_change_a_working_copy_and_come_out_as_one_patch_per_path() -> Result<(), ActionError> {
    let r = rule(json!({"actions": [
        {"action": "set-attribute", "path": "/driver_info/ipmi_address", "value": "{data[inventory][bmc_address]}"},
        {"action": "set-attribute", "path": "extra/nested", "value": {"{data[cpus]}": ["{data[memory_mb]}", 1]}},
        {"action": "set-capability", "name": "boot_mode", "value": "uefi"},
        {"action": "set-capability", "name": "mem", "value": "{data[memory_mb]}"},
        {"action": "set-capability", "name": "x"},
        {"action": "extend-attribute", "path": "/extra/tags", "value": "a", "unique": true},
        {"action": "extend-attribute", "path": "/extra/tags", "value": "b", "unique": true},
        {"action": "extend-attribute", "path": "/extra/new", "value": "c"},
        {"action": "extend-attribute", "path": "/extra/new", "value": "d"},
        {"action": "add-trait", "name": "CUSTOM_A"},
        {"action": "remove-trait", "name": "CUSTOM_B"}]}));
    let e = apply([&r], &node(), &data())?;
    assert_eq!(
        e.node,
        vec![
            PatchOp::add("/driver_info/ipmi_address", "10.1.2.3"),
            PatchOp::add("/extra/nested", json!({"16": ["65536", 1]})),
            PatchOp::add("/properties/capabilities", "boot_mode:uefi,mem:65536"),
            // `add` even for a list the node has (it replaces the
            // member), and for one an earlier action created: Ironic gets
            // one PATCH and refuses a `replace` of a member it lacks.
            PatchOp::add("/extra/tags", json!(["a", "b"])),
            PatchOp::add("/extra/new", json!(["c", "d"])),
        ]
    );
    assert_eq!(e.add_traits, ["CUSTOM_A"]);
    assert_eq!(e.remove_traits, ["CUSTOM_B"]);
    Ok(())
}

#[test]
fn all_conditions_are_checked_before_any_action() {
    // The first rule sets the capability the second one's condition reads;
    // the second is judged on the node as it was.
    let first =
        rule(json!({"actions": [{"action": "set-attribute", "path": "/driver", "value": "redfish"}]}));
    let second = rule(
        json!({"conditions": [{"op": "eq", "field": "node://driver", "value": "redfish"}],
                             "actions": [{"action": "add-trait", "name": "CUSTOM_X"}]}),
    );
    assert_eq!(
        apply([&first, &second], &node(), &data()).map(|e| e.add_traits.len()),
        Ok(0)
    );
}

#[test]
fn fail_and_bad_keys_stop_processing() {
    let f = rule(json!({"actions": [{"action": "add-trait", "name": "CUSTOM_X"},
                                    {"action": "fail", "message": "no BMC"}]}));
    assert_eq!(
        apply([&f], &node(), &data()),
        Err(ActionError::Fail("no BMC".into()))
    );
    let k = rule(json!({"description": "bmc note",
        "actions": [{"action": "set-attribute", "path": "/extra/x", "value": "{data[nope]}"}]}));
    let e = apply([&k], &node(), &data());
    assert!(
        matches!(&e, Err(ActionError::InRule { rule, error })
                 if rule == "bmc note" && matches!(**error, ActionError::Format(_))),
        "{e:?}"
    );
    let msg = e.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(msg.contains("bmc note") && msg.contains("'nope'"), "{msg}");
    let l = rule(json!({"actions": [{"action": "extend-attribute", "path": "/driver", "value": "x"}]}));
    assert!(matches!(
        apply([&l], &node(), &data()),
        Err(ActionError::InRule { error, .. }) if matches!(*error, ActionError::NotAList { .. })
    ));
}

#[test]
fn bad_rules_are_refused_naming_the_culprit() {
    let ok_action = json!({"action": "add-trait", "name": "CUSTOM_X"});
    let bad_conditions = [
        (
            json!({"op": "nope", "field": "a", "value": 1}),
            "\"nope\" is not one of",
        ),
        (json!({"op": "eq", "value": 1}), "'field' is a required property"),
        (
            json!({"op": "eq", "field": "a"}),
            "Invalid parameters for operator eq: missing required parameter(s): value",
        ),
        (
            json!({"op": "eq", "field": "a", "value": 1, "x": 2}),
            "unexpected parameter(s): x",
        ),
        (
            json!({"op": "matches", "field": "a", "value": "(unclosed"}),
            "invalid regular expression",
        ),
        (
            json!({"op": "matches", "field": "a", "value": "(?=look)ahead"}),
            "invalid regular expression",
        ),
        (
            json!({"op": "in-net", "field": "a", "value": "10.0.0.0/33"}),
            "invalid IPNetwork",
        ),
        (
            json!({"op": "eq", "field": "a[", "value": 1}),
            "Unable to parse field JSON path a[",
        ),
        (
            json!({"op": "eq", "field": "ftp://a", "value": 1}),
            "Unsupported scheme for field: ftp",
        ),
        (
            json!({"op": "eq", "field": "a", "value": 1, "multiple": "some"}),
            "is not one of ['all', 'any', 'first']",
        ),
        (
            json!({"op": "eq", "field": "a", "value": 1, "invert": "yes"}),
            "is not of type 'boolean'",
        ),
    ];
    for (c, want) in bad_conditions {
        let e = Rule::parse(
            &json!({"conditions": [{"op": "is-empty", "field": "x"}, c], "actions": [ok_action]}),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("conditions[1]") && e.contains(want), "{c}: {e}");
    }
    let bad_actions = [
        (json!({"action": "set-characteristics"}), "is not one of"),
        (
            json!({"action": "fail"}),
            "Invalid parameters for action fail: missing required parameter(s): message",
        ),
        (
            json!({"action": "set-attribute", "path": "/a"}),
            "missing required parameter(s): value",
        ),
        (
            json!({"action": "set-attribute", "path": "/a", "value": "{data.x}"}),
            "Invalid format string",
        ),
        (
            json!({"action": "set-attribute", "path": 5, "value": 1}),
            "path must be a non-empty string",
        ),
        (
            json!({"action": "extend-attribute", "path": "/a", "value": 1, "unique": 2}),
            "unique must be a boolean",
        ),
        (
            json!({"action": "add-trait"}),
            "missing required parameter(s): name",
        ),
    ];
    for (a, want) in bad_actions {
        let e = Rule::parse(&json!({"actions": [ok_action, a]}))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("actions[1]") && e.contains(want), "{a}: {e}");
    }
    for (body, want) in [
        (json!({"actions": []}), "too short"),
        (json!({}), "too short"),
        (json!([]), "JSON object"),
        (
            json!({"uuid": "nope", "actions": [ok_action]}),
            "Invalid UUID value",
        ),
        (
            json!({"scope": "x".repeat(256), "actions": [ok_action]}),
            "Invalid scope",
        ),
        (
            json!({"conditions": {}, "actions": [ok_action]}),
            "conditions must be a list",
        ),
    ] {
        let e = Rule::parse(&body)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains(want), "{body}: {e}");
    }
    let many: Vec<Value> = (0..=MAX_CONDITIONS)
        .map(|_| json!({"op": "is-empty", "field": "x"}))
        .collect();
    assert!(Rule::parse(&json!({"conditions": many, "actions": [ok_action]})).is_err());
}

#[test]
fn representation_is_the_inspectors() {
    let r = rule(
        json!({"uuid": "7A0E2B5C-1F1B-4C1E-9E0A-3A4B5C6D7E8F", "description": "d",
                        "conditions": [{"op": "eq", "field": "a", "value": 1}],
                        "actions": [{"action": "fail", "message": "m"}]}),
    );
    assert_eq!(
        r.as_json(false),
        json!({"uuid": "7a0e2b5c-1f1b-4c1e-9e0a-3a4b5c6d7e8f", "description": "d", "scope": null,
               "conditions": [{"op": "eq", "field": "a", "multiple": "any", "invert": false, "value": 1}],
               "actions": [{"action": "fail", "message": "m"}]})
    );
    // What is shown parses back to the same rule.
    let again = rule(r.as_json(false));
    assert_eq!(again.as_json(false), r.as_json(false));
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-z{}\\[\\]:*.$|()/_-]{0,12}".prop_map(Value::from),
        prop_oneof![
            Just("eq"),
            Just("lt"),
            Just("in-net"),
            Just("matches"),
            Just("contains"),
            Just("is-empty"),
            Just("set-attribute"),
            Just("set-capability"),
            Just("extend-attribute"),
            Just("fail"),
            Just("{data[a]}"),
            Just("node://a.b"),
            Just("a[*].b"),
            Just("10.0.0.0/8"),
            Just("/extra/x")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("op".to_owned()),
                    Just("field".to_owned()),
                    Just("value".to_owned()),
                    Just("action".to_owned()),
                    Just("path".to_owned()),
                    Just("name".to_owned()),
                    Just("multiple".to_owned()),
                    Just("invert".to_owned()),
                    Just("a".to_owned()),
                    Just("conditions".to_owned()),
                    Just("actions".to_owned()),
                    Just("message".to_owned())
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// No rule body and no data make the parser or the evaluator panic.
    #[test]
    fn nothing_panics(body in arb_json(), conds in prop::collection::vec(arb_json(), 0..4),
                      acts in prop::collection::vec(arb_json(), 0..4), data in arb_json(), node in arb_json(),
                      path in "[a-z0-9\\[\\]*.:'$-]{0,16}") {
        let _ = Rule::parse(&body);
        let _ = Path::parse(&path).map(|p| p.find(&data).len());
        let _ = format::format_str(&path, &data);
        if let Ok(r) = Rule::parse(&json!({"conditions": conds, "actions": acts})) {
            let _ = apply([&r], &node, &data);
        }
    }
}
