//! The command line: help, settings validation, `migrate` and `seed`.

use order_processor::domain::OrderStatus;

use crate::binary::{Server, run};
use crate::helpers::{TestDb, on_every_backend};

on_every_backend!(
    seed_inserts_the_ten_samples_once_however_often_it_runs,
    migrate_prepares_an_empty_database
);

#[test]
fn help_shows_every_setting_with_its_default() {
    let output = run(&["serve", "--help"], &[]);
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for (env, default) in [
        ("PORT", "3000"),
        ("HOST", "0.0.0.0"),
        ("DATABASE_URL", "sqlite://orders.db"),
        ("WORKER_CONCURRENCY", "10"),
        ("PROCESSING_TIME_MS", "1000"),
        ("LEASE_TIMEOUT_MS", "30000"),
        ("SHUTDOWN_GRACE_MS", "10000"),
        ("POLL_INTERVAL_MS", "1000"),
        ("BODY_LIMIT_BYTES", "65536"),
        ("LOG_FORMAT", "text"),
        ("DATABASE_MAX_CONNECTIONS", "10"),
        (
            "PROCESSING_TIMEOUT_MS",
            "twice the processing time, at least 10000",
        ),
        ("PROCESSING_FAILURE_RATE", "0"),
        ("MAX_ATTEMPTS", "5"),
        ("RETRY_BASE_MS", "1000"),
        ("RETRY_MAX_MS", "300000"),
    ] {
        // The setting's own entry (entries are apart by an empty line).
        let entry = help
            .split("\n\n")
            .find(|entry| entry.contains(&format!("[env: {env}=")))
            .unwrap_or_else(|| panic!("{env} in help:\n{help}"));
        assert!(
            entry.contains(&format!("[default: {default}]")),
            "default {default} in the entry of {env}:\n{entry}"
        );
    }
    for env in [
        "AUTH_JWT_SECRET",
        "AUTH_JWT_PUBLIC_KEY",
        "AUTH_JWT_ISSUER",
        "AUTH_JWT_AUDIENCE",
        "RATE_LIMIT_PER_SEC",
        "RATE_LIMIT_BURST",
        "BACKGROUND_NICE",
    ] {
        assert!(help.contains(&format!("env: {env}")), "{env} in help");
    }
    assert!(help.contains("[env: IDEMPOTENCY_TTL=]") && help.contains("[default: 24h]"));
    let with_secret = run(&["serve", "--help"], &[("AUTH_JWT_SECRET", "hunter2")]);
    let shown = String::from_utf8(with_secret.stdout).unwrap();
    assert!(!shown.contains("hunter2"), "the secret is never shown");
    let top = String::from_utf8(run(&["--help"], &[]).stdout).unwrap();
    for command in ["serve", "migrate", "seed", "token"] {
        assert!(top.contains(command), "{command} in top-level help");
    }
}

#[test]
fn invalid_settings_fail_at_start_up_naming_the_setting() {
    let db = TestDb::sqlite();
    let cases = [
        ("PORT", "abc", "--port"),
        ("PORT", "70000", "--port"),
        ("WORKER_CONCURRENCY", "0", "--worker-concurrency"),
        ("PROCESSING_TIME_MS", "-1", "--processing-time-ms"),
        ("LEASE_TIMEOUT_MS", "10", "--lease-timeout-ms"),
        ("HOST", "not-an-address", "--host"),
        ("LOG_FORMAT", "xml", "--log-format"),
        ("LEASE_TIMEOUT_MS", "999999999999", "--lease-timeout-ms"),
        // Below the default processing time of 1000 ms.
        (
            "PROCESSING_TIMEOUT_MS",
            "500",
            "PROCESSING_TIME_MS (1000, the default)",
        ),
        ("PROCESSOR_URL", "ftp://example.com/x", "--processor-url"),
        ("PROCESSOR_URL", "example.com", "--processor-url"),
        (
            "PROCESSOR_URL",
            "http://127.0.0.1:9/orders",
            "PROCESSOR_SECRET",
        ),
        (
            "PROCESSOR_SECRET",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "PROCESSOR_URL",
        ),
        (
            "PROCESSING_FAILURE_RATE",
            "1.5",
            "--processing-failure-rate",
        ),
        (
            "PROCESSING_FAILURE_RATE",
            "often",
            "--processing-failure-rate",
        ),
        ("MAX_ATTEMPTS", "0", "--max-attempts"),
        ("BACKGROUND_NICE", "20", "--background-nice"),
        ("BACKGROUND_NICE", "-5", "--background-nice"),
        ("RETRY_MAX_MS", "10", "RETRY_MAX_MS"),
        (
            "DATABASE_MAX_CONNECTIONS",
            "0",
            "--database-max-connections",
        ),
        (
            "DATABASE_URL",
            "mysql://root:secret@localhost/orders",
            "DATABASE_URL",
        ),
    ];
    for (name, value, named) in cases {
        let output = run(&["serve"], &[("DATABASE_URL", &db.url), (name, value)]);
        assert!(!output.status.success(), "{name}={value} must fail");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(named), "{name}={value}: {stderr}");
    }
}

/// Environment settings for one start.
type Settings<'a> = &'a [(&'a str, &'a str)];

#[test]
fn contradicting_settings_fail_with_one_line_naming_both_and_status_2() {
    let db = TestDb::sqlite();
    let secret = ("PROCESSOR_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    let url = ("PROCESSOR_URL", "http://127.0.0.1:9/orders");
    let cases: [(Settings, [&str; 2]); 4] = [
        (
            &[
                ("PROCESSING_TIME_MS", "2000"),
                ("PROCESSING_TIMEOUT_MS", "1500"),
            ],
            ["PROCESSING_TIMEOUT_MS (1500)", "PROCESSING_TIME_MS (2000)"],
        ),
        (&[url], ["PROCESSOR_URL", "PROCESSOR_SECRET"]),
        (
            &[url, ("PROCESSOR_SECRET", "whsec_c2hvcnQ=")],
            ["PROCESSOR_SECRET", "24 to 64 bytes"],
        ),
        (
            &[url, secret, ("PROCESSING_FAILURE_RATE", "0.5")],
            ["PROCESSING_FAILURE_RATE", "PROCESSOR_URL"],
        ),
    ];
    for (settings, named) in cases {
        let mut envs = vec![("DATABASE_URL", db.url.as_str()), ("RUST_BACKTRACE", "1")];
        envs.extend_from_slice(settings);
        let output = run(&["serve"], &envs);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{settings:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
        assert!(!stderr.to_lowercase().contains("backtrace"), "{stderr}");
        for name in named {
            assert!(stderr.contains(name), "{settings:?} names {name}: {stderr}");
        }
    }
}

#[test]
fn unset_timeouts_are_derived_from_the_settings_that_are_set() {
    let db = TestDb::sqlite();
    let cases: [(Settings, u64, u64); 4] = [
        // The processing time alone is enough: the timeout is twice it.
        (&[("PROCESSING_TIME_MS", "60000")], 120_000, 30_000),
        (&[], 10_000, 30_000),
        // A lease far shorter than an attempt may take: heartbeats keep it.
        (
            &[
                ("PROCESSING_TIMEOUT_MS", "600000"),
                ("LEASE_TIMEOUT_MS", "2000"),
            ],
            600_000,
            2_000,
        ),
        (&[("PROCESSING_TIME_MS", "100")], 10_000, 30_000),
    ];
    for (settings, timeout_ms, lease_ms) in cases {
        let server = Server::start(&db.url, settings);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let started = loop {
            let logs = server.logs();
            if let Some(line) = logs.iter().find(|l| l["message"] == "worker pool started") {
                break line.clone();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the pool says how it runs"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        assert_eq!(started["processing_timeout_ms"], timeout_ms, "{settings:?}");
        assert_eq!(started["lease_ms"], lease_ms, "{settings:?}");
    }
}

async fn seed_inserts_the_ten_samples_once_however_often_it_runs(db: TestDb) {
    for _ in 0..2 {
        let output = run(&["seed"], &[("DATABASE_URL", &db.url)]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let metrics = db.store().await.metrics().await.unwrap();
    assert_eq!(metrics.counts.total(), 10);
    assert_eq!(metrics.counts.get(OrderStatus::Completed), 6);
    assert_eq!(metrics.counts.get(OrderStatus::Pending), 4);
    assert!(metrics.average_processing_seconds() > 0.0);
}

async fn migrate_prepares_an_empty_database(db: TestDb) {
    let output = run(&["migrate"], &[("DATABASE_URL", &db.url)]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(db.store().await.metrics().await.unwrap().counts.total(), 0);
}

#[test]
fn migrate_creates_the_sqlite_file() {
    let db = TestDb::sqlite();
    let path = db.dir().join("orders.db");
    assert!(!path.exists());
    let output = run(&["migrate"], &[("DATABASE_URL", &db.url)]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(path.exists());
}
