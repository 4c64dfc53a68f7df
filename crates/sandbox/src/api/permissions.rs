//! Reading the `permissions` of `restrictChatMember` as the Bot API server reads them: absent
//! names take defaults from related ones, and unless `use_independent_chat_permissions` is set
//! some permissions imply others (`Client::get_chat_permissions`, telegram-bot-api 10.0,
//! `telegram-bot-api/Client.cpp`).

use serde_json::{Map, Value};

use super::ApiError;
use crate::model::{PERMISSION_NAMES, Permissions};

const MEDIA: [&str; 6] = [
    "can_send_audios",
    "can_send_documents",
    "can_send_photos",
    "can_send_videos",
    "can_send_video_notes",
    "can_send_voice_notes",
];

/// The complete permissions a request asks for.
pub fn from_request(
    requested: &Map<String, Value>,
    independent: bool,
) -> Result<Permissions, ApiError> {
    let get = |name: &str| -> Result<Option<bool>, ApiError> {
        match requested.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(value)) => Ok(Some(*value)),
            Some(_) => Err(ApiError::bad_request(&format!(
                "Can't parse chat permissions: Field \"{name}\" must be of type Boolean"
            ))),
        }
    };
    let mut p: Permissions = PERMISSION_NAMES
        .iter()
        .map(|name| (name.to_string(), false))
        .collect();
    for name in [
        "can_send_messages",
        "can_send_polls",
        "can_send_other_messages",
        "can_add_web_page_previews",
        "can_change_info",
        "can_invite_users",
        "can_pin_messages",
    ] {
        p.insert(name.into(), get(name)?.unwrap_or(false));
    }
    let pin = p["can_pin_messages"];
    p.insert(
        "can_manage_topics".into(),
        get("can_manage_topics")?.unwrap_or(pin),
    );
    if MEDIA.iter().any(|name| requested.contains_key(*name)) {
        for name in MEDIA {
            p.insert(name.into(), get(name)?.unwrap_or(false));
        }
    } else {
        // The legacy single media flag, still read when no separate media flag is given.
        let media = get("can_send_media_messages")?.unwrap_or(false);
        for name in MEDIA {
            p.insert(name.into(), media);
        }
        if media && !independent {
            p.insert("can_send_messages".into(), true);
        }
    }
    p.insert("can_edit_tag".into(), get("can_edit_tag")?.unwrap_or(pin));
    let send = p["can_send_messages"];
    p.insert(
        "can_react_to_messages".into(),
        get("can_react_to_messages")?.unwrap_or(send),
    );
    if !independent {
        if p["can_send_other_messages"] || p["can_add_web_page_previews"] {
            for name in MEDIA.iter().chain(&["can_send_messages"]) {
                p.insert(name.to_string(), true);
            }
        }
        if p["can_send_polls"] {
            p.insert("can_send_messages".into(), true);
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(value: Value, independent: bool) -> Permissions {
        from_request(value.as_object().unwrap(), independent).unwrap()
    }

    #[test]
    fn nothing_asked_is_nothing_allowed() {
        assert!(read(json!({}), false).values().all(|allowed| !allowed));
    }

    #[test]
    fn the_fourteen_flags_of_an_older_client_allow_all_sixteen() {
        let older: Map<String, Value> = PERMISSION_NAMES[..10]
            .iter()
            .chain(&PERMISSION_NAMES[12..])
            .map(|name| (name.to_string(), json!(true)))
            .collect();
        let permissions = read(Value::Object(older), false);
        assert!(
            permissions.values().all(|allowed| *allowed),
            "{permissions:?}"
        );
    }

    #[test]
    fn dependent_permissions_follow_unless_independent() {
        let other = json!({ "can_send_other_messages": true });
        assert!(read(other.clone(), false)["can_send_messages"]);
        assert!(read(other.clone(), false)["can_send_photos"]);
        assert!(!read(other, true)["can_send_messages"]);
        let media = json!({ "can_send_media_messages": true });
        assert!(read(media.clone(), false)["can_send_messages"]);
        assert!(read(media, true)["can_send_videos"]);
        let messages = json!({ "can_send_messages": true });
        assert!(read(messages, false)["can_react_to_messages"]);
    }

    #[test]
    fn a_permission_that_is_not_a_boolean_is_refused() {
        let error = from_request(
            json!({ "can_send_messages": "yes" }).as_object().unwrap(),
            false,
        )
        .unwrap_err();
        assert!(error.description.contains("can_send_messages"), "{error:?}");
    }
}
