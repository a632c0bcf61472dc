use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use clap::Parser;
use herald::cli::{Cli, Command};
use herald::config::Config;
use herald_engine::auth::{HmacAlg, NewConnectToken, NewSubscribeToken, TokenSigner};
use herald_engine::config::TokenKey;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref(), None, &cli.overrides())?;
    herald::logging::init(config.server.log_format);
    match cli.command_or_run() {
        Command::Run => run(config),
        Command::CheckConfig => {
            println!("configuration is valid\n{}", config.summary());
            Ok(())
        }
        Command::Gentoken {
            user,
            ttl,
            channels,
            info,
            private_key,
            kid,
        } => {
            let mut signer = signer(&config, private_key.as_deref())?;
            if let Some(kid) = kid {
                signer = signer.with_kid(kid);
            }
            let info = info.map(|i| serde_json::from_str(&i)).transpose()?;
            let token = signer.sign(&NewConnectToken {
                sub: user,
                exp: Some(expiry(*ttl)),
                info,
                channels,
            })?;
            println!("{token}");
            Ok(())
        }
        Command::Subtoken { user, channel, ttl } => {
            let signer = signer(&config, None)?;
            let token = signer.sign(&NewSubscribeToken {
                sub: user,
                channel,
                exp: Some(expiry(*ttl)),
                info: None,
            })?;
            println!("{token}");
            Ok(())
        }
    }
}

fn expiry(ttl: Duration) -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        + ttl.as_secs()
}

/// Tokens are signed with the configured HMAC secret, or with a private key for RSA/ECDSA setups.
fn signer(config: &Config, private_key: Option<&std::path::Path>) -> anyhow::Result<TokenSigner> {
    if let Some(path) = private_key {
        let pem = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
        return Ok(TokenSigner::from_pem(&pem)?);
    }
    if config.dev.is_some() {
        bail!(
            "no token key is configured (dev mode generates a new one at every start); \
             set auth.hmac_secret (or HERALD_AUTH__HMAC_SECRET) for the node and for gentoken"
        );
    }
    match &config.token.key {
        TokenKey::Hmac(secret) => Ok(TokenSigner::hmac(secret, HmacAlg::HS256)),
        TokenKey::Jwks(_) => bail!(
            "the node verifies tokens with the keys of a JWKS: pass --private-key FILE (and \
             --kid, the key's ID in the JWKS) to sign"
        ),
        _ => bail!("the node verifies RSA/ECDSA tokens: pass --private-key FILE to sign"),
    }
}

fn run(config: Config) -> anyhow::Result<()> {
    for warning in &config.warnings {
        tracing::warn!("config: {warning}");
    }
    let listeners = herald::server::Listeners::bind(&config.server)?;
    if let Some(dev) = &config.dev {
        tracing::warn!("{}", herald::devmode::banner(&config, dev));
    }
    let node = herald::build_node(&config)?;
    tracing::info!(
        addr = %config.server.listen,
        node = %config.server.name,
        version = herald::server::VERSION,
        "herald node listening"
    );
    actix_web::rt::System::new().block_on(herald::serve(config, node, listeners, signal()))
}

/// SIGINT (Ctrl-C) or SIGTERM (what Kubernetes sends).
async fn signal() {
    #[cfg(unix)]
    {
        use actix_web::rt::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
        tokio::select! {
            _ = actix_web::rt::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = actix_web::rt::signal::ctrl_c().await;
    tracing::info!("shutdown signal received");
}
