//! The suite fails a connector that breaks the contract, naming the check (so it is no test that
//! cannot fail): the Okta connector with a manifest that claims what it does not do, and with
//! cursors that move on after an error.

use usersync_sdk::{
    AuthPlan, Batch, Connector, ConnectorError, Cursor, HttpRequest, HttpResponse, Manifest, Options, Query,
    Session,
};

/// The Okta connector, with a manifest whose `photos` and `manager` flags are inverted.
struct Boastful;

impl Connector for Boastful {
    fn manifest(&self) -> Manifest {
        let mut m = usersync_connector_okta::connector().manifest();
        m.capabilities.photos = !m.capabilities.photos;
        m.capabilities.manager = !m.capabilities.manager;
        m
    }

    fn open(&self, options: &Options) -> Result<Box<dyn Session>, ConnectorError> {
        usersync_connector_okta::connector().open(options)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_that_says_more_or_less_than_the_connector_does_fails_by_name() {
    let report = usersync_conformance::run_against_emulator("okta", Box::new(Boastful))
        .await
        .expect("the suite runs");
    let failed: Vec<&str> = report.failures().iter().map(|(n, _)| *n).collect();
    assert_eq!(
        failed,
        ["capabilities.manager", "capabilities.photos"],
        "{report:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_okta_connector_passes_with_every_fault_check_run() {
    let report = usersync_conformance::run_against_emulator("okta", usersync_connector_okta::connector())
        .await
        .expect("the suite runs");
    report.assert_passed();
    for name in usersync_conformance::FAULT_CHECKS {
        assert_eq!(
            report.outcome(name),
            Some(&usersync_conformance::Outcome::Passed),
            "{name} did not run to a pass: {report:#?}"
        );
    }
}

/// The Okta connector, whose group member cursors forget their request after an error (as if
/// they had advanced).
struct Forgetful;

struct ForgetfulSession(Box<dyn Session>);

struct ForgetfulCursor {
    inner: Box<dyn Cursor>,
    failed: bool,
}

impl Connector for Forgetful {
    fn manifest(&self) -> Manifest {
        usersync_connector_okta::connector().manifest()
    }

    fn open(&self, options: &Options) -> Result<Box<dyn Session>, ConnectorError> {
        Ok(Box::new(ForgetfulSession(
            usersync_connector_okta::connector().open(options)?,
        )))
    }
}

impl Session for ForgetfulSession {
    fn auth_plan(&self) -> AuthPlan {
        self.0.auth_plan()
    }

    fn base_urls(&self) -> Vec<String> {
        self.0.base_urls()
    }

    fn query(&self, query: &Query) -> Result<Box<dyn Cursor>, ConnectorError> {
        let inner = self.0.query(query)?;
        Ok(match query {
            Query::GroupMembers { .. } => Box::new(ForgetfulCursor { inner, failed: false }),
            _ => inner,
        })
    }
}

impl Cursor for ForgetfulCursor {
    fn next_request(&mut self) -> Option<HttpRequest> {
        if self.failed {
            return None;
        }
        self.inner.next_request()
    }

    fn on_response(&mut self, response: HttpResponse) -> Result<Batch, ConnectorError> {
        let r = self.inner.on_response(response);
        self.failed |= r.is_err();
        r
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_that_moves_on_after_an_error_fails_by_name() {
    let report = usersync_conformance::run_against_emulator("okta", Box::new(Forgetful))
        .await
        .expect("the suite runs");
    let failures = report.failures();
    assert!(
        failures
            .iter()
            .any(|(n, why)| *n == "cursor.error_keeps_position" && why.contains("GroupMembers")),
        "{report:#?}"
    );
}
