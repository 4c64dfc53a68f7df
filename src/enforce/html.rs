//! Telegram's HTML parse mode, as the Bot API documents it (Formatting options, "HTML style"):
//! only its tags, each closed in order, and every `&` that is not one of its entities escaped.
//! Telegram refuses a whole message that breaks a rule ("Bad Request: can't parse entities"), so
//! a template an administrator overrides is checked with [`check`] when it is saved, and one that
//! fails is never used (the built-in text is). No crate checks this dialect: it is not HTML5 (no
//! implied closings, four named entities) and not XML (bare attributes such as `expandable`). The
//! sandbox reads the same rules with code of its own, on purpose: a reading shared by the product
//! and its stand-in for Telegram could not catch a mistake in either.

/// The tags the Bot API lists for HTML style (`tg-time` writes the `date_time` entity).
const TAGS: [&str; 17] = [
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
    "tg-emoji",
    "tg-time",
    "code",
    "pre",
    "blockquote",
];

/// The only named entities Telegram reads; numeric ones (`&#39;`, `&#x1F600;`) are read too.
const NAMED_ENTITIES: [&str; 4] = ["lt", "gt", "amp", "quot"];

/// `Ok` if Telegram would accept `html` as HTML-style text; otherwise what is wrong, where (byte
/// offset), and how to write it instead.
pub fn check(html: &str) -> Result<(), String> {
    let mut open: Vec<&str> = Vec::new();
    let mut at = 0;
    while let Some(found) = html[at..].find(['<', '&']) {
        let start = at + found;
        let rest = &html[start..];
        if rest.starts_with('&') {
            at = start
                + entity_length(rest).ok_or_else(|| {
                    format!("`&` at byte {start} begins no entity Telegram knows: write `&amp;`")
                })?;
            continue;
        }
        let Some(end) = rest.find('>') else {
            return Err(format!(
                "`<` at byte {start} begins no tag: write `&lt;` for a literal `<`"
            ));
        };
        let inside = &rest[1..end];
        if let Some(name) = inside.strip_prefix('/') {
            let name = name.trim();
            match open.pop() {
                Some(top) if top.eq_ignore_ascii_case(name) => {}
                Some(top) => {
                    return Err(format!(
                        "`</{name}>` at byte {start} closes `<{top}>`, which must be closed first"
                    ));
                }
                None => return Err(format!("`</{name}>` at byte {start} closes nothing")),
            }
        } else {
            let name = inside.split_whitespace().next().unwrap_or_default();
            if !TAGS.iter().any(|tag| tag.eq_ignore_ascii_case(name)) {
                return Err(format!(
                    "`<{inside}>` at byte {start} is not a tag Telegram supports ({}); write `&lt;` for a literal `<`",
                    TAGS.join(", ")
                ));
            }
            open.push(name);
        }
        at = start + end + 1;
    }
    match open.last() {
        Some(tag) => Err(format!("`<{tag}>` is never closed")),
        None => Ok(()),
    }
}

/// The length of the entity `text` starts with (`&…;`), if Telegram reads it as one.
fn entity_length(text: &str) -> Option<usize> {
    let end = text[1..].find(';')? + 1;
    let body = &text[1..end];
    let known = NAMED_ENTITIES.contains(&body)
        || body
            .strip_prefix("#x")
            .or_else(|| body.strip_prefix("#X"))
            .is_some_and(|hex| !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()))
        || body
            .strip_prefix('#')
            .is_some_and(|dec| !dec.is_empty() && dec.chars().all(|c| c.is_ascii_digit()));
    known.then_some(end + 1)
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn telegram_html_passes() {
        for ok in [
            "plain",
            "<b>bold</b> <i>it</i> <a href=\"https://t.me/x\">x</a> &lt;3 &amp; &quot; &#39; &#x1F600;",
            "<blockquote expandable>long</blockquote> <tg-spoiler>s</tg-spoiler>",
            "<span class=\"tg-spoiler\">s</span> <pre><code class=\"language-rust\">x</code></pre>",
            "{users}, join {channels} > now",
            "<B>upper</b>",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn what_telegram_refuses_is_refused_with_where_and_how() {
        for (bad, says) in [
            ("<div>x</div>", "not a tag Telegram supports"),
            ("<b>x", "never closed"),
            ("<b><i>x</b></i>", "closes `<i>`"),
            ("x</b>", "closes nothing"),
            ("Tom & Jerry", "write `&amp;`"),
            ("&nbsp;", "begins no entity"),
            ("1 < 2", "begins no tag"),
        ] {
            let error = check(bad).expect_err(bad);
            assert!(error.contains(says), "{bad}: {error}");
        }
    }
}
