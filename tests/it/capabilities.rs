//! Every built-in connector against its emulator, through the `usersync` binary: managers and
//! photos cost no request for users whose listing already says "none" (Issue 17.13: request counts
//! stay at the minimum whatever the data).
//!
//! Capability honesty (Issue 17.17: the manifest's capabilities are what the connector does) is
//! checked by the connector conformance suite, `crates/usersync-conformance`, which every
//! connector runs in `connectors/<id>/tests/conformance.rs`.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use serde_json::Value;
use usersync_emulator::RunningEmulator;
use usersync_store::{SqliteStore, Store};

/// One emulator and a working directory with a config written from the emulator's
/// `connector_options` / `connector_secrets` (what `usersync demo` writes); secrets go through
/// environment variables.
pub(crate) struct Harness {
    provider: &'static str,
    pub(crate) emu: RunningEmulator,
    dir: tempfile::TempDir,
    block: String,
    env: Vec<(String, String)>,
}

impl Harness {
    pub(crate) async fn new(provider: &'static str, users: u32, groups: u32, seed: u64) -> Harness {
        let emu = crate::support::start_emulator(provider, users, groups, seed).await;
        let info = emu.info().await;
        let client = &info["client"];
        let mut block = format!(
            "[[connections]]\nname = \"{provider}\"\nconnector = \"{provider}\"\n[connections.options]\n"
        );
        for (k, v) in client["connector_options"]
            .as_object()
            .expect("connector_options")
        {
            // JSON strings, numbers and booleans are TOML values as written
            block.push_str(&format!("{k} = {v}\n"));
        }
        let mut env = Vec::new();
        for (k, v) in client["connector_secrets"].as_object().into_iter().flatten() {
            let var = format!("USERSYNC_IT_CAP_{}_{}", provider.to_uppercase(), k.to_uppercase());
            block.push_str(&format!("{k} = {{ env = \"{var}\" }}\n"));
            env.push((var, v.as_str().expect("secret text").to_string()));
        }
        let dir = tempfile::tempdir().expect("tempdir");
        Harness {
            provider,
            emu,
            dir,
            block,
            env,
        }
    }

    fn store_path(&self, store: &str) -> std::path::PathBuf {
        self.dir.path().join(store)
    }

    /// `usersync sync --format json` into `store` with `policy` (TOML lines of
    /// `[connections.policy]`); returns the connection's report.
    pub(crate) async fn sync(&self, store: &str, policy: &str) -> Value {
        let config = self.dir.path().join("usersync.toml");
        let text = format!(
            "[store]\npath = \"{}\"\n\n{}[connections.policy]\n{policy}\n",
            self.store_path(store).display(),
            self.block
        );
        std::fs::write(&config, text).expect("write config");
        // these tests count the requests of the listings: every run reads in full, no change feed
        crate::support::full_runs_only(&config);
        let run = crate::support::sync_report(&config, &[], &self.env).await;
        let r = run.report();
        assert_eq!(
            run.code, 0,
            "{}: sync failed: {r}\nstderr: {}",
            self.provider, run.stderr
        );
        r
    }

    pub(crate) fn store(&self, store: &str) -> SqliteStore {
        SqliteStore::open(&self.store_path(store)).expect("open store")
    }

    fn emulator_requests(&self) -> u64 {
        self.emu.ctx.stats.requests.load(Ordering::SeqCst)
    }
}

/// An organisation that rarely sets managers and photos: with `managers = true` (and photos on
/// for Google, whose user resource carries `thumbnailPhotoEtag`), a sync makes exactly the
/// requests of a sync without them, except one photo request per user whose photo ETag is new.
/// Before Issue 17.13: one manager request per user without a manager (+ a 404 photo request per
/// user without a photo on Google).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_that_say_no_manager_and_no_photo_cost_no_request() {
    let mut report = Vec::new();
    for provider in ["entra", "google", "keycloak", "onelogin"] {
        let h = Harness::new(provider, 80, 10, 9).await;
        // 1 user in 20 keeps a manager and a photo
        let with_photo = {
            let mut org = h.emu.org().write().await;
            let ixs: Vec<u32> = org.live_users().map(|u| u.ix).collect();
            for ix in &ixs {
                if ix % 20 != 0 {
                    org.set_manager(*ix, None);
                }
            }
            let mut with_photo = BTreeSet::new();
            for u in org.users.iter_mut().flatten() {
                u.has_photo = u.ix % 20 == 0;
                if u.has_photo && u.status.is_enabled() {
                    with_photo.insert(u.ix);
                }
            }
            with_photo
        };
        // Google's listing gives each photo's version (ETag); Keycloak's says who has the photo
        // attribute, but not its version: those photos are read again on every run
        let photos = matches!(provider, "google" | "keycloak");
        let versioned = provider == "google";
        let plain = "managers = false\n";
        let full = if photos {
            "managers = true\nphotos = \"hash\"\n"
        } else {
            "managers = true\n"
        };
        let before = h.emulator_requests();
        let r0 = h.sync("plain.db", plain).await;
        let minimum = h.emulator_requests() - before;

        let before = h.emulator_requests();
        let r1 = h.sync("full.db", full).await;
        let first = h.emulator_requests() - before;
        let state = h.store("full.db").state(provider).expect("state");
        assert!(
            state.users.iter().any(|u| u.manager.is_some()),
            "{provider}: the few managers are still synced"
        );
        // one photo request per photo stored (users with a photo ETag), none for the others
        let stored_photos = state.photos.len();
        if photos {
            assert!(
                stored_photos > 0 && stored_photos <= with_photo.len(),
                "{provider}: {stored_photos} photos stored, {} users have one",
                with_photo.len()
            );
        }
        assert_eq!(
            first,
            minimum + stored_photos as u64,
            "{provider}: a first sync with managers{} made {first} requests, the listings alone {minimum} \
             ({}; {r1})",
            if photos { " and photos" } else { "" },
            if photos {
                format!("{stored_photos} photos")
            } else {
                "no photos".into()
            },
        );

        // the same data again: no manager request, and no photo request where versions are known
        let before = h.emulator_requests();
        h.sync("full.db", full).await;
        let again = h.emulator_requests() - before;
        let unversioned = if versioned { 0 } else { stored_photos as u64 };
        assert_eq!(
            again,
            minimum + unversioned,
            "{provider}: a second sync made {again} requests"
        );

        if versioned {
            // one user gets a photo: its new ETag costs exactly one photo request
            let ix = {
                let mut org = h.emu.org().write().await;
                let u = org
                    .users
                    .iter_mut()
                    .flatten()
                    .find(|u| !u.has_photo && u.status.is_enabled())
                    .expect("a user without a photo");
                u.has_photo = true;
                u.ix
            };
            let before = h.emulator_requests();
            h.sync("full.db", full).await;
            let changed = h.emulator_requests() - before;
            assert_eq!(
                changed,
                minimum + 1,
                "{provider}: user {ix}'s new photo ETag costs one request"
            );
            let state = h.store("full.db").state(provider).expect("state");
            assert_eq!(state.photos.len(), stored_photos + 1);

            // the user removes it again: the listing has no ETag, the stored photo goes, no request
            h.emu
                .org()
                .write()
                .await
                .users
                .iter_mut()
                .flatten()
                .filter(|u| u.ix == ix)
                .for_each(|u| u.has_photo = false);
            let before = h.emulator_requests();
            h.sync("full.db", full).await;
            assert_eq!(
                h.emulator_requests() - before,
                minimum,
                "{provider}: a removed photo costs no request"
            );
            let state = h.store("full.db").state(provider).expect("state");
            assert_eq!(state.photos.len(), stored_photos);
        }
        report.push(format!(
            "{provider}: listings {minimum} requests (report: {}), with managers{}: {first} on the first \
             run, {again} on the next",
            crate::support::count(&r0, "/requests"),
            if photos { " and photos" } else { "" },
        ));
    }
    println!("{}", report.join("\n"));
}
