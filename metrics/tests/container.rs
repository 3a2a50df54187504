//! `ContainerMetrics` over a fake source: exact cAdvisor series, pressure only where reported,
//! removed containers vanishing, label escaping, and berth's own metrics; every exposition is
//! checked with `promtool check metrics`.

mod support;

use berth_metrics::testing::FakeContainerStats;
use berth_metrics::{
    ContainerMetrics, ContainerSample, DaemonMetrics, Pressure, PressureTotals, StateMetrics,
};
use prometheus::Registry;
use support::{encode, promtool_check, scrape, series};

fn web() -> ContainerSample {
    ContainerSample {
        namespace: "default".to_owned(),
        pod: "web-1".to_owned(),
        container: "app".to_owned(),
        image: "busybox:1.36".to_owned(),
        id: "/berth/0123abcd".to_owned(),
        cpu_usage_seconds: 1.25,
        memory_usage_bytes: 10_485_760,
        memory_working_set_bytes: 8_388_608,
        memory_limit_bytes: Some(67_108_864),
        oom_events: 2,
        pids: 3,
        pressure: Pressure::default(),
    }
}

fn plain_run() -> ContainerSample {
    ContainerSample {
        namespace: String::new(),
        pod: String::new(),
        container: "adhoc".to_owned(),
        image: "alpine:3".to_owned(),
        id: "/berth/fedc9876".to_owned(),
        cpu_usage_seconds: 0.5,
        memory_usage_bytes: 4096,
        memory_working_set_bytes: 4096,
        memory_limit_bytes: None,
        oom_events: 0,
        pids: 1,
        pressure: Pressure::default(),
    }
}

#[test]
fn container_series_are_exact() {
    let source = FakeContainerStats::new(vec![web(), plain_run()]);
    let text = scrape(ContainerMetrics::new(source.clone()).unwrap());

    let adhoc =
        "{namespace=\"\",pod=\"\",container=\"adhoc\",image=\"alpine:3\",id=\"/berth/fedc9876\"}";
    let app = "{namespace=\"default\",pod=\"web-1\",container=\"app\",image=\"busybox:1.36\",id=\"/berth/0123abcd\"}";
    for (name, adhoc_value, app_value) in [
        ("container_cpu_usage_seconds_total", "0.5", "1.25"),
        ("container_memory_usage_bytes", "4096", "10485760"),
        ("container_memory_working_set_bytes", "4096", "8388608"),
        // Unlimited is 0, as cAdvisor reports it.
        ("container_spec_memory_limit_bytes", "0", "67108864"),
        ("container_oom_events_total", "0", "2"),
        ("container_processes", "1", "3"),
    ] {
        assert_eq!(
            series(&text, name),
            vec![
                format!("{name}{adhoc} {adhoc_value}"),
                format!("{name}{app} {app_value}"),
            ],
            "{name} in:\n{text}"
        );
    }
    assert!(text.contains("# TYPE container_cpu_usage_seconds_total counter\n"));
    assert!(text.contains("# TYPE container_memory_working_set_bytes gauge\n"));
    assert!(
        !text.contains("container_pressure_"),
        "no PSI reported, no pressure families:\n{text}"
    );
    promtool_check(&text);

    // The next scrape reads the source again: a removed container's series are gone.
    source.set(vec![plain_run()]);
    let text = scrape(ContainerMetrics::new(source).unwrap());
    assert!(!text.contains("web-1"), "{text}");
    assert_eq!(series(&text, "container_processes").len(), 1);
}

#[test]
fn pressure_is_exposed_where_the_kernel_reports_it() {
    let mut pressured = web();
    pressured.pressure = Pressure {
        cpu: Some(PressureTotals {
            waiting_seconds: 2.5,
            stalled_seconds: None,
        }),
        memory: Some(PressureTotals {
            waiting_seconds: 3.0,
            stalled_seconds: Some(1.0),
        }),
        io: None,
    };
    let text = scrape(ContainerMetrics::new(FakeContainerStats::new(vec![pressured])).unwrap());
    let app = "{namespace=\"default\",pod=\"web-1\",container=\"app\",image=\"busybox:1.36\",id=\"/berth/0123abcd\"}";
    assert_eq!(
        series(&text, "container_pressure_cpu_waiting_seconds_total"),
        vec![format!(
            "container_pressure_cpu_waiting_seconds_total{app} 2.5"
        )]
    );
    assert!(series(&text, "container_pressure_cpu_stalled_seconds_total").is_empty());
    assert_eq!(
        series(&text, "container_pressure_memory_waiting_seconds_total"),
        vec![format!(
            "container_pressure_memory_waiting_seconds_total{app} 3"
        )]
    );
    assert_eq!(
        series(&text, "container_pressure_memory_stalled_seconds_total"),
        vec![format!(
            "container_pressure_memory_stalled_seconds_total{app} 1"
        )]
    );
    assert!(!text.contains("container_pressure_io_"), "{text}");
    assert!(text.contains("# TYPE container_pressure_memory_stalled_seconds_total counter\n"));
    promtool_check(&text);
}

#[test]
fn label_values_are_escaped() {
    let mut hostile = web();
    hostile.pod = "we\"b\\1\nx".to_owned();
    hostile.container = "a\\\"pp".to_owned();
    let text = scrape(ContainerMetrics::new(FakeContainerStats::new(vec![hostile])).unwrap());
    assert_eq!(
        series(&text, "container_processes"),
        vec![
            "container_processes{namespace=\"default\",pod=\"we\\\"b\\\\1\\nx\",container=\"a\\\\\\\"pp\",\
             image=\"busybox:1.36\",id=\"/berth/0123abcd\"} 3"
                .to_owned()
        ],
        "{text}"
    );
    promtool_check(&text);
}

#[test]
fn berth_metrics_register_together_and_pass_promtool() {
    let registry = Registry::new();
    berth_metrics::register_process_and_build_info(&registry).unwrap();
    let daemon = DaemonMetrics::register(&registry).unwrap();
    registry
        .register(Box::new(
            ContainerMetrics::new(FakeContainerStats::new(vec![web()])).unwrap(),
        ))
        .unwrap();
    registry
        .register(Box::new(StateMetrics::new().unwrap()))
        .unwrap();

    daemon
        .reconcile_duration_seconds
        .with_label_values(&["Deployment"])
        .observe(0.02);
    daemon
        .reconcile_errors_total
        .with_label_values(&["Deployment"])
        .inc();
    daemon.workqueue_depth.with_label_values(&["Pod"]).set(4);
    daemon
        .probe_total
        .with_label_values(&["http", "readiness", "successful"])
        .inc();
    daemon
        .probe_duration_seconds
        .with_label_values(&["http"])
        .observe(0.003);
    daemon.container_start_duration_seconds.observe(0.4);
    daemon
        .store_write_duration_seconds
        .with_label_values(&["create"])
        .observe(0.001);

    let text = encode(&registry);
    assert_eq!(
        series(&text, "berth_build_info"),
        vec![format!(
            "berth_build_info{{version=\"{}\"}} 1",
            berth_metrics::VERSION
        )]
    );
    assert!(
        !series(&text, "process_resident_memory_bytes").is_empty(),
        "process metrics:\n{text}"
    );
    assert_eq!(
        series(&text, "berth_reconcile_errors_total"),
        vec!["berth_reconcile_errors_total{kind=\"Deployment\"} 1".to_owned()]
    );
    assert_eq!(
        series(&text, "berth_workqueue_depth"),
        vec!["berth_workqueue_depth{kind=\"Pod\"} 4".to_owned()]
    );
    assert_eq!(
        series(&text, "berth_probe_total"),
        vec![
            "berth_probe_total{probe=\"readiness\",result=\"successful\",type=\"http\"} 1"
                .to_owned()
        ]
    );
    assert!(text.contains("berth_container_start_duration_seconds_bucket{le=\"0.64\"} 1\n"));
    assert!(text.contains("berth_store_write_duration_seconds_count{op=\"create\"} 1\n"));
    assert!(text.contains("berth_reconcile_duration_seconds_sum{kind=\"Deployment\"} 0.02\n"));
    assert!(text.contains("berth_probe_duration_seconds_count{type=\"http\"} 1\n"));
    promtool_check(&text);

    // The same names cannot be registered twice.
    assert!(DaemonMetrics::register(&registry).is_err());
}
