//! Restart policy and CrashLoopBackOff: what to do when a container exits, as plain logic.
//!
//! A [`RestartTracker`] per container of a pod (Nomad's `RestartTracker`, the kubelet's
//! per-container backoff entry) is told of exits and restarts with the time they happened; it
//! never sleeps or reads a clock, so tests drive it with plain instants.
//!
//! The backoff follows the kubelet (`doBackOff` in kuberuntime_manager with a
//! `flowcontrol.Backoff` of 10 s doubling to a 5 min cap, no jitter):
//!
//! - the first exit restarts at once, and the restart arms the backoff at `initial`;
//! - each later exit waits for the current backoff, counted from the exit, and the restart that
//!   follows doubles it up to `max`;
//! - when the container ran for more than `2 × max` (10 min by default) since the last restart,
//!   the backoff is forgotten: the restart is immediate and re-arms at `initial`;
//! - while an exited container waits for its backoff, its waiting reason is `CrashLoopBackOff`
//!   ([`RestartTracker::back_off`]); the kubelet's event reason for that wait is `BackOff`.
//!
//! ```text
//!              exit (policy says restart)               backoff elapsed: on_restart
//!   Running ─────────────────────────────► BackingOff ─────────────────────────────► Running
//!      │          (after = 0: no wait)     (CrashLoopBackOff)
//!      │ exit (Never, or OnFailure with success)
//!      ▼
//!   Terminated (Completed | Failed) — final
//! ```

use std::{collections::BTreeMap, fmt, time::Duration};

use berth_api::{core_v1::RestartPolicy, duration::DurationError};
use tokio::time::Instant;

use crate::runtime::ExitInfo;

/// Annotation overriding the daemon's initial backoff for one pod (`berth.dev/backoff-initial:
/// 1s`), in Go duration syntax.
pub const BACKOFF_INITIAL_ANNOTATION: &str = "berth.dev/backoff-initial";
/// Annotation overriding the daemon's backoff cap for one pod (`berth.dev/backoff-max: 1m`).
pub const BACKOFF_MAX_ANNOTATION: &str = "berth.dev/backoff-max";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestartError {
    #[error("annotation {key}: {source}")]
    Annotation {
        key: &'static str,
        #[source]
        source: DurationError,
    },
    #[error("{field}: backoff must be longer than 0, got {value:?}")]
    Zero {
        field: &'static str,
        value: Duration,
    },
    #[error(
        "backoff initial delay {initial:?} is longer than its maximum {max:?} ({source_of_values})"
    )]
    InitialAboveMax {
        initial: Duration,
        max: Duration,
        source_of_values: &'static str,
    },
}

pub type Result<T, E = RestartError> = std::result::Result<T, E>;

/// How restarts of crashing containers are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for BackoffConfig {
    /// The kubelet's: 10 s doubling up to 5 min.
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(300),
        }
    }
}

impl BackoffConfig {
    /// A validated configuration (both positive, `initial <= max`), e.g. from the daemon's
    /// `--backoff-initial` and `--backoff-max`.
    pub fn new(initial: Duration, max: Duration) -> Result<Self> {
        Self::validated(initial, max, "--backoff-initial/--backoff-max")
    }

    fn validated(initial: Duration, max: Duration, source_of_values: &'static str) -> Result<Self> {
        if initial.is_zero() {
            return Err(RestartError::Zero {
                field: "backoff initial delay",
                value: initial,
            });
        }
        if max.is_zero() {
            return Err(RestartError::Zero {
                field: "backoff maximum",
                value: max,
            });
        }
        if initial > max {
            return Err(RestartError::InitialAboveMax {
                initial,
                max,
                source_of_values,
            });
        }
        Ok(Self { initial, max })
    }

    /// This configuration overridden by a pod's [`BACKOFF_INITIAL_ANNOTATION`] and
    /// [`BACKOFF_MAX_ANNOTATION`].
    pub fn with_annotations(self, annotations: &BTreeMap<String, String>) -> Result<Self> {
        let parse = |key: &'static str| {
            annotations
                .get(key)
                .map(|value| {
                    berth_api::duration::parse_duration(value.trim())
                        .map_err(|source| RestartError::Annotation { key, source })
                })
                .transpose()
        };
        let initial = parse(BACKOFF_INITIAL_ANNOTATION)?;
        let max = parse(BACKOFF_MAX_ANNOTATION)?;
        if initial.is_none() && max.is_none() {
            return Ok(self);
        }
        Self::validated(
            initial.unwrap_or(self.initial),
            max.unwrap_or(self.max),
            "pod annotations berth.dev/backoff-initial/berth.dev/backoff-max",
        )
    }

    /// How long a container must run, since its last restart, for its backoff to be forgotten.
    pub fn reset_after(&self) -> Duration {
        self.max.saturating_mul(2)
    }
}

/// What to do with a container that exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Start it again once `after` has passed since the exit (zero: at once).
    Restart { after: Duration },
    /// Leave it terminated for good.
    Stay(Terminal),
}

/// Why a container stays terminated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Terminal {
    /// It succeeded and the policy (`OnFailure`, `Never`) does not restart successes.
    Completed,
    /// It failed and the policy is `Never`.
    Failed,
}

/// A container waiting out its backoff: Kubernetes' `CrashLoopBackOff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackOff {
    /// The backoff being waited out (the `10s` of "back-off 10s restarting failed container").
    pub delay: Duration,
    /// When the restart is due.
    pub until: Instant,
}

impl BackOff {
    /// The kubelet's waiting message:
    /// `back-off 20s restarting failed container=web pod=web_default(uid)`.
    pub fn message(&self, container: &str, pod: &str) -> String {
        format!(
            "back-off {} restarting failed container={container} pod={pod}",
            GoDuration(self.delay)
        )
    }
}

/// An exit whose restart has not happened yet.
#[derive(Debug, Clone, Copy)]
struct PendingRestart {
    exited_at: Instant,
    back_off: BackOff,
}

/// The restart state of one container of a pod.
#[derive(Debug, Clone)]
pub struct RestartTracker {
    policy: RestartPolicy,
    config: BackoffConfig,
    /// The current backoff and when it was last moved (the kubelet's `backoffEntry`).
    entry: Option<(Duration, Instant)>,
    /// The last exit, until the restart happens.
    pending: Option<PendingRestart>,
    restart_count: u32,
}

impl RestartTracker {
    pub fn new(policy: RestartPolicy, config: BackoffConfig) -> Self {
        Self {
            policy,
            config,
            entry: None,
            pending: None,
            restart_count: 0,
        }
    }

    /// A tracker for a container adopted after an agent restart, which had been restarted
    /// `restart_count` times (the backoff starts afresh, as it does after a kubelet restart).
    pub fn adopted(policy: RestartPolicy, config: BackoffConfig, restart_count: u32) -> Self {
        Self {
            restart_count,
            ..Self::new(policy, config)
        }
    }

    pub fn policy(&self) -> RestartPolicy {
        self.policy
    }

    /// How many times the container has been restarted (Kubernetes' `restartCount`).
    pub fn restart_count(&self) -> u32 {
        self.restart_count
    }

    /// Decides what follows an exit observed at `now`. Exits are not counted until
    /// [`Self::on_restart`].
    pub fn on_exit(&mut self, exit: &ExitInfo, now: Instant) -> Decision {
        let restart = match self.policy {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => !exit.succeeded(),
            RestartPolicy::Never => false,
        };
        if !restart {
            self.pending = None;
            return Decision::Stay(if exit.succeeded() {
                Terminal::Completed
            } else {
                Terminal::Failed
            });
        }
        let after = match self.entry {
            Some((backoff, last_update)) if !self.expired(now, last_update) => backoff,
            _ => Duration::ZERO,
        };
        self.pending = Some(PendingRestart {
            exited_at: now,
            back_off: BackOff {
                delay: after,
                until: now + after,
            },
        });
        Decision::Restart { after }
    }

    /// Records that the container was started again at `now`: counts the restart and moves the
    /// backoff (doubled, or back to `initial` after a long clean run).
    pub fn on_restart(&mut self, now: Instant) {
        let exited_at = self.pending.take().map_or(now, |pending| pending.exited_at);
        let backoff = match self.entry {
            Some((backoff, last_update)) if !self.expired(exited_at, last_update) => {
                backoff.saturating_mul(2).min(self.config.max)
            }
            _ => self.config.initial,
        };
        self.entry = Some((backoff, now));
        self.restart_count += 1;
    }

    /// The backoff being waited out at `now`, if any: the container is in `CrashLoopBackOff`.
    pub fn back_off(&self, now: Instant) -> Option<BackOff> {
        let back_off = self.pending?.back_off;
        (now < back_off.until).then_some(back_off)
    }

    /// The kubelet's `hasExpired`: more than `2 × max` between the last backoff update and the
    /// exit means the container had been running cleanly.
    fn expired(&self, exited_at: Instant, last_update: Instant) -> bool {
        exited_at.saturating_duration_since(last_update) > self.config.reset_after()
    }
}

/// A duration printed as Go prints one (`10s`, `1m20s`, `5m0s`, `1.5s`), as Kubernetes messages
/// do.
pub struct GoDuration(pub Duration);

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d < Duration::from_secs(1) {
            return match d.as_nanos() {
                0 => f.write_str("0s"),
                n if n < 1_000 => write!(f, "{n}ns"),
                n if n < 1_000_000 => write!(f, "{}µs", trim(n as f64 / 1e3)),
                n => write!(f, "{}ms", trim(n as f64 / 1e6)),
            };
        }
        let total = d.as_secs();
        let (hours, minutes, seconds) = (total / 3600, total / 60 % 60, total % 60);
        let fraction = d.subsec_nanos();
        let secs = if fraction == 0 {
            seconds.to_string()
        } else {
            let digits = format!("{fraction:09}");
            format!("{seconds}.{}", digits.trim_end_matches('0'))
        };
        match (hours, minutes) {
            (0, 0) => write!(f, "{secs}s"),
            (0, m) => write!(f, "{m}m{secs}s"),
            (h, m) => write!(f, "{h}h{m}m{secs}s"),
        }
    }
}

fn trim(value: f64) -> String {
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{runtime::Signal, testing::exit_info};

    const S: Duration = Duration::from_secs(1);

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// Runs a container through `runs` (how long each run lasts, its exit code), restarting it
    /// when told to, and returns each decision with the instant (seconds since the first start)
    /// of the exit.
    fn simulate(
        policy: RestartPolicy,
        config: BackoffConfig,
        runs: &[(u64, i32)],
    ) -> Vec<(u64, Decision)> {
        let t0 = Instant::now();
        let mut tracker = RestartTracker::new(policy, config);
        let mut started = t0;
        let mut out = Vec::new();
        for &(ran, code) in runs {
            let exited = started + secs(ran);
            let decision = tracker.on_exit(&exit_info(code, secs(ran)), exited);
            out.push(((exited - t0).as_secs(), decision));
            match decision {
                Decision::Restart { after } => {
                    started = exited + after;
                    tracker.on_restart(started);
                }
                Decision::Stay(_) => break,
            }
        }
        out
    }

    fn delays(decisions: &[(u64, Decision)]) -> Vec<u64> {
        decisions
            .iter()
            .map(|(_, d)| match d {
                Decision::Restart { after } => after.as_secs(),
                Decision::Stay(_) => u64::MAX,
            })
            .collect()
    }

    /// A case name, the config, the runs (seconds, exit code) and the expected delays.
    type DelayCase<'a> = (&'a str, BackoffConfig, &'a [(u64, i32)], &'a [u64]);

    #[tokio::test(start_paused = true)]
    async fn crash_loop_delays_double_to_the_cap() {
        let cases: &[DelayCase] = &[
            (
                "immediate crashes",
                BackoffConfig::default(),
                &[(0, 1); 9],
                &[0, 10, 20, 40, 80, 160, 300, 300, 300],
            ),
            (
                "exit 0 under Always backs off too",
                BackoffConfig::default(),
                &[(1, 0); 4],
                &[0, 10, 20, 40],
            ),
            (
                "custom 1s..8s",
                BackoffConfig::new(S, secs(8)).unwrap(),
                &[(0, 2); 7],
                &[0, 1, 2, 4, 8, 8, 8],
            ),
            (
                // Ran 601 s > 2 × 300 s since its last restart: forgotten.
                "long clean run resets",
                BackoffConfig::default(),
                &[(0, 1), (0, 1), (0, 1), (0, 1), (601, 1), (0, 1), (0, 1)],
                &[0, 10, 20, 40, 0, 10, 20],
            ),
            (
                // Exactly 2 × max is not "more than": the backoff is kept.
                "exactly twice the cap keeps the backoff",
                BackoffConfig::default(),
                &[(0, 1), (0, 1), (600, 1)],
                &[0, 10, 20],
            ),
            (
                // The reset threshold follows the cap: 2 × 8 s.
                "reset threshold is twice the configured cap",
                BackoffConfig::new(S, secs(8)).unwrap(),
                &[(0, 1), (0, 1), (0, 1), (17, 1), (0, 1)],
                &[0, 1, 2, 0, 1],
            ),
        ];
        for (name, config, runs, expected) in cases {
            let got = delays(&simulate(RestartPolicy::Always, *config, runs));
            assert_eq!(&got, expected, "{name}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn policy_decides_whether_to_restart() {
        use Decision::*;
        use RestartPolicy::*;
        use Terminal::*;
        let t = Instant::now();
        let exit = |code: i32, signal: Option<Signal>, oom: bool| {
            let mut info = exit_info(code, S);
            info.signal = signal;
            info.oom_killed = oom;
            info
        };
        let restart = Restart {
            after: Duration::ZERO,
        };
        let cases = [
            (Always, exit(0, None, false), restart),
            (Always, exit(1, None, false), restart),
            (OnFailure, exit(0, None, false), Stay(Completed)),
            (OnFailure, exit(1, None, false), restart),
            (OnFailure, exit(137, Some(Signal::KILL), false), restart),
            (OnFailure, exit(137, Some(Signal::KILL), true), restart),
            (Never, exit(0, None, false), Stay(Completed)),
            (Never, exit(2, None, false), Stay(Failed)),
            (Never, exit(143, Some(Signal::TERM), false), Stay(Failed)),
            (Never, exit(0, None, true), Stay(Failed)),
        ];
        for (policy, exit, expected) in cases {
            let mut tracker = RestartTracker::new(policy, BackoffConfig::default());
            assert_eq!(tracker.on_exit(&exit, t), expected, "{policy:?} {exit:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn on_failure_stops_at_the_first_success() {
        let decisions = simulate(
            RestartPolicy::OnFailure,
            BackoffConfig::default(),
            &[(0, 1), (0, 1), (5, 0), (0, 1)],
        );
        assert_eq!(delays(&decisions), vec![0, 10, u64::MAX]);
        assert_eq!(decisions[2], (15, Decision::Stay(Terminal::Completed)));
    }

    #[tokio::test(start_paused = true)]
    async fn crash_loop_back_off_lasts_from_exit_to_restart() {
        let t0 = Instant::now();
        let mut tracker = RestartTracker::new(RestartPolicy::Always, BackoffConfig::default());
        // First crash: immediate restart, no CrashLoopBackOff.
        assert_eq!(
            tracker.on_exit(&exit_info(1, S), t0),
            Decision::Restart {
                after: Duration::ZERO
            }
        );
        assert_eq!(tracker.back_off(t0), None);
        tracker.on_restart(t0);
        assert_eq!(tracker.restart_count(), 1);
        // Second crash at t0+3: back-off 10s until t0+13.
        let crashed = t0 + secs(3);
        assert_eq!(
            tracker.on_exit(&exit_info(1, secs(3)), crashed),
            Decision::Restart { after: secs(10) }
        );
        let expected = BackOff {
            delay: secs(10),
            until: crashed + secs(10),
        };
        assert_eq!(tracker.back_off(crashed), Some(expected));
        assert_eq!(tracker.back_off(crashed + secs(9)), Some(expected));
        assert_eq!(tracker.back_off(crashed + secs(10)), None);
        assert_eq!(tracker.restart_count(), 1, "not restarted yet");
        assert_eq!(
            expected.message("web", "web_default(u1)"),
            "back-off 10s restarting failed container=web pod=web_default(u1)"
        );
        tracker.on_restart(crashed + secs(10));
        assert_eq!(tracker.restart_count(), 2);
        assert_eq!(tracker.back_off(crashed + secs(10)), None);
    }

    #[tokio::test(start_paused = true)]
    async fn adopted_trackers_keep_their_count_and_start_afresh() {
        let t0 = Instant::now();
        let mut tracker =
            RestartTracker::adopted(RestartPolicy::Always, BackoffConfig::default(), 7);
        assert_eq!(
            tracker.on_exit(&exit_info(1, S), t0),
            Decision::Restart {
                after: Duration::ZERO
            }
        );
        tracker.on_restart(t0);
        assert_eq!(tracker.restart_count(), 8);
    }

    #[test]
    fn annotations_override_the_daemon_defaults() {
        let annotations = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let daemon = BackoffConfig::default();
        type Case<'a> = (
            &'a [(&'a str, &'a str)],
            std::result::Result<BackoffConfig, &'a str>,
        );
        let cases: &[Case] = &[
            (&[], Ok(daemon)),
            (&[("other", "x")], Ok(daemon)),
            (
                &[(BACKOFF_INITIAL_ANNOTATION, "1s")],
                Ok(BackoffConfig {
                    initial: S,
                    max: secs(300),
                }),
            ),
            (
                &[(BACKOFF_MAX_ANNOTATION, "1m")],
                Ok(BackoffConfig {
                    initial: secs(10),
                    max: secs(60),
                }),
            ),
            (
                &[
                    (BACKOFF_INITIAL_ANNOTATION, "500ms"),
                    (BACKOFF_MAX_ANNOTATION, "2s"),
                ],
                Ok(BackoffConfig {
                    initial: Duration::from_millis(500),
                    max: secs(2),
                }),
            ),
            (
                &[(BACKOFF_MAX_ANNOTATION, "5s")],
                Err("backoff initial delay 10s is longer than its maximum 5s"),
            ),
            (
                &[(BACKOFF_INITIAL_ANNOTATION, "10 apples")],
                Err("annotation berth.dev/backoff-initial: invalid duration"),
            ),
            (
                &[(BACKOFF_INITIAL_ANNOTATION, "0s")],
                Err("backoff initial delay: backoff must be longer than 0"),
            ),
        ];
        for (pairs, expected) in cases {
            let got = daemon.with_annotations(&annotations(pairs));
            match (expected, got) {
                (Ok(expected), Ok(got)) => assert_eq!(&got, expected, "{pairs:?}"),
                (Err(prefix), Err(err)) => {
                    assert!(err.to_string().starts_with(prefix), "{pairs:?}: {err}")
                }
                (expected, got) => panic!("{pairs:?}: expected {expected:?}, got {got:?}"),
            }
        }
        assert!(BackoffConfig::new(secs(10), secs(5)).is_err());
        assert!(BackoffConfig::new(Duration::ZERO, secs(5)).is_err());
    }

    #[test]
    fn prints_durations_like_go() {
        let cases = [
            (Duration::ZERO, "0s"),
            (secs(10), "10s"),
            (secs(80), "1m20s"),
            (secs(300), "5m0s"),
            (secs(3600), "1h0m0s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_micros(1500), "1.5ms"),
        ];
        for (duration, expected) in cases {
            assert_eq!(GoDuration(duration).to_string(), expected);
        }
    }
}
