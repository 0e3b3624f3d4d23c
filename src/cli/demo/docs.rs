//! The project's own documents, built into the binary so `demo` has something to ingest in any
//! folder: the README and `docs/*.md`, as they were when it was built. `write` puts them under
//! the demo's storage root for the `chunk_document` jobs to read.
use anyhow::Context;
use std::path::{Path, PathBuf};

/// (path under the storage root, text).
pub const DOCS: [(&str, &str); 3] = [
    (
        "README.md",
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")),
    ),
    (
        "docs/ARCHITECTURE.md",
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/ARCHITECTURE.md")),
    ),
    (
        "docs/PERFORMANCE.md",
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/PERFORMANCE.md")),
    ),
];

/// Write every document under `root` (unchanged files are rewritten with the same bytes, so
/// their hash, and so their document, stays the same); returns their paths.
pub fn write(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    DOCS.iter()
        .map(|(rel, text)| {
            let path = root.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            Ok(path)
        })
        .collect()
}
