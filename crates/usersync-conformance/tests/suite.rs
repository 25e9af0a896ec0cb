//! The suite fails a connector that breaks the contract, naming the check (so it is no test that
//! cannot fail): the Okta connector with a manifest that claims what it does not do.

use usersync_sdk::{Connector, ConnectorError, Manifest, Options, Session};

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
