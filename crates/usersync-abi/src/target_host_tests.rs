//! The host adapter against a hand-written plugin target that misbehaves in chosen ways (what
//! `export_connector!` never sends, a broken or hostile plugin might).

use std::collections::BTreeMap;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RErr, ROk, RString, RVec};
use usersync_sdk::{
    ConnectorError, Lookup, Options, Target, TargetChange, TargetEndpoint, TargetManifest, TargetOperation,
    TargetResult,
};

use super::{HostTarget, MAX_REQUESTS_PER_CHANGE};
use crate::ffi::{FfiHttpRequest, FfiHttpResponse, FfiResult};
use crate::plugin::error_to_json;
use crate::target_ffi::{
    FfiTarget, FfiTargetListingBox, FfiTargetSession, FfiTargetSessionBox, FfiTargetSession_TO, FfiTarget_TO,
};

fn req(method: &str, url: &str) -> FfiHttpRequest {
    FfiHttpRequest {
        method: method.into(),
        url: url.into(),
        headers: RVec::new(),
        body: None.into(),
    }
}

/// What goes wrong, chosen by the test.
#[derive(Clone, Copy, PartialEq)]
enum Bad {
    Nothing,
    ForeignHost,
    Brew,
    TooMany,
    CreatedWithoutId,
    CutOffResult,
    EmptyAppId,
    Capabilities,
}

struct BadTarget(Bad);

impl FfiTarget for BadTarget {
    fn manifest_json(&self) -> FfiResult<RString> {
        let m = TargetManifest {
            capabilities: Default::default(),
            endpoints: vec![TargetEndpoint {
                method: "GET".into(),
                url: "https://fixed.test/api/ping".into(),
                purpose: "A fixed host the manifest declares".into(),
                operation: TargetOperation::Lookup,
            }],
        };
        ROk(serde_json::to_string(&m).expect("json").into())
    }

    fn open(&self, _options_json: RString) -> FfiResult<FfiTargetSessionBox> {
        ROk(FfiTargetSession_TO::from_value(BadSession(self.0), TD_Opaque))
    }
}

struct BadSession(Bad);

impl FfiTargetSession for BadSession {
    fn discovery(&self) -> FfiResult<RVec<FfiHttpRequest>> {
        ROk(vec![req("GET", "https://app.test/base/config")].into())
    }

    fn configure(&mut self, _responses: RVec<FfiHttpResponse>) -> FfiResult<()> {
        ROk(())
    }

    fn capabilities_json(&self) -> FfiResult<RString> {
        if self.0 == Bad::Capabilities {
            return ROk("[1,2".into());
        }
        ROk(
            serde_json::to_string(&usersync_sdk::TargetCapabilities::default())
                .expect("json")
                .into(),
        )
    }

    fn lookup_request(&self, lookup_json: RString) -> FfiResult<FfiHttpRequest> {
        let fixed = lookup_json.contains("fixed");
        ROk(match self.0 {
            Bad::ForeignHost => req("GET", "https://evil.test/steal"),
            Bad::Brew => req("BREW", "https://app.test/base/pot"),
            _ if fixed => req("GET", "https://fixed.test/api/ping"),
            _ => req("GET", "https://app.test/base/users?userName=x"),
        })
    }

    fn on_lookup(&self, _lookup_json: RString, _response: FfiHttpResponse) -> FfiResult<RString> {
        if self.0 == Bad::EmptyAppId {
            return ROk(r#"[{"app_id":"","etag":null,"external_id":null,"name":"ada"}]"#.into());
        }
        ROk("[]".into())
    }

    fn list(&self, _kind_json: RString) -> FfiResult<FfiTargetListingBox> {
        RErr(error_to_json(&ConnectorError::Unsupported {
            operation: "list".into(),
        }))
    }

    fn requests(&self, _change_json: RString) -> FfiResult<RVec<FfiHttpRequest>> {
        let n = if self.0 == Bad::TooMany {
            MAX_REQUESTS_PER_CHANGE + 1
        } else {
            1
        };
        ROk((0..n)
            .map(|_| req("PATCH", "https://app.test/base/users/1"))
            .collect())
    }

    fn on_response(&self, _change_json: RString, _response: FfiHttpResponse) -> FfiResult<RString> {
        ROk(match self.0 {
            Bad::CreatedWithoutId => r#"{"result":"created","app_id":"","etag":null}"#.into(),
            Bad::CutOffResult => r#"{"result":"upd"#.into(),
            _ => r#"{"result":"updated","etag":"2"}"#.into(),
        })
    }
}

fn target(bad: Bad) -> HostTarget {
    HostTarget::new(
        "bad 1.0.0 (/p/libbad.so)".into(),
        FfiTarget_TO::from_value(BadTarget(bad), TD_Opaque),
    )
    .expect("manifest")
}

fn options() -> Options {
    let mut v = BTreeMap::new();
    v.insert("base_url".to_string(), "https://app.test/base".into());
    v.insert("profile".to_string(), "generic".into());
    Options::from_values(v)
}

fn change() -> TargetChange {
    TargetChange::DeactivateUser {
        app_id: "1".into(),
        etag: None,
    }
}

fn lookup(value: &str) -> Lookup {
    Lookup::UserByUserName { value: value.into() }
}

#[test]
fn a_well_behaved_plugin_target_passes_every_check() {
    let s = target(Bad::Nothing).open(&options()).expect("open");
    assert_eq!(s.discovery()[0].url, "https://app.test/base/config");
    // Writes use any SDK method; the origin comes from the configured base URL.
    let r = s.requests(&change()).expect("requests");
    assert_eq!(r[0].method, usersync_sdk::Method::Patch);
    // A fixed host the target manifest declares is allowed too.
    assert_eq!(
        s.lookup_request(&lookup("fixed")).expect("declared host").url,
        "https://fixed.test/api/ping"
    );
    let resp = usersync_sdk::HttpResponse::new(200, "{}");
    assert_eq!(
        s.on_response(&change(), resp),
        TargetResult::Updated {
            etag: Some("2".into())
        }
    );
}

#[test]
fn requests_the_host_will_not_send_are_refused_naming_the_plugin() {
    let e = target(Bad::ForeignHost)
        .open(&options())
        .expect("open")
        .lookup_request(&lookup("x"))
        .expect_err("foreign host")
        .to_string();
    assert!(
        e.contains("bad 1.0.0 (/p/libbad.so)") && e.contains("not on a base URL"),
        "{e}"
    );
    let e = target(Bad::Brew)
        .open(&options())
        .expect("open")
        .lookup_request(&lookup("x"))
        .expect_err("unknown method")
        .to_string();
    assert!(e.contains("unsupported HTTP method `BREW`"), "{e}");
    let e = target(Bad::TooMany)
        .open(&options())
        .expect("open")
        .requests(&change())
        .expect_err("too many")
        .to_string();
    assert!(e.contains("10001 requests at once"), "{e}");
}

#[test]
fn unusable_answers_become_errors_or_a_stopping_result() {
    let resp = || usersync_sdk::HttpResponse::new(201, "{}");
    let s = target(Bad::CreatedWithoutId).open(&options()).expect("open");
    let r = s.on_response(&change(), resp());
    assert!(r.stops_the_push(), "{r:?}");
    assert!(format!("{r:?}").contains("a created object"), "{r:?}");
    let s = target(Bad::CutOffResult).open(&options()).expect("open");
    let r = s.on_response(&change(), resp());
    assert!(
        matches!(&r, TargetResult::Protocol { detail } if detail.contains("the host cannot read")),
        "{r:?}"
    );
    let s = target(Bad::EmptyAppId).open(&options()).expect("open");
    let e = s
        .on_lookup(&lookup("x"), resp())
        .expect_err("empty id")
        .to_string();
    assert!(e.contains("app object 0"), "{e}");
    let e = target(Bad::Capabilities)
        .open(&options())
        .err()
        .expect("open fails")
        .to_string();
    assert!(e.contains("capabilities the host cannot read"), "{e}");
}
