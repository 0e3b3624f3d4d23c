//! Chatter's maintenance jobs on seeded data in the real PostgreSQL: the rows each should touch
//! change, the others do not, and a second run changes nothing.
#[path = "common/mod.rs"]
mod common;
#[path = "common/docs.rs"]
mod docs;

use chatter_worker::jobs::maintenance::Maintenance;
use docs::doc_kit;
use serde_json::json;
use sqlx::Row;

async fn exec(pool: &sqlx::PgPool, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(pool)
        .await
        .unwrap();
}

async fn column(pool: &sqlx::PgPool, sql: &str) -> Vec<(String, String)> {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
        .collect()
}

#[tokio::test]
async fn each_maintenance_job_changes_what_it_should_once() {
    let k = doc_kit().await;
    let pool = k.db.clone();
    let m = Maintenance::new(k.store.clone());
    let days = |n: i64| format!("now() - interval '{n} days'");

    // database_maintenance: audit logs older than 365 days go.
    exec(
        &pool,
        &format!(
            "INSERT INTO audit_logs (id, action, created_at) VALUES
             ('old', 'login', {}), ('recent', 'login', {})",
            days(400),
            days(10)
        ),
    )
    .await;
    assert_eq!(
        m.run("database_maintenance").await.unwrap(),
        json!({"audit_logs_deleted": 1, "vacuum_analyze": true})
    );
    let left = column(&pool, "SELECT id, action FROM audit_logs ORDER BY id").await;
    assert_eq!(left, [("recent".to_string(), "login".to_string())]);
    assert_eq!(
        m.run("database_maintenance").await.unwrap()["audit_logs_deleted"],
        0
    );

    // document_archiving: processed and unchanged for 90 days, or older than 365 days.
    for (id, status, created, updated) in [
        ("idle", "processed", 100, 95),
        ("ancient", "processed", 400, 1),
        ("fresh", "processed", 30, 1),
        ("pending_old", "pending", 400, 400),
        ("failed_old", "failed", 400, 400),
    ] {
        exec(
            &pool,
            &format!(
                "INSERT INTO documents (id, owner_id, title, filename, file_path, status,
                                        created_at, updated_at)
                 VALUES ('{id}', 'o', 't', 'f', 'p', '{status}', {}, {})",
                days(created),
                days(updated)
            ),
        )
        .await;
    }
    assert_eq!(
        m.run("document_archiving").await.unwrap(),
        json!({"documents_archived": 2})
    );
    let docs = column(&pool, "SELECT id, status FROM documents ORDER BY id").await;
    let want = [
        ("ancient", "archived"),
        ("failed_old", "failed"),
        ("fresh", "processed"),
        ("idle", "archived"),
        ("pending_old", "pending"),
    ];
    assert_eq!(docs, want.map(|(a, b)| (a.to_string(), b.to_string())),);
    assert_eq!(
        m.run("document_archiving").await.unwrap()["documents_archived"],
        0
    );

    // conversation_cleanup: idle 180 days -> archived; archived over 730 days -> deleted with
    // their messages.
    for (id, status, last, updated) in [
        ("idle", "active", Some(200), 200),
        ("talking", "active", Some(5), 300),
        ("gone", "archived", None, 800),
        ("kept", "archived", None, 100),
    ] {
        let last = last.map_or("NULL".to_string(), days);
        exec(
            &pool,
            &format!(
                "INSERT INTO conversations (id, user_id, status, last_message_at, updated_at)
                 VALUES ('{id}', 'u', '{status}', {last}, {});
                 INSERT INTO messages (id, conversation_id, role, content)
                 VALUES ('m-{id}', '{id}', 'user', 'hi')",
                days(updated)
            ),
        )
        .await;
    }
    assert_eq!(
        m.run("conversation_cleanup").await.unwrap(),
        json!({"conversations_archived": 1, "conversations_deleted": 1})
    );
    let convs = column(&pool, "SELECT id, status FROM conversations ORDER BY id").await;
    let want = [
        ("idle", "archived"),
        ("kept", "archived"),
        ("talking", "active"),
    ];
    assert_eq!(convs, want.map(|(a, b)| (a.to_string(), b.to_string())));
    let msgs = column(
        &pool,
        "SELECT id, conversation_id FROM messages ORDER BY id",
    )
    .await;
    assert_eq!(
        msgs.len(),
        3,
        "the deleted conversation's message went with it: {msgs:?}"
    );
    assert_eq!(
        m.run("conversation_cleanup").await.unwrap(),
        json!({"conversations_archived": 0, "conversations_deleted": 0})
    );

    // vector_store_maintenance: every HNSW index of the schema rebuilt and reported.
    exec(
        &pool,
        "CREATE TABLE vecs (id INT PRIMARY KEY, e vector(3));
         INSERT INTO vecs SELECT i, ARRAY[i, 1, 2]::vector FROM generate_series(1, 50) i;
         CREATE INDEX vecs_hnsw ON vecs USING hnsw (e vector_cosine_ops);",
    )
    .await;
    let before = column(&pool, "SELECT id::text, e::text FROM vecs ORDER BY id").await;
    for _ in 0..2 {
        let r = m.run("vector_store_maintenance").await.unwrap();
        let ours: Vec<_> = r["indexes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["index"] == "vecs_hnsw")
            .collect();
        assert_eq!(ours.len(), 1, "{r}");
        assert!(ours[0]["bytes"].as_i64().unwrap() > 0);
    }
    assert_eq!(
        column(&pool, "SELECT id::text, e::text FROM vecs ORDER BY id").await,
        before
    );
}
