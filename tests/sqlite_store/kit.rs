//! What every scenario shares: a fresh SQLite file per test, a PostgreSQL schema per
//! comparison, and the values the scenarios build.
use chatter_jobs::store::sqlite::{SqliteStore, open};
use chatter_jobs::store::vectors::Space;
use chatter_jobs::store::{Extracted, NewChunk, Run, Store, StoreError};
use serde_json::{Value, json};
use std::path::PathBuf;

/// A migrated SQLite file of the test's own (removed, with its WAL, when dropped).
pub struct Kit {
    pub store: SqliteStore,
    pub db: sqlx::SqlitePool,
    pub path: PathBuf,
}

impl Drop for Kit {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
        }
    }
}

pub async fn kit() -> Kit {
    let path = std::env::temp_dir().join(format!("cw-sqlite-store-{}.db", ulid::Ulid::new()));
    let db = open(&path).await.expect("open the SQLite file");
    Kit {
        store: SqliteStore::new(db.clone()),
        db,
        path,
    }
}

/// A migrated PostgreSQL schema of the test's own, and a pool on it for direct reads.
pub async fn pg() -> (Store, sqlx::PgPool, String) {
    let base = std::env::var("DATABASE_URL")
        .expect("DATABASE_URL is not set: run the tests through scripts/test.sh");
    let schema = format!("t_{}", ulid::Ulid::new().to_string().to_lowercase());
    let admin = sqlx::PgPool::connect(&base).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-csearch_path%3D{schema},public");
    let store = Store::connect(&url, 4).await.unwrap();
    store.migrate().await.unwrap();
    let db = sqlx::PgPool::connect(&url).await.unwrap();
    (store, db, schema)
}

pub async fn drop_schema(db: &sqlx::PgPool, schema: &str) {
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(db)
        .await
        .unwrap();
}

pub fn run(job: &str, fence: i64) -> Run {
    Run {
        job_id: job.into(),
        fence,
    }
}

pub fn chunks(prefix: &str, n: usize) -> Vec<NewChunk> {
    (0..n)
        .map(|i| {
            let content = format!("{prefix} chunk {i}");
            NewChunk {
                id: ulid::Ulid::new().to_string(),
                chunk_index: i as i32,
                content_hash: format!("hash-{content}"),
                token_count: 3,
                start_char: (i * 10) as i32,
                end_char: (i * 10 + 9) as i32,
                content,
            }
        })
        .collect()
}

pub fn extracted(hash: &str) -> Extracted {
    Extracted {
        text: "the text".into(),
        document_type: "text".into(),
        mime_type: "text/plain".into(),
        file_size: 8,
        file_hash: hash.into(),
    }
}

pub fn superseded(r: Result<(), StoreError>) -> Value {
    match r {
        Err(StoreError::Superseded { job_id, fence, .. }) => json!(["superseded", job_id, fence]),
        other => json!(format!("{other:?}")),
    }
}

/// Deterministic vectors in [-1, 1).
pub fn vector(seed: u64, dims: usize) -> Vec<f32> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..dims)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum();
    dot / (na * nb).sqrt()
}

pub fn space(model: &str, dimensions: usize) -> Space {
    Space {
        provider: "local".into(),
        model: model.into(),
        dimensions,
    }
}
