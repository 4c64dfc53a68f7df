//! Telegram's HTML parse mode, checked as strictly as Telegram checks it: only its tags, balanced,
//! and `<`, `>`, `&` escaped in text. Returns the plain text a reader sees.

const TAGS: [&str; 18] = [
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "span",
    "tg-spoiler",
    "a",
    "code",
    "pre",
    "blockquote",
    "tg-emoji",
    "q",
    "tg-time",
];

/// The visible text of `html`, or the reason Telegram would refuse it
/// (`can't parse entities: …`).
pub fn parse(html: &str) -> Result<String, String> {
    let mut text = String::with_capacity(html.len());
    let mut open: Vec<String> = Vec::new();
    let mut rest = html;
    while let Some(c) = rest.chars().next() {
        match c {
            '<' => {
                let end = rest.find('>').ok_or_else(|| unsupported_start(rest))?;
                let tag = &rest[1..end];
                if let Some(name) = tag.strip_prefix('/') {
                    let name = name.trim().to_ascii_lowercase();
                    match open.pop() {
                        Some(top) if top == name => {}
                        _ => {
                            return Err(format!(
                                "can't parse entities: Unmatched end tag at byte offset {}, expected \"</{}>\", found \"</{name}>\"",
                                html.len() - rest.len(),
                                open.last().map(String::as_str).unwrap_or("")
                            ));
                        }
                    }
                } else {
                    let name = tag
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_ascii_lowercase();
                    if !TAGS.contains(&name.as_str()) {
                        return Err(unsupported_start(rest));
                    }
                    open.push(name);
                }
                rest = &rest[end + 1..];
            }
            '&' => {
                let end = rest.find(';').filter(|end| *end <= 10).ok_or_else(|| {
                    format!(
                        "can't parse entities: Unsupported entity at byte offset {}",
                        html.len() - rest.len()
                    )
                })?;
                text.push_str(match &rest[1..end] {
                    "lt" => "<",
                    "gt" => ">",
                    "amp" => "&",
                    "quot" => "\"",
                    entity if entity.starts_with('#') => "?",
                    _ => {
                        return Err(format!(
                            "can't parse entities: Unsupported entity at byte offset {}",
                            html.len() - rest.len()
                        ));
                    }
                });
                rest = &rest[end + 1..];
            }
            other => {
                text.push(other);
                rest = &rest[other.len_utf8()..];
            }
        }
    }
    match open.last() {
        Some(tag) => Err(format!(
            "can't parse entities: Can't find end tag corresponding to start tag \"{tag}\""
        )),
        None => Ok(text),
    }
}

fn unsupported_start(rest: &str) -> String {
    let shown: String = rest.chars().take(20).collect();
    format!("can't parse entities: Unsupported start tag \"{shown}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telegram_html_is_accepted_and_flattened() {
        assert_eq!(
            parse("<b>Hi</b> <a href=\"https://t.me/x\">x</a> &lt;3 &amp;").unwrap(),
            "Hi x <3 &"
        );
    }

    #[test]
    fn unescaped_names_and_bad_tags_are_refused() {
        assert!(
            parse("Welcome <Bob>")
                .unwrap_err()
                .contains("Unsupported start tag")
        );
        assert!(
            parse("a < b")
                .unwrap_err()
                .contains("Unsupported start tag")
        );
        assert!(parse("<b>open").unwrap_err().contains("end tag"));
        assert!(parse("<b>x</i>").unwrap_err().contains("Unmatched end tag"));
        assert!(
            parse("Tom & Jerry")
                .unwrap_err()
                .contains("Unsupported entity")
        );
    }
}
