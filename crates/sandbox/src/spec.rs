//! The Bot API specification (10.1, what Telegram speaks today), used to check every request
//! the bots make and every reply the sandbox gives.
//!
//! `spec/bot-api-10.1.json` is the shared machine-readable specification without its prose
//! (`spec/minify.py`), embedded in the binary.

use rustc_hash::FxHashMap;
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::{Map, Value};

const SPEC_JSON: &str = include_str!("../spec/bot-api-10.1.json");

#[derive(Debug, Deserialize)]
struct RawSpec {
    version: String,
    methods: FxHashMap<String, Method>,
    types: FxHashMap<String, TypeDef>,
}

/// One parameter of a method or field of a type.
#[derive(Debug, Clone, Deserialize)]
pub struct Field {
    pub name: String,
    pub types: Vec<String>,
    pub required: bool,
    /// The one value a discriminating field has ("status" is always "member" in
    /// `ChatMemberMember`), which tells the members of a union apart.
    #[serde(default, rename = "const")]
    pub fixed: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Method {
    #[serde(default)]
    pub fields: Vec<Field>,
    pub returns: Vec<String>,
    #[serde(skip)]
    pub name: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct TypeDef {
    #[serde(default)]
    fields: Vec<Field>,
    #[serde(default)]
    subtypes: Vec<String>,
    /// Field name → position in `fields`, so an object's keys are looked up, not searched.
    #[serde(skip)]
    index: FxHashMap<String, usize>,
    /// For a union whose members each fix one field's value (`status`, `type`): that field and
    /// which member each value names, so a value is checked against its member alone.
    #[serde(skip)]
    discriminator: Option<Discriminator>,
}

/// A union's discriminating field and, for each of its values, the member it names.
type Discriminator = (String, FxHashMap<String, String>);

/// The parsed specification; methods are looked up case-insensitively, as Telegram does.
#[derive(Debug)]
pub struct Spec {
    pub version: String,
    methods: FxHashMap<String, Method>,
    /// The spellings clients send (`getMe`, `GetMe`), found without lowercasing.
    spellings: FxHashMap<String, String>,
    types: FxHashMap<String, TypeDef>,
}

/// How parameter values arrived: JSON keeps its types; forms and multipart carry text, which
/// Telegram parses (numbers, booleans, JSON-serialized objects).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Json,
    Text,
}

impl Spec {
    /// The embedded Bot API 10.1 specification, parsed once per process.
    pub fn bot_api() -> &'static Spec {
        static SPEC: OnceLock<Spec> = OnceLock::new();
        SPEC.get_or_init(|| {
            let raw: RawSpec =
                serde_json::from_str(SPEC_JSON).expect("the embedded Bot API spec is valid JSON");
            let mut spellings = FxHashMap::default();
            let methods = raw
                .methods
                .into_iter()
                .map(|(name, mut method)| {
                    let lower = name.to_ascii_lowercase();
                    let pascal = name[..1].to_ascii_uppercase() + &name[1..];
                    for spelling in [name.clone(), pascal] {
                        spellings.insert(spelling, lower.clone());
                    }
                    method.name = name;
                    (lower, method)
                })
                .collect();
            let mut types = raw.types;
            let discriminators: Vec<(String, Discriminator)> = types
                .iter()
                .filter_map(|(name, def)| Some((name.clone(), discriminator(&types, def)?)))
                .collect();
            for def in types.values_mut() {
                def.index = def
                    .fields
                    .iter()
                    .enumerate()
                    .map(|(n, field)| (field.name.clone(), n))
                    .collect();
            }
            for (name, found) in discriminators {
                if let Some(def) = types.get_mut(&name) {
                    def.discriminator = Some(found);
                }
            }
            Spec {
                version: raw.version,
                methods,
                spellings,
                types,
            }
        })
    }

    /// The method called `name` in any letter case (teloxide sends `GetMe`).
    pub fn method(&self, name: &str) -> Option<&Method> {
        match self.spellings.get(name) {
            Some(lower) => self.methods.get(lower),
            None => self.methods.get(&name.to_ascii_lowercase()),
        }
    }

    /// Checks the parameters of a call, converting text values (forms, multipart) into their JSON
    /// types in place. Returns every problem found, each a sentence naming the parameter.
    pub fn check_request(
        &self,
        method: &Method,
        params: &mut Map<String, Value>,
        encoding: Encoding,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        for field in &method.fields {
            match params.get_mut(&field.name) {
                None if field.required => {
                    problems.push(format!("parameter \"{}\" is required", field.name))
                }
                None => {}
                Some(value) => {
                    // The Bot API server reads every parameter from its text: a string in a JSON
                    // body ("user_id": "42") is read as its type, as a form value is.
                    if encoding == Encoding::Text || value.is_string() {
                        coerce_text(value, &field.types);
                    }
                    if let Err(problem) = self.check_any(&field.types, value, &field.name) {
                        problems.push(problem);
                    }
                }
            }
        }
        for name in params.keys() {
            if !method.fields.iter().any(|f| &f.name == name) {
                problems.push(format!(
                    "parameter \"{name}\" is not a parameter of {}",
                    method.name
                ));
            }
        }
        problems
    }

    /// Checks a value against one type expression (`Integer`, `Array of Update`, `Message`, …).
    pub fn check_value(&self, ty: &str, value: &Value, path: &str) -> Result<(), String> {
        self.value_at(ty, value, &Path::Root(path))
    }

    fn value_at(&self, ty: &str, value: &Value, path: &Path) -> Result<(), String> {
        if let Some(inner) = ty.strip_prefix("Array of ") {
            let items = value
                .as_array()
                .ok_or_else(|| format!("{path} must be an array of {inner}"))?;
            return items
                .iter()
                .enumerate()
                .try_for_each(|(i, item)| self.value_at(inner, item, &Path::Index(path, i)));
        }
        let ok = match ty {
            "Integer" => value.is_i64() || value.is_u64(),
            "Float" => value.is_number(),
            "String" => value.is_string(),
            "Boolean" => value.is_boolean(),
            "True" => value == &Value::Bool(true),
            // A file upload arrives as a multipart part, which the HTTP layer replaces by its name.
            "InputFile" => value.is_string(),
            _ => return self.object_at(ty, value, path),
        };
        if ok {
            Ok(())
        } else {
            Err(format!("{path} must be {}", article(ty)))
        }
    }

    fn check_any(&self, types: &[String], value: &Value, path: &str) -> Result<(), String> {
        self.any_at(types, value, &Path::Root(path))
    }

    fn any_at(&self, types: &[String], value: &Value, path: &Path) -> Result<(), String> {
        if let [only] = types {
            return self.value_at(only, value, path);
        }
        if types
            .iter()
            .any(|ty| self.value_at(ty, value, path).is_ok())
        {
            Ok(())
        } else {
            Err(format!("{path} must be one of {}", types.join(", ")))
        }
    }

    fn object_at(&self, ty: &str, value: &Value, path: &Path) -> Result<(), String> {
        let def = self
            .types
            .get(ty)
            .ok_or_else(|| format!("{path} has unknown type {ty}"))?;
        if let Some((field, members)) = &def.discriminator {
            let named = value[field.as_str()].as_str().unwrap_or_default();
            return match members.get(named) {
                Some(member) => self.object_at(member, value, path),
                None => Err(format!("{path}.{field} names no member of {ty}")),
            };
        }
        if !def.subtypes.is_empty() {
            return self
                .any_at(&def.subtypes, value, path)
                .map_err(|_| format!("{path} must be a {ty}"));
        }
        let object = value
            .as_object()
            .ok_or_else(|| format!("{path} must be a {ty} object"))?;
        for (key, inner) in object {
            let Some(field) = def.index.get(key).map(|n| &def.fields[*n]) else {
                return Err(format!("{path}.{key} is not a field of {ty}"));
            };
            let at = Path::Field(path, key);
            self.any_at(&field.types, inner, &at)?;
            if let Some(fixed) = &field.fixed
                && inner.as_str() != Some(fixed)
            {
                return Err(format!("{at} must be \"{fixed}\" in {ty}"));
            }
        }
        match def
            .fields
            .iter()
            .find(|f| f.required && !object.contains_key(&f.name))
        {
            Some(missing) => Err(format!("{path}.{} is required in {ty}", missing.name)),
            None => Ok(()),
        }
    }
}

/// Where in a value a check is, written out only when it finds a problem.
enum Path<'a> {
    Root(&'a str),
    Field(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Root(name) => f.write_str(name),
            Self::Field(parent, name) => write!(f, "{parent}.{name}"),
            Self::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

/// The field every member of a union fixes to its own value, if there is one.
fn discriminator(types: &FxHashMap<String, TypeDef>, union: &TypeDef) -> Option<Discriminator> {
    let first = types.get(union.subtypes.first()?)?;
    let field = first
        .fields
        .iter()
        .find(|f| f.fixed.is_some())?
        .name
        .clone();
    let mut members = FxHashMap::default();
    for member in &union.subtypes {
        let fixed = types
            .get(member)?
            .fields
            .iter()
            .find(|f| f.name == field)?
            .fixed
            .clone()?;
        if members.insert(fixed, member.clone()).is_some() {
            return None; // two members share a value (InlineQueryResultCachedAudio/Audio): no shortcut
        }
    }
    Some((field, members))
}

/// Turns a form value into the JSON value Telegram would read from it.
fn coerce_text(value: &mut Value, types: &[String]) {
    let Value::String(text) = value else { return };
    let wants = |t: &str| types.iter().any(|ty| ty == t);
    let parsed = if wants("Integer") {
        text.parse::<i64>().ok().map(Value::from)
    } else if wants("Boolean") || wants("True") {
        match text.as_str() {
            "true" | "True" | "1" => Some(Value::Bool(true)),
            "false" | "False" | "0" => Some(Value::Bool(false)),
            _ => None,
        }
    } else if wants("Float") {
        text.parse::<f64>().ok().map(Value::from)
    } else if wants("String") {
        None
    } else {
        // Objects and arrays travel JSON-serialized inside form fields.
        serde_json::from_str(text).ok()
    };
    if let Some(parsed) = parsed {
        *value = parsed;
    }
}

fn article(ty: &str) -> String {
    match ty {
        "Integer" => "an integer".into(),
        "True" => "true".into(),
        other => format!("a {}", other.to_ascii_lowercase()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(method: &str, params: Value, encoding: Encoding) -> Vec<String> {
        let spec = Spec::bot_api();
        let mut params = params.as_object().unwrap().clone();
        spec.check_request(spec.method(method).unwrap(), &mut params, encoding)
    }

    #[test]
    fn methods_are_found_in_any_case() {
        let spec = Spec::bot_api();
        assert_eq!(spec.version, "Bot API 10.1");
        assert_eq!(spec.method("GetMe").unwrap().name, "getMe");
        assert!(spec.method("getme").is_some());
        assert!(spec.method("getMee").is_none());
    }

    #[test]
    fn a_well_formed_request_has_no_problems() {
        let params = json!({
            "chat_id": -100123,
            "text": "hi",
            "parse_mode": "HTML",
            "reply_markup": { "inline_keyboard": [[{ "text": "Join", "url": "https://t.me/x" }]] }
        });
        assert_eq!(
            check("sendMessage", params, Encoding::Json),
            Vec::<String>::new()
        );
    }

    #[test]
    fn missing_wrong_and_unknown_parameters_are_named() {
        let problems = check(
            "restrictChatMember",
            json!({ "chat_id": "x", "user_id": "seven", "colour": 1 }),
            Encoding::Json,
        );
        assert!(
            problems.contains(&"parameter \"permissions\" is required".to_string()),
            "{problems:?}"
        );
        assert!(
            problems.contains(&"user_id must be an integer".to_string()),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("\"colour\" is not a parameter")),
            "{problems:?}"
        );
        let nested = check(
            "sendMessage",
            json!({ "chat_id": 1, "text": "x", "reply_markup": { "inline_keyboard": [[{ "txt": "a" }]] } }),
            Encoding::Json,
        );
        assert_eq!(nested.len(), 1, "{nested:?}");
    }

    #[test]
    fn form_values_are_read_as_telegram_reads_them() {
        let problems = check(
            "restrictChatMember",
            json!({ "chat_id": "-100123", "user_id": "7", "permissions": "{\"can_send_messages\":false}", "until_date": "0" }),
            Encoding::Text,
        );
        assert_eq!(problems, Vec::<String>::new());
    }

    #[test]
    fn replies_are_checked_against_their_types() {
        let spec = Spec::bot_api();
        let user = json!({ "id": 1, "is_bot": false, "first_name": "A" });
        assert!(spec.check_value("User", &user, "result").is_ok());
        let member = json!({ "status": "left", "user": user });
        assert!(spec.check_value("ChatMember", &member, "result").is_ok());
        let kicked_without_date = json!({ "status": "kicked", "user": user });
        assert!(
            spec.check_value("ChatMember", &kicked_without_date, "result")
                .is_err(),
            "a status value picks its union member: kicked needs until_date"
        );
        assert!(
            spec.check_value(
                "ChatMemberLeft",
                &json!({ "status": "member", "user": user }),
                "r"
            )
            .unwrap_err()
            .contains("must be \"left\"")
        );
        assert!(
            spec.check_value("Array of User", &json!([{ "id": 1 }]), "result")
                .is_err()
        );
    }
}
