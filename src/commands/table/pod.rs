//! A pod's READY, STATUS and RESTARTS as kubectl computes them (`printPod` in
//! kubernetes/pkg/printers/internalversion/printers.go):
//!
//! 1. start from the phase, or the pod's `status.reason` when set;
//! 2. the first init container that has not succeeded decides: `Init:<reason>`,
//!    `Init:ExitCode:N`, `Init:Signal:N` or `Init:i/n`;
//! 3. otherwise, containers from last to first: a waiting reason (`CrashLoopBackOff`) or a
//!    terminated reason (`OOMKilled`, `Error`, `Completed`) wins, then `ExitCode:N`/`Signal:N`;
//!    a `Completed` pod with a container still running is `Running` (or `NotReady`);
//! 4. a pod being deleted is `Terminating`.

use berth_api::{
    core_v1::{ContainerStatus, Pod, PodConditionType, PodPhase},
    meta::ConditionStatus,
    time::Time,
};

use super::human_duration;

fn phase_name(phase: PodPhase) -> &'static str {
    match phase {
        PodPhase::Pending => "Pending",
        PodPhase::Running => "Running",
        PodPhase::Succeeded => "Succeeded",
        PodPhase::Failed => "Failed",
        PodPhase::Unknown => "Unknown",
    }
}

/// The STATUS column.
pub fn pod_status(pod: &Pod) -> String {
    let status = pod.status.clone().unwrap_or_default();
    let mut reason = status.phase.map(phase_name).unwrap_or("Pending").to_owned();
    if let Some(r) = status.reason.as_deref().filter(|r| !r.is_empty()) {
        reason = r.to_owned();
    }
    let init_total = pod.spec.init_containers.len();
    let mut initializing = false;
    for (i, container) in status.init_container_statuses.iter().enumerate() {
        let state = container.state.clone().unwrap_or_default();
        if let Some(terminated) = &state.terminated {
            if terminated.exit_code == 0 {
                continue;
            }
            reason = match terminated.reason.as_deref().filter(|r| !r.is_empty()) {
                Some(r) => format!("Init:{r}"),
                None => match terminated.signal.filter(|s| *s != 0) {
                    Some(signal) => format!("Init:Signal:{signal}"),
                    None => format!("Init:ExitCode:{}", terminated.exit_code),
                },
            };
        } else if let Some(r) = state
            .waiting
            .as_ref()
            .and_then(|w| w.reason.as_deref())
            .filter(|r| !r.is_empty() && *r != "PodInitializing")
        {
            reason = format!("Init:{r}");
        } else {
            reason = format!("Init:{i}/{init_total}");
        }
        initializing = true;
        break;
    }
    if !initializing {
        let mut has_running = false;
        for container in status.container_statuses.iter().rev() {
            let state = container.state.clone().unwrap_or_default();
            let waiting = state
                .waiting
                .as_ref()
                .and_then(|w| w.reason.clone())
                .filter(|r| !r.is_empty());
            let terminated_reason = state
                .terminated
                .as_ref()
                .and_then(|t| t.reason.clone())
                .filter(|r| !r.is_empty());
            if let Some(r) = waiting {
                reason = r;
            } else if let Some(r) = terminated_reason {
                reason = r;
            } else if let Some(terminated) = &state.terminated {
                reason = match terminated.signal.filter(|s| *s != 0) {
                    Some(signal) => format!("Signal:{signal}"),
                    None => format!("ExitCode:{}", terminated.exit_code),
                };
            } else if container.ready && state.running.is_some() {
                has_running = true;
            }
        }
        if reason == "Completed" && has_running {
            let ready = status
                .conditions
                .iter()
                .any(|c| c.type_ == PodConditionType::Ready && c.status == ConditionStatus::True);
            reason = if ready { "Running" } else { "NotReady" }.to_owned();
        }
    }
    if pod.metadata.deletion_timestamp.is_some() {
        reason = if status.reason.as_deref() == Some("NodeLost") {
            "Unknown"
        } else {
            "Terminating"
        }
        .to_owned();
    }
    reason
}

/// The READY column: running and ready containers / containers.
pub fn pod_ready(pod: &Pod) -> String {
    let statuses = pod
        .status
        .as_ref()
        .map(|s| s.container_statuses.as_slice())
        .unwrap_or_default();
    let ready = statuses
        .iter()
        .filter(|c| c.ready && c.state.as_ref().is_some_and(|s| s.running.is_some()))
        .count();
    format!("{ready}/{}", pod.spec.containers.len())
}

fn last_restart(statuses: &[ContainerStatus]) -> Option<Time> {
    statuses
        .iter()
        .filter_map(|c| c.last_state.as_ref()?.terminated.as_ref()?.finished_at)
        .max()
}

/// The RESTARTS column: the sum over containers (init containers while initializing), with
/// how long ago the last one was: `3 (42s ago)`.
pub fn pod_restarts(pod: &Pod, now: Time) -> String {
    let Some(status) = &pod.status else {
        return "0".to_owned();
    };
    let initializing = status.init_container_statuses.iter().any(|c| {
        c.state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .is_none_or(|t| t.exit_code != 0)
    });
    let statuses = if initializing {
        &status.init_container_statuses
    } else {
        &status.container_statuses
    };
    let restarts: i64 = statuses.iter().map(|c| i64::from(c.restart_count)).sum();
    match last_restart(statuses) {
        Some(at) if restarts > 0 => format!(
            "{restarts} ({} ago)",
            human_duration(now.0.duration_since(at.0).as_secs())
        ),
        _ => restarts.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use berth_api::core_v1::{
        ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
        PodCondition, PodStatus,
    };
    use berth_api::testing;

    use super::*;

    fn at(s: &str) -> Time {
        s.parse().unwrap()
    }

    fn running(name: &str, ready: bool) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            ready,
            state: Some(ContainerState {
                running: Some(ContainerStateRunning::default()),
                ..ContainerState::default()
            }),
            ..ContainerStatus::default()
        }
    }

    fn waiting(name: &str, reason: &str) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            state: Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.into()),
                    message: None,
                }),
                ..ContainerState::default()
            }),
            ..ContainerStatus::default()
        }
    }

    fn terminated(name: &str, exit_code: i32, reason: Option<&str>) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code,
                    reason: reason.map(Into::into),
                    ..ContainerStateTerminated::default()
                }),
                ..ContainerState::default()
            }),
            ..ContainerStatus::default()
        }
    }

    fn pod_with(phase: PodPhase, init: Vec<ContainerStatus>, main: Vec<ContainerStatus>) -> Pod {
        let mut pod = testing::pod("p")
            .with_containers(vec![
                testing::container("a", "busybox").build(),
                testing::container("b", "busybox").build(),
            ])
            .build();
        pod.spec.init_containers = vec![
            testing::container("init-1", "busybox").build(),
            testing::container("init-2", "busybox").build(),
        ];
        pod.status = Some(PodStatus {
            phase: Some(phase),
            init_container_statuses: init,
            container_statuses: main,
            ..PodStatus::default()
        });
        pod
    }

    #[test]
    fn status_follows_kubectl_rules() {
        let done = || terminated("init", 0, Some("Completed"));
        let cases = [
            (pod_with(PodPhase::Pending, vec![], vec![]), "Pending"),
            (
                pod_with(
                    PodPhase::Pending,
                    vec![done(), waiting("i", "PodInitializing")],
                    vec![],
                ),
                "Init:1/2",
            ),
            (
                pod_with(
                    PodPhase::Pending,
                    vec![waiting("i", "CrashLoopBackOff")],
                    vec![],
                ),
                "Init:CrashLoopBackOff",
            ),
            (
                pod_with(PodPhase::Pending, vec![terminated("i", 3, None)], vec![]),
                "Init:ExitCode:3",
            ),
            (
                pod_with(
                    PodPhase::Pending,
                    vec![terminated("i", 1, Some("Error"))],
                    vec![],
                ),
                "Init:Error",
            ),
            (
                pod_with(
                    PodPhase::Pending,
                    vec![done(), done()],
                    vec![
                        waiting("a", "PodInitializing"),
                        waiting("b", "PodInitializing"),
                    ],
                ),
                "PodInitializing",
            ),
            (
                pod_with(
                    PodPhase::Running,
                    vec![done(), done()],
                    vec![running("a", true), waiting("b", "CrashLoopBackOff")],
                ),
                "CrashLoopBackOff",
            ),
            (
                pod_with(
                    PodPhase::Running,
                    vec![],
                    vec![running("a", true), terminated("b", 137, Some("OOMKilled"))],
                ),
                "OOMKilled",
            ),
            (
                pod_with(
                    PodPhase::Failed,
                    vec![],
                    vec![terminated("a", 1, Some("Error"))],
                ),
                "Error",
            ),
            (
                pod_with(
                    PodPhase::Succeeded,
                    vec![],
                    vec![terminated("a", 0, Some("Completed"))],
                ),
                "Completed",
            ),
            (
                pod_with(PodPhase::Running, vec![], vec![terminated("a", 2, None)]),
                "ExitCode:2",
            ),
            (
                pod_with(
                    PodPhase::Running,
                    vec![],
                    vec![running("a", true), running("b", true)],
                ),
                "Running",
            ),
            (
                pod_with(
                    PodPhase::Running,
                    vec![],
                    vec![terminated("a", 0, Some("Completed")), running("b", true)],
                ),
                "NotReady",
            ),
        ];
        for (pod, expected) in cases {
            assert_eq!(pod_status(&pod), expected, "{:?}", pod.status);
        }

        let mut ready = pod_with(
            PodPhase::Running,
            vec![],
            vec![terminated("a", 0, Some("Completed")), running("b", true)],
        );
        if let Some(status) = ready.status.as_mut() {
            status.conditions.push(PodCondition {
                type_: PodConditionType::Ready,
                status: ConditionStatus::True,
                last_probe_time: None,
                last_transition_time: None,
                reason: None,
                message: None,
            });
        }
        assert_eq!(pod_status(&ready), "Running");

        let mut deleting = pod_with(PodPhase::Running, vec![], vec![running("a", true)]);
        deleting.metadata.deletion_timestamp = Some(at("2024-01-01T00:00:00Z"));
        assert_eq!(pod_status(&deleting), "Terminating");
    }

    #[test]
    fn ready_counts_running_ready_containers() {
        let pod = pod_with(
            PodPhase::Running,
            vec![],
            vec![running("a", true), running("b", false)],
        );
        assert_eq!(pod_ready(&pod), "1/2");
        assert_eq!(pod_ready(&testing::pod("new").build()), "0/1");
    }

    #[test]
    fn restarts_show_how_long_ago_the_last_one_was() {
        let mut pod = pod_with(
            PodPhase::Running,
            vec![],
            vec![running("a", true), running("b", true)],
        );
        assert_eq!(pod_restarts(&pod, at("2024-01-01T00:10:00Z")), "0");
        if let Some(status) = pod.status.as_mut() {
            status.container_statuses[1].restart_count = 3;
            status.container_statuses[1].last_state = Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: 1,
                    finished_at: Some(at("2024-01-01T00:09:18Z")),
                    ..ContainerStateTerminated::default()
                }),
                ..ContainerState::default()
            });
        }
        assert_eq!(
            pod_restarts(&pod, at("2024-01-01T00:10:00Z")),
            "3 (42s ago)"
        );
    }
}
