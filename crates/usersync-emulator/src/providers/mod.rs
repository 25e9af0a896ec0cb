//! Provider facades and the registry mapping a provider id to its facade.

use std::sync::Arc;

use crate::facade::Facade;
use crate::EmulatorError;

pub mod entra;
pub mod google;
pub mod keycloak;
pub mod okta;
pub mod onelogin;
pub mod scim;

/// Every provider id, in display order.
pub const PROVIDERS: [&str; 5] = ["entra", "google", "keycloak", "okta", "onelogin"];

/// The SCIM service-provider modes (targets usersync pushes into, not identity providers: they
/// start empty and are not part of [`PROVIDERS`]): generic RFC, AWS IAM Identity Center,
/// Atlassian Cloud.
pub const SCIM_TARGETS: [&str; 3] = ["scim", "scim-aws", "scim-atlassian"];

/// The facade of a provider id. Unknown ids are an error; placeholders return a facade whose
/// `router` fails with "not implemented".
pub fn facade(provider: &str) -> Result<Arc<dyn Facade>, EmulatorError> {
    Ok(match provider {
        "okta" => Arc::new(okta::Okta),
        "entra" => Arc::new(entra::Entra),
        "google" => Arc::new(google::Google),
        "keycloak" => Arc::new(keycloak::Keycloak),
        "onelogin" => Arc::new(onelogin::OneLogin),
        "scim" => Arc::new(scim::Scim(scim::ScimProfile::Generic)),
        "scim-aws" => Arc::new(scim::Scim(scim::ScimProfile::Aws)),
        "scim-atlassian" => Arc::new(scim::Scim(scim::ScimProfile::Atlassian)),
        other => return Err(EmulatorError::UnknownProvider(other.to_string())),
    })
}
