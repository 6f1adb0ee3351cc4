//! Property-based fuzzing of everything the helper and daemon parse from
//! outside: frames, requests, MAC addresses, interface names, INI text.
//! Each target runs for `DISCOVERD_FUZZ_SECONDS` (default 2; CI gives
//! more; see `common::fuzz`); run longer by hand with e.g.
//! `DISCOVERD_FUZZ_SECONDS=3600 cargo test -p ironic-discoverd-common --test fuzz`.
//! A crash found here becomes a named regression test below.

use common::fuzz::run;
use common::protocol::{Request, decode};
use common::{InterfaceName, MacAddr};
use proptest::prelude::*;

/// JSON-ish bytes: mostly valid structure with hostile values.
fn request_like() -> impl Strategy<Value = Vec<u8>> {
    let op = prop_oneof![
        prop::sample::select(vec!["hello", "sync", "add", "remove", "status", "teardown"])
            .prop_map(str::to_owned),
        "[a-z]{0,8}",
    ];
    let mac = prop_oneof![
        "[0-9a-fA-F:-]{0,20}",
        Just("ff:ff:ff:ff:ff:ff".to_owned()),
        Just("02:00:00:00:00:01".to_owned())
    ];
    let iface = prop_oneof!["[ -~]{0,20}", Just("eth0".to_owned())];
    (op, prop::collection::vec(mac, 0..6), prop::collection::vec(iface, 0..3), any::<i64>(), "[a-z]{0,6}").prop_map(
        |(op, macs, ifaces, id, mode)| {
            serde_json::json!({"id": id, "op": op, "macs": macs, "interfaces": ifaces, "mode": mode, "version": id})
                .to_string()
                .into_bytes()
        },
    )
}

fn framed(payload: &[u8], declared: Option<u32>) -> Vec<u8> {
    let len = declared.unwrap_or(payload.len() as u32);
    let mut f = len.to_be_bytes().to_vec();
    f.extend_from_slice(payload);
    f
}

#[test]
fn frames_of_random_bytes() {
    run(
        "frames_of_random_bytes",
        prop::collection::vec(any::<u8>(), 0..2048),
        |bytes| {
            if let Ok(Some((_, used))) = decode::<Request>(&bytes) {
                prop_assert!(used <= bytes.len());
            }
            Ok(())
        },
    );
}

#[test]
fn frames_of_request_like_json() {
    run(
        "frames_of_request_like_json",
        (request_like(), proptest::option::of(any::<u32>())),
        |(payload, lie)| {
            let f = framed(&payload, lie);
            if let Ok(Some((req, used))) = decode::<Request>(&f) {
                prop_assert!(used <= f.len());
                // Whatever decodes must validate or be refused with a code.
                let _ = req.body.validate();
            }
            Ok(())
        },
    );
}

#[test]
fn mac_parsing() {
    run("mac_parsing", "\\PC{0,40}", |s| {
        if let Ok(m) = MacAddr::parse(&s) {
            prop_assert_eq!(MacAddr::parse(&m.to_string()), Ok(m));
        }
        let _ = MacAddr::parse_bootif(&s);
        Ok(())
    });
}

#[test]
fn interface_names() {
    run("interface_names", "\\PC{0,40}", |s| {
        if let Ok(i) = InterfaceName::new(&s) {
            prop_assert!(i.as_str().len() <= 15 && !i.as_str().contains('/'));
            let _ = i.padded();
        }
        Ok(())
    });
}

#[test]
fn ini_text() {
    run(
        "ini_text",
        "(\\[[a-z_]{0,10}\\]\n|[a-z_ ]{0,12}[=:][ -~]{0,30}\n|[#;][ -~]{0,20}\n|\\PC{0,30}\n){0,20}",
        |text| {
            if let Ok(f) = common::ini::IniFile::parse(std::path::Path::new("fuzz.conf"), &text) {
                let s = f.section("discoverd");
                let _ = s.integer("timeout", 1);
                let _ = s.boolean("debug", false);
                let _ = s.seconds("clean_up_period", 1.0);
                let _ = s.list("processing_hooks", &[]);
                let _ = s.reject_unknown(&[]);
            }
            Ok(())
        },
    );
}
