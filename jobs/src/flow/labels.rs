//! Bounded metric labels: a workflow's name as a label, and the cap on the distinct values a
//! user-chosen label (workflow names, model names) may take in one process, so definitions
//! named at will cannot grow the metric series without bound.
/// A workflow's name, short, for logs and metric labels.
pub(super) fn label(name: &str) -> String {
    let n: String = name.chars().take(64).collect();
    if n.is_empty() { "(unnamed)".into() } else { n }
}

/// Distinct values a user-chosen metric label may take in one process; later ones are
/// `other`, so definitions named at will cannot grow the series without bound.
const MAX_LABELS: usize = 200;

pub(crate) static WORKFLOW_LABELS: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashSet<String>>,
> = std::sync::LazyLock::new(Default::default);

/// `value`, or `other` once `MAX_LABELS` other values were seen.
pub(crate) fn bounded(
    seen: &std::sync::Mutex<std::collections::HashSet<String>>,
    value: &str,
) -> String {
    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    if seen.contains(value) || (seen.len() < MAX_LABELS && seen.insert(value.to_string())) {
        value.to_string()
    } else {
        "other".into()
    }
}
