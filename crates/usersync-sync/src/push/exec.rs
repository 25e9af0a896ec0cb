//! The executor: applies a [`PushPlan`] through a configured [`TargetSession`], sending each
//! request with a [`TargetSender`] (the host's runtime client: auth, retries with backoff on
//! 429/5xx, rate limits, body caps), and records every success in the store at once.
//!
//! What each result does: created -> the app id is recorded before the next request (a push
//! killed halfway is picked up by the next one); 409 on a create -> lookup and adopt, never a
//! duplicate; 400 -> that object is reported, the rest goes on, the run is partial and nothing
//! destructive runs; 401/403/garbage -> the push stops; 429/5xx still failing after the
//! runtime's retries -> the push stops.

use std::collections::BTreeMap;
use std::future::Future;

use usersync_sdk::{
    AppObject, HttpRequest, HttpResponse, Lookup, TargetChange, TargetOperation, TargetResult, TargetSession,
};
use usersync_store::{Store, TargetKind, TargetObject, TargetOrigin, TargetState, TargetWrite};

use super::desired::DesiredTarget;
use super::plan::{PushPlan, PushStep};

/// Sends one request to the application (auth, retries, rate limits). An error is a failure
/// the runtime could not recover from (network, retries exhausted, body too large).
pub trait TargetSender: Send + Sync {
    /// Send `req` and return the final response.
    fn send(&self, req: &HttpRequest) -> impl Future<Output = Result<HttpResponse, String>> + Send;
}

/// What the execution did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ExecOutcome {
    /// Write requests sent (lookups and discovery not included).
    pub writes: u64,
    /// Lookups sent.
    pub lookups: u64,
    /// Objects adopted (found in the app by lookup after a 409, or while recovering).
    pub adopted: u64,
    /// One line per object the application refused (the run is partial).
    pub errors: Vec<String>,
    /// Why the push stopped early (401/403, garbage, a failing service).
    pub stopped: Option<String>,
    /// Destructive steps not run because of an earlier error.
    pub skipped_destructive: u64,
}

/// Everything the executor needs.
pub struct Executor<'a, S: TargetSender, St: Store + ?Sized> {
    /// Target name (messages, store key).
    pub target: &'a str,
    /// The store key of the target's state.
    pub state_key: &'a str,
    /// Configured session.
    pub session: &'a dyn TargetSession,
    /// Sends requests.
    pub sender: &'a S,
    /// The store.
    pub store: &'a mut St,
    /// Look an object up by externalId before creating it (the last push did not finish).
    pub recovering: bool,
    /// Clock, milliseconds since the Unix epoch.
    pub now_ms: fn() -> i64,
}

enum Step {
    Ok,
    Refused(String),
    Stop(String),
}

impl<S: TargetSender, St: Store + ?Sized> Executor<'_, S, St> {
    /// Apply the plan in order. `state` is the target state the plan was made against.
    pub async fn run(
        &mut self,
        plan: &PushPlan,
        desired: &DesiredTarget,
        state: &TargetState,
    ) -> ExecOutcome {
        let mut out = ExecOutcome::default();
        let mut ids: BTreeMap<(TargetKind, String), TargetObject> = state
            .objects
            .iter()
            .map(|o| ((o.kind, o.source_key.clone()), o.clone()))
            .collect();
        for step in &plan.steps {
            if step.is_destructive() && (!out.errors.is_empty() || out.stopped.is_some()) {
                out.skipped_destructive += 1;
                continue;
            }
            let _span =
                tracing::info_span!("push_step", target = self.target, step = ?step_name(step)).entered();
            let r = self.step(step, desired, &mut ids, &mut out).await;
            match r {
                Step::Ok => {}
                Step::Refused(e) => out.errors.push(e),
                Step::Stop(e) => {
                    out.stopped = Some(e);
                    break;
                }
            }
        }
        if out.skipped_destructive > 0 {
            out.errors.push(format!(
                "{} deactivation/deletion/removal step(s) were not run because of the errors above; \
                 the next push runs them once everything else applies",
                out.skipped_destructive
            ));
        }
        out
    }

    async fn send(&self, req: &HttpRequest) -> Result<HttpResponse, Step> {
        self.sender
            .send(req)
            .await
            .map_err(|e| Step::Stop(format!("target `{}`: {e}; nothing more was written", self.target)))
    }

    fn record(&mut self, writes: &[TargetWrite]) -> Result<(), Step> {
        self.store
            .write_target(self.state_key, writes)
            .map_err(|e| Step::Stop(format!("cannot record the push in the store: {e}")))
    }

    /// Send every request of a change; the last result (or the first failure).
    async fn apply(&self, change: &TargetChange, out: &mut ExecOutcome) -> Result<TargetResult, Step> {
        let reqs = self.session.requests(change).map_err(|e| {
            Step::Refused(format!(
                "target `{}` cannot {}: {e}",
                self.target,
                change.operation()
            ))
        })?;
        let mut last = TargetResult::Updated { etag: None };
        for req in reqs {
            out.writes += 1;
            let resp = self.send(&req).await?;
            last = self.session.on_response(change, resp);
            if !last.is_success() {
                return Ok(last);
            }
        }
        Ok(last)
    }

    /// [`Self::apply`]; on a 412 (the object changed in the app since its version was read),
    /// read its current version by lookup and send the change once more.
    async fn apply_fresh(
        &self,
        change: TargetChange,
        kind: TargetKind,
        key: &str,
        name: &str,
        out: &mut ExecOutcome,
    ) -> Result<TargetResult, Step> {
        let r = self.apply(&change, out).await?;
        if !matches!(r, TargetResult::PreconditionFailed { .. }) {
            return Ok(r);
        }
        let Some(found) = self.find(kind, key, name, out).await? else {
            return Ok(r);
        };
        let retry = match change {
            TargetChange::UpdateUser {
                app_id,
                source_key,
                user,
                ..
            } => TargetChange::UpdateUser {
                app_id,
                etag: found.etag,
                source_key,
                user,
            },
            TargetChange::RenameGroup {
                app_id, display_name, ..
            } => TargetChange::RenameGroup {
                app_id,
                etag: found.etag,
                display_name,
            },
            TargetChange::DeactivateUser { app_id, .. } => TargetChange::DeactivateUser {
                app_id,
                etag: found.etag,
            },
            other => return self.apply(&other, out).await,
        };
        self.apply(&retry, out).await
    }

    async fn lookup(&self, lookup: &Lookup, out: &mut ExecOutcome) -> Result<Vec<AppObject>, Step> {
        let req = match self.session.lookup_request(lookup) {
            Ok(r) => r,
            Err(_) => return Ok(Vec::new()),
        };
        out.lookups += 1;
        let resp = self.send(&req).await?;
        self.session
            .on_lookup(lookup, resp)
            .map_err(|e| Step::Stop(format!("target `{}`: a lookup failed: {e}", self.target)))
    }

    /// Find an existing object to adopt: by the source key first, then by name.
    async fn find(
        &self,
        kind: TargetKind,
        key: &str,
        name: &str,
        out: &mut ExecOutcome,
    ) -> Result<Option<AppObject>, Step> {
        let lookups = match kind {
            TargetKind::User => [
                Lookup::UserByExternalId { value: key.into() },
                Lookup::UserByUserName { value: name.into() },
            ],
            TargetKind::Group => [
                Lookup::GroupByExternalId { value: key.into() },
                Lookup::GroupByDisplayName { value: name.into() },
            ],
        };
        for l in &lookups {
            let found = self.lookup(l, out).await?;
            if found.len() == 1 {
                return Ok(found.into_iter().next());
            }
            if found.len() > 1 {
                return Err(Step::Refused(format!(
                    "target `{}`: {} {kind_name} match `{name}`; not adopting any (resolve the duplicates in the \
                     application)",
                    self.target,
                    found.len(),
                    kind_name = kind.as_str()
                )));
            }
        }
        Ok(None)
    }

    fn object(
        &self,
        kind: TargetKind,
        key: &str,
        app: &AppObject,
        origin: TargetOrigin,
        hash: Option<String>,
    ) -> TargetObject {
        TargetObject {
            kind,
            source_key: key.to_string(),
            app_id: app.app_id.clone(),
            etag: app.etag.clone(),
            hash,
            origin,
            active: true,
            updated_ms: (self.now_ms)(),
        }
    }

    fn classify(&self, what: &str, r: TargetResult) -> Step {
        let t = self.target;
        match r {
            TargetResult::Unauthorized { detail } => Step::Stop(format!(
                "target `{t}` refused the credential (HTTP 401: {detail}): the token is wrong, expired or \
                 for another tenant; nothing more was written"
            )),
            TargetResult::Forbidden { detail, needed } => Step::Stop(format!(
                "target `{t}` denied {what} (HTTP 403: {detail}); the credential needs {}; nothing more was written",
                needed.unwrap_or_else(|| "permission to write Users and Groups".into())
            )),
            TargetResult::Protocol { detail } => Step::Stop(format!(
                "target `{t}` answered something that is not SCIM ({detail}) to {what}; the push stopped, \
                 nothing destructive was done"
            )),
            TargetResult::Throttled { detail, .. } | TargetResult::Transient { detail } => Step::Stop(format!(
                "target `{t}` kept failing after retries ({detail}) on {what}; the push stopped"
            )),
            TargetResult::Invalid { attribute, detail, .. } => Step::Refused(format!(
                "{what}: target `{t}` refused it{}: {detail}",
                attribute.map(|a| format!(" (attribute `{a}`)")).unwrap_or_default()
            )),
            TargetResult::Conflict { detail, .. } => {
                Step::Refused(format!("{what}: target `{t}` reports a conflict: {detail}"))
            }
            TargetResult::NotFound { detail } => {
                Step::Refused(format!("{what}: gone from target `{t}` ({detail})"))
            }
            TargetResult::PreconditionFailed { detail } => Step::Refused(format!(
                "{what}: changed in target `{t}` meanwhile ({detail}); the next push retries"
            )),
            TargetResult::Created { .. } | TargetResult::Updated { .. } => Step::Ok,
        }
    }

    async fn step(
        &mut self,
        step: &PushStep,
        desired: &DesiredTarget,
        ids: &mut BTreeMap<(TargetKind, String), TargetObject>,
        out: &mut ExecOutcome,
    ) -> Step {
        match self.step_inner(step, desired, ids, out).await {
            Ok(()) => Step::Ok,
            Err(s) => s,
        }
    }

    async fn step_inner(
        &mut self,
        step: &PushStep,
        desired: &DesiredTarget,
        ids: &mut BTreeMap<(TargetKind, String), TargetObject>,
        out: &mut ExecOutcome,
    ) -> Result<(), Step> {
        match step {
            PushStep::CreateGroup { key, name } => self.create_group(key, name, desired, ids, out).await,
            PushStep::RenameGroup { key, name } => self.rename_group(key, name, desired, ids, out).await,
            PushStep::CreateUser { key, user_name } | PushStep::UpdateUser { key, user_name } => {
                self.put_user(key, user_name, desired, ids, out).await
            }
            PushStep::AddMembers { group, users } | PushStep::RemoveMembers { group, users } => {
                self.members(step, group, users, ids, out).await
            }
            PushStep::DeactivateUser { key, .. } => self.deactivate(key, ids, out).await,
            PushStep::DeleteUser { key, .. } | PushStep::DeleteGroup { key } => {
                self.delete(step, key, ids, out).await
            }
        }
    }

    /// Create a group, or adopt the one the application already has.
    async fn create_group(
        &mut self,
        key: &str,
        name: &str,
        desired: &DesiredTarget,
        ids: &mut BTreeMap<(TargetKind, String), TargetObject>,
        out: &mut ExecOutcome,
    ) -> Result<(), Step> {
        let hash = desired.groups.get(key).map(|g| g.hash.clone());
        let what = format!("group `{name}`");
        if self.recovering {
            if let Some(found) = self.find(TargetKind::Group, key, name, out).await? {
                return self.adopt_group(key, &found, hash, ids, out);
            }
        }
        let change = TargetChange::CreateGroup {
            source_key: key.to_string(),
            display_name: name.to_string(),
        };
        match self.apply(&change, out).await? {
            TargetResult::Created { app_id, etag } => {
                let app = AppObject {
                    app_id,
                    etag,
                    external_id: Some(key.to_string()),
                    name: name.to_string(),
                };
                let o = self.object(TargetKind::Group, key, &app, TargetOrigin::Created, hash);
                self.record(&[TargetWrite::Put(o.clone())])?;
                ids.insert((TargetKind::Group, key.to_string()), o);
                Ok(())
            }
            TargetResult::Conflict { detail, .. } => {
                match self.find(TargetKind::Group, key, name, out).await? {
                    Some(found) => self.adopt_group(key, &found, hash, ids, out),
                    None => Err(Step::Refused(format!(
                        "{what}: target `{}` reports a conflict ({detail}) but no such group can be found",
                        self.target
                    ))),
                }
            }
            r => Err(self.classify(&what, r)),
        }
    }

    /// Rename a managed group.
    async fn rename_group(
        &mut self,
        key: &str,
        name: &str,
        desired: &DesiredTarget,
        ids: &mut BTreeMap<(TargetKind, String), TargetObject>,
        out: &mut ExecOutcome,
    ) -> Result<(), Step> {
        let what = format!("group `{name}` (rename)");
        let Some(o) = ids.get(&(TargetKind::Group, key.to_string())).cloned() else {
            return Ok(());
        };
        let change = TargetChange::RenameGroup {
            app_id: o.app_id.clone(),
            etag: o.etag.clone(),
            display_name: name.to_string(),
        };
        match self
            .apply_fresh(change, TargetKind::Group, key, name, out)
            .await?
        {
            TargetResult::Updated { etag } => {
                let o = TargetObject {
                    etag: etag.or(o.etag),
                    hash: desired.groups.get(key).map(|g| g.hash.clone()),
                    updated_ms: (self.now_ms)(),
                    ..o
                };
                self.record(&[TargetWrite::Put(o.clone())])?;
                ids.insert((TargetKind::Group, key.to_string()), o);
                Ok(())
            }
            r => Err(self.classify(&what, r)),
        }
    }

    /// Create a user (adopting an existing account on 409) or update a managed one.
    async fn put_user(
        &mut self,
        key: &str,
        user_name: &str,
        desired: &DesiredTarget,
        ids: &mut BTreeMap<(TargetKind, String), TargetObject>,
        out: &mut ExecOutcome,
    ) -> Result<(), Step> {
        let Some(w) = desired.users.get(key) else {
            return Ok(());
        };
        let what = format!("user `{user_name}`");
        let mut user = w.user.clone();
        user.manager_app_id = w
            .manager_key
            .as_ref()
            .and_then(|m| ids.get(&(TargetKind::User, m.clone())))
            .map(|o| o.app_id.clone());
        let existing = ids.get(&(TargetKind::User, key.to_string())).cloned();
        let existing = match existing {
            Some(o) => Some(o),
            None if self.recovering => match self.find(TargetKind::User, key, user_name, out).await? {
                Some(found) => Some(self.adopted(TargetKind::User, key, &found, out)?),
                None => None,
            },
            None => None,
        };
        let existing = match existing {
            Some(o) => o,
            None => {
                let change = TargetChange::CreateUser {
                    source_key: key.to_string(),
                    user: user.clone(),
                };
                match self.apply(&change, out).await? {
                    TargetResult::Created { app_id, etag } => {
                        let app = AppObject {
                            app_id,
                            etag,
                            external_id: Some(key.to_string()),
                            name: user_name.to_string(),
                        };
                        let mut o = self.object(
                            TargetKind::User,
                            key,
                            &app,
                            TargetOrigin::Created,
                            Some(w.hash.clone()),
                        );
                        o.active = user.active;
                        self.record(&[TargetWrite::Put(o.clone())])?;
                        ids.insert((TargetKind::User, key.to_string()), o);
                        return Ok(());
                    }
                    TargetResult::Conflict { detail, .. } => {
                        match self.find(TargetKind::User, key, user_name, out).await? {
                            Some(found) => self.adopted(TargetKind::User, key, &found, out)?,
                            None => {
                                return Err(Step::Refused(format!(
                                "{what}: target `{}` reports a conflict ({detail}) but no account with this \
                                 userName or externalId can be found",
                                self.target
                            )))
                            }
                        }
                    }
                    r => return Err(self.classify(&what, r)),
                }
            }
        };
        // update (an adopted account gets the source's attributes and externalId)
        let change = TargetChange::UpdateUser {
            app_id: existing.app_id.clone(),
            etag: existing.etag.clone(),
            source_key: key.to_string(),
            user: user.clone(),
        };
        match self
            .apply_fresh(change, TargetKind::User, key, user_name, out)
            .await?
        {
            TargetResult::Updated { etag } => {
                let o = TargetObject {
                    etag: etag.or(existing.etag),
                    hash: Some(w.hash.clone()),
                    active: user.active,
                    updated_ms: (self.now_ms)(),
                    ..existing
                };
                self.record(&[TargetWrite::Put(o.clone())])?;
                ids.insert((TargetKind::User, key.to_string()), o);
                Ok(())
            }
            TargetResult::NotFound { .. } => {
                // deleted in the app by hand: forget it; the next push creates it again
                self.record(&[TargetWrite::Forget {
                    kind: TargetKind::User,
                    source_key: key.to_string(),
                }])?;
                ids.remove(&(TargetKind::User, key.to_string()));
                Err(Step::Refused(format!(
                    "{what}: gone from target `{}`; it is created again by the next push",
                    self.target
                )))
            }
            r => Err(self.classify(&what, r)),
        }
    }

    /// Add or remove members, in chunks of the session's maximum.
    async fn members(
        &mut self,
        step: &PushStep,
        group: &str,
        users: &[String],
        ids: &mut BTreeMap<(TargetKind, String), TargetObject>,
        out: &mut ExecOutcome,
    ) -> Result<(), Step> {
        let add = matches!(step, PushStep::AddMembers { .. });
        let Some(g) = ids.get(&(TargetKind::Group, group.to_string())).cloned() else {
            return Ok(()); // the group could not be created: reported already
        };
        let members: Vec<(String, String)> = users
            .iter()
            .filter_map(|u| {
                ids.get(&(TargetKind::User, u.clone()))
                    .map(|o| (u.clone(), o.app_id.clone()))
            })
            .collect();
        let cap = (self.session.capabilities().max_members_per_request as usize).max(1);
        for chunk in members.chunks(cap) {
            let member_app_ids: Vec<String> = chunk.iter().map(|(_, id)| id.clone()).collect();
            let change = if add {
                TargetChange::AddMembers {
                    group_app_id: g.app_id.clone(),
                    member_app_ids,
                }
            } else {
                TargetChange::RemoveMembers {
                    group_app_id: g.app_id.clone(),
                    member_app_ids,
                }
            };
            let what = format!("{} member(s) of group `{group}`", chunk.len());
            match self.apply(&change, out).await? {
                r if r.is_success() => {
                    // the group's version moved on: keep the new one (or none)
                    let etag = match r {
                        TargetResult::Updated { etag } | TargetResult::Created { etag, .. } => etag,
                        _ => None,
                    };
                    let mut g_now = ids
                        .get(&(TargetKind::Group, group.to_string()))
                        .cloned()
                        .unwrap_or(g.clone());
                    g_now.etag = etag;
                    let mut writes: Vec<TargetWrite> = vec![TargetWrite::Put(g_now.clone())];
                    ids.insert((TargetKind::Group, group.to_string()), g_now);
                    writes.extend(chunk.iter().map(|(u, _)| {
                        if add {
                            TargetWrite::AddMember {
                                group: group.to_string(),
                                user: u.clone(),
                            }
                        } else {
                            TargetWrite::RemoveMember {
                                group: group.to_string(),
                                user: u.clone(),
                            }
                        }
                    }));
                    self.record(&writes)?;
                }
                r => match self.classify(&what, r) {
                    Step::Refused(e) => out.errors.push(e),
                    other => return Err(other),
                },
            }
        }
        Ok(())
    }

    /// Deactivate a managed user.
    async fn deactivate(
        &mut self,
        key: &str,
        ids: &mut BTreeMap<(TargetKind, String), TargetObject>,
        out: &mut ExecOutcome,
    ) -> Result<(), Step> {
        let Some(o) = ids.get(&(TargetKind::User, key.to_string())).cloned() else {
            return Ok(());
        };
        let what = format!("user `{key}` (deactivate)");
        let change = TargetChange::DeactivateUser {
            app_id: o.app_id.clone(),
            etag: o.etag.clone(),
        };
        match self.apply_fresh(change, TargetKind::User, key, key, out).await? {
            TargetResult::Updated { etag } => {
                let o = TargetObject {
                    etag: etag.or(o.etag),
                    active: false,
                    updated_ms: (self.now_ms)(),
                    ..o
                };
                self.record(&[TargetWrite::Put(o.clone())])?;
                ids.insert((TargetKind::User, key.to_string()), o);
                Ok(())
            }
            r => Err(self.classify(&what, r)),
        }
    }

    /// Delete a managed user or group.
    async fn delete(
        &mut self,
        step: &PushStep,
        key: &str,
        ids: &mut BTreeMap<(TargetKind, String), TargetObject>,
        out: &mut ExecOutcome,
    ) -> Result<(), Step> {
        let kind = if matches!(step, PushStep::DeleteUser { .. }) {
            TargetKind::User
        } else {
            TargetKind::Group
        };
        let Some(o) = ids.get(&(kind, key.to_string())).cloned() else {
            return Ok(());
        };
        let what = format!("{} `{key}` (delete)", kind.as_str());
        let change = match kind {
            TargetKind::User => TargetChange::DeleteUser {
                app_id: o.app_id.clone(),
                etag: o.etag.clone(),
            },
            TargetKind::Group => TargetChange::DeleteGroup {
                app_id: o.app_id.clone(),
                etag: o.etag.clone(),
            },
        };
        match self.apply(&change, out).await? {
            TargetResult::Updated { .. } | TargetResult::NotFound { .. } => {
                self.record(&[TargetWrite::Forget {
                    kind,
                    source_key: key.to_string(),
                }])?;
                ids.remove(&(kind, key.to_string()));
                Ok(())
            }
            r => Err(self.classify(&what, r)),
        }
    }

    fn adopt_group(
        &mut self,
        key: &str,
        found: &AppObject,
        hash: Option<String>,
        ids: &mut BTreeMap<(TargetKind, String), TargetObject>,
        out: &mut ExecOutcome,
    ) -> Result<(), Step> {
        out.adopted += 1;
        // the name matched (or the key did: then a rename follows on the next push if needed)
        let hash = if desired_name_matches(found, hash.as_deref()) {
            hash
        } else {
            None
        };
        let o = self.object(TargetKind::Group, key, found, TargetOrigin::Adopted, hash);
        self.record(&[TargetWrite::Put(o.clone())])?;
        ids.insert((TargetKind::Group, key.to_string()), o);
        Ok(())
    }

    fn adopted(
        &mut self,
        kind: TargetKind,
        key: &str,
        found: &AppObject,
        out: &mut ExecOutcome,
    ) -> Result<TargetObject, Step> {
        out.adopted += 1;
        tracing::info!(target = self.target, key, app_id = %found.app_id, "adopting an existing {}", kind.as_str());
        let o = self.object(kind, key, found, TargetOrigin::Adopted, None);
        self.record(&[TargetWrite::Put(o.clone())])?;
        Ok(o)
    }
}

/// Whether an adopted group's name is the desired one (its hash can then be recorded).
fn desired_name_matches(found: &AppObject, hash: Option<&str>) -> bool {
    hash.is_some_and(|h| h == super::desired::group_hash(&found.name))
}

fn step_name(s: &PushStep) -> &'static str {
    match s {
        PushStep::CreateGroup { .. } => TargetOperation::CreateGroup.as_str(),
        PushStep::RenameGroup { .. } => TargetOperation::RenameGroup.as_str(),
        PushStep::CreateUser { .. } => TargetOperation::CreateUser.as_str(),
        PushStep::UpdateUser { .. } => TargetOperation::UpdateUser.as_str(),
        PushStep::AddMembers { .. } => TargetOperation::AddMembers.as_str(),
        PushStep::RemoveMembers { .. } => TargetOperation::RemoveMembers.as_str(),
        PushStep::DeactivateUser { .. } => TargetOperation::DeactivateUser.as_str(),
        PushStep::DeleteUser { .. } => TargetOperation::DeleteUser.as_str(),
        PushStep::DeleteGroup { .. } => TargetOperation::DeleteGroup.as_str(),
    }
}
