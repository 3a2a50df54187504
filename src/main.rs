//! The `berth` binary: CLI subcommands and (later) the daemon.

mod cli;
mod client;
mod commands;
mod daemon;

use std::process::ExitCode;

fn main() -> ExitCode {
    // First of all, before clap, tracing or any thread: a re-executed berth may be a
    // container's shim, which runs and never returns here.
    berth_runtime::shim::run_if_shim();
    let cli = cli::Cli::parse_args();
    // The daemon reports what it does; one-shot commands only what went wrong.
    let default_level = match cli.command {
        cli::Command::Daemon(_) => "info",
        _ => "warn",
    };
    init_tracing(cli.global.log_format, default_level);
    match commands::dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("berth: {err:#}");
            ExitCode::from(1)
        }
    }
}

fn init_tracing(format: cli::LogFormat, default_level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        cli::LogFormat::Text => builder.init(),
        cli::LogFormat::Json => builder.json().init(),
    }
}
