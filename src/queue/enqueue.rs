//! Producers' side: put jobs on a queue, one at a time or in large pipelined batches.
//!
//! A single enqueue is one round trip. A batch is cut into bounded chunks (one script call each)
//! sent in pipelined groups, so 100k jobs take a few dozen round trips and no call blocks Redis
//! for long. Enqueue is idempotent by job id, so a producer may resend after a lost reply.
use super::{QueueError, RedisQueue, Result, array, int, now_ms, scripts, text};
use crate::backend::model::*;
use chatter_jobs::Job;
use redis::Value;
use redis::aio::ConnectionManager;

/// Jobs per script call: bounds how long one call holds Redis (~a few ms).
const CHUNK: usize = 500;
/// Script calls per pipelined round trip.
const CHUNKS_PER_ROUND_TRIP: usize = 16;

impl RedisQueue {
    pub async fn enqueue(&self, job: &Job) -> Result<Enqueued> {
        Ok(self
            .enqueue_batch(std::slice::from_ref(job))
            .await?
            .remove(0))
    }

    /// Enqueue many jobs; the reply lists each job's id in order. Every job is validated (its
    /// fields, then its size and schedule against `options.limits`) before anything is sent, so a
    /// bad job refuses the whole batch.
    pub async fn enqueue_batch(&self, jobs: &[Job]) -> Result<Vec<Enqueued>> {
        check(jobs, &self.options.limits)?;
        for job in jobs {
            if job.queue != self.name() {
                return Err(QueueError::WrongQueue {
                    id: job.id.clone(),
                    job_queue: job.queue.clone(),
                    queue: self.name().to_string(),
                });
            }
        }
        let mut conn = self.conn.clone();
        let mut out = Vec::with_capacity(jobs.len());
        for group in jobs.chunks(CHUNK * CHUNKS_PER_ROUND_TRIP) {
            out.extend(read_replies(self.send_group(&mut conn, group).await?)?);
        }
        crate::backend::checks::record_created(jobs, &out);
        Ok(out)
    }

    /// One enqueue script call for up to [`CHUNK`] jobs of this queue.
    fn push_call(&self, pipe: &mut redis::Pipeline, chunk: &[Job], now: u64, ttl: u64) {
        let cmd = pipe
            .cmd("EVALSHA")
            .arg(scripts::ENQUEUE.get_hash())
            .arg(6)
            .arg(self.keys.job_prefix())
            .arg(self.keys.ready_prefix())
            .arg(self.keys.scheduled())
            .arg(self.keys.notify())
            .arg(self.keys.idem_prefix())
            .arg(self.keys.owner_index_prefix())
            .arg(now)
            .arg(ttl);
        for job in chunk {
            let run_at = job
                .scheduled_at
                .map(|t| t.millis())
                .filter(|t| *t > now)
                .unwrap_or(0);
            cmd.arg(&job.id)
                .arg(job.encode())
                .arg(job.priority.as_str())
                .arg(run_at)
                .arg(job.max_attempts())
                .arg(job.idempotency_key.as_deref().unwrap_or(""))
                .arg(job.created_by_user_id.as_deref().unwrap_or(""))
                .arg(job.created_at.millis());
        }
    }

    async fn send_group(
        &self,
        conn: &mut redis::aio::ConnectionManager,
        group: &[Job],
    ) -> Result<Vec<Value>> {
        let now = now_ms();
        let ttl = self.options.idempotency_ttl.as_millis() as u64;
        let build = || {
            let mut pipe = redis::pipe();
            // The queue joins the registry (for `queues` and metrics) in the same round trip.
            pipe.cmd("SADD")
                .arg(super::Keys::registry(self.keys.prefix()))
                .arg(self.name())
                .ignore();
            for chunk in group.chunks(CHUNK) {
                self.push_call(&mut pipe, chunk, now, ttl);
            }
            pipe
        };
        match build().query_async::<Vec<Value>>(conn).await {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                // A restarted Redis lost its script cache: load and resend. Enqueue is idempotent
                // by job id, so chunks that did run are not enqueued twice.
                scripts::ENQUEUE.prepare_invoke().load_async(conn).await?;
                Ok(build().query_async(conn).await?)
            }
            other => Ok(other?),
        }
    }
}

/// Enqueue jobs of any queues all or nothing: one MULTI/EXEC carries every script call, so Redis
/// applies all of them or, when the connection fails first, none (the HTTP API's batch). Meant for
/// batches up to about 10k jobs: the transaction holds Redis while it runs (~10 ms per 1k jobs).
pub async fn enqueue_atomic(
    conn: &ConnectionManager,
    prefix: &str,
    options: &super::QueueOptions,
    jobs: &[Job],
) -> Result<Vec<Enqueued>> {
    check(jobs, &options.limits)?;
    let mut conn = conn.clone();
    let mut names: Vec<&str> = jobs.iter().map(|j| j.queue.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let _: () = redis::cmd("SADD")
        .arg(super::Keys::registry(prefix))
        .arg(&names)
        .query_async(&mut conn)
        .await?;
    // Inside MULTI a missing script would fail only its own call: load it first.
    scripts::ENQUEUE
        .prepare_invoke()
        .load_async(&mut conn)
        .await?;
    let now = now_ms();
    let ttl = options.idempotency_ttl.as_millis() as u64;
    let mut pipe = redis::pipe();
    pipe.atomic();
    let mut order = Vec::with_capacity(jobs.len());
    for name in &names {
        let q = RedisQueue::new(conn.clone(), prefix, name, options.clone());
        let (at, batch): (Vec<usize>, Vec<Job>) = jobs
            .iter()
            .enumerate()
            .filter(|(_, j)| j.queue == *name)
            .map(|(i, j)| (i, j.clone()))
            .unzip();
        order.extend(at);
        for chunk in batch.chunks(CHUNK) {
            q.push_call(&mut pipe, chunk, now, ttl);
        }
    }
    // EXEC applies every call, but one that fails inside it (a flushed script cache, OOM) does
    // not undo the others: send the same calls once more. Enqueue is idempotent by job id, so
    // the calls that did run change nothing the second time and the batch ends complete.
    let replies: Vec<Value> = match pipe.query_async(&mut conn).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, jobs = jobs.len(), "atomic enqueue failed; sending it again");
            scripts::ENQUEUE
                .prepare_invoke()
                .load_async(&mut conn)
                .await?;
            pipe.query_async(&mut conn).await?
        }
    };
    let found = read_replies(replies)?;
    let mut out = vec![
        Enqueued {
            id: String::new(),
            created: false
        };
        jobs.len()
    ];
    for (i, e) in order.into_iter().zip(found) {
        out[i] = e;
    }
    crate::backend::checks::record_created(jobs, &out);
    Ok(out)
}

/// The one check every producer's jobs pass (moved to the backend seam, shared by backends).
pub use crate::backend::checks::check;

/// The enqueue script's replies (two values per job: id, created) as [`Enqueued`]s in order.
fn read_replies(replies: Vec<Value>) -> Result<Vec<Enqueued>> {
    let mut out = Vec::new();
    for reply in replies {
        let mut it = array(reply, "enqueue")?.into_iter();
        while let (Some(id), Some(created)) = (it.next(), it.next()) {
            out.push(Enqueued {
                id: text(id),
                created: int(&created) == 1,
            });
        }
    }
    Ok(out)
}
