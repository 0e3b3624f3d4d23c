//! The job envelope: Chatter's job fields, JSON on the wire, with a format version.
//!
//! Producers build a [`Job`] (usually through [`JobBuilder`]) and encode it; workers decode it with
//! [`Job::decode`], which refuses a payload whose format version it does not understand instead of
//! misreading it. Mutable state (status, attempts, progress, result) lives beside the payload in the
//! queue, not in it: the envelope is written once.
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The envelope format this build writes and understands.
pub const FORMAT_VERSION: u32 = 1;

/// Chatter's `max_retries` range.
pub const MAX_RETRIES_LIMIT: u32 = 10;

/// Strict priority levels, highest first. Workers always take critical before high before normal
/// before low, FIFO within one level.
#[derive(
    Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Hash, Debug, Default, PartialOrd, Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Critical,
    High,
    #[default]
    Normal,
    Low,
}

impl Priority {
    /// Highest first: the order in which workers drain the ready lists.
    pub const ALL: [Priority; 4] = [Self::Critical, Self::High, Self::Normal, Self::Low];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::High => "high",
            Self::Normal => "normal",
            Self::Low => "low",
        }
    }
}

impl std::str::FromStr for Priority {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                format!("unknown priority {s:?}: expected one of critical, high, normal, low")
            })
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Chatter's job statuses. A dead-lettered job is `failed`; a job waiting for its retry is `retrying`.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Running,
    Completed,
    Failed,
    Cancelled,
    Retrying,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Retrying => "retrying",
        }
    }
}

impl std::str::FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [
            Self::Pending,
            Self::Running,
            Self::Completed,
            Self::Failed,
            Self::Cancelled,
            Self::Retrying,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
        .ok_or_else(|| format!("unknown status {s:?}"))
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// Compare with the wire text (`record.status == "completed"`), as callers and tests read it.
impl PartialEq<str> for Status {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}
impl PartialEq<&str> for Status {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}
impl PartialEq<&str> for Priority {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Milliseconds since the Unix epoch; RFC 3339 on the wire (Chatter's datetime fields).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    pub fn now() -> Self {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self(d.as_millis() as u64)
    }
    pub fn millis(self) -> u64 {
        self.0
    }
    pub fn rfc3339(self) -> String {
        let t = UNIX_EPOCH + Duration::from_millis(self.0);
        humantime::format_rfc3339_millis(t).to_string()
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let t = humantime::parse_rfc3339_weak(&s)
            .map_err(|e| serde::de::Error::custom(format!("bad timestamp {s:?}: {e}")))?;
        let ms = t
            .duration_since(UNIX_EPOCH)
            .map_err(serde::de::Error::custom)?;
        Ok(Self(ms.as_millis() as u64))
    }
}

fn default_max_retries() -> u32 {
    3
}
fn default_retry_delay() -> u64 {
    60
}
fn default_timeout() -> u64 {
    3600
}
fn default_version() -> u32 {
    0
}

/// One job as producers write it. Field names are Chatter's (`CHATTER_CONTRACTS.md`); `v` is the
/// envelope format version, `queue` the queue it was routed to, `idempotency_key` optional.
/// Empty and absent optional fields are left out on the wire (every payload is stored in Redis).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Job {
    #[serde(default = "default_version")]
    pub v: u32,
    pub id: String,
    pub name: String,
    pub function_name: String,
    pub queue: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Value>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub kwargs: Map<String, Value>,
    #[serde(default)]
    pub priority: Priority,
    pub created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_at: Option<Timestamp>,
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// Base of the retry backoff, seconds (Chatter's default 60).
    #[serde(default = "default_retry_delay")]
    pub retry_delay: u64,
    /// Execution time limit, seconds (Chatter's default 3600).
    #[serde(default = "default_timeout")]
    pub timeout: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by_user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// Why a payload could not be turned into a [`Job`].
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("payload is not JSON: {0}")]
    NotJson(String),
    #[error("payload has no format version field `v` (this worker reads version {FORMAT_VERSION})")]
    NoVersion,
    #[error(
        "payload format version {0} is not understood by this worker (it reads version {FORMAT_VERSION})"
    )]
    UnknownVersion(u64),
    #[error("payload does not match the job envelope: {0}")]
    Shape(String),
}

/// A field of a job that breaks the contract, named with the offending value.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid job field `{field}`: {message}")]
pub struct InvalidJob {
    pub field: &'static str,
    pub message: String,
}

impl Job {
    /// The first kwarg or nothing: handlers read typed arguments through [`Job::kwargs_as`].
    pub fn kwargs_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_value(Value::Object(self.kwargs.clone()))
            .map_err(|e| format!("bad arguments for `{}`: {e}", self.function_name))
    }

    pub fn encode(&self) -> String {
        // A Job holds only JSON-representable values, so serialisation cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Decode a payload, refusing versions this build does not know rather than misreading them.
    pub fn decode(bytes: &[u8]) -> Result<Job, DecodeError> {
        // Peek at the version alone (other fields are skipped unparsed), then decode in one pass.
        #[derive(Deserialize)]
        struct Version {
            v: Option<Value>,
        }
        let peek: Version =
            serde_json::from_slice(bytes).map_err(|e| DecodeError::NotJson(e.to_string()))?;
        match peek.v.as_ref().map(Value::as_u64) {
            None => return Err(DecodeError::NoVersion),
            Some(Some(v)) if v == FORMAT_VERSION as u64 => {}
            Some(Some(v)) => return Err(DecodeError::UnknownVersion(v)),
            Some(None) => return Err(DecodeError::Shape("`v` is not a whole number".into())),
        }
        serde_json::from_slice(bytes).map_err(|e| DecodeError::Shape(e.to_string()))
    }

    /// Contract checks that do not depend on the job kind.
    pub fn validate(&self) -> Result<(), InvalidJob> {
        let bad = |field, message: String| Err(InvalidJob { field, message });
        if ulid::Ulid::from_string(&self.id).is_err() {
            return bad("id", format!("{:?} is not a ULID", self.id));
        }
        if self.function_name.is_empty() {
            return bad("function_name", "is empty".into());
        }
        if self.name.trim().is_empty() {
            return bad("name", format!("{:?} is empty", self.name));
        }
        if self.name.len() > 255 {
            return bad(
                "name",
                format!("is {} bytes long, at most 255", self.name.len()),
            );
        }
        if self.max_retries > MAX_RETRIES_LIMIT {
            return bad(
                "max_retries",
                format!("{} is outside 0..={MAX_RETRIES_LIMIT}", self.max_retries),
            );
        }
        if self.timeout == 0 {
            return bad("timeout", "must be at least 1 second".into());
        }
        if let Some(k) = &self.idempotency_key
            && (k.is_empty() || k.len() > 200)
        {
            return bad("idempotency_key", format!("{k:?} must be 1..=200 bytes"));
        }
        Ok(())
    }

    /// Attempts allowed in all: the first run plus `max_retries`.
    pub fn max_attempts(&self) -> u32 {
        self.max_retries + 1
    }
}

/// Builds a [`Job`] with Chatter's defaults.
#[derive(Debug, Clone)]
pub struct JobBuilder {
    job: Job,
}

impl JobBuilder {
    pub fn new(function_name: impl Into<String>, queue: impl Into<String>) -> Self {
        let function_name = function_name.into();
        Self {
            job: Job {
                v: FORMAT_VERSION,
                id: ulid::Ulid::new().to_string(),
                name: function_name.clone(),
                function_name,
                queue: queue.into(),
                args: Vec::new(),
                kwargs: Map::new(),
                priority: Priority::Normal,
                created_at: Timestamp::now(),
                scheduled_at: None,
                max_retries: default_max_retries(),
                retry_delay: default_retry_delay(),
                timeout: default_timeout(),
                tags: Vec::new(),
                metadata: Map::new(),
                created_by_user_id: None,
                idempotency_key: None,
            },
        }
    }
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.job.name = name.into();
        self
    }
    /// An object becomes `kwargs`, an array `args`, anything else a single positional argument.
    pub fn arguments(mut self, value: Value) -> Self {
        match value {
            Value::Object(m) => self.job.kwargs = m,
            Value::Array(a) => self.job.args = a,
            Value::Null => {}
            other => self.job.args = vec![other],
        }
        self
    }
    pub fn kwargs(mut self, kwargs: Map<String, Value>) -> Self {
        self.job.kwargs = kwargs;
        self
    }
    pub fn priority(mut self, p: Priority) -> Self {
        self.job.priority = p;
        self
    }
    pub fn delay(mut self, d: Duration) -> Self {
        self.job.scheduled_at = Some(Timestamp(Timestamp::now().0 + d.as_millis() as u64));
        self
    }
    pub fn scheduled_at(mut self, t: Timestamp) -> Self {
        self.job.scheduled_at = Some(t);
        self
    }
    pub fn max_retries(mut self, n: u32) -> Self {
        self.job.max_retries = n;
        self
    }
    pub fn retry_delay(mut self, seconds: u64) -> Self {
        self.job.retry_delay = seconds;
        self
    }
    pub fn timeout(mut self, seconds: u64) -> Self {
        self.job.timeout = seconds;
        self
    }
    pub fn idempotency_key(mut self, k: impl Into<String>) -> Self {
        self.job.idempotency_key = Some(k.into());
        self
    }
    pub fn owner(mut self, user_id: impl Into<String>) -> Self {
        self.job.created_by_user_id = Some(user_id.into());
        self
    }
    pub fn tags(mut self, tags: Vec<String>) -> Self {
        self.job.tags = tags;
        self
    }
    pub fn build(self) -> Job {
        self.job
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_unknown_versions() {
        let job = JobBuilder::new("ping", "maintenance").build();
        let bytes = job.encode();
        assert_eq!(Job::decode(bytes.as_bytes()).unwrap(), job);
        let v2 = bytes.replacen("\"v\":1", "\"v\":2", 1);
        assert_eq!(
            Job::decode(v2.as_bytes()),
            Err(DecodeError::UnknownVersion(2))
        );
        let none = bytes.replacen("\"v\":1,", "", 1);
        assert_eq!(Job::decode(none.as_bytes()), Err(DecodeError::NoVersion));
        assert!(matches!(
            Job::decode(b"{nope"),
            Err(DecodeError::NotJson(_))
        ));
        let shape = Job::decode(br#"{"v":1,"id":5}"#).unwrap_err().to_string();
        assert!(shape.contains("does not match"), "{shape}");
    }

    #[test]
    fn validation_names_the_field() {
        let job = JobBuilder::new("ping", "q").max_retries(11).build();
        let err = job.validate().unwrap_err();
        assert_eq!(err.field, "max_retries");
        assert!(err.to_string().contains("11"));
        let blank = JobBuilder::new("ping", "q").name(" ").build();
        assert_eq!(blank.validate().unwrap_err().field, "name");
    }

    #[test]
    fn arguments_split_into_args_and_kwargs() {
        let j = JobBuilder::new("k", "q")
            .arguments(serde_json::json!({"a": 1}))
            .build();
        assert_eq!(j.kwargs["a"], 1);
        let j = JobBuilder::new("k", "q")
            .arguments(serde_json::json!([1, 2]))
            .build();
        assert_eq!(j.args.len(), 2);
    }
}
