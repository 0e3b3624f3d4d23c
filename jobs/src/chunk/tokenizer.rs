//! Counting tokens the way the target embedding model will, and cutting a text into *units*
//! that tokenize independently: cl100k's pre-tokenizer pieces (a piece's tokens never merge with
//! its neighbours'), or a local tokenizer's words. The splitter budgets chunks in units.
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// Counts tokens the way the embedding model will.
#[derive(Clone)]
pub enum Tokenizer {
    /// OpenAI's cl100k_base (text-embedding-3-*, ada-002), by bpe-openai.
    Cl100k(&'static bpe_openai::Tokenizer),
    /// A Hugging Face `tokenizer.json` (local models), without truncation or padding; special
    /// tokens are not counted.
    HuggingFace(Arc<tokenizers::Tokenizer>),
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Cl100k(_) => "Tokenizer(cl100k_base)",
            Self::HuggingFace(_) => "Tokenizer(tokenizer.json)",
        })
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("cannot load tokenizer {path}: {message}")]
pub struct TokenizerError {
    pub path: String,
    pub message: String,
}

/// A stretch of text that tokenizes on its own: `[start, end)` bytes, its tokens, and whether it
/// is only whitespace (trimmed away at a chunk's edges).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Unit {
    pub start: u32,
    pub end: u32,
    pub tokens: u32,
    pub blank: bool,
}

impl Unit {
    fn new(text: &str, start: usize, end: usize, tokens: u32) -> Self {
        Self {
            start: start as u32,
            end: end as u32,
            tokens,
            blank: text[start..end].trim().is_empty(),
        }
    }
    pub fn range(&self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

impl Tokenizer {
    pub fn cl100k() -> Self {
        Self::Cl100k(bpe_openai::cl100k_base())
    }

    /// A local model's `tokenizer.json`, with truncation and padding turned off so counts are real.
    pub fn from_file(path: &Path) -> Result<Self, TokenizerError> {
        let err = |message: String| TokenizerError {
            path: path.display().to_string(),
            message,
        };
        let mut t = tokenizers::Tokenizer::from_file(path).map_err(|e| err(e.to_string()))?;
        t.with_truncation(None).map_err(|e| err(e.to_string()))?;
        t.with_padding(None);
        Ok(Self::HuggingFace(Arc::new(t)))
    }

    /// The token count of `text` on its own.
    pub fn count(&self, text: &str) -> usize {
        match self {
            Self::Cl100k(bpe) => bpe.count(text),
            Self::HuggingFace(t) => match t.encode_fast(text, false) {
                Ok(e) => e.len(),
                // A tokenizer without byte fallback that cannot encode some text: count bytes,
                // an over-estimate that keeps chunks within the model's limit.
                Err(_) => text.len(),
            },
        }
    }

    /// True when a chunk's count is the sum of its units' (cl100k's pieces are independent by
    /// construction); a local tokenizer's words are a budget, and chunks are counted whole.
    pub(crate) fn additive(&self) -> bool {
        matches!(self, Self::Cl100k(_))
    }

    /// Cut `text` into units covering it without gaps, none over `max_tokens` tokens.
    pub(crate) fn units(&self, text: &str, max_tokens: usize, out: &mut Vec<Unit>) {
        match self {
            Self::Cl100k(bpe) => {
                let mut counts: HashMap<&str, u32, foldhash::fast::RandomState> =
                    HashMap::default();
                let mut at = 0;
                for piece in bpe.split(text) {
                    let tokens = *counts
                        .entry(piece)
                        .or_insert_with(|| bpe.bpe.count(piece.as_bytes()) as u32);
                    self.push_unit(text, at, at + piece.len(), tokens, max_tokens, out);
                    at += piece.len();
                }
            }
            Self::HuggingFace(t) => {
                // A paragraph-aligned segment at a time: whole-text encodings with offsets cost
                // ~100 bytes per token.
                let mut seg_start = 0;
                while seg_start < text.len() {
                    let seg_end = segment_end(text, seg_start, 64 * 1024);
                    let mut unit_start = seg_start;
                    if let Ok(enc) = t.encode(&text[seg_start..seg_end], false) {
                        let (ids, offsets) = (enc.get_word_ids(), enc.get_offsets());
                        let mut i = 0;
                        while i < offsets.len() {
                            let mut j = i + 1;
                            while j < offsets.len() && ids[j].is_some() && ids[j] == ids[i] {
                                j += 1;
                            }
                            let end = (seg_start + offsets[j - 1].1).clamp(unit_start, seg_end);
                            if end > unit_start && text.is_char_boundary(end) {
                                let n = (j - i) as u32;
                                self.push_unit(text, unit_start, end, n, max_tokens, out);
                                unit_start = end;
                            }
                            i = j;
                        }
                    }
                    if seg_end > unit_start {
                        let n = self.count(&text[unit_start..seg_end]) as u32;
                        self.push_unit(text, unit_start, seg_end, n, max_tokens, out);
                    }
                    seg_start = seg_end;
                }
            }
        }
    }

    /// Push a unit, cutting one larger than a whole chunk at character boundaries.
    fn push_unit(
        &self,
        text: &str,
        start: usize,
        end: usize,
        tokens: u32,
        max: usize,
        out: &mut Vec<Unit>,
    ) {
        if (tokens as usize) <= max {
            out.push(Unit::new(text, start, end, tokens));
            return;
        }
        let mut at = start;
        while at < end {
            // No token is longer than 64 bytes, so a window of 64 bytes a token holds every
            // prefix that can fit; search it for the longest prefix within `max` (at least one
            // character).
            let mut window = end.min(at + max * 64);
            while !text.is_char_boundary(window) {
                window += 1;
            }
            let bounds: Vec<usize> = text[at..window]
                .char_indices()
                .skip(1)
                .map(|(i, _)| at + i)
                .chain(std::iter::once(window))
                .collect();
            let (mut lo, mut hi) = (0, bounds.len() - 1);
            while lo < hi {
                let mid = (lo + hi).div_ceil(2);
                if self.count(&text[at..bounds[mid]]) <= max {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            let cut = bounds[lo];
            out.push(Unit::new(text, at, cut, self.count(&text[at..cut]) as u32));
            at = cut;
        }
    }

    /// Tokens of a chunk's head `text[start..]` up to the first unit boundary where tokenizing on
    /// its own falls back in step with the units (trimming can merge or split the first
    /// pre-tokenizer pieces), and the index of the first unit after it: from there the units'
    /// own counts hold. `None` when the whole `text[start..end]` was counted. Additive only.
    pub(crate) fn lead(
        &self,
        text: &str,
        start: usize,
        end: usize,
        units: &[Unit],
    ) -> (usize, Option<usize>) {
        let Self::Cl100k(bpe) = self else {
            return (self.count(&text[start..end]), None);
        };
        let (mut n, mut pos, mut j) = (0, start, 0);
        for piece in bpe.split(&text[start..end]) {
            n += bpe.bpe.count(piece.as_bytes());
            pos += piece.len();
            while j < units.len() && (units[j].end as usize) < pos {
                j += 1;
            }
            if j < units.len() && units[j].end as usize == pos {
                return (n, Some(j + 1));
            }
        }
        (n, None)
    }
}

/// The end of a segment of about `target` bytes from `start`, at a blank line when there is one,
/// else after a whitespace character, else at a character boundary.
fn segment_end(text: &str, start: usize, target: usize) -> usize {
    if text.len() - start <= target {
        return text.len();
    }
    let mut end = start + target;
    while !text.is_char_boundary(end) {
        end += 1;
    }
    let window = &text[start..end];
    if let Some(i) = window.rfind("\n\n").filter(|&i| i > 0) {
        return start + i + 2;
    }
    match window.char_indices().rev().find(|(_, c)| c.is_whitespace()) {
        Some((i, c)) if i > 0 => start + i + c.len_utf8(),
        _ => end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_end_on_character_boundaries() {
        let text = "語\u{3000}".repeat(40_000);
        let mut start = 0;
        while start < text.len() {
            let end = segment_end(&text, start, 1000);
            assert!(text.is_char_boundary(end) && end > start);
            start = end;
        }
    }
}
