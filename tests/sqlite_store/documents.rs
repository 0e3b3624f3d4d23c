//! The documents role: a document's whole life, on SQLite and as PostgreSQL.
use crate::kit::*;
use chatter_jobs::store::{DocumentStatus, DocumentStore, NewDocument, StoreError, StoreHealth};
use serde_json::{Value, json};

/// A document's whole life; the transcript names documents by label, not id.
async fn document_life(s: &dyn DocumentStore) -> Vec<Value> {
    let mut t = Vec::new();
    let mut d = NewDocument::new("alice", "docs/a.txt");
    d.file_hash = Some("h1".into());
    let (id, created) = s.register_document(&d).await.unwrap();
    let (again, created_again) = s.register_document(&d).await.unwrap();
    assert_eq!(id, again, "the same file of the same owner is one document");
    t.push(json!(["register", created, created_again]));
    let mut other = d.clone();
    other.owner_id = "bob".into();
    let (bob_id, bob_created) = s.register_document(&other).await.unwrap();
    assert_ne!(bob_id, id);
    t.push(json!(["register other owner", bob_created]));
    let doc = s.document(&id).await.unwrap().unwrap();
    t.push(json!([
        "document",
        doc.status,
        doc.filename,
        doc.chunk_count
    ]));

    // Not started: no run owns it.
    let (r0, x0, c0) = (run("j0", 1), extracted("x"), chunks("a", 1));
    t.push(superseded(
        s.replace_chunks(&id, &r0, &x0, &c0, false).await,
    ));

    let r1 = run("j1", 1);
    let started = s.start_processing(&id, &r1).await.unwrap().unwrap();
    t.push(json!(["start", started.status]));
    let first = chunks("a", 3);
    s.replace_chunks(&id, &r1, &extracted("h1"), &first, false)
        .await
        .unwrap();
    let ids = s.chunk_ids(&id).await.unwrap();
    assert_eq!(ids, first.iter().map(|c| c.id.clone()).collect::<Vec<_>>());
    let doc = s.document(&id).await.unwrap().unwrap();
    t.push(json!(["chunks", ids.len(), doc.status, doc.chunk_count]));

    // A newer job takes over: the first run changes nothing any more.
    let r2 = run("j2", 2);
    s.start_processing(&id, &r2).await.unwrap().unwrap();
    t.push(superseded(
        s.replace_chunks(&id, &r1, &extracted("h1"), &chunks("b", 1), true)
            .await,
    ));
    t.push(superseded(s.fail_document(&id, &r1, "late").await));
    assert_eq!(s.chunk_ids(&id).await.unwrap(), ids, "chunks untouched");

    let second = chunks("c", 2);
    s.replace_chunks(&id, &r2, &extracted("h1"), &second, true)
        .await
        .unwrap();
    let doc = s.document(&id).await.unwrap().unwrap();
    t.push(json!([
        "processed",
        doc.status,
        doc.chunk_count,
        doc.processing_error
    ]));
    assert_eq!(s.chunk_ids(&id).await.unwrap().len(), 2);

    s.fail_document(&id, &r2, "boom").await.unwrap();
    let doc = s.document(&id).await.unwrap().unwrap();
    t.push(json!([
        "failed",
        doc.status,
        doc.chunk_count,
        doc.processing_error
    ]));
    assert!(s.chunk_ids(&id).await.unwrap().is_empty());

    let st = s
        .statuses(&[id.clone(), bob_id.clone(), "missing".into()])
        .await
        .unwrap();
    let labelled: Vec<Value> = st
        .iter()
        .map(|(i, status, err)| json!([if *i == id { "alice" } else { "bob" }, status, err]))
        .collect();
    t.push(json!([
        "statuses",
        labelled.len(),
        labelled.iter().any(|l| l[0] == "alice" && l[1] == "failed")
    ]));
    let missing = s.start_processing("missing", &r1).await;
    t.push(json!([
        "start missing",
        matches!(missing, Err(StoreError::NoDocument(_)))
    ]));
    t
}

#[tokio::test]
async fn a_documents_whole_life() {
    let k = kit().await;
    k.store.ping().await.unwrap();
    let t = document_life(&k.store).await;
    assert_eq!(
        t,
        [
            json!(["register", true, false]),
            json!(["register other owner", true]),
            json!(["document", DocumentStatus::Pending, "a.txt", 0]),
            json!(["superseded", "", 0]),
            json!(["start", "processing"]),
            json!(["chunks", 3, "processing", 3]),
            json!(["superseded", "j2", 2]),
            json!(["superseded", "j2", 2]),
            json!(["processed", "processed", 2, null]),
            json!(["failed", "failed", 0, "boom"]),
            json!(["statuses", 2, true]),
            json!(["start missing", true]),
        ]
    );
    // An archived document is left alone.
    let (id, _) = k
        .store
        .register_document(&NewDocument::new("alice", "b.txt"))
        .await
        .unwrap();
    sqlx::query("UPDATE documents SET status = 'archived' WHERE id = ?1")
        .bind(&id)
        .execute(&k.db)
        .await
        .unwrap();
    assert!(
        k.store
            .start_processing(&id, &run("j", 1))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_documents_whole_life_as_postgres() {
    let k = kit().await;
    let (pg, db, schema) = pg().await;
    assert_eq!(document_life(&k.store).await, document_life(&pg).await);
    drop_schema(&db, &schema).await;
}
