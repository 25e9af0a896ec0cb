//! `usersync auth login <connection>`: interactive OAuth2 authorization (authorization code with
//! PKCE) for connections that use a stored refresh token.

use std::time::Duration;

use usersync_runtime::login::{self, LoginRequest};
use usersync_sdk::AuthPlan;

use crate::or_exit;
use crate::registry::Lookup;
use crate::wiring::{self, exit};
use crate::GlobalArgs;

/// `usersync auth` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AuthCmd {
    /// Sign in through a browser and store the connection's refresh token (mode 0600).
    #[command(after_help = "Examples:
  usersync auth login google-workspace
  usersync auth login google-workspace --port 8765     # a fixed redirect URI for the OAuth client")]
    Login(LoginArgs),
}

/// Arguments of `usersync auth login`.
#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// The connection (its auth flow must be the authorization-code flow).
    pub connection: String,
    /// Port of the loopback redirect listener; 0 picks a free port. The redirect URI is
    /// http://127.0.0.1:PORT/callback (register it with the OAuth client if it needs a fixed one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Seconds to wait for the browser to come back.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

/// Run the subcommand; returns the process exit code.
pub async fn run(cmd: AuthCmd, global: &GlobalArgs) -> anyhow::Result<u8> {
    let AuthCmd::Login(args) = cmd;
    let config = or_exit!(wiring::load_config(global));
    let selected = or_exit!(wiring::select(&config, std::slice::from_ref(&args.connection)));
    let Some(conn) = selected.first() else {
        return Ok(exit::USAGE);
    };
    let registry = crate::registry::load(global)?;
    let Some(connector) = registry.get(&conn.connector) else {
        // the same words as sync, doctor and config check: a refused plugin is not a typo
        let (why, code) = match registry.lookup(&conn.connector) {
            Lookup::Refused(refused) => (wiring::refused_message(&conn.connector, &refused), exit::FAILURE),
            Lookup::Unused(unused) => (wiring::unused_message(&conn.connector, &unused), exit::USAGE),
            _ => (wiring::unknown_message(&conn.connector, &registry), exit::USAGE),
        };
        eprintln!("error: connection `{}`: {why}", conn.name);
        return Ok(code);
    };
    let manifest = connector.manifest();
    let options = match conn.check(&manifest, &config.path) {
        Ok(o) => o,
        Err(issues) => {
            for i in issues {
                eprintln!("error: {i}");
            }
            return Ok(exit::USAGE);
        }
    };
    let session = connector
        .open(&options)
        .map_err(|e| anyhow::anyhow!("connection `{}`: {e}", conn.name))?;
    let plan = session.auth_plan();
    let AuthPlan::RefreshToken { secret_option, .. } = &plan else {
        eprintln!(
            "error: connection `{}` does not use the authorization-code flow (its flow is `{}`); \
             `auth login` is only needed for that flow",
            conn.name,
            flow_name(&plan)
        );
        return Ok(exit::USAGE);
    };
    let Some(secret_ref) = conn.secrets.get(secret_option) else {
        eprintln!(
            "error: connection `{}`: secret option `{secret_option}` (the OAuth client secret) is not set",
            conn.name
        );
        return Ok(exit::USAGE);
    };
    let secret = secret_ref
        .resolve()
        .map_err(|e| anyhow::anyhow!("connection `{}`: option `{secret_option}`: {e}", conn.name))?;
    let settings = wiring::settings(conn);
    let credential_file = conn.runtime.credential_file.clone();
    let cred = login::login(
        LoginRequest {
            connection: &conn.name,
            plan: &plan,
            client_secret: &secret,
            credential_file: &credential_file,
            settings: &settings,
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], args.port)),
            timeout: Duration::from_secs(args.timeout),
        },
        |url| {
            eprintln!(
                "Open this URL in a browser and sign in as an administrator who can read the directory:\n"
            );
            eprintln!("  {url}\n");
            eprintln!(
                "Waiting for the browser to come back (at most {} s)...",
                args.timeout
            );
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("connection `{}`: {e}", conn.name))?;
    println!(
        "Stored the refresh token of connection `{}` in {} (mode 0600). `usersync doctor --connection {}` checks it.",
        cred.connection,
        credential_file.display(),
        cred.connection
    );
    Ok(exit::OK)
}

fn flow_name(plan: &AuthPlan) -> &'static str {
    match plan {
        AuthPlan::None => "none",
        AuthPlan::ApiToken { .. } => "api_token",
        AuthPlan::ClientCredentialsSecret { .. } => "client_credentials_secret",
        AuthPlan::ClientCredentialsAssertion { .. } => "client_credentials_assertion",
        AuthPlan::JwtBearer { .. } => "jwt_bearer",
        AuthPlan::RefreshToken { .. } => "authorization_code",
        AuthPlan::Password { .. } => "password",
    }
}
