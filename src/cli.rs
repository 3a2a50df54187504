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

impl Cli {
    /// The command line of this process; exits with clap's message on an error or for help.
    pub fn parse_args() -> Self {
        let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        Self::parse_run(&args).unwrap_or_else(|| Self::parse_from(args))
    }

    /// `berth run`, the command whose latency users measure, parsed against a tree of only its
    /// own and the global flags: building every command's flags first costs more than some of
    /// a container's set-up. `None` for anything else, and for help or an error, which the full
    /// tree then reports exactly as always.
    fn parse_run(args: &[std::ffi::OsString]) -> Option<Self> {
        use clap::FromArgMatches;
        let run = RunArgs::augment_args(clap::Command::new("run"));
        let matches = GlobalArgs::augment_args(clap::Command::new("berth"))
            .subcommand(run)
            .try_get_matches_from(args)
            .ok()?;
        let ("run", sub) = matches.subcommand()? else {
            return None;
        };
        Some(Cli {
            global: GlobalArgs::from_arg_matches(&matches).ok()?,
            command: Command::Run(RunArgs::from_arg_matches(sub).ok()?),
        })
    }
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
    /// The daemon's API socket (the client commands: apply, get, describe, ...).
    #[arg(
        long,
        global = true,
        env = "BERTH_SOCKET",
        default_value = "/run/berth/berth.sock"
    )]
    pub socket: PathBuf,
    /// Talk to the daemon over TCP instead of the socket: `http://HOST:PORT`.
    #[arg(long, global = true, env = "BERTH_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// Bearer token for `--server`.
    #[arg(long, global = true, env = "BERTH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the bearer token for `--server` (takes precedence over `--token`).
    #[arg(long, global = true, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
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
    /// Run a command in a pod's container through the daemon (like `kubectl exec`).
    Exec(PodExecArgs),
    /// Manage containers started with `berth run -d`.
    #[command(subcommand, alias = "containers")]
    Container(ContainerCommand),
    /// Manage images in the local image store.
    #[command(subcommand, alias = "images")]
    Image(ImageCommand),
    /// Print the JSON Schema of berth's manifests (all kinds, or one).
    Schema(SchemaArgs),
    /// Apply manifests through the daemon. `--dry-run` checks them locally without a daemon.
    Apply(ApplyArgs),
    /// List objects as a table (like `kubectl get`).
    Get(GetArgs),
    /// Show an object in detail, with its events.
    Describe(DescribeArgs),
    /// Delete objects by name or by the manifests that created them.
    Delete(DeleteArgs),
    /// Set the number of replicas of a Deployment or ReplicaSet.
    Scale(ScaleArgs),
    /// Manage the rollout of a Deployment.
    #[command(subcommand)]
    Rollout(RolloutCommand),
    /// Change fields of objects (`set image`).
    #[command(subcommand)]
    Set(SetCommand),
    /// Print the logs of a pod's container.
    Logs(LogsArgs),
    /// List events.
    Events(EventsArgs),
    /// Show CPU and memory usage of pods or the node (like `kubectl top`).
    #[command(subcommand)]
    Top(TopCommand),
    /// Run the daemon: store, controllers, node agent and API (the unix socket of `--socket`,
    /// and TCP with `--listen`, which needs `--token-file`).
    Daemon(DaemonArgs),
}

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Also serve the API over TCP on this address (`127.0.0.1:6443`); needs `--token-file`.
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<std::net::SocketAddr>,
    /// Apply every manifest in this directory at start and on every change; removing a file
    /// deletes what it created.
    #[arg(long, value_name = "DIR")]
    pub manifests: Option<PathBuf>,
    /// First CrashLoopBackOff delay (Kubernetes: 10s); pods may override it by annotation.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub backoff_initial: std::time::Duration,
    /// Longest CrashLoopBackOff delay (Kubernetes: 5m).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub backoff_max: std::time::Duration,
    /// The host bridge pods attach to.
    #[arg(long, value_name = "NAME", default_value = "berth0")]
    pub bridge: String,
    /// Pod addresses (the bridge takes the first one).
    #[arg(long, value_name = "CIDR", default_value = "10.73.0.0/16")]
    pub pod_cidr: String,
}

fn parse_duration(value: &str) -> Result<std::time::Duration, String> {
    berth_api::duration::parse_duration(value).map_err(|err| err.to_string())
}

/// `-n NAMESPACE`.
#[derive(Debug, Clone, Args)]
pub struct NamespaceArg {
    /// Namespace of the objects.
    #[arg(short = 'n', long = "namespace", default_value = "default")]
    pub namespace: String,
}

#[derive(Debug, Args)]
pub struct PodExecArgs {
    #[command(flatten)]
    pub namespace: NamespaceArg,
    /// Container name (default: the pod's only container).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Kill the command after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// Pod name, or `deployment/NAME` for one of its pods.
    pub pod: String,
    /// Command and arguments, after `--`.
    #[arg(required = true, last = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    #[command(flatten)]
    pub namespace: NamespaceArg,
    /// List across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Label selector (`app=web,tier!=db`).
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Field selector (`status.phase=Running`).
    #[arg(long)]
    pub field_selector: Option<String>,
    /// Output format: wide, yaml, json or name.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<GetOutput>,
    /// After listing, watch for changes.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Omit the table header.
    #[arg(long)]
    pub no_headers: bool,
    /// Kind (`pods`, `deploy`, `svc`, `all`, ... or `KIND/NAME`), then names.
    #[arg(required = true)]
    pub args: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GetOutput {
    Wide,
    Yaml,
    Json,
    Name,
}

#[derive(Debug, Args)]
pub struct DescribeArgs {
    #[command(flatten)]
    pub namespace: NamespaceArg,
    /// Kind and name (`pod web-1`, `deployment/web`).
    #[arg(required = true)]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub namespace: NamespaceArg,
    /// Delete the objects of these manifests (file, directory or `-`).
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<PathBuf>,
    /// Read directories given with -f recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Seconds a pod gets to stop before it is killed.
    #[arg(long)]
    pub grace_period: Option<i64>,
    /// Stop pods at once (`--grace-period 1`).
    #[arg(long)]
    pub now: bool,
    /// Kind then names, or `KIND/NAME`s.
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ScaleArgs {
    #[command(flatten)]
    pub namespace: NamespaceArg,
    /// The new number of replicas.
    #[arg(long)]
    pub replicas: i32,
    /// `deployment/NAME`, `deployment NAME` or `rs NAME`.
    #[arg(required = true)]
    pub args: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Wait for a rollout to finish.
    Status(RolloutStatusArgs),
    /// List the revisions of a Deployment.
    History(RolloutHistoryArgs),
    /// Roll back to the previous (or a given) revision.
    Undo(RolloutUndoArgs),
    /// Restart every pod of a Deployment by rolling out a new revision.
    Restart(RolloutTargetArgs),
    /// Pause the rollout of a Deployment.
    Pause(RolloutTargetArgs),
    /// Resume a paused Deployment.
    Resume(RolloutTargetArgs),
}

#[derive(Debug, Args)]
pub struct RolloutTargetArgs {
    #[command(flatten)]
    pub namespace: NamespaceArg,
    /// `deployment/NAME` or `deployment NAME`.
    #[arg(required = true)]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RolloutStatusArgs {
    #[command(flatten)]
    pub target: RolloutTargetArgs,
    /// Give up after this long (`30s`, `5m`, `1h`; 0 waits forever).
    #[arg(long, default_value = "0s")]
    pub timeout: String,
    /// Watch until the rollout finishes (`-w=false` prints the status once).
    #[arg(
        short = 'w',
        long,
        default_value_t = true,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub watch: bool,
}

#[derive(Debug, Args)]
pub struct RolloutHistoryArgs {
    #[command(flatten)]
    pub target: RolloutTargetArgs,
    /// Show the pod template of one revision.
    #[arg(long)]
    pub revision: Option<i64>,
}

#[derive(Debug, Args)]
pub struct RolloutUndoArgs {
    #[command(flatten)]
    pub target: RolloutTargetArgs,
    /// The revision to roll back to (0: the previous one).
    #[arg(long, default_value_t = 0)]
    pub to_revision: i64,
}

#[derive(Debug, Subcommand)]
pub enum SetCommand {
    /// Change container images: `set image deployment/web web=busybox:1.37`.
    Image(SetImageArgs),
}

#[derive(Debug, Args)]
pub struct SetImageArgs {
    #[command(flatten)]
    pub namespace: NamespaceArg,
    /// `deployment/NAME` (or `deployment NAME`), then `CONTAINER=IMAGE`... (`*=IMAGE`: all).
    #[arg(required = true, num_args = 2..)]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub namespace: NamespaceArg,
    /// Container name (default: the pod's only container).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Keep streaming new output.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// The log of the previous, terminated instance of the container.
    #[arg(short = 'p', long)]
    pub previous: bool,
    /// Only the last N lines.
    #[arg(long)]
    pub tail: Option<u64>,
    /// Prefix each line with its RFC 3339 timestamp.
    #[arg(long)]
    pub timestamps: bool,
    /// Pod name, or `deployment/NAME` (its first pod).
    pub pod: String,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    #[command(flatten)]
    pub namespace: NamespaceArg,
    /// Events of every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// After listing, watch for new events.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Only the events of one object: `KIND/NAME` (`pod/web-1`).
    #[arg(long = "for", value_name = "KIND/NAME")]
    pub for_object: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TopCommand {
    /// CPU (a rate over one second) and memory (working set) of each pod.
    #[command(alias = "pod", alias = "po")]
    Pods(TopPodsArgs),
    /// CPU and memory of the node, and of its pods in total.
    #[command(alias = "node", alias = "no")]
    Nodes,
}

#[derive(Debug, Args)]
pub struct TopPodsArgs {
    #[command(flatten)]
    pub namespace: NamespaceArg,
    /// Pods of every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
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
    /// Lift the isolation docker's `--privileged` lifts: every capability and device, no
    /// seccomp filter, no masked or read-only /proc paths.
    #[arg(long)]
    pub privileged: bool,
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
    #[command(flatten)]
    pub namespace: NamespaceArg,
    /// File, directory or `-` for standard input (repeatable).
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// Read directories recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Delete objects that came from these files (or directories) but are no longer in them.
    #[arg(long)]
    pub prune: bool,
    /// `client` (or no value): parse, default and validate locally, without a daemon.
    /// `server`: the daemon checks everything and stores nothing.
    #[arg(
        long,
        value_enum,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "client"
    )]
    pub dry_run: Option<DryRun>,
    /// Output format of a client dry run.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Name)]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DryRun {
    None,
    Client,
    Server,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Name,
    Yaml,
    Json,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("berth").chain(args.iter().copied()))
            .unwrap_or_else(|err| panic!("{args:?}: {err}"))
    }

    #[test]
    fn run_parses_the_same_through_its_own_tree_and_nothing_else_does() {
        let argv = |args: &[&str]| -> Vec<std::ffi::OsString> {
            std::iter::once("berth")
                .chain(args.iter().copied())
                .map(Into::into)
                .collect()
        };
        for args in [
            vec!["run", "--rm", "busybox", "true"],
            vec![
                "--root", "/r", "run", "-d", "--name", "x", "-e", "A=1", "img", "sh", "-c", "x",
            ],
            vec![
                "run",
                "--run-dir=/x",
                "--memory",
                "64Mi",
                "--cpus",
                "0.5",
                "img",
                "--",
                "-v",
            ],
            vec![
                "run",
                "--privileged",
                "--network",
                "host",
                "-u",
                "1:2",
                "img",
            ],
        ] {
            let fast = Cli::parse_run(&argv(&args)).unwrap_or_else(|| panic!("{args:?}"));
            assert_eq!(
                format!("{fast:?}"),
                format!("{:?}", parse(&args)),
                "{args:?}"
            );
        }
        for args in [
            vec!["get", "pods"],
            vec!["run", "--help"],
            vec!["run"],
            vec!["run", "--bogus", "img"],
            vec!["--version"],
            vec!["help", "run"],
            vec!["container", "ls"],
        ] {
            assert!(Cli::parse_run(&argv(&args)).is_none(), "{args:?}");
        }
    }

    #[test]
    fn client_commands_parse_like_kubectl() {
        let Command::Exec(exec) = parse(&["exec", "web-1", "-c", "web", "--", "ls", "-l"]).command
        else {
            panic!("exec");
        };
        assert_eq!(exec.command, ["ls", "-l"]);
        assert_eq!(exec.container.as_deref(), Some("web"));

        let Command::Get(get) = parse(&["get", "po", "-A", "-o", "wide", "-w"]).command else {
            panic!("get");
        };
        assert!(get.all_namespaces && get.watch);
        assert_eq!(get.output, Some(GetOutput::Wide));

        for (args, expected) in [
            (vec!["apply", "-f", "x.yaml"], None),
            (
                vec!["apply", "--dry-run", "-f", "x.yaml"],
                Some(DryRun::Client),
            ),
            (
                vec!["apply", "--dry-run=server", "-f", "x.yaml"],
                Some(DryRun::Server),
            ),
        ] {
            let Command::Apply(apply) = parse(&args).command else {
                panic!("apply");
            };
            assert_eq!(apply.dry_run, expected, "{args:?}");
        }

        for (args, watch) in [
            (vec!["rollout", "status", "deploy/web"], true),
            (vec!["rollout", "status", "deploy/web", "-w"], true),
            (vec!["rollout", "status", "deploy/web", "-w=false"], false),
            (
                vec!["rollout", "status", "deploy/web", "--watch=false"],
                false,
            ),
        ] {
            let Command::Rollout(RolloutCommand::Status(status)) = parse(&args).command else {
                panic!("rollout status");
            };
            assert_eq!(status.watch, watch, "{args:?}");
        }

        let cli = parse(&[
            "--server",
            "http://127.0.0.1:6443",
            "--token",
            "t",
            "get",
            "pods",
        ]);
        assert_eq!(cli.global.server.as_deref(), Some("http://127.0.0.1:6443"));
        let cli = parse(&["get", "pods", "--socket", "/tmp/s.sock", "-n", "prod"]);
        assert_eq!(cli.global.socket, std::path::Path::new("/tmp/s.sock"));
        let Command::Get(get) = cli.command else {
            panic!("get");
        };
        assert_eq!(get.namespace.namespace, "prod");
        assert!(Cli::try_parse_from(["berth", "exec", "web-1", "ls"]).is_err());
    }
}
