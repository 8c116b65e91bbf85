//! The PEM blocks of a proxy file, in order: the proxy certificate, its key, then the chain.

/// One `-----BEGIN <label>-----` … `-----END <label>-----` block, borrowed from the file.
#[derive(Debug)]
pub(crate) struct Block<'a> {
    pub label: &'a str,
    /// The whole block, both armour lines included: what OpenSSL's PEM readers take.
    pub text: &'a [u8],
}

/// A file's PEM blocks. Text outside blocks is ignored, as OpenSSL does; a block without its
/// END line (a truncated file) or with a different END label is an error.
pub(crate) fn blocks(bytes: &[u8]) -> Result<Vec<Block<'_>>, String> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    const END: &[u8] = b"-----END ";
    const DASHES: &[u8] = b"-----";
    let mut out = Vec::new();
    let mut rest = bytes;
    let mut offset = 0;
    while let Some(start) = find(rest, BEGIN) {
        let after_begin = start + BEGIN.len();
        let label_len = find(&rest[after_begin..], DASHES)
            .ok_or_else(|| "a PEM BEGIN line is cut short".to_string())?;
        // Only a real label is ever named in a message: a damaged BEGIN line would otherwise
        // carry the block's content (a key) into it.
        let label = std::str::from_utf8(&rest[after_begin..after_begin + label_len])
            .ok()
            .filter(|l| is_label(l))
            .ok_or_else(|| "a PEM BEGIN line is damaged".to_string())?;
        let body = after_begin + label_len + DASHES.len();
        let end = find(&rest[body..], END)
            .map(|i| body + i)
            .ok_or_else(|| format!("the file is truncated: the {label} block has no END line"))?;
        let after_end = end + END.len();
        let end_label_len = find(&rest[after_end..], DASHES)
            .ok_or_else(|| format!("the file is truncated inside the {label} block's END line"))?;
        if end_label_len > 64 || &rest[after_end..after_end + end_label_len] != label.as_bytes() {
            return Err(format!("the {label} block ends with a different label"));
        }
        let block_end = after_end + end_label_len + DASHES.len();
        out.push(Block {
            label,
            text: &bytes[offset + start..offset + block_end],
        });
        rest = &rest[block_end..];
        offset += block_end;
    }
    Ok(out)
}

/// What PEM labels look like (RFC 7468): short, upper-case words on the BEGIN line.
fn is_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 64
        && label
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' ')
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_blocks_in_order() {
        let text = b"junk\n-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n\
            -----BEGIN RSA PRIVATE KEY-----\nBBB\n-----END RSA PRIVATE KEY-----\n";
        let blocks = blocks(text).unwrap();
        assert_eq!(
            blocks.iter().map(|b| b.label).collect::<Vec<_>>(),
            ["CERTIFICATE", "RSA PRIVATE KEY"]
        );
        assert!(blocks[1].text.starts_with(b"-----BEGIN RSA"));
        assert!(blocks[1].text.ends_with(b"-----END RSA PRIVATE KEY-----"));
    }

    #[test]
    fn damaged_armour_never_names_the_content() {
        let key = "-----BEGIN RSA PRIVATE KEY\nMIIEsecretbody\n-----END RSA PRIVATE KEY-----\n";
        let cert = "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n";
        let damaged_end =
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEsecretbody\n-----END RSA PRIVATE KEY\n";
        for text in [
            key.to_string(),
            format!("{key}{cert}"),
            format!("{damaged_end}{cert}"),
        ] {
            let message = blocks(text.as_bytes()).unwrap_err();
            assert!(!message.contains("MII"), "{message}");
            assert_eq!(message.lines().count(), 1, "{message}");
        }
    }

    #[test]
    fn truncation_is_an_error_at_every_cut() {
        let text = b"-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----";
        for cut in 1..text.len() {
            let result = blocks(&text[..cut]);
            assert!(
                result.as_ref().is_ok_and(Vec::is_empty) || result.is_err(),
                "cut at {cut}"
            );
            if cut >= b"-----BEGIN ".len() {
                assert!(result.is_err(), "cut at {cut} must be an error");
            }
        }
        assert_eq!(blocks(text).unwrap().len(), 1);
    }
}
