//! PDF and DOCX text. Both parsers read attacker-controlled containers, so this module bounds
//! them: a DOCX is unpacked through a counting reader (declared sizes can lie) within size, ratio
//! and entry limits; a PDF parser panic is caught and reported as a corrupt file.
use super::extract::{ExtractError, ExtractLimits, corrupt};
use quick_xml::events::Event;
use std::io::Read;

/// The text of a PDF (pdf-extract); a parser panic becomes a "corrupt PDF" error.
pub fn pdf_text(bytes: &[u8]) -> Result<String, ExtractError> {
    match std::panic::catch_unwind(|| pdf_extract::extract_text_from_mem(bytes)) {
        Ok(Ok(text)) => Ok(text),
        Ok(Err(e)) => Err(corrupt("PDF", e.to_string())),
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "the parser gave up".into());
            Err(corrupt("PDF", why))
        }
    }
}

/// The text of a DOCX's main document part: paragraphs on their own lines, tabs and breaks kept.
pub fn docx_text(bytes: &[u8], limits: &ExtractLimits) -> Result<String, ExtractError> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| corrupt("DOCX", format!("not a readable zip archive ({e})")))?;
    if zip.len() > limits.max_zip_entries {
        return Err(ExtractError::ZipBomb(format!(
            "{} entries, at most {}",
            zip.len(),
            limits.max_zip_entries
        )));
    }
    let mut declared = 0u64;
    for i in 0..zip.len() {
        let entry = zip
            .by_index_raw(i)
            .map_err(|e| corrupt("DOCX", format!("entry {i}: {e}")))?;
        declared = declared.saturating_add(entry.size());
        let name = entry
            .name()
            .map(|n| n.into_owned())
            .unwrap_or_else(|_| format!("#{i}"));
        check_ratio(&name, entry.size(), entry.compressed_size(), limits)?;
    }
    if declared > limits.max_unzipped_bytes {
        return Err(ExtractError::ZipBomb(format!(
            "it unpacks to {declared} bytes, at most {}",
            limits.max_unzipped_bytes
        )));
    }
    let entry = zip
        .by_name("word/document.xml")
        .map_err(|e| corrupt("DOCX", format!("no word/document.xml ({e})")))?;
    let packed = entry.compressed_size();
    let name = "word/document.xml";
    // Read through a limit: the real unpacked size, not the declared one, is what counts.
    let cap = limits
        .max_unzipped_bytes
        .min(packed.saturating_mul(limits.max_zip_ratio).max(1 << 20));
    let mut xml = Vec::new();
    entry
        .take(cap + 1)
        .read_to_end(&mut xml)
        .map_err(|e| corrupt("DOCX", format!("{name}: {e}")))?;
    if xml.len() as u64 > cap {
        return Err(ExtractError::ZipBomb(format!(
            "{name} unpacks past {cap} bytes from {packed} packed"
        )));
    }
    document_xml_text(&xml)
}

fn check_ratio(
    name: &str,
    size: u64,
    packed: u64,
    limits: &ExtractLimits,
) -> Result<(), ExtractError> {
    // Small entries compress well by nature; only large ones can blow up memory.
    if size > 1 << 20 && size / packed.max(1) > limits.max_zip_ratio {
        return Err(ExtractError::ZipBomb(format!(
            "entry {name} unpacks {size} bytes from {packed} (ratio above {})",
            limits.max_zip_ratio
        )));
    }
    Ok(())
}

fn document_xml_text(xml: &[u8]) -> Result<String, ExtractError> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut out = String::new();
    let mut in_text = false;
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) if e.local_name().as_ref() == "t" => in_text = true,
            Ok(Event::End(e)) => match e.local_name().as_ref() {
                "t" => in_text = false,
                "p" => out.push('\n'),
                _ => {}
            },
            Ok(Event::Empty(e)) => match e.local_name().as_ref() {
                "tab" => out.push('\t'),
                "br" | "cr" => out.push('\n'),
                _ => {}
            },
            Ok(Event::Text(t)) if in_text => out.push_str(&t.xml10_content()),
            Ok(Event::GeneralRef(r)) if in_text => {
                // Entities arrive on their own: the five predefined ones and character references.
                let name = r.xml10_content();
                match quick_xml::escape::resolve_predefined_entity(&name) {
                    Some(s) => out.push_str(s),
                    None => {
                        if let Ok(Some(c)) = r.resolve_char_ref() {
                            out.push(c);
                        }
                    }
                }
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => {
                return Err(corrupt(
                    "DOCX",
                    format!(
                        "word/document.xml at byte {}: {e}",
                        reader.buffer_position()
                    ),
                ));
            }
        }
        buf.clear();
    }
    Ok(out)
}
