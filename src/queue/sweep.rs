//! One consistency pass over a queue: every job record is checked against the structure its
//! status says it is in (sweep.lua), so a job that something left in no structure is put back,
//! and a malformed record is dead-lettered with its reason. Safe in every process at once.
//!
//! Ready-list membership needs a list scan, so it is checked against two snapshots of the lists
//! (before and after the key scan): only a pending job in neither, and in no scheduled set, is
//! looked for in its list inside the script, and pushed when it is really absent.
use super::{RedisQueue, Result, array, int, scripts};
use crate::backend::model::*;
use redis::Value;
use std::collections::HashSet;
use std::time::Duration;

/// Keys read per SCAN step and ids per script call (a call reads ~10 small fields per record,
/// not the payloads: a few ms of Redis at most).
const STEP: usize = 200;
/// Above this many ready jobs the ready-list check is skipped for the pass (its snapshots would
/// cost more than a stranded job is likely to): reported in [`SweepReport::ready_check_skipped`].
const MAX_READY_SNAPSHOT: u64 = 200_000;
/// Ready ids read per LRANGE of a snapshot.
const SNAPSHOT_PAGE: i64 = 10_000;

impl RedisQueue {
    /// Check every job record of this queue once. A running job found without a lease gets
    /// one of `lease` (a live holder's heartbeat keeps it; a dead holder's runs out).
    pub async fn sweep(&self, lease: Duration) -> Result<SweepReport> {
        let lease_ms = lease.as_millis() as u64;
        let mut report = SweepReport::default();
        // Structures of the wrong type are set aside first, so the snapshots read.
        self.sweep_call("structures", lease_ms, &[], &mut report)
            .await?;
        let before = self.ready_snapshot().await?;
        report.ready_check_skipped = before.is_none();
        let mut unplaced = Vec::new();
        let mut conn = self.conn.clone();
        let pattern = format!("{}*", self.keys.job_prefix());
        let jobs = self.keys.job_prefix();
        let mut cursor: u64 = 0;
        loop {
            let (next, keys) = scan_step(&mut conn, cursor, &pattern, STEP).await?;
            // A key that is not UTF-8 cannot be a job id this code wrote; SCAN may repeat keys.
            let ids: Vec<String> = keys
                .into_iter()
                .filter_map(|k| String::from_utf8(k).ok())
                .filter_map(|k| k.strip_prefix(&jobs).map(str::to_string))
                .collect();
            for chunk in ids.chunks(STEP) {
                unplaced.extend(
                    self.sweep_call("check", lease_ms, chunk, &mut report)
                        .await?,
                );
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        if let Some(before) = before {
            let suspects: Vec<String> = unplaced
                .into_iter()
                .filter(|id| !before.contains(id))
                .collect();
            if !suspects.is_empty()
                && let Some(after) = self.ready_snapshot().await?
            {
                let suspects: Vec<String> = suspects
                    .into_iter()
                    .filter(|id| !after.contains(id))
                    .collect();
                for chunk in suspects.chunks(STEP) {
                    self.sweep_call("ready", lease_ms, chunk, &mut report)
                        .await?;
                }
            }
        }
        // Counted after the pass: keys it set aside itself are among them.
        report.set_aside = self.count_set_aside().await?;
        Ok(report)
    }

    /// One sweep.lua call; returns the pending ids it found in no scheduled set.
    async fn sweep_call(
        &self,
        mode: &str,
        lease_ms: u64,
        ids: &[String],
        report: &mut SweepReport,
    ) -> Result<Vec<String>> {
        let k = &self.keys;
        let mut inv = scripts::SWEEP.prepare_invoke();
        inv.key(k.job_prefix())
            .key(k.ready_prefix())
            .key(k.scheduled())
            .key(k.retry())
            .key(k.leases())
            .key(k.dead())
            .key(k.done())
            .key(k.notify())
            .arg(mode)
            .arg(lease_ms)
            .arg(ids);
        let reply: Value = inv.invoke_async(&mut self.conn.clone()).await?;
        let mut a = array(reply, "sweep")?.into_iter();
        let mut next = || a.next().unwrap_or(Value::Nil);
        report.checked += int(&next()) as u64;
        report.repaired += int(&next()) as u64;
        report.dead_lettered += int(&next()) as u64;
        Ok(array(next(), "sweep")
            .unwrap_or_default()
            .into_iter()
            .map(super::text)
            .collect())
    }

    /// Every id in the ready lists now (read in pages; an entry moving between pages is at
    /// worst a suspect the script then looks for itself), or None when there are too many.
    async fn ready_snapshot(&self) -> Result<Option<HashSet<String>>> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        for p in chatter_jobs::Priority::ALL {
            pipe.cmd("LLEN").arg(self.keys.ready(p));
        }
        let lens: Vec<i64> = pipe.query_async(&mut conn).await?;
        if lens.iter().sum::<i64>() as u64 > MAX_READY_SNAPSHOT {
            return Ok(None);
        }
        let mut ids = HashSet::new();
        for (p, len) in chatter_jobs::Priority::ALL.iter().zip(lens) {
            let mut start = 0;
            while start < len {
                let page: Vec<Vec<u8>> = redis::cmd("LRANGE")
                    .arg(self.keys.ready(*p))
                    .arg(start)
                    .arg(start + SNAPSHOT_PAGE - 1)
                    .query_async(&mut conn)
                    .await?;
                if page.is_empty() {
                    break;
                }
                ids.extend(page.iter().map(|b| String::from_utf8_lossy(b).into_owned()));
                start += SNAPSHOT_PAGE;
            }
        }
        Ok(Some(ids))
    }

    /// Keys of this queue set aside as the wrong type (`<p>:{q}:corrupt:*`).
    pub async fn count_set_aside(&self) -> Result<u64> {
        let mut conn = self.conn.clone();
        let pattern = format!("{}:{{{}}}:corrupt:*", self.keys.prefix(), self.name());
        let mut cursor: u64 = 0;
        let mut n = 0;
        loop {
            let (next, keys) = scan_step(&mut conn, cursor, &pattern, 1000).await?;
            n += keys.len() as u64;
            cursor = next;
            if cursor == 0 {
                return Ok(n);
            }
        }
    }
}

/// One SCAN step over the keys matching `pattern`: the next cursor (0 = done) and the keys, as
/// bytes (a key need not be UTF-8).
async fn scan_step(
    conn: &mut redis::aio::ConnectionManager,
    cursor: u64,
    pattern: &str,
    count: usize,
) -> Result<(u64, Vec<Vec<u8>>)> {
    Ok(redis::cmd("SCAN")
        .arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(count)
        .query_async(conn)
        .await?)
}
