use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use clap::Parser;
use herald::cli::checktoken::{self, Verdict};
use herald::cli::version::BuildInfo;
use herald::cli::{Cli, Command};
use herald::config::Config;
use herald::config::generate::{self, Format};
use herald_engine::auth::{HmacAlg, NewConnectToken, NewSubscribeToken, TokenSigner};
use herald_engine::config::TokenKey;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Loaded only by the commands that need it: `version` and `genconfig` work on a machine
    // with no (or a broken) configuration. Logging follows the configuration's format, so it
    // starts with it (each command loads once).
    let load = || -> anyhow::Result<Config> {
        let config = Config::load(cli.config.as_deref(), None, &cli.overrides())?;
        herald::logging::init(config.server.log_format);
        Ok(config)
    };
    match cli.command_or_run() {
        Command::Version { json } => {
            let info = BuildInfo::current();
            print!("{}", if json { info.json() } else { info.text() });
            Ok(())
        }
        Command::Genconfig {
            output,
            format,
            force,
        } => genconfig(output.as_deref(), format, force),
        Command::Checktoken { token } => checktoken(&load()?, &token),
        Command::Run => run(load()?),
        Command::CheckConfig => {
            println!("configuration is valid\n{}", load()?.summary());
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
            let signer = signer(&load()?, private_key.as_deref(), kid)?;
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
        Command::Subtoken {
            user,
            channel,
            ttl,
            private_key,
            kid,
        } => {
            let signer = signer(&load()?, private_key.as_deref(), kid)?;
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

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn expiry(ttl: Duration) -> u64 {
    unix_now() + ttl.as_secs()
}

/// Tokens are signed with the configured HMAC secret, or with a private key for RSA/ECDSA setups.
/// `kid` goes in the header of what a private key signs (the JWKS key that verifies it).
fn signer(
    config: &Config,
    private_key: Option<&std::path::Path>,
    kid: Option<String>,
) -> anyhow::Result<TokenSigner> {
    if let Some(path) = private_key {
        let pem = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
        let signer = TokenSigner::from_pem(&pem)?;
        return Ok(match kid {
            Some(kid) => signer.with_kid(kid),
            None => signer,
        });
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

/// Prints the claims of a token the node accepts; exits with [`checktoken::EXIT_INVALID`] or
/// [`checktoken::EXIT_EXPIRED`] for one it refuses, so scripts can tell them from other errors.
fn checktoken(config: &Config, token: &str) -> anyhow::Result<()> {
    if config.dev.is_some() {
        bail!(
            "no token key is configured (dev mode generates a new one at every start); set the \
             node's auth.hmac_secret (or public key, or jwks_url) to check its tokens"
        );
    }
    let token = if token == "-" {
        std::io::read_to_string(std::io::stdin()).context("read the token from stdin")?
    } else {
        token.to_owned()
    };
    let verifier = herald_engine::auth::TokenVerifier::new(&config.token)?;
    let now = unix_now();
    let verdict = actix_web::rt::System::new().block_on(checktoken::check(&verifier, &token, now));
    match &verdict {
        Verdict::Valid(claims) => print!("valid {}", claims.describe(now)),
        Verdict::Expired(claims) => {
            print!("expired {}", claims.describe(now));
            eprintln!("token rejected: token expired");
        }
        Verdict::Invalid(err) => eprintln!("token rejected: {err}"),
    }
    match verdict.exit_code() {
        0 => Ok(()),
        code => {
            // `exit` skips the flush that returning from main would do.
            let _ = std::io::Write::flush(&mut std::io::stdout());
            std::process::exit(code)
        }
    }
}

/// Writes the generated configuration to `output` (never over an existing file unless
/// `force`), readable by its owner only since it holds secrets; or prints it.
fn genconfig(
    output: Option<&std::path::Path>,
    format: Option<Format>,
    force: bool,
) -> anyhow::Result<()> {
    let by_extension = output.map(|path| {
        path.extension()
            .and_then(|e| e.to_str())
            .and_then(Format::from_extension)
            .with_context(|| {
                format!(
                    "{}: the file name must end in .toml, .yaml, .yml or .json (--config picks \
                     the format by the extension)",
                    path.display()
                )
            })
    });
    let format = match (format, by_extension.transpose()?) {
        (Some(asked), Some(by_ext)) if asked != by_ext => bail!(
            "--format {} does not match the extension of {} (--config reads a .{} file as {})",
            asked.extension(),
            output.map(|p| p.display().to_string()).unwrap_or_default(),
            by_ext.extension(),
            by_ext.extension()
        ),
        (asked, by_ext) => asked.or(by_ext).unwrap_or_default(),
    };
    let text = generate::generate(format)?;
    let Some(path) = output else {
        print!("{text}");
        return Ok(());
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = match options.open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            bail!("{} exists; pass --force to overwrite it", path.display())
        }
        other => other.with_context(|| format!("write {}", path.display()))?,
    };
    std::io::Write::write_all(&mut file, text.as_bytes())
        .with_context(|| format!("write {}", path.display()))?;
    eprintln!(
        "wrote {} ({}); it holds the token secret and the API key: keep it private",
        path.display(),
        format.extension()
    );
    Ok(())
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
        version = herald::build_info::VERSION,
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
