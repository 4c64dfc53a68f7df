//! Telegram's HTML parse mode, read as Telegram reads it: tdlib's `parse_html` and
//! `decode_html_entity` (`td/telegram/MessageEntity.cpp`), which the Bot API server calls for
//! `parse_mode=HTML`. Only its tags, each closed in order; `&lt;`, `&gt;`, `&amp;`, `&quot;` and
//! numeric references are decoded, and any other `&` is kept as written (Telegram accepts
//! `Tom & Jerry`, whatever the Bot API page asks). Errors are tdlib's wording; the API adds
//! "can't parse entities: ". Nezuko checks administrators' texts with the same reading when they
//! are saved, so what the sandbox refuses and what the dashboard refuses cannot drift apart.

/// tdlib's list, in its order.
const TAGS: [&str; 17] = [
    "a",
    "b",
    "strong",
    "i",
    "em",
    "s",
    "strike",
    "del",
    "u",
    "ins",
    "tg-spoiler",
    "tg-emoji",
    "tg-time",
    "span",
    "pre",
    "code",
    "blockquote",
];

/// An open tag: its name and the argument tdlib keeps (`class` of a span, `emoji-id`).
struct Open {
    name: String,
    argument: String,
    /// Where its content starts in the visible text, to tell an empty entity.
    content_at: usize,
}

/// The visible text of `html`, or tdlib's reason for refusing it (e.g. `Unsupported start tag
/// "div" at byte offset 0`).
pub fn parse(html: &str) -> Result<String, String> {
    let bytes = html.as_bytes();
    let at = |i: usize| bytes.get(i).copied().unwrap_or(0);
    let mut text: Vec<u8> = Vec::with_capacity(html.len());
    let mut open: Vec<Open> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'&'
            && let Some((code, next)) = entity(bytes, i)
        {
            let mut buffer = [0; 4];
            text.extend_from_slice(code.encode_utf8(&mut buffer).as_bytes());
            i = next;
            continue;
        }
        if c != b'<' {
            text.push(c);
            i += 1;
            continue;
        }
        let begin = i;
        i += 1;
        if at(i) != b'/' {
            while at(i) != 0 && !at(i).is_ascii_whitespace() && at(i) != b'>' {
                i += 1;
            }
            if at(i) == 0 {
                return Err(format!("Unclosed start tag at byte offset {begin}"));
            }
            let name = html[begin + 1..i].to_ascii_lowercase();
            if !TAGS.contains(&name.as_str()) {
                return Err(format!(
                    "Unsupported start tag \"{name}\" at byte offset {begin}"
                ));
            }
            let mut argument = String::new();
            while at(i) != b'>' {
                while at(i) != 0 && at(i).is_ascii_whitespace() {
                    i += 1;
                }
                if at(i) == b'>' {
                    break;
                }
                let attribute_begin = i;
                while at(i) != 0
                    && !at(i).is_ascii_whitespace()
                    && !matches!(at(i), b'=' | b'>' | b'/' | b'"' | b'\'')
                {
                    i += 1;
                }
                let attribute = &html[attribute_begin..i];
                if attribute.is_empty() {
                    return Err(format!(
                        "Empty attribute name in the tag \"{name}\" at byte offset {begin}"
                    ));
                }
                while at(i) != 0 && at(i).is_ascii_whitespace() {
                    i += 1;
                }
                if at(i) != b'=' {
                    if at(i) == 0 {
                        return Err(format!(
                            "Unclosed start tag \"{name}\" at byte offset {begin}"
                        ));
                    }
                    continue;
                }
                i += 1;
                while at(i) != 0 && at(i).is_ascii_whitespace() {
                    i += 1;
                }
                if at(i) == 0 {
                    return Err(format!(
                        "Unclosed start tag \"{name}\" at byte offset {begin}"
                    ));
                }
                let value = if at(i) != b'\'' && at(i) != b'"' {
                    // A name token: letters, digits, periods and hyphens, case-insensitive.
                    let token_begin = i;
                    while at(i).is_ascii_alphanumeric() || matches!(at(i), b'.' | b'-') {
                        i += 1;
                    }
                    if at(i) != 0 && !at(i).is_ascii_whitespace() && at(i) != b'>' {
                        return Err(format!(
                            "Unexpected end of name token at byte offset {token_begin}"
                        ));
                    }
                    html[token_begin..i].to_ascii_lowercase()
                } else {
                    let quote = at(i);
                    i += 1;
                    let value_begin = i;
                    while at(i) != 0 && at(i) != quote {
                        i += 1;
                    }
                    let value = html[value_begin..i].to_string();
                    if at(i) == quote {
                        i += 1;
                    }
                    value
                };
                if at(i) == 0 {
                    return Err(format!("Unclosed start tag at byte offset {begin}"));
                }
                match (name.as_str(), attribute) {
                    ("span", "class") => {
                        argument = value.strip_prefix("tg-").unwrap_or_default().to_string()
                    }
                    ("tg-emoji", "emoji-id") => argument = value,
                    _ => {}
                }
            }
            if name == "span" && argument != "spoiler" {
                return Err(format!(
                    "Tag \"span\" must have class \"tg-spoiler\" at byte offset {begin}"
                ));
            }
            open.push(Open {
                name,
                argument,
                content_at: text.len(),
            });
            i += 1;
        } else {
            let Some(top) = open.pop() else {
                return Err(format!("Unexpected end tag at byte offset {begin}"));
            };
            while at(i) != 0 && !at(i).is_ascii_whitespace() && at(i) != b'>' {
                i += 1;
            }
            let name = html[begin + 2..i].to_ascii_lowercase();
            while at(i) != 0 && at(i).is_ascii_whitespace() {
                i += 1;
            }
            if at(i) != b'>' {
                return Err(format!("Unclosed end tag at byte offset {begin}"));
            }
            if !name.is_empty() && name != top.name {
                return Err(format!(
                    "Unmatched end tag at byte offset {begin}, expected \"</{}>\", found \"</{name}>\"",
                    top.name
                ));
            }
            if top.name == "tg-emoji"
                && text.len() > top.content_at
                && top.argument.parse::<i64>().map_or(true, |id| id == 0)
            {
                return Err("Invalid custom emoji identifier specified".into());
            }
            i += 1;
        }
    }
    if let Some(top) = open.last() {
        return Err(format!(
            "Can't find end tag corresponding to start tag \"{}\"",
            top.name
        ));
    }
    Ok(String::from_utf8_lossy(&text).into_owned())
}

/// The character an entity at `bytes[start]` (an `&`) stands for and where reading goes on, or
/// `None` when tdlib keeps the `&` as written (`decode_html_entity`).
fn entity(bytes: &[u8], start: usize) -> Option<(char, usize)> {
    let at = |i: usize| bytes.get(i).copied().unwrap_or(0);
    let mut end = start + 1;
    let code = if at(end) == b'#' {
        end += 1;
        let hex = at(end) == b'x';
        if hex {
            end += 1;
        }
        let mut code: u64 = 0;
        while (hex && at(end).is_ascii_hexdigit()) || (!hex && at(end).is_ascii_digit()) {
            let digit = char::from(at(end)).to_digit(16).unwrap_or(0);
            code = code.saturating_mul(if hex { 16 } else { 10 }) + u64::from(digit);
            end += 1;
        }
        if code == 0 || code >= 0x10ffff || end - start >= 10 {
            return None;
        }
        char::from_u32(code as u32).unwrap_or(char::REPLACEMENT_CHARACTER)
    } else {
        while at(end).is_ascii_alphabetic() {
            end += 1;
        }
        match &bytes[start + 1..end] {
            b"lt" => '<',
            b"gt" => '>',
            b"amp" => '&',
            b"quot" => '"',
            _ => return None,
        }
    };
    if at(end) == b';' {
        end += 1;
    }
    Some((code, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telegram_html_is_accepted_and_flattened() {
        assert_eq!(
            parse("<b>Hi</b> <a href=\"https://t.me/x\">x</a> &lt;3 &amp; &#65;&#x42;").unwrap(),
            "Hi x <3 & AB"
        );
        assert_eq!(
            parse("<blockquote expandable>q</blockquote><span class=\"tg-spoiler\">s</span>")
                .unwrap(),
            "qs"
        );
        assert_eq!(
            parse("<b>x</>").unwrap(),
            "x",
            "an empty end tag closes the last"
        );
    }

    #[test]
    fn an_ampersand_that_begins_no_entity_is_kept_as_written() {
        assert_eq!(parse("Tom & Jerry").unwrap(), "Tom & Jerry");
        assert_eq!(parse("&nbsp;&lt").unwrap(), "&nbsp;<");
    }

    #[test]
    fn what_tdlib_refuses_is_refused_with_its_words() {
        for (html, says) in [
            (
                "Welcome <Bob>",
                "Unsupported start tag \"bob\" at byte offset 8",
            ),
            ("a < b", "Unsupported start tag \"\" at byte offset 2"),
            ("<q>x</q>", "Unsupported start tag \"q\""),
            (
                "<b>open",
                "Can't find end tag corresponding to start tag \"b\"",
            ),
            (
                "<b>x</i>",
                "Unmatched end tag at byte offset 4, expected \"</b>\", found \"</i>\"",
            ),
            ("x</b>", "Unexpected end tag at byte offset 1"),
            ("<b", "Unclosed start tag at byte offset 0"),
            (
                "<span>x</span>",
                "Tag \"span\" must have class \"tg-spoiler\"",
            ),
            (
                "<tg-emoji emoji-id=\"x\">🙂</tg-emoji>",
                "Invalid custom emoji identifier",
            ),
        ] {
            assert_eq!(
                parse(html).map_err(|e| e.contains(says)),
                Err(true),
                "{html}: {:?}",
                parse(html)
            );
        }
    }
}
