//! Every text a bot sends, in a catalogue per language. Templates are Telegram HTML with `{name}`
//! placeholders, filled in one pass: a value is never read again for placeholders, so a member
//! called `{group}` is shown as `{group}`. Values are escaped by [`escape`] before they are put in,
//! so a member called `<b>` cannot break a message (Telegram refuses the whole message on a bad tag).
//!
//! Admins may override any template per language (`settings` key `texts.<lang>`, an object of
//! template name → text). [`check_override`] refuses, when saved, an override with a placeholder its
//! template does not have or HTML Telegram would refuse; one that slipped in before is ignored
//! with a warning, and the built-in text is used.

use std::collections::HashMap;

use super::policy::Language;

/// The `settings` key prefix holding text overrides (`texts.en`, `texts.es`).
pub const OVERRIDES_PREFIX: &str = "texts.";

/// Template names and their English and Spanish texts.
const CATALOGUE: &[(&str, &str, &str)] = &[
    (
        "warning_join",
        "👋 {users}, welcome to {group}! To write here, please join {channels}, then press <b>I have joined</b>.",
        "👋 Hola, {users}. Para escribir en {group}, únete a {channels} y pulsa <b>Ya me uní</b>.",
    ),
    (
        "warning_message",
        "{users}, to write in {group} you need to join {channels}. Join, then press <b>I have joined</b>.",
        "{users}, para escribir en {group} debes unirte a {channels}. Únete y pulsa <b>Ya me uní</b>.",
    ),
    (
        "warning_left",
        "{users}, you left {channels}, so you can no longer write in {group}. Join again, then press <b>I have joined</b>.",
        "{users}, saliste de {channels}, así que ya no puedes escribir en {group}. Vuelve a unirte y pulsa <b>Ya me uní</b>.",
    ),
    (
        "warning_unknown",
        "{users}, I could not confirm that you joined {channels}. Please join, then press <b>I have joined</b>.",
        "{users}, no pude confirmar que te uniste a {channels}. Únete y pulsa <b>Ya me uní</b>.",
    ),
    (
        "removed",
        "{users} left {group}: not subscribed to {channels}.",
        "{users} salió de {group}: no está suscrito a {channels}.",
    ),
    (
        "join_request_missing",
        "👋 You asked to join {group}. It is for subscribers of {channels}: join, then press <b>Check again</b> and I will let you in.",
        "👋 Pediste unirte a {group}. Es para suscriptores de {channels}: únete y pulsa <b>Comprobar de nuevo</b> para entrar.",
    ),
    (
        "join_request_approved",
        "✅ You are in: welcome to {group}!",
        "✅ Ya estás dentro: ¡te damos la bienvenida a {group}!",
    ),
    (
        "join_request_declined",
        "Your request to join {group} was declined: you had not joined {channels} in time. You can ask to join again once you have.",
        "Tu solicitud para unirte a {group} fue rechazada: no te uniste a {channels} a tiempo. Puedes volver a pedirlo cuando lo hagas.",
    ),
    (
        "join_request_refused",
        "An administrator of {group} declined your request to join.",
        "Un administrador de {group} rechazó tu solicitud para unirte.",
    ),
    (
        "join_request_gone",
        "Your request to join {group} is no longer pending.",
        "Tu solicitud para unirte a {group} ya no está pendiente.",
    ),
    (
        "button_check_again",
        "🔄 Check again",
        "🔄 Comprobar de nuevo",
    ),
    ("button_join", "Join {channel}", "Unirse a {channel}"),
    ("button_verify", "✅ I have joined", "✅ Ya me uní"),
    (
        "verified",
        "Thank you! You can write in the group now.",
        "¡Gracias! Ya puedes escribir en el grupo.",
    ),
    (
        "still_missing",
        "You have not joined {channels} yet.",
        "Aún no te has unido a {channels}.",
    ),
    (
        "not_your_button",
        "This button is for the member it was shown to.",
        "Este botón es para el miembro al que se le mostró.",
    ),
    (
        "admin_hold",
        "An administrator has restricted you in this group; only the administrators can lift it.",
        "Un administrador te ha restringido en este grupo; solo los administradores pueden levantarlo.",
    ),
    (
        "check_failed",
        "I could not check your subscription right now; please try again in a minute.",
        "No pude comprobar tu suscripción ahora; inténtalo de nuevo en un minuto.",
    ),
    (
        "welcome",
        "👋 Welcome to {group}, {users}!",
        "👋 {users}, ¡te damos la bienvenida a {group}!",
    ),
    (
        "help",
        "I keep groups for channel subscribers: members who have not joined the group's channels cannot write until they do.\n\nAdd me to your group as an administrator, then send <code>/protect @yourchannel</code> there.",
        "Mantengo grupos para suscriptores de canales: quien no se haya unido a los canales del grupo no puede escribir hasta hacerlo.\n\nAñádeme a tu grupo como administrador y envía <code>/protect @tucanal</code> allí.",
    ),
    (
        "help_setup",
        "<b>Setup</b>\n1. Add me to the group as an administrator with <i>Ban users</i> and <i>Delete messages</i>.\n2. Add me to each channel as an administrator.\n3. In the group, send <code>/protect @channel</code> (several channels at once are fine; for a private channel, reply to a forwarded post with <code>/protect</code> or give its id).\n4. <code>/status</code> shows what I enforce, <code>/settings</code> changes how, <code>/unprotect</code> stops.",
        "<b>Configuración</b>\n1. Añádeme al grupo como administrador con <i>Expulsar usuarios</i> y <i>Eliminar mensajes</i>.\n2. Añádeme a cada canal como administrador.\n3. En el grupo, envía <code>/protect @canal</code> (puedes indicar varios; para un canal privado, responde a una publicación reenviada con <code>/protect</code> o indica su id).\n4. <code>/status</code> muestra qué aplico, <code>/settings</code> cambia cómo, <code>/unprotect</code> lo detiene.",
    ),
    (
        "help_how",
        "<b>How it works</b>\nWhen someone joins or writes without being subscribed, I mute them and show one button per missing channel and an <b>I have joined</b> button. Pressing it after joining lifts the mute at once. Leaving a channel later mutes them again. Admins, anonymous admins, channel posts and bots are never checked.",
        "<b>Cómo funciona</b>\nCuando alguien entra o escribe sin estar suscrito, lo silencio y muestro un botón por canal pendiente y un botón <b>Ya me uní</b>. Al pulsarlo tras unirse, el silencio se levanta al instante. Si luego sale de un canal, vuelve a quedar silenciado. Administradores, administradores anónimos, publicaciones del canal y bots nunca se comprueban.",
    ),
    ("button_setup", "📖 Setup guide", "📖 Guía de configuración"),
    ("button_how", "❓ How it works", "❓ Cómo funciona"),
    (
        "button_add",
        "➕ Add me to a group",
        "➕ Añádeme a un grupo",
    ),
    ("button_back", "⬅ Back", "⬅ Volver"),
    (
        "admins_only",
        "Only group administrators can use this command.",
        "Solo los administradores del grupo pueden usar este comando.",
    ),
    (
        "protect_usage",
        "Usage: <code>/protect @channel [@another …]</code>, a channel id such as <code>-1001234567890</code>, or reply to a post forwarded from the channel.",
        "Uso: <code>/protect @canal [@otro …]</code>, un id de canal como <code>-1001234567890</code>, o responde a una publicación reenviada desde el canal.",
    ),
    (
        "protect_missing",
        "I cannot protect this group yet:\n{problems}",
        "Todavía no puedo proteger este grupo:\n{problems}",
    ),
    (
        "protect_done",
        "🛡 Protected. Members must join {channels} to write here.",
        "🛡 Protegido. Los miembros deben unirse a {channels} para escribir aquí.",
    ),
    (
        "unprotect_done",
        "Protection is off: members can write without joining any channel. Send /protect to turn it on again.",
        "La protección está desactivada: los miembros pueden escribir sin unirse a ningún canal. Envía /protect para activarla de nuevo.",
    ),
    (
        "not_protected",
        "This group is not protected. Send <code>/protect @channel</code> to start.",
        "Este grupo no está protegido. Envía <code>/protect @canal</code> para empezar.",
    ),
    (
        "status",
        "🛡 <b>{group}</b>\nChannels: {channels}\nRequired: {require}\nAction: {action}\nPermissions: {health}\nFail mode: {fail_mode}\nLanguage: {language}",
        "🛡 <b>{group}</b>\nCanales: {channels}\nRequisito: {require}\nAcción: {action}\nPermisos: {health}\nSi falla la comprobación: {fail_mode}\nIdioma: {language}",
    ),
    (
        "settings",
        "⚙ <b>Settings of {group}</b>\nPress a button to change it.",
        "⚙ <b>Ajustes de {group}</b>\nPulsa un botón para cambiarlo.",
    ),
    ("settings_saved", "Saved.", "Guardado."),
    (
        "health_lost",
        "⚠ Administrators: I can no longer enforce subscriptions here. To fix it:\n{problems}",
        "⚠ Administradores: ya no puedo exigir suscripciones aquí. Para arreglarlo:\n{problems}",
    ),
    (
        "protect_basic_group",
        "I cannot protect a basic group: Telegram lets bots restrict members only in supergroups. Telegram turns this group into a supergroup when an administrator changes certain settings (for example makes it public, shows the chat history to new members, or turns on topics). Do that, then send <code>/protect</code> again; I follow the group to its new address.",
        "No puedo proteger un grupo básico: Telegram solo deja que los bots restrinjan miembros en supergrupos. Telegram convierte este grupo en supergrupo cuando un administrador cambia ciertos ajustes (por ejemplo, lo hace público, muestra el historial a los nuevos miembros o activa los temas). Hazlo y envía <code>/protect</code> de nuevo; sigo al grupo a su nueva dirección.",
    ),
    (
        "channel_sender_deleted",
        "Messages sent as a channel ({channel}) are deleted in {group}: please write as yourself.",
        "En {group} se borran los mensajes enviados como un canal ({channel}): escribe como tú mismo, por favor.",
    ),
    (
        "problem_group_admin",
        "make the bot an administrator of the group (with Ban users and Delete messages)",
        "haz al bot administrador del grupo (con Expulsar usuarios y Eliminar mensajes)",
    ),
    (
        "problem_group_restrict",
        "give the bot the right to restrict members (Ban users) in the group",
        "da al bot el permiso de restringir miembros (Expulsar usuarios) en el grupo",
    ),
    (
        "problem_group_delete",
        "give the bot the right to delete messages in the group",
        "da al bot el permiso de eliminar mensajes en el grupo",
    ),
    (
        "problem_group_removed",
        "add the bot to the group again, as an administrator",
        "vuelve a añadir al bot al grupo, como administrador",
    ),
    (
        "problem_channel_admin",
        "make the bot an administrator of {channel} (so it can see who joins and leaves)",
        "haz al bot administrador de {channel} (para que vea quién entra y sale)",
    ),
    (
        "problem_channel_unseen",
        "the bot cannot see the channel {channel}: add it to the channel as an administrator",
        "el bot no puede ver el canal {channel}: añádelo al canal como administrador",
    ),
    (
        "problem_not_channel",
        "{channel} is not a channel",
        "{channel} no es un canal",
    ),
    (
        "problem_bot_stopped",
        "start the group's bot so its rights can be checked",
        "inicia el bot del grupo para que se puedan comprobar sus permisos",
    ),
    (
        "problem_own_channel",
        "{channel} is the chat being protected: it cannot require itself",
        "{channel} es el chat que se protege: no puede exigirse a sí mismo",
    ),
    (
        "problem_channel_link",
        "the bot cannot make an invite link for the private channel {channel}: give it the right Invite users via link there",
        "el bot no puede crear un enlace de invitación del canal privado {channel}: dale allí el permiso Invitar usuarios mediante enlace",
    ),
    (
        "protect_taken",
        "This chat is already protected by @{bot}. Send /unprotect with that bot (or disable the chat on the dashboard) first: two bots would both act on every member.",
        "Este chat ya lo protege @{bot}. Primero envía /unprotect con ese bot (o desactiva el chat en el panel): dos bots actuarían sobre cada miembro.",
    ),
    (
        "problem_invite_users",
        "give the bot the right to add members (Invite users via link) in {channel}, so it can approve join requests",
        "da al bot el permiso de añadir miembros (Invitar usuarios mediante enlace) en {channel}, para que pueda aprobar solicitudes de unión",
    ),
    (
        "problem_basic_group",
        "the group is a basic group: Telegram lets bots restrict members only in supergroups",
        "el grupo es un grupo básico: Telegram solo deja que los bots restrinjan miembros en supergrupos",
    ),
    ("status_ok", "ok", "correctos"),
    ("status_unchecked", "not checked yet", "aún sin comprobar"),
    ("require_all", "every channel", "todos los canales"),
    (
        "require_any",
        "any one channel",
        "cualquiera de los canales",
    ),
    ("action_warn", "warn", "advertir"),
    ("action_restrict", "restrict", "restringir"),
    ("action_kick", "kick", "expulsar"),
    ("action_ban", "ban", "vetar"),
    ("fail_open", "let members speak", "dejar hablar"),
    ("fail_closed", "hold members back", "retener"),
    ("menu_action", "Action: {value}", "Acción: {value}"),
    (
        "menu_require",
        "Channels required: {value}",
        "Canales requeridos: {value}",
    ),
    (
        "menu_fail",
        "If the check fails: {value}",
        "Si falla la comprobación: {value}",
    ),
    (
        "menu_welcome",
        "Welcome message: {value}",
        "Mensaje de bienvenida: {value}",
    ),
    (
        "menu_grace",
        "Grace after join: {value}",
        "Margen tras entrar: {value}",
    ),
    (
        "menu_warn_ttl",
        "Delete warnings after: {value}",
        "Borrar avisos tras: {value}",
    ),
    (
        "menu_rejoin",
        "Restore on rejoin: {value}",
        "Restaurar al volver: {value}",
    ),
    ("menu_lang", "Language: {value}", "Idioma: {value}"),
    (
        "menu_join",
        "Join requests: {value}",
        "Solicitudes de ingreso: {value}",
    ),
    (
        "menu_join_ttl",
        "Decline requests after: {value}",
        "Rechazar solicitudes tras: {value}",
    ),
    (
        "value_join_off",
        "left to admins",
        "para los administradores",
    ),
    (
        "value_join_approve",
        "approve subscribers",
        "aprobar suscriptores",
    ),
    ("value_on", "on", "sí"),
    ("value_off", "off", "no"),
    ("value_none", "none", "ninguno"),
    ("value_never", "never", "nunca"),
    ("value_seconds", "{seconds} s", "{seconds} s"),
];

/// The template `name` in `language`, with admin overrides applied.
#[derive(Debug, Clone, Default)]
pub struct Texts {
    overrides: HashMap<(Language, String), String>,
}

impl Texts {
    /// Builds the catalogue view from `settings` rows `texts.<lang>` → {name: template}.
    pub fn with_overrides(rows: &[(String, serde_json::Value)]) -> Self {
        let mut overrides = HashMap::new();
        for (key, value) in rows {
            let code = key.trim_start_matches(OVERRIDES_PREFIX);
            let Some(language) = Language::ALL.into_iter().find(|l| l.code() == code) else {
                tracing::warn!(key, "text overrides for an unknown language are ignored");
                continue;
            };
            for (name, template) in value.as_object().into_iter().flatten() {
                match (is_known(name), template.as_str()) {
                    (true, Some(text)) if check_override(name, text).is_ok() => {
                        overrides.insert((language, name.clone()), text.to_string());
                    }
                    _ => tracing::warn!(
                        key,
                        name,
                        "unknown, non-text or wrongly-placeholdered template override ignored"
                    ),
                }
            }
        }
        Self { overrides }
    }

    /// Renders template `name` with `values` (already escaped where they came from users), in
    /// one pass over the template: what a value contains is never taken for a placeholder.
    pub fn render(&self, language: Language, name: &str, values: &[(&str, &str)]) -> String {
        let template = self
            .overrides
            .get(&(language, name.to_string()))
            .map(String::as_str)
            .unwrap_or_else(|| builtin(language, name));
        fill(template, values)
    }
}

/// Replaces each `{key}` of `template` that `values` names; anything else stays as written.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut text = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        text.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let value = after.find('}').and_then(|close| {
            let key = &after[..close];
            let value = values.iter().find(|(k, _)| *k == key)?.1;
            Some((value, close))
        });
        match value {
            Some((value, close)) => {
                text.push_str(value);
                rest = &after[close + 1..];
            }
            None => {
                text.push('{');
                rest = after;
            }
        }
    }
    text.push_str(rest);
    text
}

/// The `{name}` placeholders a text uses, in order (names of letters, digits and `_`).
pub fn placeholders(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close)
                if close > 0
                    && after[..close]
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                found.push(&after[..close]);
                rest = &after[close + 1..];
            }
            _ => rest = after,
        }
    }
    found
}

/// The placeholders template `name` offers: those its built-in text uses, in any language.
pub fn allowed_placeholders(name: &str) -> Vec<&'static str> {
    let mut allowed: Vec<&'static str> = CATALOGUE
        .iter()
        .filter(|(n, _, _)| *n == name)
        .flat_map(|(_, en, es)| placeholders(en).into_iter().chain(placeholders(es)))
        .collect();
    allowed.sort_unstable();
    allowed.dedup();
    allowed
}

/// Whether `text` may replace template `name`: every placeholder it uses must be one the template
/// offers. The error names the offending placeholder and the allowed ones.
pub fn check_override(name: &str, text: &str) -> Result<(), String> {
    if is_html(name) {
        // Telegram's own reading (tdlib's `parse_html`), as the sandbox implements it: a text it
        // refuses would make Telegram refuse every message built from it.
        nezuko_sandbox::api::html::parse(text)
            .map_err(|why| format!("Telegram would refuse this text as HTML: {why}"))?;
    }
    let allowed = allowed_placeholders(name);
    match placeholders(text)
        .into_iter()
        .find(|used| !allowed.contains(used))
    {
        None => Ok(()),
        Some(unknown) if allowed.is_empty() => Err(format!(
            "`{{{unknown}}}` is not a placeholder of `{name}`, which takes none"
        )),
        Some(unknown) => Err(format!(
            "`{{{unknown}}}` is not a placeholder of `{name}`; it takes {}",
            allowed
                .iter()
                .map(|p| format!("{{{p}}}"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Whether template `name` is sent as Telegram HTML: all but button labels and the answers shown
/// when a button is pressed, which Telegram shows as plain text.
pub fn is_html(name: &str) -> bool {
    const PLAIN: [&str; 6] = [
        "verified",
        "still_missing",
        "not_your_button",
        "admin_hold",
        "check_failed",
        "settings_saved",
    ];
    !(PLAIN.contains(&name)
        || name.starts_with("button_")
        || name.starts_with("menu_")
        || name.starts_with("value_"))
}

/// Every template name (the API lists them for the settings page).
pub fn names() -> impl Iterator<Item = &'static str> {
    CATALOGUE.iter().map(|(name, _, _)| *name)
}

fn is_known(name: &str) -> bool {
    CATALOGUE.iter().any(|(n, _, _)| *n == name)
}

fn builtin(language: Language, name: &str) -> &'static str {
    CATALOGUE
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, en, es)| match language {
            Language::En => *en,
            Language::Es => *es,
        })
        .unwrap_or("")
}

/// Escapes text for Telegram HTML.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '&' => escaped.push_str("&amp;"),
            '"' => escaped.push_str("&quot;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// A clickable mention of a user, escaped.
pub fn mention(user_id: i64, name: &str) -> String {
    format!("<a href=\"tg://user?id={user_id}\">{}</a>", escape(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_template_exists_in_every_language() {
        for (name, en, es) in CATALOGUE {
            assert!(!en.is_empty() && !es.is_empty(), "{name}");
        }
    }

    #[test]
    fn overrides_win_and_values_fill_in() {
        let texts = Texts::with_overrides(&[(
            "texts.es".into(),
            json!({ "welcome": "Hola {users}", "bogus": "x" }),
        )]);
        assert_eq!(
            texts.render(Language::Es, "welcome", &[("users", "Ana")]),
            "Hola Ana"
        );
        assert!(
            texts
                .render(Language::En, "welcome", &[("users", "Ana"), ("group", "G")])
                .contains("Welcome to G, Ana")
        );
    }

    #[test]
    fn a_value_is_never_read_for_placeholders() {
        let texts = Texts::default();
        let text = texts.render(
            Language::En,
            "welcome",
            &[("users", "{group}"), ("group", "Readers")],
        );
        assert_eq!(text, "👋 Welcome to Readers, {group}!");
        assert_eq!(
            fill("{a}{b} {c} {", &[("a", "{b}"), ("b", "x")]),
            "{b}x {c} {"
        );
    }

    #[test]
    fn an_override_may_use_only_its_templates_placeholders() {
        assert_eq!(check_override("welcome", "Hi {users} in {group}"), Ok(()));
        let refused = check_override("welcome", "Hi {user}").unwrap_err();
        assert!(refused.contains("`{user}`"), "{refused}");
        assert!(refused.contains("{group}, {users}"), "{refused}");
        assert!(check_override("verified", "Thanks {users}").is_err());
        assert_eq!(
            check_override("verified", "Thanks {}!"),
            Ok(()),
            "not a placeholder"
        );
    }

    #[test]
    fn every_built_in_html_text_is_html_telegram_accepts() {
        for (name, en, es) in CATALOGUE.iter().filter(|(name, _, _)| is_html(name)) {
            assert_eq!(check_override(name, en), Ok(()), "{name}");
            assert_eq!(check_override(name, es), Ok(()), "{name}");
        }
    }

    #[test]
    fn an_override_telegram_would_refuse_is_refused_and_never_used() {
        let refused = check_override("welcome", "<b>Hi {users}").unwrap_err();
        assert!(refused.contains("end tag"), "{refused}");
        assert_eq!(
            check_override("welcome", "Tom & {users}"),
            Ok(()),
            "as Telegram"
        );
        assert_eq!(check_override("button_verify", "Done <3"), Ok(()), "plain");
        let texts = Texts::with_overrides(&[(
            "texts.en".into(),
            json!({ "welcome": "<div>{users}</div>" }),
        )]);
        let text = texts.render(Language::En, "welcome", &[("users", "Ana"), ("group", "G")]);
        assert_eq!(text, "👋 Welcome to G, Ana!");
    }

    #[test]
    fn every_spanish_text_uses_the_english_texts_placeholders() {
        for (name, en, es) in CATALOGUE {
            let (mut en, mut es) = (placeholders(en), placeholders(es));
            en.sort_unstable();
            es.sort_unstable();
            assert_eq!(en, es, "{name}");
        }
    }

    #[test]
    fn names_are_escaped_for_html() {
        assert_eq!(escape("<b>&\"x\""), "&lt;b&gt;&amp;&quot;x&quot;");
        assert_eq!(
            mention(5, "<i>Eve</i>"),
            "<a href=\"tg://user?id=5\">&lt;i&gt;Eve&lt;/i&gt;</a>"
        );
    }
}
