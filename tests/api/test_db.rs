//! Test databases: a fresh SQLite file in its own temporary directory, or a fresh
//! PostgreSQL schema (dropped with the test, and swept if a run was killed), and direct
//! SQL on them behind the app's back.

use std::sync::Arc;

use order_processor::store::{self, Store};
use tempfile::TempDir;

/// A fresh database for one test: a SQLite file in its own temporary directory, or a
/// PostgreSQL schema of its own. Dropped with the test.
pub struct TestDb {
    pub url: String,
    pub guard: Guard,
}

pub enum Guard {
    Dir(TempDir),
    Schema { admin_url: String, name: String },
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Guard::Schema { admin_url, name } = self {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Detached: a test must not wait on this. What is left behind by an
            // interrupted run is swept by `sweep_stale_schemas` in a later one.
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(drop_schema(&admin_url, &name));
            });
        }
    }
}

async fn drop_schema(admin_url: &str, name: &str) {
    use sqlx::Connection;
    if let Ok(mut conn) = sqlx::PgConnection::connect(admin_url).await {
        let _ = sqlx::query("SET lock_timeout = '5s'")
            .execute(&mut conn)
            .await;
        let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
            .execute(&mut conn)
            .await;
    }
}

/// Schema names carry their creation time, so leftovers can be told from live ones.
const SCHEMA_PREFIX: &str = "op_test_";

/// Drops schemas older than an hour, left by runs that were killed.
async fn sweep_stale_schemas(admin_url: &str) {
    use sqlx::Connection;
    let Ok(mut conn) = sqlx::PgConnection::connect(admin_url).await else {
        return;
    };
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'op\\_test\\_%'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap_or_default();
    let hour_ago = chrono::Utc::now().timestamp() - 3600;
    for name in names {
        let created = name
            .strip_prefix(SCHEMA_PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<i64>().ok());
        if created.is_some_and(|secs| secs < hour_ago) {
            drop_schema(admin_url, &name).await;
        }
    }
}

static SKIP_NOTICE: std::sync::Once = std::sync::Once::new();
static SWEEP: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

impl TestDb {
    /// A fresh SQLite file.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("orders.db").display());
        Self {
            url,
            guard: Guard::Dir(dir),
        }
    }

    /// A fresh schema on the PostgreSQL that `TEST_DATABASE_URL` names. Without it,
    /// `None` (and one line saying PostgreSQL tests are skipped); with
    /// `REQUIRE_POSTGRES=1`, a missing or unreachable PostgreSQL fails the test.
    pub async fn postgres() -> Option<Self> {
        use sqlx::Connection;
        let required = std::env::var("REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
        let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
            assert!(
                !required,
                "REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is not set"
            );
            SKIP_NOTICE.call_once(|| {
                use std::io::Write;
                // Written past the test harness's capture, so the skip is seen.
                let _ = writeln!(
                    std::io::stderr(),
                    "note: PostgreSQL tests skipped: set TEST_DATABASE_URL (for example \
                     postgres://postgres@127.0.0.1:5432/test) to run them"
                );
            });
            return None;
        };
        SWEEP.get_or_init(|| sweep_stale_schemas(&admin_url)).await;
        let name = format!(
            "{SCHEMA_PREFIX}{}_{}",
            chrono::Utc::now().timestamp(),
            uuid::Uuid::new_v4().simple()
        );
        let mut conn = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|err| panic!("PostgreSQL at TEST_DATABASE_URL unreachable: {err}"));
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(&mut conn)
            .await
            .expect("create schema");
        let separator = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{separator}options=-c%20search_path%3D{name}");
        Some(Self {
            url,
            guard: Guard::Schema { admin_url, name },
        })
    }

    /// A store on this database, migrated.
    pub async fn store(&self) -> Arc<dyn Store> {
        let store = store::connect(&self.url, 4).await.expect("open store");
        store.migrate().await.expect("migrate");
        store
    }

    /// The SQLite file's directory (SQLite only).
    pub fn dir(&self) -> &std::path::Path {
        match &self.guard {
            Guard::Dir(dir) => dir.path(),
            Guard::Schema { .. } => panic!("a PostgreSQL test database has no directory"),
        }
    }
}

/// Runs a `SELECT COUNT(*) ...` on the test database directly, behind the app's back,
/// to see what is really stored rather than what the API chooses to show.
pub async fn count_rows(url: &str, sql: &str) -> i64 {
    use sqlx::Connection;
    if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
    }
}

/// Runs a statement on the test database directly, behind the app's back (to break
/// what the store relies on, say).
pub async fn execute(url: &str, sql: &str) {
    use sqlx::Connection;
    if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }
}
