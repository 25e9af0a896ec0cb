//! Table tests of the executor: a scripted application (fake session and sender) and the
//! store's target state as the judge.

use std::collections::VecDeque;
use std::sync::Mutex;

use usersync_config::{Deprovision, TargetSettings};
use usersync_sdk::{
    AppObject, ConnectorError, HttpRequest, HttpResponse, Lookup, ObjectKind, TargetCapabilities,
    TargetChange, TargetListing, TargetResult, TargetSession,
};
use usersync_store::{SqliteStore, Store, TargetKind, TargetOrigin, TargetState};

use super::desired::build;
use super::exec::{Executor, TargetSender};
use super::plan::diff;

/// Requests carry the change's operation in the URL; the scripted status decides the result.
struct FakeSession;

impl TargetSession for FakeSession {
    fn discovery(&self) -> Vec<HttpRequest> {
        Vec::new()
    }
    fn configure(&mut self, _: Vec<HttpResponse>) -> Result<(), ConnectorError> {
        Ok(())
    }
    fn capabilities(&self) -> TargetCapabilities {
        TargetCapabilities {
            max_members_per_request: 2,
            ..TargetCapabilities::default()
        }
    }
    fn lookup_request(&self, lookup: &Lookup) -> Result<HttpRequest, ConnectorError> {
        Ok(HttpRequest::get(format!("https://app.test/lookup/{lookup:?}")))
    }
    fn on_lookup(&self, _: &Lookup, response: HttpResponse) -> Result<Vec<AppObject>, ConnectorError> {
        let body = String::from_utf8_lossy(&response.body).to_string();
        Ok(body
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|id| AppObject {
                app_id: id.to_string(),
                etag: None,
                external_id: None,
                name: id.to_string(),
            })
            .collect())
    }
    fn list(&self, _: ObjectKind) -> Result<Box<dyn TargetListing>, ConnectorError> {
        Err(ConnectorError::Unsupported {
            operation: "list".into(),
        })
    }
    fn requests(&self, change: &TargetChange) -> Result<Vec<HttpRequest>, ConnectorError> {
        Ok(vec![HttpRequest::get(format!(
            "https://app.test/{}",
            change.operation()
        ))])
    }
    fn on_response(&self, _: &TargetChange, response: HttpResponse) -> TargetResult {
        let detail = String::from_utf8_lossy(&response.body).to_string();
        match response.status {
            201 => TargetResult::Created {
                app_id: detail,
                etag: None,
            },
            200 | 204 => TargetResult::Updated { etag: None },
            409 => TargetResult::Conflict { detail, reason: None },
            400 => TargetResult::Invalid {
                attribute: Some("emails".into()),
                reason: None,
                detail,
            },
            401 => TargetResult::Unauthorized { detail },
            _ => TargetResult::Protocol { detail },
        }
    }
}

/// Answers each request with the next scripted (status, body); records what was asked.
struct Script {
    answers: Mutex<VecDeque<(u16, String)>>,
    asked: Mutex<Vec<String>>,
}

impl TargetSender for Script {
    async fn send(&self, req: &HttpRequest) -> Result<HttpResponse, String> {
        self.asked.lock().expect("lock").push(req.url.clone());
        let (status, body) = self
            .answers
            .lock()
            .expect("lock")
            .pop_front()
            .ok_or_else(|| format!("unexpected request {}", req.url))?;
        Ok(HttpResponse::new(status, body.into_bytes()))
    }
}

fn script(answers: &[(u16, &str)]) -> Script {
    Script {
        answers: Mutex::new(answers.iter().map(|(s, b)| (*s, b.to_string())).collect()),
        asked: Mutex::new(Vec::new()),
    }
}

async fn run_push(
    store: &mut SqliteStore,
    sources: &[(String, usersync_store::ConnectionState)],
    answers: &[(u16, &str)],
) -> (super::ExecOutcome, Vec<String>) {
    let desired = build(&TargetSettings::default(), sources);
    let state = store.target_state("push:app").expect("state");
    let plan = diff(&desired, &state, Deprovision::Delete);
    let sender = script(answers);
    let mut exec = Executor {
        target: "app",
        state_key: "push:app",
        session: &FakeSession,
        sender: &sender,
        store,
        recovering: false,
        now_ms: || 1,
    };
    let out = exec.run(&plan, &desired, &state).await;
    let asked = sender.asked.lock().expect("lock").clone();
    (out, asked)
}

fn one_user_one_group() -> Vec<(String, usersync_store::ConnectionState)> {
    let mut src = super::tests::source();
    let st = &mut src[0].1;
    st.users.truncate(2);
    st.groups.truncate(1);
    st.effective.retain(|e| e.group == "g1");
    src
}

#[tokio::test]
async fn a_409_on_create_is_looked_up_and_adopted() {
    let mut store = SqliteStore::open_in_memory().expect("store");
    let src = one_user_one_group();
    // the group is created; ada's create answers 409, the lookup by externalId finds A9, which
    // is adopted and then updated; bob is created; the members of g1 (ada) are added
    let (out, asked) = run_push(
        &mut store,
        &src,
        &[
            (201, "G1"),
            (409, "exists"),
            (200, "A9"),
            (200, ""),
            (201, "B1"),
            (200, ""),
        ],
    )
    .await;
    assert!(
        out.errors.is_empty() && out.stopped.is_none(),
        "{out:?} {asked:?}"
    );
    assert_eq!(out.adopted, 1);
    let st: TargetState = store.target_state("push:app").expect("state");
    let ada = st
        .objects
        .iter()
        .find(|o| o.kind == TargetKind::User && o.app_id == "A9")
        .expect("ada adopted");
    assert_eq!(ada.origin, TargetOrigin::Adopted);
    assert!(
        ada.hash.is_some(),
        "updated after adoption, so the next push has nothing to do"
    );
    assert_eq!(st.members.len(), 1);
}

#[tokio::test]
async fn a_400_is_reported_the_rest_applies_and_nothing_destructive_runs() {
    let mut store = SqliteStore::open_in_memory().expect("store");
    let src = one_user_one_group();
    run_push(
        &mut store,
        &src,
        &[(201, "G1"), (201, "A1"), (201, "B1"), (200, "")],
    )
    .await;
    // bob leaves the store (a deletion), ada changes and is refused
    let mut changed = src.clone();
    changed[0].1.users[0].display_name = Some("Ada L.".into());
    changed[0].1.users.remove(1);
    let (out, asked) = run_push(&mut store, &changed, &[(400, "bad email")]).await;
    assert_eq!(out.errors.len(), 2, "{out:?}");
    assert!(
        out.errors[0].contains("refused it (attribute `emails`)"),
        "{out:?}"
    );
    assert_eq!(out.skipped_destructive, 1, "bob's deletion did not run");
    assert_eq!(asked.len(), 1, "{asked:?}");
    let st = store.target_state("push:app").expect("state");
    assert!(st.objects.iter().any(|o| o.app_id == "B1"), "bob still managed");
}

#[tokio::test]
async fn a_401_stops_at_once_and_a_create_is_recorded_before_the_next_request() {
    let mut store = SqliteStore::open_in_memory().expect("store");
    let src = one_user_one_group();
    let (out, asked) = run_push(&mut store, &src, &[(201, "G1"), (401, "token expired")]).await;
    let stop = out.stopped.expect("stopped");
    assert!(
        stop.contains("target `app` refused the credential (HTTP 401"),
        "{stop}"
    );
    assert_eq!(asked.len(), 2, "nothing after the 401: {asked:?}");
    let st = store.target_state("push:app").expect("state");
    assert_eq!(
        st.objects.len(),
        1,
        "the group created before the 401 is recorded"
    );
    assert_eq!(st.objects[0].app_id, "G1");
}
