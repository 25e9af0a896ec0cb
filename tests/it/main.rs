//! One integration-test binary for the whole workspace (link time on 2 cores).
//! Each module belongs to one area; keep every module compiling.
#![allow(missing_docs)]

mod support;

mod capabilities;
mod cli;
mod config_check;
mod demo_push;
mod doctor_target;
mod emulator;
mod engine_cli;
mod entra;
mod faults;
mod google;
mod incremental;
mod incremental_more;
mod incremental_support;
mod keycloak;
mod ldap;
mod multi;
mod okta;
mod onelogin;
mod output;
mod plugins;
mod plugins_target;
mod postgres_store;
mod push;
mod releases;
mod runtime;
mod scim_target;
mod serve;
mod serve_failover;
mod store_safety;
mod sync;
mod vanished;
