//! Provider facades and the registry mapping a provider id to its facade.

use std::sync::Arc;

use crate::facade::Facade;
use crate::EmulatorError;

pub mod entra;
pub mod google;
pub mod keycloak;
pub mod okta;
pub mod onelogin;

/// Every provider id, in display order.
pub const PROVIDERS: [&str; 5] = ["entra", "google", "keycloak", "okta", "onelogin"];

/// The facade of a provider id. Unknown ids are an error; placeholders return a facade whose
/// `router` fails with "not implemented".
pub fn facade(provider: &str) -> Result<Arc<dyn Facade>, EmulatorError> {
    Ok(match provider {
        "okta" => Arc::new(okta::Okta),
        "entra" => Arc::new(entra::Entra),
        "google" => Arc::new(google::Google),
        "keycloak" => Arc::new(keycloak::Keycloak),
        "onelogin" => Arc::new(onelogin::OneLogin),
        other => return Err(EmulatorError::UnknownProvider(other.to_string())),
    })
}
