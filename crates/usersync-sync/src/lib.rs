//! Sync engine: fetch planning, snapshot, plan (diff), policy, safety gates.
