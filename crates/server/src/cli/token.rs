//! `switchboard token mint`: a development user JWT for a tenant, signed with
//! the tenant's HS256 secret (read from the environment variable its `jwt`
//! settings name), printed on stdout. Tenants verified with an RS256/ES256
//! public key cannot be served: the runtime never holds their private key.

use crate::config::{Config, TenantConfig};
use crate::identity::user::UserClaims;
use chrono::Utc;
use clap::{Subcommand, ValueEnum};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use std::path::PathBuf;
use std::time::Duration;
use switchboard_core::tenant::JwtKey;

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Sign a user JWT (HS256, the tenant's secret) and print it.
    Mint(MintArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    User,
    Admin,
}

#[derive(Debug, clap::Args)]
pub struct MintArgs {
    /// The configuration file `serve` uses (tenants of the file, then of the database).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The tenant id.
    #[arg(long)]
    tenant: String,
    /// The user's id in the tenant (`sub`).
    #[arg(long)]
    sub: String,
    /// The display name (`name`), shown for agents.
    #[arg(long)]
    name: Option<String>,
    #[arg(long, value_enum, default_value = "user")]
    role: Role,
    /// Lifetime in seconds; an admin token is capped at `agent_token_max_ttl_secs`.
    #[arg(long, default_value_t = 3600)]
    ttl: u64,
}

pub async fn run(command: TokenCommand) -> Result<(), String> {
    let TokenCommand::Mint(args) = command;
    let config = Config::load(args.config.as_deref()).map_err(|e| e.to_string())?;
    let tenant = find_tenant(&config, &args.tenant).await?;
    let (token, note) = mint(&config, &tenant, &args, |var| std::env::var(var).ok())?;
    if let Some(note) = note {
        eprintln!("switchboard: {note}");
    }
    println!("{token}");
    Ok(())
}

/// The tenant from the file, else from the database.
async fn find_tenant(config: &Config, id: &str) -> Result<TenantConfig, String> {
    if let Some(t) = config.tenants.iter().find(|t| t.id == id) {
        return Ok(t.clone());
    }
    let store = crate::app::open_store(config, false).await.map_err(|e| e.to_string())?;
    let record = store.get_tenant(id).await.map_err(|e| e.to_string())?;
    let record = record.ok_or_else(|| format!("unknown tenant `{id}`"))?;
    crate::tenancy::records::settings(&record).map_err(|e| format!("tenant `{id}`: {e}"))
}

/// Signs the token; also returns a note for stderr when the TTL was capped.
fn mint(
    config: &Config,
    tenant: &TenantConfig,
    args: &MintArgs,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(String, Option<String>), String> {
    let secret_env = match &tenant.jwt {
        Some(JwtKey::Hs256 { secret_env }) => secret_env,
        Some(JwtKey::Rs256 { .. } | JwtKey::Es256 { .. }) => {
            return Err(format!(
                "tenant `{}` verifies user tokens with a public key (RS256/ES256); sign them with its \
                 private key on the tenant's backend, the runtime does not hold it",
                tenant.id
            ))
        }
        None => {
            return Err(format!(
                "tenant `{}` has no [tenants.jwt] settings: it accepts no user tokens",
                tenant.id
            ))
        }
    };
    let secret = env(secret_env).filter(|s| !s.is_empty()).ok_or_else(|| {
        format!("the environment variable {secret_env} (tenant `{}`'s secret) is not set", tenant.id)
    })?;
    if args.sub.trim().is_empty() {
        return Err("--sub must not be empty".into());
    }
    if args.ttl == 0 {
        return Err("--ttl must be at least 1 second".into());
    }
    let mut ttl = Duration::from_secs(args.ttl);
    let mut note = None;
    if args.role == Role::Admin && ttl > config.agent_token_max_ttl {
        ttl = config.agent_token_max_ttl;
        note = Some(format!(
            "an admin token lives at most {} s (agent_token_max_ttl_secs): --ttl capped",
            ttl.as_secs()
        ));
    }
    let now = Utc::now().timestamp();
    let claims = UserClaims {
        sub: args.sub.clone(),
        exp: now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
        iat: Some(now),
        nbf: None,
        tid: Some(tenant.id.clone()),
        aud: None,
        role: Some(match args.role {
            Role::User => "user".into(),
            Role::Admin => "admin".into(),
        }),
        name: args.name.clone(),
    };
    let token = encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret.as_bytes()))
        .map_err(|e| format!("cannot sign: {e}"))?;
    Ok((token, note))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::user;

    const SECRET: &str = "a-development-secret-thirty-two-bytes!";

    fn config(jwt: &str) -> Config {
        let toml = format!("[[tenants]]\nid = \"acme\"\n[tenants.jwt]\n{jwt}\n");
        Config::from_parts(&toml, Vec::new()).unwrap()
    }

    fn args(role: Role, ttl: u64) -> MintArgs {
        MintArgs {
            config: None,
            tenant: "acme".into(),
            sub: "alice".into(),
            name: Some("Alice".into()),
            role,
            ttl,
        }
    }

    #[test]
    fn mints_tokens_the_server_accepts() {
        let c = config("hs256_secret_env = \"ACME_SECRET\"");
        let env = |var: &str| (var == "ACME_SECRET").then(|| SECRET.to_owned());
        let (token, note) = mint(&c, &c.tenants[0], &args(Role::User, 3600), env).unwrap();
        assert!(note.is_none());
        let jwt = JwtKey::Hs256 { secret_env: "ACME_SECRET".into() };
        let key = crate::identity::keys::UserKey::load("acme", &jwt, env).unwrap();
        let verified =
            user::verify(&key, &token, "acme", Utc::now().timestamp(), c.agent_token_max_ttl).unwrap();
        assert_eq!(
            (verified.sub.as_str(), verified.name.as_deref(), verified.admin),
            ("alice", Some("Alice"), false)
        );

        // An admin token asked for a day is capped at 12 h, and accepted.
        let (token, note) = mint(&c, &c.tenants[0], &args(Role::Admin, 86_400), env).unwrap();
        assert!(note.unwrap().contains("43200"));
        let verified =
            user::verify(&key, &token, "acme", Utc::now().timestamp(), c.agent_token_max_ttl).unwrap();
        assert!(verified.admin);
    }

    #[test]
    fn refuses_what_it_cannot_sign() {
        let c = config("hs256_secret_env = \"ACME_SECRET\"");
        let e = mint(&c, &c.tenants[0], &args(Role::User, 60), |_| None).unwrap_err();
        assert!(e.contains("ACME_SECRET"), "{e}");
        let env = |_: &str| Some(SECRET.to_owned());
        assert!(mint(&c, &c.tenants[0], &args(Role::User, 0), env).is_err());
        let c = config("rs256_public_key_file = \"/keys/acme.pem\"");
        let e = mint(&c, &c.tenants[0], &args(Role::User, 60), env).unwrap_err();
        assert!(e.contains("private key"), "{e}");
        let c = Config::from_parts("[[tenants]]\nid = \"acme\"\n", Vec::new()).unwrap();
        assert!(mint(&c, &c.tenants[0], &args(Role::User, 60), env)
            .unwrap_err()
            .contains("no [tenants.jwt]"));
    }
}
