//! Test doubles for the agent (behind the `testing` feature): a scripted [`FakeRuntime`], like
//! Nomad's mock driver, so pod logic can be tested without root and in paused tokio time.
//!
//! Containers are scripted by name (or, failing that, by image): how each successive run ends
//! ([`Run`]), and what successive `exec`s return ([`ExecScript`]). Every call is recorded with the
//! tokio clock's [`Instant`], so tests assert *when* things happened in virtual time.

use std::{
    collections::{BTreeMap, HashMap},
    net::{IpAddr, Ipv4Addr},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use async_trait::async_trait;
use jiff::Timestamp;
use tokio::{sync::watch, time::Instant};

use crate::runtime::{
    ContainerId, ContainerInfo, ContainerRuntime, ContainerSpec, ContainerState, ContainerStats,
    ExecResult, ExitInfo, LabelFilter, Result, RuntimeError, SandboxId, SandboxInfo, SandboxSpec,
    Signal,
};

/// How one run of a scripted container ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Run {
    /// Runs until stopped or killed.
    Forever,
    /// Exits by itself `after` its start with `code`.
    Exit { after: Duration, code: i32 },
    /// Is OOM-killed `after` its start (SIGKILL, exit code 137).
    OomKill { after: Duration },
    /// `start` fails with [`RuntimeError::Start`] carrying `message`.
    FailStart { message: String },
}

/// What one `exec` in a scripted container does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecScript {
    Exit {
        code: i32,
        stdout: String,
    },
    /// Never finishes: `exec` times out.
    Hang,
    /// `exec` itself fails (the runtime could not run the command).
    Fail {
        message: String,
    },
}

impl ExecScript {
    pub fn ok() -> Self {
        Self::Exit {
            code: 0,
            stdout: String::new(),
        }
    }

    pub fn fail(code: i32, stdout: &str) -> Self {
        Self::Exit {
            code,
            stdout: stdout.to_owned(),
        }
    }
}

/// The behaviour of the containers of one name or image. Runs and exec results are used in order;
/// the last one repeats. The default runs forever and every exec exits 0. Exec results can be
/// scripted per command (several probes of one container), falling back to the general sequence.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Script {
    runs: Vec<Run>,
    execs: Vec<ExecScript>,
    command_execs: BTreeMap<String, Vec<ExecScript>>,
    ignores_stop_signal: bool,
}

impl Script {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the behaviour of the next run (the next container of this name started).
    pub fn then(mut self, run: Run) -> Self {
        self.runs.push(run);
        self
    }

    /// Appends the result of the next exec in a container of this name.
    pub fn exec(mut self, exec: ExecScript) -> Self {
        self.execs.push(exec);
        self
    }

    /// `n` execs with the same result.
    pub fn execs(mut self, n: usize, exec: ExecScript) -> Self {
        self.execs.extend(std::iter::repeat_n(exec, n));
        self
    }

    /// Appends the result of the next exec of `command` (argv joined by spaces).
    pub fn command_exec(mut self, command: &str, exec: ExecScript) -> Self {
        self.command_execs
            .entry(command.to_owned())
            .or_default()
            .push(exec);
        self
    }

    /// `n` execs of `command` with the same result.
    pub fn command_execs(mut self, command: &str, n: usize, exec: ExecScript) -> Self {
        self.command_execs
            .entry(command.to_owned())
            .or_default()
            .extend(std::iter::repeat_n(exec, n));
        self
    }

    /// The process ignores its stop signal: `stop` has to wait out the grace period and SIGKILL.
    pub fn ignoring_stop_signal(mut self) -> Self {
        self.ignores_stop_signal = true;
        self
    }
}

/// A recorded call, with the tokio clock's time it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub at: Instant,
    pub op: Op,
}

/// The operations of [`ContainerRuntime`], with the container's name where one is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    CreateSandbox {
        name: String,
    },
    ListSandboxes {
        filter: LabelFilter,
    },
    DeleteSandbox {
        id: SandboxId,
    },
    Create {
        name: String,
        image: String,
    },
    Start {
        id: ContainerId,
        name: String,
    },
    Wait {
        id: ContainerId,
    },
    Stop {
        id: ContainerId,
        name: String,
        grace: Duration,
        signal: Option<Signal>,
    },
    Kill {
        id: ContainerId,
        name: String,
        signal: Signal,
    },
    Delete {
        id: ContainerId,
    },
    Inspect {
        id: ContainerId,
    },
    List {
        filter: LabelFilter,
    },
    Exec {
        id: ContainerId,
        name: String,
        argv: Vec<String>,
    },
    Stats {
        id: ContainerId,
    },
}

/// A [`ContainerRuntime`] that runs nothing: containers follow their [`Script`] in tokio time.
/// Cheap to clone; clones share state.
#[derive(Clone)]
pub struct FakeRuntime {
    shared: Arc<Shared>,
}

struct Shared {
    /// Wall-clock timestamps are derived from the tokio clock: `epoch.1 + (now - epoch.0)`.
    epoch: (Instant, Timestamp),
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    by_name: HashMap<String, Script>,
    by_image: HashMap<String, Script>,
    /// Runs started (or attempted) per container name.
    runs: HashMap<String, usize>,
    /// Execs done per container name and command (`None`: the general sequence).
    execs: HashMap<(String, Option<String>), usize>,
    containers: BTreeMap<ContainerId, FakeContainer>,
    sandboxes: BTreeMap<SandboxId, SandboxInfo>,
    calls: Vec<Call>,
    next_id: u64,
}

struct FakeContainer {
    info: ContainerInfo,
    spec: ContainerSpec,
    exit: watch::Sender<Option<ExitInfo>>,
    /// Bumped on every start so that a stale scheduled exit does nothing.
    generation: u64,
}

impl Default for FakeRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeRuntime {
    pub fn new() -> Self {
        let epoch = (
            Instant::now(),
            "2026-01-01T00:00:00Z".parse().expect("valid timestamp"),
        );
        Self {
            shared: Arc::new(Shared {
                epoch,
                state: Mutex::default(),
            }),
        }
    }

    /// Scripts the containers named `name` (takes precedence over [`Self::script_image`]).
    pub fn script(&self, name: &str, script: Script) -> &Self {
        self.state().by_name.insert(name.to_owned(), script);
        self
    }

    /// Scripts the containers created from `image`.
    pub fn script_image(&self, image: &str, script: Script) -> &Self {
        self.state().by_image.insert(image.to_owned(), script);
        self
    }

    /// Every call made so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// When containers named `name` were started (successfully or not).
    pub fn start_times(&self, name: &str) -> Vec<Instant> {
        let state = self.state();
        state
            .calls
            .iter()
            .filter(|call| matches!(&call.op, Op::Start { name: n, .. } if n == name))
            .map(|call| call.at)
            .collect()
    }

    /// The wall-clock time the fake reports for a tokio instant.
    pub fn timestamp(&self, at: Instant) -> Timestamp {
        let (epoch, base) = self.shared.epoch;
        let since = at.saturating_duration_since(epoch);
        base + jiff::SignedDuration::try_from(since).expect("test durations fit")
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn record(state: &mut State, op: Op) {
        state.calls.push(Call {
            at: Instant::now(),
            op,
        });
    }

    fn script_for(state: &State, spec: &ContainerSpec) -> Script {
        state
            .by_name
            .get(&spec.name)
            .or_else(|| state.by_image.get(&spec.image))
            .cloned()
            .unwrap_or_default()
    }

    /// Ends a running container (no-op when it is not running or was restarted since).
    fn finish(
        &self,
        id: &ContainerId,
        generation: u64,
        exit_code: i32,
        signal: Option<Signal>,
        oom_killed: bool,
    ) {
        let now = self.timestamp(Instant::now());
        let mut state = self.state();
        let Some(container) = state.containers.get_mut(id) else {
            return;
        };
        if container.generation != generation || container.info.state != ContainerState::Running {
            return;
        }
        let exit = ExitInfo {
            exit_code,
            signal,
            oom_killed,
            started_at: container.info.started_at.unwrap_or(now),
            finished_at: now,
        };
        container.info.state = ContainerState::Exited(exit.clone());
        container.info.pid = None;
        container.exit.send_replace(Some(exit));
    }

    fn running(state: &State, id: &ContainerId, operation: &'static str) -> Result<(String, u64)> {
        let container = state
            .containers
            .get(id)
            .ok_or_else(|| RuntimeError::ContainerNotFound { id: id.clone() })?;
        match &container.info.state {
            ContainerState::Running => Ok((container.info.name.clone(), container.generation)),
            other => Err(RuntimeError::InvalidState {
                id: id.clone(),
                operation,
                state: other.clone(),
            }),
        }
    }
}

#[async_trait]
impl ContainerRuntime for FakeRuntime {
    async fn create_sandbox(&self, spec: SandboxSpec) -> Result<SandboxInfo> {
        let mut state = self.state();
        Self::record(
            &mut state,
            Op::CreateSandbox {
                name: spec.name.clone(),
            },
        );
        state.next_id += 1;
        let n = state.next_id;
        let ip = (!spec.host_network)
            .then(|| IpAddr::V4(Ipv4Addr::new(10, 88, (n >> 8) as u8, n as u8)));
        let info = SandboxInfo {
            id: SandboxId(format!("sandbox-{n}")),
            ip,
            labels: spec.labels,
        };
        state.sandboxes.insert(info.id.clone(), info.clone());
        Ok(info)
    }

    async fn list_sandboxes(&self, filter: &LabelFilter) -> Result<Vec<SandboxInfo>> {
        let mut state = self.state();
        Self::record(
            &mut state,
            Op::ListSandboxes {
                filter: filter.clone(),
            },
        );
        Ok(state
            .sandboxes
            .values()
            .filter(|sandbox| filter.matches(&sandbox.labels))
            .cloned()
            .collect())
    }

    async fn delete_sandbox(&self, id: &SandboxId) -> Result<()> {
        let mut state = self.state();
        Self::record(&mut state, Op::DeleteSandbox { id: id.clone() });
        state.sandboxes.remove(id);
        Ok(())
    }

    async fn create(&self, spec: ContainerSpec) -> Result<ContainerId> {
        let now = self.timestamp(Instant::now());
        let mut state = self.state();
        Self::record(
            &mut state,
            Op::Create {
                name: spec.name.clone(),
                image: spec.image.clone(),
            },
        );
        if let Some(sandbox) = &spec.sandbox
            && !state.sandboxes.contains_key(sandbox)
        {
            return Err(RuntimeError::SandboxNotFound {
                id: sandbox.clone(),
            });
        }
        state.next_id += 1;
        let id = ContainerId(format!("{}-{}", spec.name, state.next_id));
        let info = ContainerInfo {
            id: id.clone(),
            name: spec.name.clone(),
            image: spec.image.clone(),
            state: ContainerState::Created,
            pid: None,
            sandbox: spec.sandbox.clone(),
            labels: spec.labels.clone(),
            created_at: now,
            started_at: None,
        };
        let (exit, _) = watch::channel(None);
        state.containers.insert(
            id.clone(),
            FakeContainer {
                info,
                spec,
                exit,
                generation: 0,
            },
        );
        Ok(id)
    }

    async fn start(&self, id: &ContainerId) -> Result<()> {
        let now = self.timestamp(Instant::now());
        let (run, generation) = {
            let mut state = self.state();
            let container = state
                .containers
                .get(id)
                .ok_or_else(|| RuntimeError::ContainerNotFound { id: id.clone() })?;
            let name = container.info.name.clone();
            if container.info.state != ContainerState::Created {
                let state_now = container.info.state.clone();
                Self::record(
                    &mut state,
                    Op::Start {
                        id: id.clone(),
                        name,
                    },
                );
                return Err(RuntimeError::InvalidState {
                    id: id.clone(),
                    operation: "start",
                    state: state_now,
                });
            }
            let script = Self::script_for(&state, &container.spec);
            Self::record(
                &mut state,
                Op::Start {
                    id: id.clone(),
                    name: name.clone(),
                },
            );
            let attempt = state.runs.entry(name).or_default();
            let run = script
                .runs
                .get(*attempt)
                .or(script.runs.last())
                .cloned()
                .unwrap_or(Run::Forever);
            *attempt += 1;
            if let Run::FailStart { message } = run {
                return Err(RuntimeError::Start {
                    id: id.clone(),
                    message,
                });
            }
            state.next_id += 1;
            let pid = 1000 + state.next_id as u32;
            let container = state.containers.get_mut(id).expect("checked above");
            container.generation += 1;
            container.info.state = ContainerState::Running;
            container.info.pid = Some(pid);
            container.info.started_at = Some(now);
            (run, container.generation)
        };
        let (after, code, oom) = match run {
            Run::Forever | Run::FailStart { .. } => return Ok(()),
            Run::Exit { after, code } => (after, code, false),
            Run::OomKill { after } => (after, 128 + Signal::KILL.0, true),
        };
        let this = self.clone();
        let id = id.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let signal = oom.then_some(Signal::KILL);
            this.finish(&id, generation, code, signal, oom);
        });
        Ok(())
    }

    async fn wait(&self, id: &ContainerId) -> Result<ExitInfo> {
        let mut exit = {
            let mut state = self.state();
            Self::record(&mut state, Op::Wait { id: id.clone() });
            let container = state
                .containers
                .get(id)
                .ok_or_else(|| RuntimeError::ContainerNotFound { id: id.clone() })?;
            container.exit.subscribe()
        };
        let done = exit.wait_for(Option::is_some).await;
        match done {
            Ok(exit) => Ok(exit.clone().expect("waited for Some")),
            // The sender is dropped only when the container is deleted.
            Err(_) => Err(RuntimeError::ContainerNotFound { id: id.clone() }),
        }
    }

    async fn stop(&self, id: &ContainerId, grace: Duration, signal: Option<Signal>) -> Result<()> {
        let (generation, signal, ignores) = {
            let mut state = self.state();
            let container = state
                .containers
                .get(id)
                .ok_or_else(|| RuntimeError::ContainerNotFound { id: id.clone() })?;
            let name = container.info.name.clone();
            let running = container.info.state == ContainerState::Running;
            let generation = container.generation;
            let script = Self::script_for(&state, &container.spec);
            let signal_to_send = signal
                .or(container.spec.stop_signal)
                .unwrap_or(Signal::TERM);
            Self::record(
                &mut state,
                Op::Stop {
                    id: id.clone(),
                    name,
                    grace,
                    signal,
                },
            );
            if !running {
                return Ok(());
            }
            (generation, signal_to_send, script.ignores_stop_signal)
        };
        if ignores {
            tokio::time::sleep(grace).await;
            self.finish(
                id,
                generation,
                128 + Signal::KILL.0,
                Some(Signal::KILL),
                false,
            );
        } else {
            self.finish(id, generation, 128 + signal.0, Some(signal), false);
        }
        Ok(())
    }

    async fn kill(&self, id: &ContainerId, signal: Signal) -> Result<()> {
        let generation = {
            let mut state = self.state();
            let (name, generation) = Self::running(&state, id, "kill")?;
            Self::record(
                &mut state,
                Op::Kill {
                    id: id.clone(),
                    name,
                    signal,
                },
            );
            generation
        };
        self.finish(id, generation, 128 + signal.0, Some(signal), false);
        Ok(())
    }

    async fn delete(&self, id: &ContainerId) -> Result<()> {
        let mut state = self.state();
        Self::record(&mut state, Op::Delete { id: id.clone() });
        if let Some(container) = state.containers.get(id)
            && container.info.state == ContainerState::Running
        {
            let state_now = container.info.state.clone();
            return Err(RuntimeError::InvalidState {
                id: id.clone(),
                operation: "delete",
                state: state_now,
            });
        }
        state.containers.remove(id);
        Ok(())
    }

    async fn inspect(&self, id: &ContainerId) -> Result<ContainerInfo> {
        let mut state = self.state();
        Self::record(&mut state, Op::Inspect { id: id.clone() });
        state
            .containers
            .get(id)
            .map(|container| container.info.clone())
            .ok_or_else(|| RuntimeError::ContainerNotFound { id: id.clone() })
    }

    async fn list(&self, filter: &LabelFilter) -> Result<Vec<ContainerInfo>> {
        let mut state = self.state();
        Self::record(
            &mut state,
            Op::List {
                filter: filter.clone(),
            },
        );
        Ok(state
            .containers
            .values()
            .filter(|container| filter.matches(&container.info.labels))
            .map(|container| container.info.clone())
            .collect())
    }

    async fn exec(
        &self,
        id: &ContainerId,
        argv: &[String],
        timeout: Duration,
    ) -> Result<ExecResult> {
        let script = {
            let mut state = self.state();
            let (name, _) = Self::running(&state, id, "exec in")?;
            Self::record(
                &mut state,
                Op::Exec {
                    id: id.clone(),
                    name: name.clone(),
                    argv: argv.to_vec(),
                },
            );
            let spec = &state.containers[id].spec;
            let script = Self::script_for(&state, spec);
            let command = argv.join(" ");
            let (key, sequence) = match script.command_execs.get(&command) {
                Some(sequence) => (Some(command), sequence),
                None => (None, &script.execs),
            };
            let done = state.execs.entry((name, key)).or_default();
            let exec = sequence
                .get(*done)
                .or(sequence.last())
                .cloned()
                .unwrap_or_else(ExecScript::ok);
            *done += 1;
            exec
        };
        match script {
            ExecScript::Exit { code, stdout } => Ok(ExecResult {
                exit_code: code,
                stdout: stdout.into_bytes(),
                stderr: Vec::new(),
            }),
            ExecScript::Hang => {
                tokio::time::sleep(timeout).await;
                Err(RuntimeError::ExecTimedOut {
                    id: id.clone(),
                    argv: argv.to_vec(),
                    timeout,
                })
            }
            ExecScript::Fail { message } => Err(RuntimeError::Exec {
                id: id.clone(),
                argv: argv.to_vec(),
                message,
            }),
        }
    }

    async fn stats(&self, id: &ContainerId) -> Result<ContainerStats> {
        let mut state = self.state();
        Self::record(&mut state, Op::Stats { id: id.clone() });
        let container = state
            .containers
            .get(id)
            .ok_or_else(|| RuntimeError::ContainerNotFound { id: id.clone() })?;
        Ok(ContainerStats {
            memory_limit_bytes: container.spec.resources.memory_limit_bytes,
            pids: u64::from(container.info.state == ContainerState::Running),
            ..ContainerStats::default()
        })
    }
}

/// An [`ExitInfo`] for tests: `code`, started at the epoch, finished `ran` later.
pub fn exit_info(code: i32, ran: Duration) -> ExitInfo {
    let started_at = Timestamp::UNIX_EPOCH;
    let finished_at = started_at + jiff::SignedDuration::try_from(ran).expect("test durations fit");
    ExitInfo {
        exit_code: code,
        signal: None,
        oom_killed: false,
        started_at,
        finished_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str) -> ContainerSpec {
        ContainerSpec {
            name: name.into(),
            image: "busybox".into(),
            argv: vec!["sh".into()],
            ..Default::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn scripted_runs_follow_in_order_and_the_last_repeats() {
        let rt = FakeRuntime::new();
        rt.script(
            "app",
            Script::new()
                .then(Run::Exit {
                    after: Duration::from_secs(5),
                    code: 1,
                })
                .then(Run::OomKill {
                    after: Duration::from_secs(2),
                }),
        );
        let t0 = Instant::now();
        let mut exits = Vec::new();
        for _ in 0..3 {
            let id = rt.create(spec("app")).await.unwrap();
            rt.start(&id).await.unwrap();
            exits.push((rt.wait(&id).await.unwrap(), Instant::now() - t0));
            rt.delete(&id).await.unwrap();
        }
        assert_eq!(exits[0].0.exit_code, 1);
        assert!(!exits[0].0.oom_killed);
        assert_eq!(exits[0].1, Duration::from_secs(5));
        assert_eq!(
            (
                exits[1].0.exit_code,
                exits[1].0.oom_killed,
                exits[1].0.signal
            ),
            (137, true, Some(Signal::KILL))
        );
        assert_eq!(exits[1].1, Duration::from_secs(7));
        assert!(exits[2].0.oom_killed);
        assert_eq!(exits[2].1, Duration::from_secs(9));
        assert_eq!(
            exits[0].0.finished_at.duration_since(exits[0].0.started_at),
            jiff::SignedDuration::from_secs(5)
        );
        assert_eq!(
            rt.start_times("app"),
            vec![t0, t0 + Duration::from_secs(5), t0 + Duration::from_secs(7)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failed_start_reports_the_scripted_error() {
        let rt = FakeRuntime::new();
        rt.script(
            "app",
            Script::new().then(Run::FailStart {
                message: "exec: no such file".into(),
            }),
        );
        let id = rt.create(spec("app")).await.unwrap();
        let err = rt.start(&id).await.unwrap_err();
        assert!(
            matches!(&err, RuntimeError::Start { message, .. } if message == "exec: no such file"),
            "{err}"
        );
        assert_eq!(
            rt.inspect(&id).await.unwrap().state,
            ContainerState::Created
        );
    }

    #[tokio::test(start_paused = true)]
    async fn stop_signals_and_waits_out_the_grace_of_stubborn_processes() {
        let rt = FakeRuntime::new();
        rt.script("stubborn", Script::new().ignoring_stop_signal());
        let polite = rt.create(spec("polite")).await.unwrap();
        let stubborn = rt.create(spec("stubborn")).await.unwrap();
        rt.start(&polite).await.unwrap();
        rt.start(&stubborn).await.unwrap();
        let t0 = Instant::now();
        rt.stop(&polite, Duration::from_secs(30), None)
            .await
            .unwrap();
        assert_eq!(Instant::now(), t0);
        let exit = rt.wait(&polite).await.unwrap();
        assert_eq!((exit.exit_code, exit.signal), (143, Some(Signal::TERM)));

        rt.stop(&stubborn, Duration::from_secs(30), None)
            .await
            .unwrap();
        assert_eq!(Instant::now() - t0, Duration::from_secs(30));
        let exit = rt.wait(&stubborn).await.unwrap();
        assert_eq!((exit.exit_code, exit.signal), (137, Some(Signal::KILL)));
        // Stopping an exited container is fine; deleting twice too.
        rt.stop(&stubborn, Duration::from_secs(30), None)
            .await
            .unwrap();
        rt.delete(&stubborn).await.unwrap();
        rt.delete(&stubborn).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn exec_results_follow_the_script_and_hang_times_out() {
        let rt = FakeRuntime::new();
        rt.script(
            "app",
            Script::new()
                .exec(ExecScript::ok())
                .exec(ExecScript::fail(1, "down"))
                .exec(ExecScript::Hang),
        );
        let id = rt.create(spec("app")).await.unwrap();
        let argv = vec!["check".to_owned()];
        assert!(
            rt.exec(&id, &argv, Duration::from_secs(1)).await.is_err(),
            "not running yet"
        );
        rt.start(&id).await.unwrap();
        assert_eq!(
            rt.exec(&id, &argv, Duration::from_secs(1))
                .await
                .unwrap()
                .exit_code,
            0
        );
        let failed = rt.exec(&id, &argv, Duration::from_secs(1)).await.unwrap();
        assert_eq!(
            (failed.exit_code, failed.stdout.as_slice()),
            (1, b"down".as_slice())
        );
        let t0 = Instant::now();
        let err = rt
            .exec(&id, &argv, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(matches!(err, RuntimeError::ExecTimedOut { .. }));
        assert_eq!(Instant::now() - t0, Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn exec_results_can_be_scripted_per_command() {
        let rt = FakeRuntime::new();
        rt.script(
            "app",
            Script::new()
                .exec(ExecScript::fail(9, "general"))
                .command_execs("live", 2, ExecScript::ok())
                .command_exec("live", ExecScript::fail(1, "dead")),
        );
        let id = rt.create(spec("app")).await.unwrap();
        rt.start(&id).await.unwrap();
        let second = Duration::from_secs(1);
        let mut codes = Vec::new();
        for command in ["live", "other", "live", "live", "live"] {
            codes.push(
                rt.exec(&id, &[command.to_owned()], second)
                    .await
                    .unwrap()
                    .exit_code,
            );
        }
        assert_eq!(codes, vec![0, 9, 0, 1, 1]);
    }

    #[tokio::test(start_paused = true)]
    async fn sandboxes_and_labels() {
        let rt = FakeRuntime::new();
        let sandbox = rt
            .create_sandbox(SandboxSpec {
                dns: None,
                name: "default/web".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(sandbox.ip.is_some());
        let mut labelled = spec("web");
        labelled.sandbox = Some(sandbox.id.clone());
        labelled
            .labels
            .insert(crate::runtime::labels::POD_UID.into(), "u1".into());
        let id = rt.create(labelled).await.unwrap();
        rt.create(spec("other")).await.unwrap();
        let found = rt
            .list(&LabelFilter::new([(crate::runtime::labels::POD_UID, "u1")]))
            .await
            .unwrap();
        assert_eq!(found.iter().map(|c| &c.id).collect::<Vec<_>>(), vec![&id]);
        assert_eq!(found[0].sandbox.as_ref(), Some(&sandbox.id));
        let mut orphan = spec("orphan");
        orphan.sandbox = Some(SandboxId("gone".into()));
        assert!(matches!(
            rt.create(orphan).await,
            Err(RuntimeError::SandboxNotFound { .. })
        ));
    }
}
