//! The root device hint table (`discoverd/testdata/root_device_hints.json`,
//! checked against ironic-inspector 12.5's own code by
//! `scripts/check-root-device-hints.py`): every case picks the same disk,
//! finds none, or fails, as the inspector does.

use serde_json::Value;

use super::device_hints::{find, parse};

const TABLE: &str = include_str!("../../testdata/root_device_hints.json");

fn outcome(disks: &[Value], hints: &Value) -> Value {
    match parse(hints) {
        Err(_) => Value::from("error"),
        Ok(None) => Value::from("no-hints"),
        Ok(Some(h)) => match find(disks, &h, true) {
            Err(_) => Value::from("error"),
            Ok(found) => found.first().map_or(Value::Null, |i| disks[*i]["name"].clone()),
        },
    }
}

#[test]
fn root_device_hints_pick_the_disks_the_inspector_picks() {
    let table: Value = serde_json::from_str(TABLE).unwrap_or_else(|e| panic!("bad table: {e}"));
    let disks = table["disks"].as_array().cloned().unwrap_or_default();
    let cases = table["cases"].as_array().cloned().unwrap_or_default();
    assert!(cases.len() >= 50, "the table lost its cases");
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            let got = outcome(&disks, &c["hints"]);
            (got != c["expect"]).then(|| format!("{}: got {got}, want {}", c["hints"], c["expect"]))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} cases differ:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}
