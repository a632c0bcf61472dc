//! Where log lines go and how they look: `server.log_format` ("text" or "json") on stdout,
//! levels from `HERALD_LOG` (else `RUST_LOG`, else `info`). Text is coloured only for a
//! terminal and never with `NO_COLOR` set (https://no-color.org), so a log collector or a
//! file never receives escape codes.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the process' subscriber. Call once, before the node starts.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("HERALD_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder
            .with_ansi(colour(std::io::stdout().is_terminal()))
            .init(),
        // Fields at the top level (`message`, `request_id`, ...) and the current span's
        // fields (a connection's request id) under `span`: what log pipelines index.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

/// Colour for a terminal, unless `NO_COLOR` is set to anything but the empty string.
fn colour(terminal: bool) -> bool {
    terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    #[test]
    fn no_colour_off_a_terminal() {
        assert!(!super::colour(false));
    }
}
