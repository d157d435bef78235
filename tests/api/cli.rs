//! The command line: help, settings validation, `migrate` and `seed`.

use order_processor::domain::OrderStatus;

use crate::binary::run;
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
        ("PROCESSING_TIMEOUT_MS", "10000"),
        ("PROCESSING_FAILURE_RATE", "0"),
        ("MAX_ATTEMPTS", "5"),
        ("RETRY_BASE_MS", "1000"),
        ("RETRY_MAX_MS", "300000"),
    ] {
        assert!(
            help.contains(&format!("env: {env}=")),
            "{env} in help:\n{help}"
        );
        assert!(
            help.contains(&format!("[default: {default}]")),
            "default {default} of {env} in help"
        );
    }
    for env in [
        "AUTH_JWT_SECRET",
        "AUTH_JWT_PUBLIC_KEY",
        "AUTH_JWT_ISSUER",
        "AUTH_JWT_AUDIENCE",
        "RATE_LIMIT_PER_SEC",
        "RATE_LIMIT_BURST",
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
        ("LEASE_TIMEOUT_MS", "500", "LEASE_TIMEOUT_MS"),
        ("LEASE_TIMEOUT_MS", "999999999999", "--lease-timeout-ms"),
        ("PROCESSING_TIME_MS", "20000", "PROCESSING_TIMEOUT_MS"),
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
