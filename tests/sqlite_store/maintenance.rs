//! The maintenance role: tests/maintenance.rs on the embedded store.
use crate::kit::*;
use chatter_jobs::maintenance::Maintenance;
use chatter_jobs::store::MaintenanceStore;
use serde_json::json;

async fn exec(db: &sqlx::SqlitePool, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(db)
        .await
        .unwrap();
}

async fn pairs(db: &sqlx::SqlitePool, sql: &str) -> Vec<(String, String)> {
    sqlx::query_as(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_all(db)
        .await
        .unwrap()
}

/// tests/maintenance.rs on the embedded store: the same seeds, the same reports.
#[tokio::test]
async fn each_maintenance_job_changes_what_it_should_once() {
    let k = kit().await;
    let db = &k.db;
    let m = Maintenance::new(k.store.clone());
    let days = |n: i64| format!("(CAST(unixepoch('subsec') * 1000 AS INTEGER) - {n} * 86400000)");
    let s = |v: &[(&str, &str)]| {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    };

    exec(db, &format!("INSERT INTO audit_logs (id, action, created_at) VALUES ('old', 'login', {}), ('recent', 'login', {})", days(400), days(10))).await;
    assert_eq!(
        m.run("database_maintenance").await.unwrap(),
        json!({"audit_logs_deleted": 1, "vacuum_analyze": true})
    );
    assert_eq!(
        pairs(db, "SELECT id, action FROM audit_logs ORDER BY id").await,
        s(&[("recent", "login")])
    );
    assert_eq!(
        m.run("database_maintenance").await.unwrap()["audit_logs_deleted"],
        0
    );

    for (id, status, created, updated) in [
        ("idle", "processed", 100, 95),
        ("ancient", "processed", 400, 1),
        ("fresh", "processed", 30, 1),
        ("pending_old", "pending", 400, 400),
        ("failed_old", "failed", 400, 400),
    ] {
        exec(db, &format!("INSERT INTO documents (id, owner_id, title, filename, file_path, status, created_at, updated_at) VALUES ('{id}', 'o', 't', 'f', 'p', '{status}', {}, {})", days(created), days(updated))).await;
    }
    assert_eq!(
        m.run("document_archiving").await.unwrap(),
        json!({"documents_archived": 2})
    );
    assert_eq!(
        pairs(db, "SELECT id, status FROM documents ORDER BY id").await,
        s(&[
            ("ancient", "archived"),
            ("failed_old", "failed"),
            ("fresh", "processed"),
            ("idle", "archived"),
            ("pending_old", "pending")
        ])
    );
    assert_eq!(
        m.run("document_archiving").await.unwrap()["documents_archived"],
        0
    );

    for (id, status, last, updated) in [
        ("idle", "active", Some(200), 200),
        ("talking", "active", Some(5), 300),
        ("gone", "archived", None, 800),
        ("kept", "archived", None, 100),
    ] {
        let last = last.map_or("NULL".to_string(), days);
        exec(db, &format!("INSERT INTO conversations (id, user_id, status, last_message_at, updated_at) VALUES ('{id}', 'u', '{status}', {last}, {}); INSERT INTO messages (id, conversation_id, role, content) VALUES ('m-{id}', '{id}', 'user', 'hi')", days(updated))).await;
    }
    assert_eq!(
        m.run("conversation_cleanup").await.unwrap(),
        json!({"conversations_archived": 1, "conversations_deleted": 1})
    );
    assert_eq!(
        pairs(db, "SELECT id, status FROM conversations ORDER BY id").await,
        s(&[
            ("idle", "archived"),
            ("kept", "archived"),
            ("talking", "active")
        ])
    );
    assert_eq!(
        pairs(db, "SELECT id, conversation_id FROM messages ORDER BY id")
            .await
            .len(),
        3
    );
    assert_eq!(
        m.run("conversation_cleanup").await.unwrap(),
        json!({"conversations_archived": 0, "conversations_deleted": 0})
    );

    // Exact search has no index: nothing to rebuild, and the store's calls say so.
    assert!(k.store.rebuild_vector_indexes().await.unwrap().is_empty());
    let r = m.run("vector_store_maintenance").await.unwrap();
    assert_eq!(r["indexes"], json!([]), "{r}");
    k.store.vacuum_analyze().await.unwrap();
}
