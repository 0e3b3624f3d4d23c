//! From a file's bytes to its text: detect the type from content (magic bytes) and the name, then
//! extract. Plain text is utf-8 (or utf-16 with a BOM), else cp1252 (a superset of latin-1's
//! printable range); html keeps the visible text; csv renders each row with its headers; json
//! joins its string leaves. PDF and DOCX live in `office`.
//!
//! Everything here is synchronous and bounded by the input; the handler runs it on the blocking
//! pool under a time limit. Every error names the problem and the file.
use super::office;

/// The `document_type`s this worker extracts (Chatter's enum values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocType {
    Pdf,
    Docx,
    Html,
    Markdown,
    Csv,
    Json,
    Text,
}

impl DocType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pdf => "pdf",
            Self::Docx => "docx",
            Self::Html => "html",
            Self::Markdown => "markdown",
            Self::Csv => "csv",
            Self::Json => "json",
            Self::Text => "text",
        }
    }

    /// The type named by [`DocType::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Pdf,
            Self::Docx,
            Self::Html,
            Self::Markdown,
            Self::Csv,
            Self::Json,
            Self::Text,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }

    pub fn mime(self) -> &'static str {
        match self {
            Self::Pdf => "application/pdf",
            Self::Docx => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            Self::Html => "text/html",
            Self::Markdown => "text/markdown",
            Self::Csv => "text/csv",
            Self::Json => "application/json",
            Self::Text => "text/plain",
        }
    }
}

/// Limits on what extraction may unpack.
#[derive(Debug, Clone)]
pub struct ExtractLimits {
    /// Bytes a DOCX may unpack to in all (default 200 MB).
    pub max_unzipped_bytes: u64,
    /// Unpacked / packed size of any one DOCX entry (default 100): above it, a zip bomb.
    pub max_zip_ratio: u64,
    /// Entries a DOCX may hold (default 10,000).
    pub max_zip_entries: usize,
    /// Bytes of extracted text (default 100 MB): a wide CSV or a PDF can grow past its file.
    pub max_text_bytes: usize,
}

impl Default for ExtractLimits {
    fn default() -> Self {
        Self {
            max_unzipped_bytes: 200_000_000,
            max_zip_ratio: 100,
            max_zip_entries: 10_000,
            max_text_bytes: 100_000_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExtractError {
    #[error("empty file: nothing to extract")]
    Empty,
    #[error("binary content, not text: {0}")]
    Binary(String),
    #[error("unsupported file type {0}")]
    Unsupported(String),
    #[error("corrupt {kind}: {message}")]
    Corrupt { kind: &'static str, message: String },
    #[error("zip bomb refused: {0}")]
    ZipBomb(String),
    #[error("no text found in this {0}")]
    NoText(&'static str),
    #[error("the extracted text is over the limit of {0} bytes")]
    TooMuchText(usize),
}

/// Detect the type from the content first, then the file name's extension.
pub fn detect(bytes: &[u8], filename: &str) -> Result<DocType, ExtractError> {
    if bytes.is_empty() {
        return Err(ExtractError::Empty);
    }
    let ext = filename
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    let head = &bytes[..bytes.len().min(1024)];
    // PDF readers accept junk before the header; a text that merely mentions one is not a PDF.
    if bytes.starts_with(b"%PDF-") || (ext == "pdf" && head.windows(5).any(|w| w == b"%PDF-")) {
        return Ok(DocType::Pdf);
    }
    if bytes.starts_with(b"PK\x03\x04") {
        if infer::doc::is_docx(bytes) || ext == "docx" {
            return Ok(DocType::Docx);
        }
        return Err(ExtractError::Unsupported(
            "application/zip (a zip archive that is not a DOCX)".into(),
        ));
    }
    let named = match ext.as_str() {
        "pdf" => return Err(corrupt("PDF", "the file has no %PDF header")),
        "docx" => return Err(corrupt("DOCX", "the file is not a zip archive")),
        "md" | "markdown" | "mdown" | "mkd" => Some(DocType::Markdown),
        "html" | "htm" | "xhtml" => Some(DocType::Html),
        "csv" => Some(DocType::Csv),
        "json" => Some(DocType::Json),
        "txt" | "text" | "log" | "rst" | "asc" => Some(DocType::Text),
        _ => None,
    };
    // A text file's name is trusted over infer's short signatures (`BM`, `MZ`, `ID3` open plenty
    // of real text); decoding still refuses binary content.
    if let Some(t) = named {
        return Ok(t);
    }
    if let Some(t) = infer::get(bytes)
        && t.matcher_type() != infer::MatcherType::Text
    {
        return Err(ExtractError::Unsupported(format!(
            "{} (detected from the content)",
            t.mime_type()
        )));
    }
    Ok(if looks_like_html(head) {
        DocType::Html
    } else {
        DocType::Text
    })
}

fn looks_like_html(head: &[u8]) -> bool {
    let s = String::from_utf8_lossy(head)
        .trim_start()
        .to_ascii_lowercase();
    s.starts_with("<!doctype html") || s.starts_with("<html")
}

pub(super) fn corrupt(kind: &'static str, message: impl Into<String>) -> ExtractError {
    ExtractError::Corrupt {
        kind,
        message: message.into(),
    }
}

/// Extract the text of a detected document. NUL characters (which PostgreSQL text refuses) are
/// dropped; an empty result is an error.
pub fn extract(bytes: &[u8], t: DocType, limits: &ExtractLimits) -> Result<String, ExtractError> {
    let text = match t {
        DocType::Pdf => office::pdf_text(bytes)?,
        DocType::Docx => office::docx_text(bytes, limits)?,
        DocType::Text | DocType::Markdown => decode_text(bytes)?,
        DocType::Html => html_text(&decode_text(bytes)?),
        DocType::Csv => csv_text(&decode_text(bytes)?, limits.max_text_bytes)?,
        DocType::Json => json_text(&decode_text(bytes)?)?,
    };
    let text = if text.contains('\0') {
        text.replace('\0', "")
    } else {
        text
    };
    if text.trim().is_empty() {
        return Err(ExtractError::NoText(t.as_str()));
    }
    if text.len() > limits.max_text_bytes {
        return Err(ExtractError::TooMuchText(limits.max_text_bytes));
    }
    Ok(text)
}

/// utf-8 (or the encoding its BOM names), else cp1252; refuses binary content.
pub fn decode_text(bytes: &[u8]) -> Result<String, ExtractError> {
    let text = if let Some((enc, bom)) = encoding_rs::Encoding::for_bom(bytes) {
        enc.decode_without_bom_handling(&bytes[bom..])
            .0
            .into_owned()
    } else {
        match std::str::from_utf8(bytes) {
            Ok(s) => s.to_string(),
            Err(_) => encoding_rs::WINDOWS_1252.decode(bytes).0.into_owned(),
        }
    };
    let mut controls = 0usize;
    let mut total = 0usize;
    for c in text.chars() {
        total += 1;
        if c == '\0' {
            return Err(ExtractError::Binary("it contains NUL bytes".into()));
        }
        if c.is_control() && !matches!(c, '\n' | '\r' | '\t' | '\x0c') {
            controls += 1;
        }
    }
    // Real text has next to no control characters; 1% is already far beyond any we have seen.
    if controls * 100 > total {
        return Err(ExtractError::Binary(format!(
            "{controls} of {total} characters are control characters"
        )));
    }
    Ok(text)
}

/// The visible text of an html page: no script, style, template or head (except its title);
/// block elements on their own lines, whitespace collapsed.
pub fn html_text(html: &str) -> String {
    // (the head is not skipped whole: its title stays, see below)
    const SKIP: [&str; 6] = ["script", "style", "noscript", "template", "svg", "iframe"];
    const BLOCK: [&str; 24] = [
        "p",
        "div",
        "br",
        "li",
        "ul",
        "ol",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "tr",
        "table",
        "section",
        "article",
        "header",
        "footer",
        "blockquote",
        "pre",
        "title",
        "dd",
        "dt",
        "hr",
    ];
    let doc = scraper::Html::parse_document(html);
    let mut out = String::with_capacity(html.len() / 2);
    // An explicit stack: nesting depth comes from the input and must not reach the call stack.
    let mut stack = vec![(doc.tree.root(), false)];
    while let Some((node, closing)) = stack.pop() {
        match node.value() {
            scraper::Node::Text(t) if !closing => push_collapsed(&mut out, t),
            scraper::Node::Element(e) => {
                let name = e.name();
                if closing {
                    if BLOCK.contains(&name) {
                        out.push('\n');
                    }
                    continue;
                }
                if SKIP.contains(&name) {
                    continue;
                }
                if BLOCK.contains(&name) {
                    out.push('\n');
                }
                stack.push((node, true));
                let children: Vec<_> = if name == "head" {
                    // Of the head, only the title is visible (as the tab's name).
                    node.children()
                        .filter(|c| c.value().as_element().is_some_and(|e| e.name() == "title"))
                        .collect()
                } else {
                    node.children().collect()
                };
                stack.extend(children.into_iter().rev().map(|c| (c, false)));
            }
            scraper::Node::Document | scraper::Node::Fragment if !closing => {
                stack.extend(node.children().rev().map(|c| (c, false)));
            }
            _ => {}
        }
    }
    tidy_lines(&out)
}

fn push_collapsed(out: &mut String, t: &str) {
    for (i, word) in t.split_whitespace().enumerate() {
        let starts_with_space = t.starts_with(char::is_whitespace);
        if (i > 0 || starts_with_space) && !out.ends_with([' ', '\n']) && !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    if t.ends_with(char::is_whitespace) && !t.trim().is_empty() {
        out.push(' ');
    }
}

/// Trim every line and keep at most one blank line between paragraphs.
fn tidy_lines(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank = 0;
    for line in s.lines().map(str::trim) {
        if line.is_empty() {
            blank += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank > 0 { "\n\n" } else { "\n" });
        }
        blank = 0;
        out.push_str(line);
    }
    out
}

/// Each row as `header: value` pairs, so every chunk keeps the column names it needs.
pub fn csv_text(s: &str, max_bytes: usize) -> Result<String, ExtractError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(s.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| corrupt("CSV", e.to_string()))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let mut out = String::with_capacity(s.len() * 2);
    out.push_str(&headers.join(", "));
    for (n, record) in reader.records().enumerate() {
        let record = record.map_err(|e| corrupt("CSV", format!("row {}: {e}", n + 2)))?;
        // Headers repeat on every row: a wide file grows, so stop at the limit, not after it.
        if out.len() > max_bytes {
            return Err(ExtractError::TooMuchText(max_bytes));
        }
        out.push('\n');
        for (i, field) in record.iter().enumerate() {
            if i > 0 {
                out.push_str("; ");
            }
            if let Some(h) = headers.get(i).filter(|h| !h.is_empty()) {
                out.push_str(h);
                out.push_str(": ");
            }
            out.push_str(field.trim());
        }
    }
    Ok(out)
}

/// The string leaves of a JSON document, in document order, one per line (read straight from
/// the text, so object keys keep their order; nesting is bounded by serde_json's depth limit).
pub fn json_text(s: &str) -> Result<String, ExtractError> {
    use serde::de::DeserializeSeed;
    let mut out = String::new();
    let mut de = serde_json::Deserializer::from_str(s);
    Leaves(&mut out)
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|e| corrupt("JSON", e.to_string()))?;
    Ok(out)
}

/// Appends every string leaf it visits to the text, a line each.
struct Leaves<'a>(&'a mut String);

impl<'de> serde::de::DeserializeSeed<'de> for Leaves<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Leaves<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        if !v.trim().is_empty() {
            if !self.0.is_empty() {
                self.0.push('\n');
            }
            self.0.push_str(v);
        }
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Leaves(&mut *self.0))?.is_some() {}
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key::<serde::de::IgnoredAny>()?.is_some() {
            map.next_value_seed(Leaves(&mut *self.0))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_keeps_visible_text_only() {
        let t = html_text(
            "<html><head><title>T</title><style>p{}</style><script>var x=1;</script></head>\
             <body><h1>Head</h1><p>One <b>two</b>\n three</p><script>evil()</script><p>Four</p></body></html>",
        );
        assert_eq!(t, "T\n\nHead\n\nOne two three\n\nFour");
    }

    #[test]
    fn text_decoding_falls_back_to_cp1252_and_refuses_binary() {
        assert_eq!(decode_text("héllo".as_bytes()).unwrap(), "héllo");
        assert_eq!(decode_text(b"caf\xe9 \x93q\x94").unwrap(), "café “q”");
        assert!(matches!(decode_text(b"a\0b"), Err(ExtractError::Binary(_))));
        let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
        assert!(matches!(
            decode_text(&garbage),
            Err(ExtractError::Binary(_))
        ));
    }

    #[test]
    fn csv_and_json() {
        assert_eq!(
            csv_text("name,age\nAda,36\nBob,\n", 1000).unwrap(),
            "name, age\nname: Ada; age: 36\nname: Bob; age: "
        );
        assert_eq!(
            json_text(r#"{"b": "x", "a": [1, "y", {"c": "z"}], "d": true}"#).unwrap(),
            "x\ny\nz"
        );
        assert!(json_text("{").is_err());
    }

    #[test]
    fn detection_trusts_content_over_names() {
        assert_eq!(detect(b"%PDF-1.4 ...", "a.txt").unwrap(), DocType::Pdf);
        assert_eq!(
            detect(b"# About %PDF-1.4 files", "a.md").unwrap(),
            DocType::Markdown
        );
        assert_eq!(
            detect(b"BMI,weight\n22,70\n", "bmi.csv").unwrap(),
            DocType::Csv
        );
        assert!(matches!(
            csv_text(&format!("{}\n{}", "h".repeat(100), "x\n".repeat(100)), 1000),
            Err(ExtractError::TooMuchText(1000))
        ));
        assert_eq!(detect(b"# hi", "a.md").unwrap(), DocType::Markdown);
        assert_eq!(detect(b"<!DOCTYPE html><p>x", "a").unwrap(), DocType::Html);
        assert_eq!(detect(b"", "a.txt"), Err(ExtractError::Empty));
        assert!(matches!(
            detect(b"\x89PNG\r\n\x1a\n0000000000000", "a.png"),
            Err(ExtractError::Unsupported(_))
        ));
        assert!(matches!(
            detect(b"hello", "a.pdf"),
            Err(ExtractError::Corrupt { kind: "PDF", .. })
        ));
    }
}
