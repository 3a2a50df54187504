//! Command-line structure of the `berth` binary. Parsing only: each subcommand's behaviour lives in
//! its own file under `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version,
    about = "Lightweight single-node container orchestrator"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Directory for all persistent state (images, containers, logs).
    #[arg(
        long,
        global = true,
        env = "BERTH_ROOT",
        default_value = "/var/lib/berth"
    )]
    pub root: PathBuf,
    /// Directory for runtime state that does not survive a reboot.
    #[arg(
        long,
        global = true,
        env = "BERTH_RUN_DIR",
        default_value = "/run/berth"
    )]
    pub run_dir: PathBuf,
    /// Format of berth's own log lines on stderr (filter them with RUST_LOG).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command in a new container (like `docker run`).
    Run(RunArgs),
    /// Run a command in a running container (`berth container exec`).
    Exec(ExecArgs),
    /// Manage containers started with `berth run -d`.
    #[command(subcommand, alias = "containers")]
    Container(ContainerCommand),
    /// Manage images in the local image store.
    #[command(subcommand, alias = "images")]
    Image(ImageCommand),
    /// Print the JSON Schema of berth's manifests (all kinds, or one).
    Schema(SchemaArgs),
    /// Apply manifests. With `--dry-run`, parse, default and validate without a daemon.
    Apply(ApplyArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NetworkMode {
    /// Own network namespace with only loopback.
    None,
    /// The host's network namespace.
    Host,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Run in the background and print the container id.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Container name (default: generated).
    #[arg(long)]
    pub name: Option<String>,
    /// Environment variable KEY=VALUE (repeatable).
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Memory limit, as a Kubernetes quantity (64Mi) or docker size (64m).
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// CPU limit in cores (0.5) or millicores (500m).
    #[arg(long)]
    pub cpus: Option<String>,
    /// Relative CPU weight, as docker's --cpu-shares (default 1024).
    #[arg(long)]
    pub cpu_shares: Option<u64>,
    /// Maximum number of processes in the container.
    #[arg(long)]
    pub pids_limit: Option<i64>,
    /// Container hostname (default: the container's short id).
    #[arg(long)]
    pub hostname: Option<String>,
    /// Network: `none` (own namespace, loopback only) or `host`.
    #[arg(long, value_enum, default_value_t = NetworkMode::None)]
    pub network: NetworkMode,
    /// UID[:GID] to run as (overrides the image's User).
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long)]
    pub workdir: Option<PathBuf>,
    /// Override the image's Entrypoint (clears the image's Cmd, as Kubernetes `command` does).
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Mount the container's root filesystem read-only.
    #[arg(long)]
    pub read_only: bool,
    /// Add a Linux capability (e.g. NET_ADMIN).
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop a Linux capability (ALL drops every one).
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Image name[:tag] or digest.
    pub image: String,
    /// Command and arguments (override the image's Cmd).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Environment variable KEY=VALUE added to the container's (repeatable).
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Working directory inside the container (default: the container's).
    #[arg(short = 'w', long)]
    pub workdir: Option<PathBuf>,
    /// Kill the command after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// Container name, id or unique id prefix.
    pub container: String,
    /// Command and arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    /// List containers.
    #[command(alias = "list", alias = "ps")]
    Ls {
        /// Print only ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show a container's state and configuration as JSON.
    Inspect { container: String },
    /// Print a container's logs.
    Logs {
        /// Keep following new output until the container exits.
        #[arg(short, long)]
        follow: bool,
        /// Prefix each line with its timestamp.
        #[arg(short, long)]
        timestamps: bool,
        /// Only the last N lines.
        #[arg(long)]
        tail: Option<usize>,
        container: String,
    },
    /// Stop a container: SIGTERM (or its stop signal), then SIGKILL after the grace period.
    Stop {
        /// Seconds to wait before killing.
        #[arg(short = 't', long = "time", default_value_t = 10)]
        time: u64,
        container: String,
    },
    /// Send a signal to a container.
    Kill {
        #[arg(short, long, default_value = "KILL")]
        signal: String,
        container: String,
    },
    /// Run a command in a running container (like `docker exec`); exits with its exit code.
    Exec(ExecArgs),
    /// Remove a container (refuses a running one unless --force).
    Rm {
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Import an OCI image layout (directory or tar archive).
    Import {
        /// OCI layout directory or tar (`oci-archive`), optionally gzip-compressed.
        path: PathBuf,
        /// Name:tag to give the image (default: the layout's ref name annotation).
        #[arg(long)]
        tag: Option<String>,
    },
    /// Build a single-layer image from a root filesystem directory.
    Build {
        /// Root filesystem directory.
        dir: PathBuf,
        #[arg(long, short = 't')]
        tag: String,
        /// Entrypoint, one flag per argument (`--entrypoint /bin/sh --entrypoint -c`).
        #[arg(long, allow_hyphen_values = true)]
        entrypoint: Vec<String>,
        /// Default command, one flag per argument (`--cmd httpd --cmd -f`).
        #[arg(long, allow_hyphen_values = true)]
        cmd: Vec<String>,
        /// Default environment KEY=VALUE (repeatable).
        #[arg(long = "env", short = 'e')]
        env: Vec<String>,
        /// Default working directory.
        #[arg(long)]
        workdir: Option<String>,
        /// Default user.
        #[arg(long)]
        user: Option<String>,
    },
    /// List images.
    #[command(alias = "list")]
    Ls,
    /// Show an image's manifest and configuration as JSON.
    Inspect { image: String },
    /// Remove an image (refuses while a container uses it).
    Rm {
        #[arg(required = true)]
        images: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// One kind (e.g. Deployment); all kinds when omitted.
    pub kind: Option<String>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// File, directory or `-` for standard input (repeatable).
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// Parse, default and validate only; print what would be applied.
    #[arg(long)]
    pub dry_run: bool,
    /// Output format of the dry run.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Name)]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Name,
    Yaml,
    Json,
}
