//! Command-line interface of the `herald` binary (parsing here; `main.rs` dispatches, and the
//! submodules hold what the tool subcommands compute).

pub mod checktoken;
pub mod version;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Overrides;
use crate::config::generate::Format;

/// Herald: a real-time push server speaking the Centrifugo client protocol.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "herald",
    version,
    about = "Herald: real-time push server over WebSocket (Centrifugo-compatible)",
    long_about = "Herald: real-time push server over WebSocket (Centrifugo-compatible).\n\n\
        Configuration layers, later ones win: built-in defaults < the --config file \
        (TOML, YAML or JSON by extension) < environment variables HERALD_<SECTION>__<KEY> \
        (e.g. HERALD_AUTH__HMAC_SECRET, HERALD_SERVER__LISTEN) < flags.\n\n\
        `herald` with no subcommand is `herald run --dev`: a local trial node on 127.0.0.1 \
        with generated secrets and open channels. Production nodes run `herald run` with \
        auth.hmac_secret (or a public key) and api.key configured."
)]
pub struct Cli {
    /// Configuration file (.toml, .yaml, .yml or .json)
    #[arg(long, short, global = true, env = "HERALD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address to listen on, host:port (overrides server.listen)
    #[arg(long, global = true, value_name = "HOST:PORT")]
    pub listen: Option<String>,

    /// Log format: text or json (overrides server.log_format)
    #[arg(long, global = true, value_name = "FORMAT")]
    pub log_format: Option<String>,

    /// Dev mode: generated token secret and API key, any client may use any channel.
    /// Loopback listen and memory broker only. Implied when no subcommand is given.
    #[arg(long, global = true)]
    pub dev: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Run the node (with no subcommand: `run --dev`)
    Run,

    /// Print a connection JWT signed with the configured HMAC secret (or --private-key)
    Gentoken {
        /// User ID (the `sub` claim); an empty string makes an anonymous token
        #[arg(long)]
        user: String,

        /// Lifetime of the token, e.g. 30m, 1h, 7d
        #[arg(long, default_value = "1h")]
        ttl: humantime::Duration,

        /// Channels to subscribe the connection to on connect (comma-separated)
        #[arg(long, value_delimiter = ',')]
        channels: Vec<String>,

        /// Connection info attached to the client (JSON)
        #[arg(long, value_parser = parse_json)]
        info: Option<String>,

        /// PEM private key to sign with, for RSA/ECDSA and JWKS setups (default: the HMAC
        /// secret)
        #[arg(long, value_name = "PEM_FILE")]
        private_key: Option<PathBuf>,

        /// Key ID written in the token's header (`kid`): the JWKS key that verifies it
        #[arg(long, requires = "private_key")]
        kid: Option<String>,
    },

    /// Print a subscription JWT for one channel
    #[command(visible_alias = "gensubtoken")]
    Subtoken {
        /// User ID (the `sub` claim), must match the connection's user
        #[arg(long)]
        user: String,

        /// Channel the token grants
        #[arg(long)]
        channel: String,

        /// Lifetime of the token, e.g. 30m, 1h, 7d
        #[arg(long, default_value = "1h")]
        ttl: humantime::Duration,

        /// PEM private key to sign with, for RSA/ECDSA and JWKS setups (default: the HMAC
        /// secret)
        #[arg(long, value_name = "PEM_FILE")]
        private_key: Option<PathBuf>,

        /// Key ID written in the token's header (`kid`): the JWKS key that verifies it
        #[arg(long, requires = "private_key")]
        kid: Option<String>,
    },

    /// Verify a connection or subscription token with the configured key; print its claims
    ///
    /// Verifies as a node would (HMAC secret, public key, or the JWKS, fetched first) and
    /// prints the kind of token and its claims. Exit status: 0 valid, 3 invalid (signature,
    /// format, claims; the reason on stderr), 4 expired (claims still printed), 1 other errors.
    #[command(visible_alias = "checksubtoken")]
    Checktoken {
        /// The token; `-` reads it from standard input
        token: String,
    },

    /// Validate the configuration and print a summary (secrets redacted)
    #[command(visible_alias = "checkconfig")]
    CheckConfig,

    /// Write a configuration file with every key at its default and fresh secrets
    /// (auth.hmac_secret, api.key)
    Genconfig {
        /// File to write (default: standard output); an existing file is kept unless --force
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,

        /// toml (commented), yaml or json. Default: the --output file's extension, else toml
        #[arg(long, value_name = "FORMAT")]
        format: Option<Format>,

        /// Overwrite the --output file if it exists
        #[arg(long, requires = "output")]
        force: bool,
    },

    /// Print the version, the commit and build details
    Version {
        /// One JSON object instead of text
        #[arg(long)]
        json: bool,
    },
}

impl Cli {
    /// Flag values that override the file and the environment.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            listen: self.listen.clone(),
            log_format: self.log_format.clone(),
            dev: self.dev || self.command.is_none(),
            ..Overrides::default()
        }
    }

    /// The subcommand to run: [`Command::Run`] when none was given.
    pub fn command_or_run(&self) -> Command {
        self.command.clone().unwrap_or(Command::Run)
    }
}

fn parse_json(s: &str) -> Result<String, String> {
    serde_json::from_str::<serde_json::Value>(s)
        .map(|_| s.to_owned())
        .map_err(|e| format!("not valid JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("herald").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_subcommand_means_run_in_dev_mode() {
        let cli = parse(&[]);
        assert_eq!(cli.command, None);
        assert_eq!(cli.command_or_run(), Command::Run);
        assert!(cli.overrides().dev);
        assert_eq!(
            cli.overrides(),
            Overrides {
                dev: true,
                ..Overrides::default()
            }
        );
    }

    #[test]
    fn run_is_not_dev_mode_unless_asked() {
        let run = parse(&["run"]);
        assert_eq!(run.command_or_run(), Command::Run);
        assert_eq!(run.overrides(), Overrides::default());
        assert!(parse(&["run", "--dev"]).overrides().dev);
        assert!(parse(&["--dev", "run"]).overrides().dev);
        // Other subcommands read the node's configuration as it is.
        assert!(!parse(&["check-config"]).overrides().dev);
        assert!(parse(&["check-config", "--dev"]).overrides().dev);
    }

    #[test]
    fn global_flags_before_and_after_subcommand() {
        let cli = parse(&["--config", "h.toml", "--listen", "0.0.0.0:9000", "run"]);
        assert_eq!(cli.config, Some(PathBuf::from("h.toml")));
        assert_eq!(cli.overrides().listen.as_deref(), Some("0.0.0.0:9000"));

        let cli = parse(&["check-config", "-c", "h.yaml", "--listen", "[::1]:1"]);
        assert_eq!(cli.command, Some(Command::CheckConfig));
        assert_eq!(cli.config, Some(PathBuf::from("h.yaml")));
        assert_eq!(cli.listen.as_deref(), Some("[::1]:1"));
    }

    #[test]
    fn gentoken() {
        let cli = parse(&[
            "gentoken",
            "--user",
            "42",
            "--ttl",
            "30m",
            "--channels",
            "news,chat:room1",
            "--info",
            r#"{"name":"Ann"}"#,
            "--private-key",
            "key.pem",
            "--kid",
            "key-2",
        ]);
        let Some(Command::Gentoken {
            user,
            ttl,
            channels,
            info,
            private_key,
            kid,
        }) = cli.command
        else {
            panic!("not gentoken: {cli:?}");
        };
        assert_eq!(user, "42");
        assert_eq!(Duration::from(ttl), Duration::from_secs(30 * 60));
        assert_eq!(channels, ["news", "chat:room1"]);
        assert_eq!(info.as_deref(), Some(r#"{"name":"Ann"}"#));
        assert_eq!(private_key, Some(PathBuf::from("key.pem")));
        assert_eq!(kid.as_deref(), Some("key-2"));
    }

    #[test]
    fn gentoken_defaults() {
        let Some(Command::Gentoken {
            user,
            ttl,
            channels,
            info,
            private_key,
            kid,
        }) = parse(&["gentoken", "--user", ""]).command
        else {
            panic!("not gentoken");
        };
        assert_eq!(user, "");
        assert_eq!(Duration::from(ttl), Duration::from_secs(3600));
        assert!(channels.is_empty());
        assert_eq!(info, None);
        assert_eq!(private_key, None);
        assert_eq!(kid, None);
    }

    #[test]
    fn subtoken() {
        let Some(Command::Subtoken {
            user,
            channel,
            ttl,
            private_key,
            kid,
        }) = parse(&[
            "subtoken",
            "--user",
            "42",
            "--channel",
            "chat:room1",
            "--ttl",
            "2h",
        ])
        .command
        else {
            panic!("not subtoken");
        };
        assert_eq!(user, "42");
        assert_eq!(channel, "chat:room1");
        assert_eq!(Duration::from(ttl), Duration::from_secs(7200));
        assert_eq!((private_key, kid), (None, None));

        let signed = parse(&[
            "gensubtoken",
            "--user",
            "1",
            "--channel",
            "c",
            "--private-key",
            "ec.pem",
            "--kid",
            "ec-1",
        ]);
        let Some(Command::Subtoken {
            private_key, kid, ..
        }) = signed.command
        else {
            panic!("gensubtoken is not subtoken");
        };
        assert_eq!(private_key, Some(PathBuf::from("ec.pem")));
        assert_eq!(kid.as_deref(), Some("ec-1"));
    }

    #[test]
    fn aliases_and_tool_commands() {
        assert_eq!(parse(&["checkconfig"]).command, Some(Command::CheckConfig));
        assert_eq!(
            parse(&["checktoken", "-"]).command,
            Some(Command::Checktoken { token: "-".into() })
        );
        assert_eq!(
            parse(&["checksubtoken", "t"]).command,
            Some(Command::Checktoken { token: "t".into() })
        );
        assert_eq!(
            parse(&["version", "--json"]).command,
            Some(Command::Version { json: true })
        );
        assert_eq!(
            parse(&["genconfig"]).command,
            Some(Command::Genconfig {
                output: None,
                format: None,
                force: false
            })
        );
        assert_eq!(
            parse(&["genconfig", "-o", "h.yml", "--format", "yaml", "--force"]).command,
            Some(Command::Genconfig {
                output: Some(PathBuf::from("h.yml")),
                format: Some(Format::Yaml),
                force: true
            })
        );
    }

    #[test]
    fn bad_input_is_rejected() {
        let bad: &[&[&str]] = &[
            &["gentoken"],                                                // --user missing
            &["gentoken", "--user", "1", "--ttl", "soon"],                // bad duration
            &["gentoken", "--user", "1", "--info", "{oops"],              // bad JSON
            &["gentoken", "--user", "1", "--kid", "k"], // a kid without a private key
            &["subtoken", "--user", "1"],               // --channel missing
            &["subtoken", "--user", "1", "--channel", "c", "--kid", "k"], // kid without key
            &["checktoken"],                            // no token
            &["genconfig", "--format", "ini"],          // unknown format
            &["genconfig", "--force"],                  // --force without --output
            &["frobnicate"],
        ];
        for args in bad {
            let res = Cli::try_parse_from(std::iter::once("herald").chain(args.iter().copied()));
            assert!(res.is_err(), "{args:?} should fail");
        }
    }
}
